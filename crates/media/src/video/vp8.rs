//! VP8 through the system's libvpx (Debian's `libvpx-dev`): a real-time encoder and a decoder.
//!
//! VP8 because every browser speaks it and libvpx encodes 720p in a few milliseconds on this class of
//! machine (see BENCHMARKS.md), where openh264 took 18–26 ms. The bindings come from `env-libvpx-sys`;
//! this module is the small safe layer over them.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::raw::c_int;
use std::ptr;

use vpx_sys as vpx;
use yuv::YuvPlanarImage;

use super::frame::{I420Frame, RgbaFrame, i420_to_rgba};

/// A libvpx failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("libvpx {operation}: {message}")]
pub struct CodecError {
    operation: &'static str,
    message: String,
}

impl CodecError {
    pub(crate) fn new(operation: &'static str, message: impl Into<String>) -> Self {
        Self { operation, message: message.into() }
    }
}

fn check(operation: &'static str, result: vpx::vpx_codec_err_t) -> Result<(), CodecError> {
    if result == vpx::vpx_codec_err_t::VPX_CODEC_OK {
        return Ok(());
    }
    // SAFETY: libvpx returns a static, NUL-terminated string for every error code.
    let message = unsafe { CStr::from_ptr(vpx::vpx_codec_err_to_string(result)) }.to_string_lossy().into_owned();
    Err(CodecError { operation, message })
}

/// One encoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The VP8 bitstream of the frame.
    pub data: Vec<u8>,
    /// Whether it decodes on its own.
    pub keyframe: bool,
}

/// A real-time VP8 encoder for one source.
pub struct Vp8Encoder {
    ctx: Box<vpx::vpx_codec_ctx_t>,
    cfg: vpx::vpx_codec_enc_cfg_t,
    pts: i64,
}

// SAFETY: the codec context is only touched through `&mut self`; libvpx contexts may move between
// threads as long as they are not used from two at once.
unsafe impl Send for Vp8Encoder {}

impl Vp8Encoder {
    /// An encoder for `width`x`height` frames at `bitrate_kbps`, tuned for calls: constant bitrate, no
    /// look-ahead, one thread, fastest real-time speed, keyframes only when asked for (or every 100 s).
    pub fn new(width: u32, height: u32, bitrate_kbps: u32) -> Result<Self, CodecError> {
        // SAFETY: the config is plain data that libvpx fills in; the context is zeroed as libvpx expects
        // before init, and boxed so its address stays put.
        unsafe {
            let mut cfg = MaybeUninit::<vpx::vpx_codec_enc_cfg_t>::zeroed().assume_init();
            check("default config", vpx::vpx_codec_enc_config_default(vpx::vpx_codec_vp8_cx(), &mut cfg, 0))?;
            cfg.g_w = width;
            cfg.g_h = height;
            cfg.g_timebase = vpx::vpx_rational { num: 1, den: 1000 };
            cfg.g_threads = 1;
            cfg.g_lag_in_frames = 0;
            cfg.g_error_resilient = vpx::VPX_ERROR_RESILIENT_DEFAULT;
            cfg.rc_end_usage = vpx::vpx_rc_mode::VPX_CBR;
            cfg.rc_target_bitrate = bitrate_kbps;
            cfg.rc_min_quantizer = 2;
            cfg.rc_max_quantizer = 56;
            cfg.rc_undershoot_pct = 100;
            cfg.rc_overshoot_pct = 15;
            cfg.rc_buf_initial_sz = 500;
            cfg.rc_buf_optimal_sz = 600;
            cfg.rc_buf_sz = 1000;
            cfg.rc_dropframe_thresh = 30;
            cfg.kf_mode = vpx::vpx_kf_mode::VPX_KF_AUTO;
            cfg.kf_max_dist = 3000;
            let mut ctx = Box::new(MaybeUninit::<vpx::vpx_codec_ctx_t>::zeroed().assume_init());
            check(
                "encoder init",
                vpx::vpx_codec_enc_init_ver(
                    &mut *ctx,
                    vpx::vpx_codec_vp8_cx(),
                    &cfg,
                    0,
                    vpx::VPX_ENCODER_ABI_VERSION as c_int,
                ),
            )?;
            let encoder = Self { ctx, cfg, pts: 0 };
            let ctx_ptr = &*encoder.ctx as *const _ as *mut vpx::vpx_codec_ctx_t;
            // Fastest real-time speed (16): 720p in ~3.8 ms against ~5.6 ms at speed 12, which keeps one-way
            // 720p30 send+receive under 0.2 cores (BENCHMARKS.md). Denoising off (cameras denoise
            // themselves); static blocks skipped. One thread: two on this 2-core class of machine made
            // the slow frames slower (p90 19 ms against 7 ms).
            check(
                "cpu-used",
                vpx::vpx_codec_control_(ctx_ptr, vpx::vp8e_enc_control_id::VP8E_SET_CPUUSED as c_int, -16 as c_int),
            )?;
            check(
                "noise sensitivity",
                vpx::vpx_codec_control_(
                    ctx_ptr,
                    vpx::vp8e_enc_control_id::VP8E_SET_NOISE_SENSITIVITY as c_int,
                    0 as c_int,
                ),
            )?;
            check(
                "static threshold",
                vpx::vpx_codec_control_(
                    ctx_ptr,
                    vpx::vp8e_enc_control_id::VP8E_SET_STATIC_THRESHOLD as c_int,
                    1 as c_int,
                ),
            )?;
            Ok(encoder)
        }
    }

