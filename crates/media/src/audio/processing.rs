//! Echo cancellation, noise suppression and gain control for a real microphone (WebRTC's audio
//! processing, through Debian's libwebrtc-audio-processing). What the speaker plays is the echo
//! reference: the speaker hands every frame it plays to [`VoiceProcessing::played`], the microphone
//! passes every frame it captures through [`VoiceProcessing::captured`].

use webrtc_audio_processing::{
    Config, EchoCancellation, EchoCancellationSuppressionLevel, GainControl, GainControlMode, InitializationConfig,
    NUM_SAMPLES_PER_FRAME, NoiseSuppression, NoiseSuppressionLevel, Processor,
};

use super::FRAME_SAMPLES;

/// The library's own frame: 10 ms.
const CHUNK: usize = NUM_SAMPLES_PER_FRAME as usize;

/// Why voice processing could not start.
#[derive(Debug, thiserror::Error)]
#[error("voice processing: {0:?}")]
pub struct ProcessingError(webrtc_audio_processing::Error);

/// One processor shared by a device's microphone and speaker; clones share it.
#[derive(Clone)]
pub struct VoiceProcessing {
    processor: Processor,
    scratch: Vec<f32>,
}

impl std::fmt::Debug for VoiceProcessing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VoiceProcessing")
    }
}

impl VoiceProcessing {
    /// Echo cancellation (high suppression, delay found by itself, as sound card delays vary), noise
    /// suppression (high), adaptive digital gain to about -3 dBFS with a limiter, and a high-pass filter.
    pub fn new() -> Result<Self, ProcessingError> {
        let init = InitializationConfig { num_capture_channels: 1, num_render_channels: 1, ..Default::default() };
        let mut processor = Processor::new(&init).map_err(ProcessingError)?;
        processor.set_config(Config {
            echo_cancellation: Some(EchoCancellation {
                suppression_level: EchoCancellationSuppressionLevel::High,
                enable_extended_filter: true,
                enable_delay_agnostic: true,
                stream_delay_ms: None,
            }),
            noise_suppression: Some(NoiseSuppression { suppression_level: NoiseSuppressionLevel::High }),
            gain_control: Some(GainControl {
                mode: GainControlMode::AdaptiveDigital,
                target_level_dbfs: 3,
                compression_gain_db: 9,
                enable_limiter: true,
            }),
            enable_high_pass_filter: true,
            ..Config::default()
        });
        Ok(Self { processor, scratch: vec![0.0; CHUNK] })
    }

    /// Cleans a captured frame in place.
    pub fn captured(&mut self, frame: &mut [i16; FRAME_SAMPLES]) {
        for chunk in frame.chunks_exact_mut(CHUNK) {
            for (out, sample) in self.scratch.iter_mut().zip(chunk.iter()) {
                *out = f32::from(*sample) / 32_768.0;
            }
            if let Err(error) = self.processor.process_capture_frame(&mut self.scratch) {
                tracing::debug!(?error, "voice processing skipped a frame");
                continue;
            }
            for (out, sample) in chunk.iter_mut().zip(self.scratch.iter()) {
                *out = (sample.clamp(-1.0, 1.0) * 32_767.0) as i16;
            }
        }
    }

    /// Tells the echo canceller what the speaker is playing.
    pub fn played(&mut self, frame: &[i16; FRAME_SAMPLES]) {
        for chunk in frame.chunks_exact(CHUNK) {
            for (out, sample) in self.scratch.iter_mut().zip(chunk.iter()) {
                *out = f32::from(*sample) / 32_768.0;
            }
            if let Err(error) = self.processor.process_render_frame(&mut self.scratch) {
                tracing::debug!(?error, "echo reference skipped a frame");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn energy(samples: &[i16]) -> f64 {
        samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len() as f64
    }

    #[test]
    fn the_speakers_sound_coming_back_through_the_microphone_is_removed() {
        let mut processing = VoiceProcessing::new().unwrap();
        let mut speaker = processing.clone();
        // Far-end "speech": noise shaped by a slow envelope, from a fixed-seed generator.
        let mut seed = 0x2545_f491_u32;
        let mut noise = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed as i32 >> 16) as f32 / 32_768.0
        };
        let delay_frames = 2; // the echo comes back 40 ms later, at half the level
        let mut played: Vec<[i16; FRAME_SAMPLES]> = Vec::new();
        let (mut echo_in, mut echo_out) = (0.0, 0.0);
        for index in 0..400 {
            let envelope = 0.3 + 0.25 * ((index as f32) * 0.15).sin();
            let mut far = [0i16; FRAME_SAMPLES];
            for sample in far.iter_mut() {
                *sample = (noise() * envelope * 12_000.0) as i16;
            }
            speaker.played(&far);
            played.push(far);
            let mut near = [0i16; FRAME_SAMPLES];
            if index >= delay_frames {
                for (out, sample) in near.iter_mut().zip(played[index - delay_frames].iter()) {
                    *out = sample / 2;
                }
            }
            let before = energy(&near);
            processing.captured(&mut near);
            // Judge after five seconds, once the canceller has found the echo path.
            if index >= 250 {
                echo_in += before;
                echo_out += energy(&near);
            }
        }
        let reduction_db = 10.0 * (echo_in / echo_out.max(1.0)).log10();
        eprintln!("echo reduced by {reduction_db:.1} dB");
        assert!(reduction_db > 15.0, "only {reduction_db:.1} dB less echo");
    }
}
