//! Ringtone, ringback and the test sound, played with rodio on the default output.
//!
//! Without a sound card the output cannot open: that is said once (a notice) and everything else goes
//! on silently; the app never fails for want of a speaker.

use std::num::NonZero;
use std::path::Path;

use rodio::Source;

/// The sample rate of the built-in sounds.
const RATE: u32 = 48_000;

/// What is playing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playing {
    /// Nothing.
    Nothing,
    /// The ringtone: a call rings here.
    Ringtone,
    /// The ringback tone: this user's call rings elsewhere.
    Ringback,
}

/// The sound output and what plays on it.
pub struct Sounds {
    output: Option<rodio::MixerDeviceSink>,
    /// Why the output could not be opened (said once).
    pub unavailable: Option<String>,
    /// The silent speaker is chosen: nothing plays, ringtones included, and that is no problem.
    pub silent_by_choice: bool,
    player: Option<rodio::Player>,
    playing: Playing,
}

impl Default for Sounds {
    fn default() -> Self {
        Self::new()
    }
}

impl Sounds {
    /// Opens the default output, or remembers why not.
    pub fn new() -> Self {
        Self::on(None)
    }

    /// Opens the speaker with this device id (the ids the engine lists; the system default for none),
    /// or remembers why not. The silent speaker (the fake one) opens nothing: a user who chose it hears
    /// no call, and no ringtone either.
    pub fn on(speaker: Option<&str>) -> Self {
        let nothing_playing =
            Self { output: None, unavailable: None, silent_by_choice: false, player: None, playing: Playing::Nothing };
        if speaker == Some(dialtone_engine::DeviceKind::Speaker.fake_id()) {
            return Self { silent_by_choice: true, ..nothing_playing };
        }
        let chosen = speaker.and_then(|id| {
            use rodio::cpal::traits::HostTrait;
            rodio::cpal::default_host().device_by_id(&id.parse().ok()?)
        });
        let opened = match chosen {
            Some(device) => rodio::DeviceSinkBuilder::from_device(device).and_then(|builder| builder.open_stream()),
            None => rodio::DeviceSinkBuilder::open_default_sink(),
        };
        match opened {
            Ok(mut output) => {
                output.log_on_drop(false);
                Self { output: Some(output), ..nothing_playing }
            }
            Err(error) => Self {
                unavailable: Some(format!(
                    "No sound output here, so ringtones and the test sound are silent ({error})"
                )),
                ..nothing_playing
            },
        }
    }

    /// What plays now.
    pub fn playing(&self) -> Playing {
        self.playing
    }

    /// Plays `what` (looping) unless it already plays; `Nothing` stops. The ringtone is the file when it
    /// decodes, else the built-in one, at `volume` (0..1).
    pub fn set(&mut self, what: Playing, ringtone_file: Option<&Path>, volume: f32) {
        if what == self.playing {
            return;
        }
        self.playing = what;
        if let Some(player) = self.player.take() {
            player.stop();
        }
        let Some(output) = &self.output else { return };
        let player = rodio::Player::connect_new(output.mixer());
        player.set_volume(volume.clamp(0.0, 1.0));
        match what {
            Playing::Nothing => return,
            Playing::Ringtone => match ringtone_file.and_then(|path| decode(path).ok()) {
                Some(source) => player.append(source),
                None => player.append(buffer(ringtone()).repeat_infinite()),
            },
            Playing::Ringback => player.append(buffer(ringback()).repeat_infinite()),
        }
        self.player = Some(player);
    }

    /// Plays a short chime once (the speaker test), on top of anything playing.
    pub fn test(&mut self, volume: f32) {
        let Some(output) = &self.output else { return };
        let player = rodio::Player::connect_new(output.mixer());
        player.set_volume(volume.clamp(0.0, 1.0));
        player.append(buffer(chime()));
        player.detach();
    }
}

/// A sound file as an endlessly repeating source.
fn decode(path: &Path) -> Result<impl Source + Send + 'static, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let decoder = rodio::Decoder::try_from(file).map_err(|e| e.to_string())?;
    Ok(decoder.repeat_infinite())
}

