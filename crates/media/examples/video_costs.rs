//! Measures the per-frame costs of the video path on this machine: test-pattern generation, VP8
//! encode, VP8 decode (including the conversion to RGBA), at 720p and 360p, for two scenes: the test pattern the fake camera sends, and a camera-like scene (a detailed picture
//! panning slowly, with sensor noise) that costs the encoder more. The picture quality is given as
//! PSNR of the decoded pictures against the pictures encoded.
//!
//! cargo run --release -p dialtone-media --example video_costs

use std::time::{Duration, Instant};

use dialtone_media::video::{I420Frame, RgbaFrame, TestPattern, Vp8Decoder, Vp8Encoder, read_stamp};

const FRAMES: u32 = 300;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The first run in a process pays for warming up (page faults, caches): one is run and dropped.
    measure(1280, 720, 2_500, Scene::Pattern)?;
    println!("| size, target | scene | source | VP8 encode | VP8 decode + RGBA | sent at 30 fps | PSNR |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (width, height, kbps) in [(1280, 720, 2_500), (640, 360, 800)] {
        for scene in [Scene::Pattern, Scene::Camera] {
            let costs = measure(width, height, kbps, scene)?;
            println!(
                "| {width}x{height}, {kbps} kbps | {scene:?} | {:.2} ms | {:.2} ms ({:.2}) | {:.2} ms ({:.2}) | \
                 {:.0} kbps | {:.1} dB |",
                costs.source_ms,
                costs.encode_ms,
                costs.encode_p90_ms,
                costs.decode_ms,
                costs.decode_p90_ms,
                costs.kbps,
                costs.psnr_db
            );
        }
    }
    Ok(())
}

/// What is encoded.
#[derive(Debug, Clone, Copy)]
enum Scene {
    /// The fake camera's stamped colour bars.
    Pattern,
    /// A detailed picture panning one pixel a frame, with a little noise in every pixel of every frame.
    Camera,
}

/// Medians (and p90s) per frame of one run, the bitrate and the picture quality.
struct Costs {
    source_ms: f64,
    encode_ms: f64,
    encode_p90_ms: f64,
    decode_ms: f64,
    decode_p90_ms: f64,
    kbps: f64,
    psnr_db: f64,
}

fn measure(width: u32, height: u32, kbps: u32, scene: Scene) -> Result<Costs, Box<dyn std::error::Error>> {
    let mut pattern = TestPattern::new(width, height);
    let mut camera = CameraScene::new(width, height);
    let mut encoder = Vp8Encoder::new(width, height, kbps)?;
    let mut decoder = Vp8Decoder::new()?;
    let (mut source, mut encode, mut decode) = (Vec::new(), Vec::new(), Vec::new());
    let (mut bytes, mut squared_error, mut samples) = (0usize, 0f64, 0u64);
    for index in 0..FRAMES {
        let started = Instant::now();
        let (frame, stamp) = match scene {
            Scene::Pattern => {
                let (frame, stamp) = pattern.next_frame(u64::from(index));
                (frame, Some(stamp))
            }
            Scene::Camera => (camera.next_frame(index), None),
        };
        source.push(started.elapsed());
        let started = Instant::now();
        let packets = encoder.encode(&frame, 33, index == 0)?;
        encode.push(started.elapsed());
        for packet in packets {
            bytes += packet.data.len();
            let started = Instant::now();
            let picture = decoder.decode(&packet.data)?.ok_or("no picture")?;
            decode.push(started.elapsed());
            if let Some(stamp) = stamp {
                assert_eq!(read_stamp(&picture), Some(stamp));
            }
            let (error, count) = squared_error_rgb(&frame.to_rgba(), &picture);
            squared_error += error;
            samples += count;
        }
    }
    let median = |samples: &mut Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2].as_secs_f64() * 1e3
    };
    let p90 = |samples: &Vec<Duration>| samples[samples.len() * 9 / 10].as_secs_f64() * 1e3;
    let mean_squared_error = squared_error / samples.max(1) as f64;
    Ok(Costs {
        source_ms: median(&mut source),
        encode_ms: median(&mut encode),
        encode_p90_ms: p90(&encode),
        decode_ms: median(&mut decode),
        decode_p90_ms: p90(&decode),
        kbps: bytes as f64 * 8.0 / f64::from(FRAMES) * 30.0 / 1000.0,
        psnr_db: 10.0 * (255.0f64 * 255.0 / mean_squared_error.max(1e-9)).log10(),
    })
}

