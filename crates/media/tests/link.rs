//! Two links in one process, their signaling relayed directly: they connect over loopback.

use std::sync::Arc;
use std::time::Duration;

use dialtone_media::{
    AudioSender, AudioSlot, AudioSource, CameraConfig, Link, LinkEvent, LinkState, MediaConfig, MicrophoneConfig, Role,
    VideoSender, VideoSlot, VideoSource,
};
use tokio::sync::mpsc;

type Events = mpsc::UnboundedReceiver<LinkEvent>;

fn spawn(role: Role) -> (Link, Events) {
    spawn_with(role, MediaConfig::default())
}

fn spawn_with(role: Role, config: MediaConfig) -> (Link, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let link = Link::spawn(
        Arc::new(config),
        role,
        Arc::new(move |event| {
            let _ = tx.send(event);
        }),
        VideoSlot::new(None),
        dialtone_media::AudioSlot::new(),
        &dialtone_media::CodecReserve::default(),
    );
    (link, rx)
}

/// A trickled candidate names its media section (`sdp_mid`), or leaves it out: an empty one is taken by
/// browsers only because they fall back on the m-line index; other peers may not.
fn check_candidate(payload: &dialtone_protocol::SignalPayload) {
    if let dialtone_protocol::SignalPayload::Candidate { sdp_mid, .. } = payload {
        assert_ne!(sdp_mid.as_deref(), Some(""), "a candidate with an empty media section: {payload:?}");
    }
}

