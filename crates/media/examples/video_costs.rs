//! Measures the per-frame costs of the video path on this machine: test-pattern generation, VP8
//! encode, VP8 decode (including the conversion to RGBA), at 720p and 360p.
//!
//! cargo run --release -p dialtone-media --example video_costs

use std::time::{Duration, Instant};

use dialtone_media::video::{TestPattern, Vp8Decoder, Vp8Encoder, read_stamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for (width, height, kbps) in [(1280, 720, 2_500), (640, 360, 800)] {
        let frames = 300u32;
        let mut pattern = TestPattern::new(width, height);
        let mut encoder = Vp8Encoder::new(width, height, kbps)?;
        let mut decoder = Vp8Decoder::new()?;
        let (mut generate, mut encode, mut decode) = (Vec::new(), Vec::new(), Vec::new());
        let mut bytes = 0usize;
        for index in 0..frames {
            let started = Instant::now();
            let (frame, stamp) = pattern.next_frame(u64::from(index));
            generate.push(started.elapsed());
            let started = Instant::now();
            let packets = encoder.encode(&frame, 33, index == 0)?;
            encode.push(started.elapsed());
            for packet in packets {
                bytes += packet.data.len();
                let started = Instant::now();
                let picture = decoder.decode(&packet.data)?.ok_or("no picture")?;
                decode.push(started.elapsed());
                assert_eq!(read_stamp(&picture), Some(stamp));
            }
        }
        let median = |samples: &mut Vec<Duration>| {
            samples.sort();
            samples[samples.len() / 2].as_secs_f64() * 1e3
        };
        let p90 = |samples: &Vec<Duration>| samples[samples.len() * 9 / 10].as_secs_f64() * 1e3;
        let (g, e, d) = (median(&mut generate), median(&mut encode), median(&mut decode));
        println!(
            "{width}x{height} @ {kbps} kbps, {frames} frames: pattern {g:.2} ms, VP8 encode {e:.2} ms (p90 {:.2}), \
             decode+RGBA {d:.2} ms (p90 {:.2}); {:.0} kbps at 30 fps",
            p90(&encode),
            p90(&decode),
            bytes as f64 * 8.0 / f64::from(frames) * 30.0 / 1000.0
        );
    }
    Ok(())
}