fn buffer(samples: Vec<f32>) -> rodio::buffer::SamplesBuffer {
    let one = NonZero::new(1u16).unwrap_or(NonZero::<u16>::MIN);
    let rate = NonZero::new(RATE).unwrap_or(NonZero::<u32>::MIN);
    rodio::buffer::SamplesBuffer::new(one, rate, samples)
}

/// Notes with soft edges (5 ms fades), so they do not click.
fn notes(pattern: &[(f32, f32, f32)], total_seconds: f32) -> Vec<f32> {
    let mut samples = vec![0.0f32; (total_seconds * RATE as f32) as usize];
    for &(start, length, frequency) in pattern {
        let (first, count) = ((start * RATE as f32) as usize, (length * RATE as f32) as usize);
        let fade = (0.005 * RATE as f32) as usize;
        for index in 0..count {
            let Some(sample) = samples.get_mut(first + index) else { break };
            let t = index as f32 / RATE as f32;
            let edge = (index.min(count - index) as f32 / fade as f32).min(1.0);
            // A fundamental with a little octave above: brighter than a bare sine.
            let tone = (std::f32::consts::TAU * frequency * t).sin() * 0.8
                + (std::f32::consts::TAU * frequency * 2.0 * t).sin() * 0.2;
            *sample += tone * edge * 0.5;
        }
    }
    samples
}

/// The built-in ringtone: a rising three-note figure twice, then a pause; 3 s per cycle.
pub fn ringtone() -> Vec<f32> {
    notes(
        &[
            (0.0, 0.14, 659.3),
            (0.16, 0.14, 784.0),
            (0.32, 0.22, 1046.5),
            (0.7, 0.14, 659.3),
            (0.86, 0.14, 784.0),
            (1.02, 0.22, 1046.5),
        ],
        3.0,
    )
}

/// The ringback tone: 440 + 480 Hz for 2 s, then 4 s of silence (the North American pattern).
pub fn ringback() -> Vec<f32> {
    let mut samples = notes(&[(0.0, 2.0, 440.0)], 6.0);
    for (index, sample) in notes(&[(0.0, 2.0, 480.0)], 6.0).into_iter().enumerate() {
        samples[index] = (samples[index] + sample) * 0.6;
    }
    samples
}

/// The speaker test: two notes.
pub fn chime() -> Vec<f32> {
    notes(&[(0.0, 0.25, 880.0), (0.25, 0.4, 1318.5)], 0.7)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loud(samples: &[f32], from: f32, to: f32) -> bool {
        let range = &samples[(from * RATE as f32) as usize..(to * RATE as f32) as usize];
        range.iter().any(|s| s.abs() > 0.1)
    }

    #[test]
    fn the_built_in_sounds_have_their_rhythm_and_never_clip() {
        let ring = ringtone();
        assert_eq!(ring.len(), 3 * RATE as usize);
        assert!(loud(&ring, 0.0, 0.1) && loud(&ring, 0.7, 0.8));
        assert!(!loud(&ring, 1.3, 3.0), "a pause after the figure");
        let back = ringback();
        assert!(loud(&back, 0.5, 1.5) && !loud(&back, 2.1, 6.0));
        for samples in [ring, back, chime()] {
            assert!(samples.iter().all(|s| s.abs() <= 1.0));
        }
    }

    #[test]
    fn the_silent_speaker_silences_ringtones_too_without_calling_it_a_problem() {
        let mut sounds = Sounds::on(Some(dialtone_engine::DeviceKind::Speaker.fake_id()));
        assert!(sounds.silent_by_choice && sounds.unavailable.is_none());
        sounds.set(Playing::Ringtone, None, 0.5);
        assert_eq!(sounds.playing(), Playing::Ringtone, "ringing still, only silently");
        assert!(sounds.output.is_none() && sounds.player.is_none(), "nothing plays");
        assert!(!Sounds::on(None).silent_by_choice);
    }

    #[test]
    fn without_a_sound_card_nothing_fails() {
        let mut sounds = Sounds::new();
        sounds.set(Playing::Ringtone, None, 0.5);
        assert_eq!(sounds.playing(), Playing::Ringtone);
        sounds.test(0.5);
        sounds.set(Playing::Nothing, None, 0.5);
        assert_eq!(sounds.playing(), Playing::Nothing);
    }
}
