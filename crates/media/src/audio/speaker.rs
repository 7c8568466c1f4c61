//! Playback: every remote participant's decoded sound mixed into one speaker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{AudioSlot, FRAME_SAMPLES, VoiceProcessing};
use crate::devices::sound::SoundOutput;
use crate::devices::{DeviceKind, DeviceNotify, DevicePick, Fallback};
use crate::feed::Pacer;

/// The streams to play, asked for every 20 ms (participants come and go during a call).
pub type PlaybackSources = Arc<dyn Fn() -> Vec<Arc<AudioSlot>> + Send + Sync>;

/// Sums 20 ms from every source that has it, clipping at full scale; silence when none has.
pub fn mix(sources: &[Arc<AudioSlot>]) -> [i16; FRAME_SAMPLES] {
    let mut sum = [0i32; FRAME_SAMPLES];
    for frame in sources.iter().filter_map(|source| source.take_frame()) {
        for (total, sample) in sum.iter_mut().zip(frame) {
            *total += i32::from(sample);
        }
    }
    sum.map(|total| total.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16)
}

/// Plays the mix of its sources on a speaker until dropped. What it plays also goes to a slot (a level
/// meter, and the record the fake speaker keeps for tests).
#[derive(Debug)]
pub struct Speaker {
    stop: Arc<AtomicBool>,
}

impl Speaker {
    /// Starts playing on the speaker `pick` names, or on the silent twin when that cannot be used;
    /// `notify` hears which. What it plays also goes to `played`, and to `processing` as the echo
    /// reference for the microphone.
    pub fn start(
        pick: DevicePick,
        sources: PlaybackSources,
        played: Arc<AudioSlot>,
        notify: DeviceNotify,
        processing: Option<VoiceProcessing>,
    ) -> std::io::Result<Speaker> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let mut playback = Playback { sources, played, processing };
        std::thread::Builder::new().name("dialtone-speaker".into()).spawn(move || {
            let mut fallback = Fallback::<SoundOutput>::new(DeviceKind::Speaker, pick, notify);
            let mut pacer = Pacer::new();
            while !stopped.load(Ordering::Relaxed) {
                let device = fallback.device(|pick| {
                    let mut playback = playback.clone();
                    SoundOutput::open(pick, Box::new(move || playback.next_frame()))
                });
                if device.is_some() {
                    // The device's own thread plays; this one only watches for it going away.
                    std::thread::sleep(Duration::from_millis(200));
                    pacer.restart();
                    continue;
                }
                // The silent twin plays in real time, so queues drain as a speaker would drain them.
                playback.next_frame();
                pacer.wait(Duration::from_millis(20));
            }
        })?;
        Ok(Speaker { stop })
    }
}

/// What the speaker plays next, and everything that must see it: the record, the echo canceller.
#[derive(Clone)]
struct Playback {
    sources: PlaybackSources,
    played: Arc<AudioSlot>,
    processing: Option<VoiceProcessing>,
}

impl Playback {
    fn next_frame(&mut self) -> [i16; FRAME_SAMPLES] {
        let frame = mix(&(self.sources)());
        self.played.show(&frame);
        if let Some(processing) = self.processing.as_mut() {
            processing.played(&frame);
        }
        frame
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::ToneSource;

    #[test]
    fn mixing_adds_every_source_that_has_sound_and_clips() {
        let (low, high, quiet) = (AudioSlot::new(), AudioSlot::new(), AudioSlot::new());
        let (mut a, mut b) = (ToneSource::new(300.0), ToneSource::new(1_200.0));
        let (first_a, first_b) = (a.next_frame(), b.next_frame());
        low.show(&first_a);
        high.show(&first_b);
        low.show(&a.next_frame());
        high.show(&b.next_frame());
        let mixed = mix(&[low.clone(), high.clone(), quiet]);
        for i in 0..FRAME_SAMPLES {
            assert_eq!(i32::from(mixed[i]), i32::from(first_a[i]) + i32::from(first_b[i]), "sample {i}");
        }
        let loud = AudioSlot::new();
        for _ in 0..4 {
            loud.show(&[i16::MAX; FRAME_SAMPLES]);
        }
        let louder = AudioSlot::new();
        for _ in 0..4 {
            louder.show(&[i16::MAX; FRAME_SAMPLES]);
        }
        assert_eq!(mix(&[loud, louder]), [i16::MAX; FRAME_SAMPLES]);
        // Nothing queued anywhere: silence.
        assert_eq!(mix(&[AudioSlot::new()]), [0; FRAME_SAMPLES]);
    }
}
