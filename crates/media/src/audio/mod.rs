//! Audio: the tone source (the fake microphone), Opus, the jitter buffer, what was received, and playback.

pub mod analysis;
pub mod opus_codec;
pub mod processing;
pub mod speaker;
pub mod stream;
pub mod tone;

pub use analysis::dominant_frequency;
pub use opus_codec::{OpusDecoder, OpusEncoder};
pub use processing::{ProcessingError, VoiceProcessing};
pub use speaker::{PlaybackSources, Speaker, mix};
pub use stream::{AudioError, AudioSender, AudioSlot, AudioSource};
pub use tone::ToneSource;

/// The sample rate of everything audio here.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms frame at [`SAMPLE_RATE`], mono.
pub const FRAME_SAMPLES: usize = 960;