/// Sum of squared differences over the red, green and blue of two pictures of one size, and how many.
fn squared_error_rgb(original: &RgbaFrame, decoded: &RgbaFrame) -> (f64, u64) {
    let mut sum = 0u64;
    let mut count = 0u64;
    for (a, b) in original.pixels.chunks_exact(4).zip(decoded.pixels.chunks_exact(4)) {
        for channel in 0..3 {
            let difference = i64::from(a[channel]) - i64::from(b[channel]);
            sum += (difference * difference) as u64;
        }
        count += 3;
    }
    (sum as f64, count)
}

/// A camera-like scene: a wide, detailed picture (smooth shapes, fine texture, sharp edges) seen
/// through a window that pans one pixel a frame, plus noise as a sensor adds.
struct CameraScene {
    width: u32,
    height: u32,
    wide_luma: Vec<u8>,
    wide_width: u32,
}

impl CameraScene {
    const PAN: u32 = 400;

    fn new(width: u32, height: u32) -> Self {
        let wide_width = width + Self::PAN;
        let mut wide_luma = Vec::with_capacity((wide_width * height) as usize);
        for row in 0..height {
            for col in 0..wide_width {
                let (x, y) = (f64::from(col), f64::from(row));
                let smooth = 60.0 * (x / 97.0).sin() * (y / 71.0).cos() + 40.0 * ((x + y) / 180.0).sin();
                let texture = f64::from(hash(col / 4, row / 4) % 16) - 8.0;
                let edge = if (col / 160 + row / 120) % 2 == 0 { 25.0 } else { -25.0 };
                wide_luma.push((128.0 + smooth + texture + edge).clamp(16.0, 235.0) as u8);
            }
        }
        Self { width, height, wide_luma, wide_width }
    }

    fn next_frame(&mut self, index: u32) -> I420Frame {
        let mut frame = I420Frame::black(self.width, self.height);
        let offset = index % Self::PAN;
        let width = self.width as usize;
        let (y, u, v) = frame.planes_mut();
        for (row, line) in y.chunks_exact_mut(width).enumerate() {
            let start = row * self.wide_width as usize + offset as usize;
            line.copy_from_slice(&self.wide_luma[start..start + width]);
            for (col, value) in line.iter_mut().enumerate() {
                let noise = (hash(col as u32 ^ index.wrapping_mul(7919), row as u32 ^ index) % 3) as i16 - 1;
                *value = (i16::from(*value) + noise).clamp(16, 235) as u8;
            }
        }
        // Chroma follows the picture coarsely: a warm left and a cool right that pan with it.
        for (row, (u_line, v_line)) in u.chunks_exact_mut(width / 2).zip(v.chunks_exact_mut(width / 2)).enumerate() {
            for col in 0..width / 2 {
                let x = (col * 2 + offset as usize) as f64 / self.wide_width as f64;
                let shade = ((row * 2) as f64 / self.height as f64 * 20.0) as i32;
                u_line[col] = (110.0 + 40.0 * x) as u8;
                v_line[col] = (150 - (40.0 * x) as i32 + shade).clamp(16, 240) as u8;
            }
        }
        frame
    }
}

/// A cheap, well-mixed hash of a position (texture and noise that a codec cannot predict).
fn hash(x: u32, y: u32) -> u32 {
    let mut h = x.wrapping_mul(0x9E37_79B1) ^ y.wrapping_mul(0x85EB_CA77);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h
}