    /// The frame size this encoder takes.
    pub fn size(&self) -> (u32, u32) {
        (self.cfg.g_w, self.cfg.g_h)
    }

    /// The target bitrate.
    pub fn bitrate_kbps(&self) -> u32 {
        self.cfg.rc_target_bitrate
    }

    /// Changes the target bitrate, for congestion control.
    pub fn set_bitrate(&mut self, bitrate_kbps: u32) -> Result<(), CodecError> {
        self.cfg.rc_target_bitrate = bitrate_kbps;
        // SAFETY: the context was initialised in `new` and the config outlives the call.
        check("set bitrate", unsafe { vpx::vpx_codec_enc_config_set(&mut *self.ctx, &self.cfg) })
    }

    /// Encodes one frame of `duration_ms`; an empty result means the rate control dropped it.
    pub fn encode(
        &mut self,
        frame: &I420Frame,
        duration_ms: u32,
        keyframe: bool,
    ) -> Result<Vec<EncodedFrame>, CodecError> {
        let (width, height) = self.size();
        if (frame.width, frame.height) != (width, height) {
            return Err(CodecError {
                operation: "encode",
                message: format!("frame is {}x{}, the encoder {}x{}", frame.width, frame.height, width, height),
            });
        }
        // libvpx reads the whole picture from the pointer it is given: a short buffer would be read past
        // its end.
        let needed = I420Frame::len_for(width, height);
        if frame.data.len() < needed {
            return Err(CodecError {
                operation: "encode",
                message: format!("a {width}x{height} frame needs {needed} bytes, this one has {}", frame.data.len()),
            });
        }
        let flags = if keyframe { vpx::VPX_EFLAG_FORCE_KF as vpx::vpx_enc_frame_flags_t } else { 0 };
        let mut out = Vec::new();
        // SAFETY: the image wraps the frame's buffer, which libvpx only reads during this call; packets
        // point into the context's buffers and are copied out before the next libvpx call.
        unsafe {
            let mut image = MaybeUninit::<vpx::vpx_image_t>::zeroed().assume_init();
            vpx::vpx_img_wrap(
                &mut image,
                vpx::vpx_img_fmt::VPX_IMG_FMT_I420,
                width,
                height,
                1,
                frame.data.as_ptr() as *mut u8,
            );
            check(
                "encode",
                vpx::vpx_codec_encode(
                    &mut *self.ctx,
                    &image,
                    self.pts,
                    duration_ms.into(),
                    flags,
                    vpx::VPX_DL_REALTIME.into(),
                ),
            )?;
            self.pts += i64::from(duration_ms);
            let mut iter: vpx::vpx_codec_iter_t = ptr::null();
            loop {
                let packet = vpx::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter);
                if packet.is_null() {
                    break;
                }
                if (*packet).kind != vpx::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                    continue;
                }
                let frame = (*packet).data.frame;
                let data = std::slice::from_raw_parts(frame.buf as *const u8, frame.sz as usize).to_vec();
                out.push(EncodedFrame { data, keyframe: frame.flags & vpx::VPX_FRAME_IS_KEY != 0 });
            }
        }
        Ok(out)
    }
}

impl Drop for Vp8Encoder {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe {
            vpx::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// A VP8 decoder for one incoming stream.
pub struct Vp8Decoder {
    ctx: Box<vpx::vpx_codec_ctx_t>,
}

// SAFETY: as for the encoder.
unsafe impl Send for Vp8Decoder {}

impl Vp8Decoder {
    /// A decoder; the stream's size comes from its keyframes.
    pub fn new() -> Result<Self, CodecError> {
        // SAFETY: zeroed context boxed before init, as libvpx expects.
        unsafe {
            let mut ctx = Box::new(MaybeUninit::<vpx::vpx_codec_ctx_t>::zeroed().assume_init());
            check(
                "decoder init",
                vpx::vpx_codec_dec_init_ver(
                    &mut *ctx,
                    vpx::vpx_codec_vp8_dx(),
                    ptr::null(),
                    0,
                    vpx::VPX_DECODER_ABI_VERSION as c_int,
                ),
            )?;
            Ok(Self { ctx })
        }
    }

    /// Decodes one frame's bitstream into RGBA; `None` when the data produced no picture.
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<RgbaFrame>, CodecError> {
        self.decode_into(data, Vec::new())
    }

