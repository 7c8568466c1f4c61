//! Codecs made ready while a call rings, and how the process's heap gives memory back after calls.
//!
//! A 720p VP8 encoder and decoder hold some 20 MB, which a new codec faults in page by page while it
//! makes or decodes its first picture. Giving memory back after calls (so that an app running for days
//! does not keep the heap of its busiest call) makes every call pay that again, on answering, where it
//! doubled the time to the first frame (BENCHMARKS.md). So a device makes its codecs while the call
//! rings, when nothing waits for them, and the call takes them when its media starts.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::frame::I420Frame;
use super::vp8::{CodecError, Vp8Decoder, Vp8Encoder};

/// A call waits at most this long for codecs being made before it makes its own: when the answer comes
/// at once (a bot), the ones being made are further along than new ones would be.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// VP8 encoders and decoders made ready for this device's next call. Cloning shares the reserve.
#[derive(Clone, Default)]
pub struct CodecReserve {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    kept: Mutex<Kept>,
    /// Notified when codecs being made are done.
    made: Condvar,
}

#[derive(Default)]
struct Kept {
    encoder: Option<Vp8Encoder>,
    decoder: Option<Vp8Decoder>,
    /// Codecs of this size are being made (on a blocking thread).
    preparing: Option<(u32, u32)>,
    /// Counts [`CodecReserve::release`] calls: codecs whose making began before the last release are
    /// not kept.
    releases: u64,
    /// Counts [`CodecReserve::prepare`] calls.
    prepares: u64,
}

impl std::fmt::Debug for CodecReserve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.lock();
        f.debug_struct("CodecReserve")
            .field("encoder", &kept.encoder.as_ref().map(Vp8Encoder::size))
            .field("decoder", &kept.decoder.is_some())
            .field("preparing", &kept.preparing)
            .finish()
    }
}

impl CodecReserve {
    /// Makes an encoder for `width`x`height` and a decoder ready, on a blocking thread of the current
    /// tokio runtime. Each is used once on a black picture of that size, so that its buffers are in
    /// memory before the call's first picture. Does nothing when they are ready or being made.
    pub fn prepare(&self, width: u32, height: u32) {
        let size = (width & !1, height & !1);
        let releases = {
            let mut kept = self.lock();
            kept.prepares += 1;
            let ready = kept.encoder.as_ref().is_some_and(|encoder| encoder.size() == size) && kept.decoder.is_some();
            if ready || kept.preparing.is_some() {
                return;
            }
            kept.preparing = Some(size);
            kept.releases
        };
        let reserve = self.clone();
        tokio::task::spawn_blocking(move || {
            let made = warm_codecs(size);
            let mut kept = reserve.lock();
            kept.preparing = None;
            match made {
                Ok(codecs) if kept.releases == releases => {
                    (kept.encoder, kept.decoder) = (Some(codecs.0), Some(codecs.1))
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "cannot prepare the video codecs"),
            }
            drop(kept);
            reserve.shared.made.notify_all();
        });
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        crate::lock(&self.shared.kept)
    }

    /// The reserve, once no codecs `wanted` says are of use are being made (or [`MAX_WAIT`] passed).
    fn when_made(&self, wanted: impl Fn(&Kept) -> bool) -> MutexGuard<'_, Kept> {
        let deadline = Instant::now() + MAX_WAIT;
        let mut kept = self.lock();
        while wanted(&kept) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
            kept = match self.shared.made.wait_timeout(kept, left) {
                Ok((kept, _)) => kept,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        kept
    }

    /// Drops the codecs made ready and not taken (and those still being made): the call that rang is
    /// over, or going on without them.
    pub fn release(&self) {
        let codecs = {
            let mut kept = self.lock();
            kept.releases += 1;
            (kept.encoder.take(), kept.decoder.take())
        };
        // Freed outside the lock.
        drop(codecs);
    }

    /// A mark for [`CodecReserve::release_unless_prepared_since`].
    pub fn mark(&self) -> u64 {
        self.lock().prepares
    }

    /// As [`CodecReserve::release`], unless another call asked for codecs since `mark` was taken: what a
    /// call going on did not take is of no use, but a call ringing now may need it.
    pub fn release_unless_prepared_since(&self, mark: u64) {
        if self.mark() == mark {
            self.release();
        }
    }

    /// Whether an encoder and a decoder are ready.
    pub fn ready(&self) -> (bool, bool) {
        let kept = self.lock();
        (kept.encoder.is_some(), kept.decoder.is_some())
    }

    /// An encoder for `width`x`height` at `bitrate_kbps`: the one made ready if it has that size (its
    /// first picture must be a keyframe), or a new one. Blocks while one of that size is being made.
    pub(crate) fn encoder(&self, width: u32, height: u32, bitrate_kbps: u32) -> Result<Vp8Encoder, CodecError> {
        let size = (width, height);
        let ready =
            self.when_made(|kept| kept.preparing == Some(size)).encoder.take_if(|encoder| encoder.size() == size);
        match ready {
            Some(mut encoder) => {
                encoder.set_bitrate(bitrate_kbps)?;
                Ok(encoder)
            }
            None => Vp8Encoder::new(width, height, bitrate_kbps),
        }
    }

