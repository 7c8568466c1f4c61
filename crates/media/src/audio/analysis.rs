//! What frequency dominates a stretch of audio: Goertzel filters over a range, for checking tones.
//!
//! Coarse to fine: 50 Hz steps over the latest 20 ms find the region, then 10 Hz steps around the best
//! of them over the whole stretch. A bot in a group call checks every peer's tone, so the cost matters:
//! this is about 15 times cheaper than 10 Hz steps over the whole range.

use super::SAMPLE_RATE;

/// The strongest frequency between 50 Hz and 4 kHz in 10 Hz steps, or `None` for (near) silence.
pub fn dominant_frequency(samples: &[i16]) -> Option<f32> {
    if samples.len() < 480 {
        return None;
    }
    let energy: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len() as f64;
    if energy < 100.0 {
        return None; // quieter than about -50 dBFS
    }
    let latest = &samples[samples.len().saturating_sub(COARSE_SAMPLES)..];
    let coarse = strongest(latest, (1..=80).map(|step| step as f32 * 50.0));
    let fine = (-5..=5).map(|step| coarse + step as f32 * 10.0).filter(|f| (50.0..=4000.0).contains(f));
    Some(strongest(samples, fine))
}

/// 20 ms: bins 50 Hz apart.
const COARSE_SAMPLES: usize = SAMPLE_RATE as usize / 50;

fn strongest(samples: &[i16], frequencies: impl Iterator<Item = f32>) -> f32 {
    let mut best = (-1.0f64, 0.0f32);
    for frequency in frequencies {
        let power = goertzel(samples, frequency);
        if power > best.0 {
            best = (power, frequency);
        }
    }
    best.1
}

fn goertzel(samples: &[i16], frequency: f32) -> f64 {
    let omega = std::f64::consts::TAU * f64::from(frequency) / f64::from(SAMPLE_RATE);
    let coefficient = 2.0 * omega.cos();
    let (mut previous, mut before) = (0.0f64, 0.0f64);
    for sample in samples {
        let current = f64::from(*sample) + coefficient * previous - before;
        before = previous;
        previous = current;
    }
    previous * previous + before * before - coefficient * previous * before
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::ToneSource;

    #[test]
    fn finds_the_tone_and_hears_silence_as_nothing() {
        for frequency in [60.0, 300.0, 440.0, 1000.0, 1230.0, 3990.0] {
            let mut tone = ToneSource::new(frequency);
            let samples: Vec<i16> = (0..5).flat_map(|_| tone.next_frame()).collect();
            assert_eq!(dominant_frequency(&samples), Some(frequency));
        }
        assert_eq!(dominant_frequency(&[0; 4800]), None);
    }
}
