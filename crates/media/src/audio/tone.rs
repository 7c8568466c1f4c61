//! The fake microphone: a steady sine tone, so a receiver can check what it hears by its frequency.

use super::{FRAME_SAMPLES, SAMPLE_RATE};

/// A sine tone in 20 ms frames of 48 kHz mono.
#[derive(Debug, Clone)]
pub struct ToneSource {
    frequency: f32,
    amplitude: f32,
    phase: f32,
}

impl ToneSource {
    /// A tone of `frequency` Hz at a quarter of full scale.
    pub fn new(frequency: f32) -> Self {
        Self { frequency, amplitude: 0.25 * f32::from(i16::MAX), phase: 0.0 }
    }

    /// The next 20 ms.
    pub fn next_frame(&mut self) -> [i16; FRAME_SAMPLES] {
        let step = std::f32::consts::TAU * self.frequency / SAMPLE_RATE as f32;
        let mut frame = [0i16; FRAME_SAMPLES];
        for sample in &mut frame {
            *sample = (self.phase.sin() * self.amplitude) as i16;
            self.phase = (self.phase + step) % std::f32::consts::TAU;
        }
        frame
    }
}