    /// A decoder: the one made ready (a stream's first keyframe resets it), or a new one. Blocks while
    /// one is being made.
    pub(crate) fn decoder_blocking(&self) -> Result<Vp8Decoder, CodecError> {
        let ready = self.when_made(|kept| kept.preparing.is_some()).decoder.take();
        ready.map_or_else(Vp8Decoder::new, Ok)
    }

    /// As [`CodecReserve::decoder_blocking`], waiting on a blocking thread when it must.
    pub(crate) async fn decoder(&self) -> Result<Vp8Decoder, CodecError> {
        // Checked and taken under one lock: a preparation starting in between must not block this task.
        let ready = {
            let mut kept = self.lock();
            kept.preparing.is_none().then(|| kept.decoder.take())
        };
        if let Some(ready) = ready {
            return ready.map_or_else(Vp8Decoder::new, Ok);
        }
        let reserve = self.clone();
        tokio::task::spawn_blocking(move || reserve.decoder_blocking())
            .await
            .map_err(|error| CodecError::new("decoder", error.to_string()))?
    }
}

/// A new encoder and decoder that have made and decoded one black keyframe of `size`.
fn warm_codecs((width, height): (u32, u32)) -> Result<(Vp8Encoder, Vp8Decoder), CodecError> {
    let mut encoder = Vp8Encoder::new(width, height, 300)?;
    let mut decoder = Vp8Decoder::new()?;
    for frame in encoder.encode(&I420Frame::black(width, height), 33, true)? {
        decoder.decode(&frame.data)?;
    }
    Ok((encoder, decoder))
}

/// Sets the process's heap up for calls; for a binary to call first thing (it changes the allocator for
/// the whole process). glibc serves buffers of up to 32 MB from its heaps and keeps them when freed, in
/// one heap per thread that allocated; a call's codecs and pictures, made on threads that come and go,
/// left a process at 130–240 MB after 30 calls against ~75 MB after one. Buffers of 1 MB and more (whole
/// pictures, codec frame stores) are mapped on their own and go back to the system when freed.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's parameters; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Gives the heap's free memory back to the system: what a call freed below the mapping threshold of
/// [`tune_allocator`] stays in the heap otherwise.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; safe at any time, from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn wait_until_ready(reserve: &CodecReserve) {
        for _ in 0..500 {
            if reserve.ready() == (true, true) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the codecs were not made: {reserve:?}");
    }

    #[tokio::test]
    async fn codecs_made_while_it_rings_are_taken_by_the_call_and_start_a_stream_cleanly() {
        let reserve = CodecReserve::default();
        reserve.prepare(320, 240);
        wait_until_ready(&reserve).await;

        let mut encoder = reserve.encoder(320, 240, 500).unwrap();
        assert_eq!(encoder.bitrate_kbps(), 500, "the call's bitrate, not the warm-up's");
        let mut decoder = reserve.decoder().await.unwrap();
        assert_eq!(reserve.ready(), (false, false), "taken");
        // Nothing ready: new ones.
        assert_eq!(reserve.encoder(320, 240, 500).unwrap().size(), (320, 240));
        reserve.decoder().await.unwrap();

        let picture = I420Frame::black(320, 240);
        let frames = encoder.encode(&picture, 33, true).unwrap();
        assert!(frames.iter().all(|frame| frame.keyframe));
        let decoded = frames.iter().filter_map(|frame| decoder.decode(&frame.data).unwrap()).last().unwrap();
        assert_eq!((decoded.width, decoded.height), (320, 240));
    }

    #[tokio::test]
    async fn an_encoder_of_another_size_is_not_used_and_released_codecs_are_gone() {
        let reserve = CodecReserve::default();
        reserve.prepare(320, 240);
        wait_until_ready(&reserve).await;
        assert_eq!(reserve.encoder(640, 360, 800).unwrap().size(), (640, 360));
        assert_eq!(reserve.ready(), (true, true), "the 320x240 one stays for a call that wants it");
        let mark = reserve.mark();
        reserve.prepare(320, 240);
        reserve.release_unless_prepared_since(mark);
        assert_eq!(reserve.ready(), (true, true), "another call asked for them since");
        reserve.release_unless_prepared_since(reserve.mark());
        assert_eq!(reserve.ready(), (false, false));

        // Codecs still being made when the reserve is released are not kept.
        reserve.prepare(320, 240);
        reserve.release();
        while reserve.lock().preparing.is_some() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(reserve.ready(), (false, false));
        release_free_memory();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_answered_at_once_waits_for_the_codecs_being_made_rather_than_making_more() {
        let reserve = CodecReserve::default();
        reserve.prepare(640, 360);
        // Straight away, as a bot answering at once asks.
        let decoder = reserve.decoder().await.unwrap();
        let encoder = tokio::task::spawn_blocking({
            let reserve = reserve.clone();
            move || reserve.encoder(640, 360, 800)
        });
        let encoder = encoder.await.unwrap().unwrap();
        assert_eq!(encoder.size(), (640, 360));
        assert_eq!(reserve.ready(), (false, false), "both came from the reserve");
        assert!(reserve.lock().preparing.is_none());
        drop(decoder);
    }
}
