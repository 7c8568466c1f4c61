//! The fake camera: a moving test pattern that carries its frame number and capture time in its pixels,
//! so a receiver can measure latency and spot freezes after the whole encode/send/decode path.
//!
//! The stamp is a strip of 96 blocks of 16x16 pixels across the top rows, black for 0 and white for 1:
//! 32 bits of frame number, then 64 bits of capture time in microseconds since the Unix epoch, most
//! significant bit first. Blocks this large survive lossy compression at any sensible bitrate.

use std::time::{SystemTime, UNIX_EPOCH};

use super::frame::{I420Frame, RgbaFrame};

const BLOCK: u32 = 16;
const BITS: u32 = 96;

/// What a stamp says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The frame's number, from 0.
    pub frame: u32,
    /// When it was captured, microseconds since the Unix epoch.
    pub captured_us: u64,
}

impl Stamp {
    fn bits(self) -> u128 {
        ((self.frame as u128) << 64) | self.captured_us as u128
    }

    fn from_bits(bits: u128) -> Self {
        Self { frame: (bits >> 64) as u32, captured_us: bits as u64 }
    }
}

/// Microseconds since the Unix epoch now.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Generates test-pattern frames.
#[derive(Debug)]
pub struct TestPattern {
    width: u32,
    height: u32,
    next: u32,
    /// Fine detail added under the stamp, different every frame (see [`Self::detailed`]).
    detail: Option<Box<[i8; DETAIL_TABLE]>>,
}

/// The detail is drawn from a table of small offsets this long, at a different place in each row and frame.
const DETAIL_TABLE: usize = 4096;
/// Detail changes the luma by at most this much either way.
const DETAIL_DEPTH: i8 = 3;

impl TestPattern {
    /// A pattern of the given size, enlarged where needed to hold the stamp (at least 256 pixels wide,
    /// and tall enough for the strip's rows at that width).
    pub fn new(width: u32, height: u32) -> Self {
        let width = width.max(256) & !1;
        Self { width, height: height.max(strip_rows(width)) & !1, next: 0, detail: None }
    }

    /// The same pattern with fine detail under the stamp that changes every frame, as a camera's sensor
    /// noise does: the encoder then spends whatever bitrate it is given, as it would on a camera's
    /// picture (the plain pattern needs a fraction of it).
    pub fn detailed(mut self) -> Self {
        let mut table = Box::new([0i8; DETAIL_TABLE]);
        let mut state = 0x9e37_79b9_u32;
        for entry in table.iter_mut() {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *entry = (state % (2 * DETAIL_DEPTH as u32 + 1)) as i8 - DETAIL_DEPTH;
        }
        self.detail = Some(table);
        self
    }

    /// Draws at a new size from now on (enlarged as in [`Self::new`]); frame numbers and detail go on.
    pub fn resize(&mut self, width: u32, height: u32) {
        let (next, detail) = (self.next, self.detail.take());
        *self = Self { next, detail, ..Self::new(width, height) };
    }

    /// The size frames are drawn at.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The next frame, stamped with its number and `captured_us`.
    pub fn next_frame(&mut self, captured_us: u64) -> (I420Frame, Stamp) {
        let mut frame = I420Frame::black(self.width, self.height);
        let stamp = self.draw(&mut frame, captured_us);
        (frame, stamp)
    }