/// Relays signals both ways until both sides report `Connected`; returns the offerer's time to connect.
async fn connect(offerer: &Link, offers: &mut Events, answerer: &Link, answers: &mut Events) -> Duration {
    let mut connected = (None, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while connected.0.is_none() || connected.1.is_none() {
        tokio::select! {
            Some(event) = offers.recv() => match event {
                LinkEvent::Signal(payload) => {
                    check_candidate(&payload);
                    answerer.remote_signal(payload)
                }
                LinkEvent::State { state: LinkState::Connected, after, .. } => connected.0 = Some(after),
                LinkEvent::State { state: LinkState::Failed, .. } | LinkEvent::Error(_) => panic!("offerer: {event:?}"),
                LinkEvent::State { .. } | LinkEvent::Stats(_) => {}
            },
            Some(event) = answers.recv() => match event {
                LinkEvent::Signal(payload) => {
                    check_candidate(&payload);
                    offerer.remote_signal(payload)
                }
                LinkEvent::State { state: LinkState::Connected, after, .. } => connected.1 = Some(after),
                LinkEvent::State { state: LinkState::Failed, .. } | LinkEvent::Error(_) => panic!("answerer: {event:?}"),
                LinkEvent::State { .. } | LinkEvent::Stats(_) => {}
            },
            _ = tokio::time::sleep_until(deadline) => panic!("not connected within 10 s: {connected:?}"),
        }
    }
    connected.0.expect("checked")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_links_connect_over_loopback_and_close() {
    let (offerer, mut offers) = spawn(Role::Offerer);
    let (answerer, mut answers) = spawn(Role::Answerer);
    let took = connect(&offerer, &mut offers, &answerer, &mut answers).await;
    eprintln!("offer to connected: {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    offerer.close();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), offers.recv()).await.expect("closed in time") {
            Some(LinkEvent::State { state: LinkState::Closed, .. }) => break,
            Some(_) => {}
            None => panic!("events ended without closed"),
        }
    }
}

/// Two connected links, their signals still relayed in the background.
async fn connected_pair() -> (Arc<Link>, Arc<Link>) {
    let (offerer, mut offers) = spawn(Role::Offerer);
    let (answerer, mut answers) = spawn(Role::Answerer);
    connect(&offerer, &mut offers, &answerer, &mut answers).await;
    relay_rest(offerer, offers, answerer, answers)
}

/// Keeps relaying signals in the background (candidates can still trickle after connecting).
fn relay_rest(offerer: Link, mut offers: Events, answerer: Link, mut answers: Events) -> (Arc<Link>, Arc<Link>) {
    let (offerer, answerer) = (Arc::new(offerer), Arc::new(answerer));
    let (o, a) = (offerer.clone(), answerer.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(event) = offers.recv() => if let LinkEvent::Signal(payload) = event { a.remote_signal(payload) },
                Some(event) = answers.recv() => if let LinkEvent::Signal(payload) = event { o.remote_signal(payload) },
                else => break,
            }
        }
    });
    (offerer, answerer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_sent_on_one_side_is_decoded_on_the_other_in_order_and_fresh() {
    let (offerer, answerer) = connected_pair().await;

    let camera = CameraConfig { width: 320, height: 240, fps: 30, bitrate_kbps: 500, detailed: false };
    let started = tokio::time::Instant::now();
    let preview = VideoSlot::new(None);
    let sender = VideoSender::start(camera, VideoSource::TestPattern, Some(preview.clone())).unwrap();
    sender.set_targets(vec![answerer.sender()]);
    let slot = offerer.remote_video();
    let mut frames = Vec::new();
    let mut first_frame_after = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while frames.len() < 30 {
        assert!(tokio::time::Instant::now() < deadline, "only {} frames in 10 s", frames.len());
        if let Some(frame) = slot.latest()
            && frames.last().is_none_or(|last: &Arc<dialtone_media::DecodedFrame>| last.index != frame.index)
        {
            first_frame_after.get_or_insert(started.elapsed());
            frames.push(frame);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let first = &frames[0];
    let first_frame_after = first_frame_after.expect("frames arrived");
    eprintln!("start to first decoded frame: {first_frame_after:?}");
    assert!(first_frame_after < Duration::from_millis(500), "{first_frame_after:?}");
    assert_eq!((first.picture.width, first.picture.height), (320, 240));
    let numbers: Vec<u32> = frames.iter().map(|f| f.stamp.expect("stamped").frame).collect();
    assert!(numbers.windows(2).all(|pair| pair[0] < pair[1]), "frame numbers increase: {numbers:?}");
    let latencies: Vec<u64> = frames.iter().map(|f| f.decoded_us - f.stamp.unwrap().captured_us).collect();
    assert!(latencies.iter().all(|&us| us < 200_000), "capture to decode under 200 ms: {latencies:?}");
    eprintln!("capture to decode: {latencies:?} us");
    let shown = preview.latest().expect("the camera showed its pictures in the preview");
    assert_eq!((shown.picture.width, shown.picture.height), (320, 240));
    assert!(shown.stamp.is_some(), "the preview shows the camera's own picture");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_sends_back_the_pictures_and_sound_it_receives() {
    let (offerer, answerer) = connected_pair().await;
    let camera = CameraConfig { width: 320, height: 240, fps: 30, bitrate_kbps: 500, detailed: false };
    let there = VideoSender::start(camera, VideoSource::TestPattern, None).unwrap();
    there.set_targets(vec![answerer.sender()]);
    let meter = AudioSlot::new();
    let tone = AudioSender::start(
        MicrophoneConfig { tone_hz: 700.0, bitrate_bps: 32_000 },
        AudioSource::Tone,
        Some(meter.clone()),
    )
    .unwrap();
    tone.set_targets(vec![answerer.sender()]);

    // The answering side mirrors what it decodes back to the offerer.
    let (mirrored_video, mirrored_audio) = (offerer.remote_video(), offerer.remote_audio());
    let back =
        VideoSender::start(camera, VideoSource::Mirror(Arc::new(move || mirrored_video.latest())), None).unwrap();
    back.set_targets(vec![offerer.sender()]);
    let echo = AudioSender::start(
        MicrophoneConfig::default(),
        AudioSource::Mirror(Arc::new(move || mirrored_audio.take_frame())),
        None,
    )
    .unwrap();
    echo.set_targets(vec![offerer.sender()]);

    let echoed_video = answerer.remote_video();
    let echoed_audio = answerer.remote_audio();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let frames = echoed_video.frames_decoded();
        let heard = echoed_audio.dominant_frequency();
        if let (true, Some(hz)) = (frames >= 20, heard) {
            let frame = echoed_video.latest().expect("a frame");
            let stamp = frame.stamp.expect("the test pattern's stamp survives two encodings");
            let round_trip_us = frame.decoded_us - stamp.captured_us;
            eprintln!("{frames} mirrored frames, round trip {round_trip_us} us, heard {heard:?} Hz");
            assert!(round_trip_us < 500_000, "{round_trip_us} us");
            assert!((hz - 700.0).abs() < 30.0, "the echo carries the 700 Hz tone back, heard {hz}");
            assert_eq!(meter.dominant_frequency(), Some(700.0), "the meter hears the microphone itself");
            assert!(meter.level() > 0.1, "the meter shows the level: {}", meter.level());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{frames} frames, {heard:?} heard in 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyframe_request_gets_a_keyframe() {
    let (offerer, answerer) = connected_pair().await;

    let camera = CameraConfig { width: 320, height: 240, fps: 30, bitrate_kbps: 500, detailed: false };
    let sender = VideoSender::start(camera, VideoSource::TestPattern, None).unwrap();
    sender.set_targets(vec![answerer.sender()]);
    let slot = offerer.remote_video();
    let wait_for = |frames: u64| {
        let slot = slot.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while slot.frames_decoded() < frames {
                assert!(tokio::time::Instant::now() < deadline, "only {} frames", slot.frames_decoded());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    wait_for(10).await;
    assert_eq!(slot.keyframes_decoded(), 1, "one keyframe to start, none since");

    offerer.request_keyframe();
    wait_for(slot.frames_decoded() + 10).await;
    assert_eq!(slot.keyframes_decoded(), 2, "the request was answered with exactly one keyframe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrow_path_makes_the_video_smaller_and_keeps_it_within_the_estimate() {
    // The sender's congestion control may never estimate more than 300 kbps (a data-saving limit
    // stands in for a slow network): 720p needs 2.5 Mbps, so the encoder follows the estimate and,
    // held back by it, halves the picture.
    let camera: CameraConfig = "1280x720@30".parse().unwrap();
    let narrow = MediaConfig { camera, max_send_kbps: Some(300), ..MediaConfig::default() };
    let (sender_link, mut sender_events) = spawn_with(Role::Offerer, narrow);
    let (receiver_link, mut receiver_events) =
        spawn_with(Role::Answerer, MediaConfig { camera, ..MediaConfig::default() });
    connect(&sender_link, &mut sender_events, &receiver_link, &mut receiver_events).await;
    let (stats_tx, mut stats) = mpsc::unbounded_channel();
    let (sender_link, receiver_link) = {
        let (s, r) = (Arc::new(sender_link), Arc::new(receiver_link));
        let (s2, r2) = (s.clone(), r.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(event) = sender_events.recv() => match event {
                        LinkEvent::Signal(payload) => r2.remote_signal(payload),
                        LinkEvent::Stats(figures) => { let _ = stats_tx.send(figures); }
                        _ => {}
                    },
                    Some(event) = receiver_events.recv() => if let LinkEvent::Signal(payload) = event { s2.remote_signal(payload) },
                    else => break,
                }
            }
        });
        (s, r)
    };
    let video = VideoSender::start(camera, VideoSource::TestPattern, None).unwrap();
    video.set_targets(vec![sender_link.sender()]);
    let slot = receiver_link.remote_video();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut sizes = Vec::new();
    let smaller = loop {
        assert!(tokio::time::Instant::now() < deadline, "the picture never got smaller: {sizes:?}");
        if let Some(frame) = slot.latest() {
            let size = (frame.picture.width, frame.picture.height);
            if sizes.last() != Some(&size) {
                sizes.push(size);
            }
            if frame.picture.width < 1280 {
                break frame;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(sizes.first(), Some(&(1280, 720)), "starts at the camera's size: {sizes:?}");
    assert!(smaller.picture.width <= 640 && smaller.picture.height * 16 == smaller.picture.width * 9, "{sizes:?}");
    assert!(smaller.stamp.is_some(), "the smaller picture still carries its stamp");

    // Over the next reports, what goes out stays near the estimate, which stays under the limit.
    let mut figures = Vec::new();
    while figures.len() < 2 {
        let report = tokio::time::timeout(Duration::from_secs(5), stats.recv()).await.expect("stats").expect("open");
        assert!(report.send_estimate_kbps <= 300.0, "estimate above the limit: {report:?}");
        figures.push(report);
    }
    eprintln!("sizes {sizes:?}; stats {figures:?}");
    let sent = figures.last().unwrap().send_kbps;
    assert!(sent < 300.0 * 1.15, "sending {sent:.0} kbps on a 300 kbps path: {figures:?}");
    let before = slot.frames_decoded();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(slot.frames_decoded() - before >= 8, "video keeps flowing at the lower rate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_packets_are_sent_again_and_the_picture_keeps_moving() {
    // One packet in twenty never arrives. Each 640x360 frame is several packets, so without
    // retransmission about a frame in five would break and the picture would stop until a keyframe.
    let camera: CameraConfig = "640x360@30".parse().unwrap();
    let lossy = MediaConfig {
        camera,
        simulated_loss: Some(dialtone_media::SimulatedLoss { rate: 0.05, seed: 20261121 }),
        ..MediaConfig::default()
    };
    let (sender_link, mut sender_events) = spawn_with(Role::Offerer, lossy);
    let (receiver_link, mut receiver_events) = spawn_with(Role::Answerer, MediaConfig::default());
    connect(&sender_link, &mut sender_events, &receiver_link, &mut receiver_events).await;
    let (sender_link, receiver_link) = relay_rest(sender_link, sender_events, receiver_link, receiver_events);
    let video = VideoSender::start(camera, VideoSource::TestPattern, None).unwrap();
    video.set_targets(vec![sender_link.sender()]);
    let slot = receiver_link.remote_video();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while slot.latest().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no frame in 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (decoded_before, freezes_before) = (slot.frames_decoded(), slot.freezes());
    let first = slot.latest().unwrap().stamp.expect("stamped").frame;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let last = slot.latest().unwrap().stamp.expect("stamped").frame;
    let decoded = slot.frames_decoded() - decoded_before;
    let (freezes, dropped) = (slot.freezes(), slot.frames_dropped());
    eprintln!(
        "frames {first}..{last}: {decoded} decoded, {dropped} dropped, freezes {} ({} ms) before {freezes_before:?}",
        freezes.count,
        freezes.total.as_millis()
    );
    let sent = u64::from(last - first);
    assert!(sent >= 120, "the sender kept up: {sent} frames in 5 s");
    assert!(decoded * 100 >= sent * 95, "{decoded} of {sent} frames decoded");
    assert_eq!(freezes.count, freezes_before.count, "no freeze: {freezes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyframe_requests_are_answered_when_both_sides_send_video_over_a_lossy_path() {
    let lossy = MediaConfig {
        simulated_loss: Some(dialtone_media::SimulatedLoss { rate: 0.05, seed: 7 }),
        ..MediaConfig::default()
    };
    let (offerer, mut offers) = spawn_with(Role::Offerer, lossy);
    let (answerer, mut answers) = spawn(Role::Answerer);
    connect(&offerer, &mut offers, &answerer, &mut answers).await;
    let (offerer, answerer) = relay_rest(offerer, offers, answerer, answers);
    let camera = CameraConfig { width: 320, height: 240, fps: 30, bitrate_kbps: 500, detailed: false };
    let offerer_camera = VideoSender::start(camera, VideoSource::TestPattern, None).unwrap();
    offerer_camera.set_targets(vec![offerer.sender()]);
    let answerer_camera = VideoSender::start(camera, VideoSource::TestPattern, None).unwrap();
    answerer_camera.set_targets(vec![answerer.sender()]);
    let (from_offerer, from_answerer) = (answerer.remote_video(), offerer.remote_video());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while from_offerer.frames_decoded() < 10 || from_answerer.frames_decoded() < 10 {
        assert!(tokio::time::Instant::now() < deadline, "video both ways");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Each side asks the other for keyframes; each request is answered.
    let before = (from_offerer.keyframes_decoded(), from_answerer.keyframes_decoded());
    for _ in 0..3 {
        answerer.request_keyframe();
        offerer.request_keyframe();
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let after = (from_offerer.keyframes_decoded(), from_answerer.keyframes_decoded());
    assert!(after.0 >= before.0 + 3 && after.1 >= before.1 + 3, "keyframes {before:?} -> {after:?}");
}
