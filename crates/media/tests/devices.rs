//! Devices: listing, picking, what stands in for a device that cannot be used (silence, no picture),
//! and the real cpal code driving ALSA's
//! null device (there is no sound card on the machines these run on).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dialtone_media::audio::ToneSource;
use dialtone_media::{
    AudioSender, AudioSlot, AudioSource, CameraConfig, DeviceKind, DeviceList, DeviceNotice, DeviceNotify, DevicePick,
    MicrophoneConfig, Speaker, VideoSender, VideoSlot, VideoSource,
};

fn recorder() -> (DeviceNotify, Arc<Mutex<Vec<DeviceNotice>>>) {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let kept = notices.clone();
    (Arc::new(move |notice| kept.lock().unwrap().push(notice)), notices)
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn every_kind_lists_its_fake_twin_last_and_hides_alsa_null() {
    let list = DeviceList::query();
    for kind in [DeviceKind::Microphone, DeviceKind::Speaker, DeviceKind::Camera] {
        let devices = list.of(kind);
        let last = devices.last().expect("the twin is always there");
        assert!(last.fake && last.id == kind.fake_id(), "{kind:?}: {devices:?}");
        assert_eq!(devices.iter().filter(|d| d.fake).count(), 1);
        assert!(devices.iter().all(|d| d.kind == kind && d.id != "alsa:null" && !d.name.is_empty()), "{devices:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_microphone_that_does_not_exist_sends_silence_and_says_why() {
    let (notify, notices) = recorder();
    let meter = AudioSlot::new();
    let pick = DevicePick::Id("alsa:no-such-card".into());
    let config = MicrophoneConfig { tone_hz: 880.0, bitrate_bps: 32_000 };
    let _microphone =
        AudioSender::start(config, AudioSource::Device { pick, notify, processing: None }, Some(meter.clone()))
            .unwrap();
    // Half a second of what would be sent: silence, never the twin's tone.
    until("half a second captured", || meter.frames_decoded() >= 25).await;
    assert_eq!((meter.level(), meter.dominant_frequency()), (0.0, None), "silence");
    let notices = notices.lock().unwrap().clone();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].device, DeviceKind::Microphone.absent());
    let problem = notices[0].problem.as_deref().expect("a reason");
    assert!(problem.contains("alsa:no-such-card"), "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_pick_uses_the_twin_without_a_problem() {
    let (notify, notices) = recorder();
    let preview = VideoSlot::new(None);
    let camera = CameraConfig { width: 160, height: 120, fps: 15, bitrate_kbps: 200, detailed: false };
    let _camera =
        VideoSender::start(camera, VideoSource::Device { pick: DevicePick::Fake, notify }, Some(preview.clone()))
            .unwrap();
    until("a test-pattern picture", || preview.latest().is_some_and(|frame| frame.stamp.is_some())).await;
    assert_eq!(*notices.lock().unwrap(), vec![DeviceNotice { device: DeviceKind::Camera.fake(), problem: None }]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_nobody_looks_at_is_not_drawn_until_someone_does() {
    let preview = VideoSlot::new(None);
    let camera = CameraConfig { width: 160, height: 120, fps: 30, bitrate_kbps: 200, detailed: false };
    let _camera = VideoSender::start(camera, VideoSource::TestPattern, Some(preview.clone())).unwrap();
    // Counting pictures is not looking at them: only the first is drawn while nobody reads the slot.
    until("the first preview picture", || preview.frames_decoded() >= 1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(preview.frames_decoded(), 1, "pictures drawn for nobody");
    assert!(!preview.watched());
    // A reader (a window showing it) gets fresh pictures at the preview's rate again (15 fps).
    let started = tokio::time::Instant::now();
    let mut stamps = Vec::new();
    while started.elapsed() < Duration::from_millis(600) {
        if let Some(frame) = preview.latest()
            && stamps.last() != Some(&frame.stamp)
        {
            stamps.push(frame.stamp);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(stamps.len() >= 6, "only {} pictures in 600 ms while watched", stamps.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_camera_here_means_no_picture_with_a_reason() {
    let (notify, notices) = recorder();
    let preview = VideoSlot::new(None);
    let camera = CameraConfig { width: 160, height: 120, fps: 15, bitrate_kbps: 200, detailed: false };
    let pick = DevicePick::Id("camera:7".into());
    let _camera = VideoSender::start(camera, VideoSource::Device { pick, notify }, Some(preview.clone())).unwrap();
    until("the notice", || !notices.lock().unwrap().is_empty()).await;
    // Looked at for half a second (a preview is drawn only while watched): nothing, never the pattern.
    for _ in 0..50 {
        assert!(preview.latest().is_none(), "a picture was sent for a camera that does not exist");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let notices = notices.lock().unwrap().clone();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].device == DeviceKind::Camera.absent()
            && notices[0].problem.as_deref().is_some_and(|p| p.contains("camera:7")),
        "{notices:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_silent_speaker_plays_the_mix_in_real_time() {
    let (notify, notices) = recorder();
    let (first, second) = (AudioSlot::new(), AudioSlot::new());
    let (mut low, mut high) = (ToneSource::new(400.0), ToneSource::new(400.0));
    // 400 ms of the same tone from two people, queued ahead (only the last 120 ms stay queued).
    for _ in 0..20 {
        first.show(&low.next_frame());
        second.show(&high.next_frame());
    }
    let played = AudioSlot::new();
    let sources = vec![first.clone(), second.clone()];
    let started = std::time::Instant::now();
    let _speaker =
        Speaker::start(DevicePick::Fake, Arc::new(move || sources.clone()), played.clone(), notify, None).unwrap();
    until("the tone played", || played.dominant_frequency() == Some(400.0)).await;
    // Both streams are in what was played: twice one stream's level.
    let one = first.last_level();
    until("the mix at full level", || (played.last_level() - 2.0 * one).abs() < 0.01).await;
    // The queues drain at the speaker's pace, 20 ms a frame: 6 frames take about 120 ms.
    until("the queues drained", || played.last_level() == 0.0).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(100), "drained in {took:?}: faster than real time");
    assert_eq!(*notices.lock().unwrap(), vec![DeviceNotice { device: DeviceKind::Speaker.fake(), problem: None }]);
}

/// The real device code, end to end, against ALSA's null device: it opens, negotiates a format,
/// captures (silence) and plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cpal_path_opens_captures_and_plays_on_alsa_null() {
    let (notify, notices) = recorder();
    let meter = AudioSlot::new();
    let null = DevicePick::Id("alsa:null".into());
    let config = MicrophoneConfig { tone_hz: 880.0, bitrate_bps: 32_000 };
    let microphone = AudioSender::start(
        config,
        AudioSource::Device { pick: null.clone(), notify: notify.clone(), processing: None },
        Some(meter.clone()),
    )
    .unwrap();
    until("captured frames", || meter.frames_decoded() >= 10).await;
    drop(microphone);
    assert_eq!(meter.last_level(), 0.0, "the null device captures silence, not the stand-in tone");

    let source = AudioSlot::new();
    let mut tone = ToneSource::new(500.0);
    for _ in 0..6 {
        source.show(&tone.next_frame());
    }
    let played = AudioSlot::new();
    let sources = vec![source.clone()];
    let speaker = Speaker::start(null, Arc::new(move || sources.clone()), played.clone(), notify, None).unwrap();
    // The null device takes sound as fast as it is given, so what it played is gone from the record
    // at once; that the queue was emptied into it shows it played.
    until("the device pulling sound", || played.frames_decoded() > 6).await;
    drop(speaker);
    assert_eq!(source.take_frame(), None, "the device took the queued tone");

    let notices = notices.lock().unwrap().clone();
    assert_eq!(notices.len(), 2, "{notices:?}");
    for (notice, kind) in notices.iter().zip([DeviceKind::Microphone, DeviceKind::Speaker]) {
        assert_eq!(
            (notice.device.kind, notice.device.id.as_str(), notice.device.fake),
            (kind, "alsa:null", false),
            "{notice:?}"
        );
        assert_eq!(notice.problem, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pictures_of_another_shape_are_sent_in_their_own_shape_not_stretched() {
    use dialtone_media::DecodedFrame;
    use dialtone_media::video::RgbaFrame;
    use std::sync::atomic::{AtomicU64, Ordering};
    // A source whose pictures are 4:3 (as many USB cameras give), then 16:9, sent with a 16:9 setting.
    let size = Arc::new(Mutex::new((1600u32, 1200u32)));
    let (shape, number) = (size.clone(), Arc::new(AtomicU64::new(0)));
    let source = VideoSource::Mirror(Arc::new(move || {
        let (width, height) = *shape.lock().unwrap();
        let picture = RgbaFrame { width, height, pixels: vec![128; (width * height * 4) as usize] };
        let index = number.fetch_add(1, Ordering::Relaxed) + 1;
        Some(Arc::new(DecodedFrame { picture, stamp: None, decoded_us: 0, index }))
    }));
    let preview = VideoSlot::new(None);
    let camera = CameraConfig { width: 1280, height: 720, fps: 30, bitrate_kbps: 1_500, detailed: false };
    let _sender = VideoSender::start(camera, source, Some(preview.clone())).unwrap();
    // The preview shows what is encoded, at the encoder's size.
    let shown = |wanted: (u32, u32)| {
        let preview = preview.clone();
        move || preview.latest().is_some_and(|frame| (frame.picture.width, frame.picture.height) == wanted)
    };
    until("4:3 pictures encoded at 960x720", shown((960, 720))).await;
    *size.lock().unwrap() = (1920, 1080);
    until("16:9 pictures encoded at 1280x720", shown((1280, 720))).await;
}
