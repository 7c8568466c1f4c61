//! Video: frames, the test-pattern source, the VP8 codec, and sending and receiving streams.

pub mod frame;
pub mod pattern;
pub mod rate;
pub(crate) mod reorder;
pub mod reserve;
pub mod stream;
pub mod vp8;

pub use frame::{I420Frame, RgbaFrame};
pub use pattern::{Stamp, TestPattern, now_us, read_stamp};
pub use reserve::{CodecReserve, release_free_memory, tune_allocator};
pub use stream::{DecodedFrame, FreezeCounter, VideoSender, VideoSlot, VideoSource, Wake};
pub use vp8::{CodecError, EncodedFrame, Vp8Decoder, Vp8Encoder};
