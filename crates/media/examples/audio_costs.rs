//! Measures what the Opus encoder costs per 20 ms frame at each complexity, on a speech-like signal: a
//! voiced buzz whose pitch glides, shaped into syllables, with breath noise between them. Every packet
//! is decoded, to be sure it is valid.
//!
//! cargo run --release -p dialtone-media --example audio_costs

use std::time::{Duration, Instant};

use dialtone_media::audio::{FRAME_SAMPLES, OpusDecoder, OpusEncoder, SAMPLE_RATE};

/// Ten seconds of the speech-like signal.
fn speech_like() -> Vec<i16> {
    let rate = SAMPLE_RATE as f32;
    let mut noise_state = 0x1234_5678u32;
    let mut phase = 0.0f32;
    (0..SAMPLE_RATE as usize * 10)
        .map(|n| {
            let t = n as f32 / rate;
            // Pitch gliding between 110 and 190 Hz; syllables four times a second.
            let pitch = 150.0 + 40.0 * (t * 1.3 * std::f32::consts::TAU).sin();
            phase = (phase + pitch / rate).fract();
            let syllable = (t * 4.0 * std::f32::consts::PI).sin().max(0.0);
            let voiced: f32 = (1..=12).map(|h| (phase * h as f32 * std::f32::consts::TAU).sin() / h as f32).sum();
            noise_state = noise_state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (noise_state >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            let sample = 0.35 * syllable * voiced + 0.02 * noise * (1.0 - syllable);
            (sample * 20_000.0) as i16
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let input = speech_like();
    println!("Opus 32 kbps, voice mode, FEC, DTX; 500 frames of a speech-like signal");
    println!("| complexity | encode, median per 20 ms frame | p90 | share of one core | kbps |");
    println!("| --- | --- | --- | --- | --- |");
    for complexity in [0, 3, 5, 7, 9, 10] {
        let mut encoder = OpusEncoder::with_complexity(32_000, complexity)?;
        let mut decoder = OpusDecoder::new()?;
        let (mut times, mut bytes) = (Vec::new(), 0usize);
        for chunk in input.chunks_exact(FRAME_SAMPLES) {
            let frame: &[i16; FRAME_SAMPLES] = chunk.try_into()?;
            let started = Instant::now();
            let packet = encoder.encode(frame)?;
            times.push(started.elapsed());
            bytes += packet.len();
            decoder.decode(&packet)?;
        }
        times.sort();
        let median = times[times.len() / 2];
        let p90 = times[times.len() * 9 / 10];
        let total: Duration = times.iter().sum();
        let seconds = times.len() as f64 * 0.02;
        println!(
            "| {complexity} | {:.3} ms | {:.3} ms | {:.2} % | {:.1} |",
            median.as_secs_f64() * 1e3,
            p90.as_secs_f64() * 1e3,
            100.0 * total.as_secs_f64() / seconds,
            bytes as f64 * 8.0 / seconds / 1e3,
        );
    }
    Ok(())
}