    /// As [`Vp8Decoder::decode`], writing the picture into `buffer` (a spent picture's pixels), so that a
    /// steady stream does not allocate and free a full-size picture for every frame.
    pub fn decode_into(&mut self, data: &[u8], mut buffer: Vec<u8>) -> Result<Option<RgbaFrame>, CodecError> {
        // SAFETY: the data outlives the call; the returned image belongs to the decoder and is converted
        // before the next libvpx call.
        unsafe {
            let length = u32::try_from(data.len())
                .map_err(|_| CodecError::new("decode", format!("{} bytes is no video frame", data.len())))?;
            check("decode", vpx::vpx_codec_decode(&mut *self.ctx, data.as_ptr(), length, ptr::null_mut(), 0))?;
            let mut iter: vpx::vpx_codec_iter_t = ptr::null();
            let mut picture = None;
            loop {
                let image = vpx::vpx_codec_get_frame(&mut *self.ctx, &mut iter);
                if image.is_null() {
                    break;
                }
                let image = &*image;
                let (width, height) = (image.d_w, image.d_h);
                let strides = [image.stride[0] as u32, image.stride[1] as u32, image.stride[2] as u32];
                let chroma_height = height.div_ceil(2);
                let plane = |index: usize, rows: u32| {
                    std::slice::from_raw_parts(image.planes[index], (strides[index] * rows) as usize)
                };
                buffer.resize((width * height * 4) as usize, 0);
                let mut rgba = RgbaFrame { width, height, pixels: std::mem::take(&mut buffer) };
                i420_to_rgba(
                    YuvPlanarImage {
                        y_plane: plane(0, height),
                        y_stride: strides[0],
                        u_plane: plane(1, chroma_height),
                        u_stride: strides[1],
                        v_plane: plane(2, chroma_height),
                        v_stride: strides[2],
                        width,
                        height,
                    },
                    &mut rgba,
                )
                .map_err(|error| CodecError::new("convert", format!("{width}x{height} picture: {error:?}")))?;
                picture = Some(rgba);
            }
            Ok(picture)
        }
    }
}

impl Drop for Vp8Decoder {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe {
            vpx::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::pattern::{TestPattern, read_stamp};

    #[test]
    fn a_frame_shorter_than_its_size_is_refused_not_read_past_its_end() {
        let mut encoder = Vp8Encoder::new(64, 48, 300).unwrap();
        let whole = I420Frame::black(64, 48);
        assert_eq!(whole.data.len(), I420Frame::len_for(64, 48));
        assert!(encoder.encode(&whole, 33, true).is_ok());
        let short = I420Frame { data: whole.data[..whole.data.len() - 1].to_vec(), ..whole.clone() };
        let error = encoder.encode(&short, 33, false).unwrap_err();
        assert!(error.to_string().contains("needs 4608 bytes, this one has 4607"), "{error}");
        let empty = I420Frame { data: Vec::new(), ..whole };
        assert!(encoder.encode(&empty, 33, false).is_err());
    }

    #[test]
    fn frames_survive_encoding_and_decoding_with_their_stamps() {
        let mut pattern = TestPattern::new(640, 360);
        let mut encoder = Vp8Encoder::new(640, 360, 1_000).unwrap();
        let mut decoder = Vp8Decoder::new().unwrap();
        for index in 0..30u32 {
            let (frame, stamp) = pattern.next_frame(1_000_000 + u64::from(index));
            let packets = encoder.encode(&frame, 33, index == 0).unwrap();
            assert_eq!(packets.len(), 1, "one packet per frame");
            assert_eq!(packets[0].keyframe, index == 0, "frame {index}");
            let picture = decoder.decode(&packets[0].data).unwrap().expect("a picture");
            assert_eq!((picture.width, picture.height), (640, 360));
            assert_eq!(read_stamp(&picture), Some(stamp), "frame {index}");
        }
    }

    #[test]
    fn a_forced_keyframe_is_a_keyframe_and_a_decoder_can_start_there() {
        let mut pattern = TestPattern::new(320, 240);
        let mut encoder = Vp8Encoder::new(320, 240, 500).unwrap();
        for index in 0..5 {
            encoder.encode(&pattern.next_frame(index).0, 33, index == 0).unwrap();
        }
        let (frame, stamp) = pattern.next_frame(99);
        let packets = encoder.encode(&frame, 33, true).unwrap();
        assert!(packets[0].keyframe);
        let mut late_decoder = Vp8Decoder::new().unwrap();
        let picture = late_decoder.decode(&packets[0].data).unwrap().unwrap();
        assert_eq!(read_stamp(&picture), Some(stamp));
    }

    #[test]
    fn garbage_and_wrong_sizes_are_errors() {
        assert!(Vp8Decoder::new().unwrap().decode(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).is_err());
        let mut encoder = Vp8Encoder::new(320, 240, 500).unwrap();
        let error = encoder.encode(&I420Frame::black(640, 480), 33, false).unwrap_err();
        assert!(error.to_string().contains("640x480"), "{error}");
    }
}