    /// Draws the next frame into `frame` (re-sized to the pattern's size if it differs), so a capture
    /// loop reuses one buffer.
    pub fn draw(&mut self, frame: &mut I420Frame, captured_us: u64) -> Stamp {
        if (frame.width, frame.height) != (self.width, self.height) {
            *frame = I420Frame::black(self.width, self.height);
        }
        let stamp = Stamp { frame: self.next, captured_us };
        self.next = self.next.wrapping_add(1);
        let width = self.width;
        let (y, u, v) = frame.planes_mut();
        // Colour bars drifting sideways, so motion is visible and the encoder has work to do. Every row
        // is the same, so one row is computed and copied.
        let shift = stamp.frame.wrapping_mul(4);
        const BARS: [(u8, u8, u8); 7] = [
            (180, 128, 128),
            (168, 44, 136),
            (145, 147, 44),
            (133, 63, 52),
            (63, 193, 204),
            (51, 109, 212),
            (28, 212, 120),
        ];
        let bar_at = |col: u32| BARS[(((col + shift) % width) * 7 / width) as usize];
        let luma_row: Vec<u8> = (0..width).map(|col| bar_at(col).0).collect();
        let u_row: Vec<u8> = (0..width / 2).map(|col| bar_at(col * 2).1).collect();
        let v_row: Vec<u8> = (0..width / 2).map(|col| bar_at(col * 2).2).collect();
        for row in y.chunks_exact_mut(width as usize) {
            row.copy_from_slice(&luma_row);
        }
        for (u_line, v_line) in u.chunks_exact_mut((width / 2) as usize).zip(v.chunks_exact_mut((width / 2) as usize)) {
            u_line.copy_from_slice(&u_row);
            v_line.copy_from_slice(&v_row);
        }
        if let Some(table) = &self.detail {
            for (number, row) in y.chunks_exact_mut(width as usize).enumerate().skip(strip_rows(width) as usize) {
                let start = (number as u32).wrapping_mul(2_654_435_761).wrapping_add(stamp.frame.wrapping_mul(40_503));
                for (col, pixel) in row.iter_mut().enumerate() {
                    let offset = table[(start as usize).wrapping_add(col) % DETAIL_TABLE];
                    *pixel = pixel.saturating_add_signed(offset).clamp(16, 235);
                }
            }
        }
        // The stamp strip: grey chroma, black or white luma blocks.
        let per_row = width / BLOCK;
        let bits = stamp.bits();
        for bit in 0..BITS {
            let value = if (bits >> (BITS - 1 - bit)) & 1 == 1 { 235 } else { 16 };
            let (bx, by) = ((bit % per_row) * BLOCK, (bit / per_row) * BLOCK);
            for row in by..by + BLOCK {
                let start = (row * width + bx) as usize;
                y[start..start + BLOCK as usize].fill(value);
                let chroma = ((row / 2) * width / 2 + bx / 2) as usize;
                u[chroma..chroma + (BLOCK / 2) as usize].fill(128);
                v[chroma..chroma + (BLOCK / 2) as usize].fill(128);
            }
        }
        stamp
    }
}

/// How many rows the stamp's strip takes at `width`.
fn strip_rows(width: u32) -> u32 {
    BITS.div_ceil(width / BLOCK) * BLOCK
}

/// Reads the stamp from a decoded frame, if it carries one.
pub fn read_stamp(frame: &RgbaFrame) -> Option<Stamp> {
    let per_row = frame.width / BLOCK;
    if per_row == 0 || frame.height < strip_rows(frame.width) {
        return None;
    }
    let mut bits = 0u128;
    for bit in 0..BITS {
        let (bx, by) = ((bit % per_row) * BLOCK, (bit / per_row) * BLOCK);
        let level = frame.brightness(bx + BLOCK / 2, by + BLOCK / 2);
        bits = (bits << 1) | u128::from(level > 128);
    }
    Some(Stamp::from_bits(bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_reads_back_from_the_pixels() {
        let mut pattern = TestPattern::new(640, 360);
        for expected in 0..3 {
            let (frame, stamp) = pattern.next_frame(1_763_700_000_123_456 + expected as u64);
            assert_eq!(stamp.frame, expected);
            assert_eq!(read_stamp(&frame.to_rgba()), Some(stamp));
        }
    }

    #[test]
    fn a_detailed_pattern_keeps_its_stamp_and_changes_every_frame() {
        let mut pattern = TestPattern::new(640, 360).detailed();
        let (first, stamp) = pattern.next_frame(1_763_700_000_000_000);
        assert_eq!(read_stamp(&first.to_rgba()), Some(stamp));
        pattern.resize(320, 180);
        pattern.resize(640, 360);
        let (second, _) = pattern.next_frame(1_763_700_000_033_333);
        let plain = TestPattern::new(640, 360).next_frame(0).0;
        let differing = |a: &I420Frame, b: &I420Frame| {
            a.planes().0.iter().zip(b.planes().0).filter(|(a, b)| a != b).count() as f64 / a.planes().0.len() as f64
        };
        assert!(differing(&first, &plain) > 0.5, "detail on most pixels");
        assert!(differing(&first, &second) > 0.5, "and different in the next frame (after a resize too)");
    }

    #[test]
    fn tiny_sizes_are_enlarged_to_hold_the_stamp() {
        let (frame, stamp) = TestPattern::new(10, 10).next_frame(42);
        assert_eq!((frame.width, frame.height), (256, 96));
        assert_eq!(read_stamp(&frame.to_rgba()), Some(stamp));
    }
}
