//! Real cameras through nokhwa (V4L2 on Linux). A camera runs on its own thread, because reading a
//! frame blocks until the camera delivers one; the video sender takes the latest picture at its own
//! pace, so a camera slower or faster than the call's frame rate never stalls or floods it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use nokhwa::utils::{ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType};

use super::info::{DeviceError, DeviceInfo, DeviceKind, DevicePick, Lost};
use crate::lock;
use crate::video::RgbaFrame;

/// How long a camera may take to open before it counts as unusable.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Failed reads in a row after which the camera counts as lost (unplugged, taken by a driver reset).
const LOST_AFTER_FAILURES: u32 = 10;

fn backend() -> ApiBackend {
    nokhwa::native_api_backend().unwrap_or(ApiBackend::Auto)
}

fn id_of(index: &CameraIndex) -> String {
    format!("camera:{}", index.as_string())
}

/// Real cameras, in the system's order.
pub fn list() -> Vec<DeviceInfo> {
    match nokhwa::query(backend()) {
        Ok(cameras) => cameras
            .into_iter()
            .map(|camera| DeviceInfo {
                kind: DeviceKind::Camera,
                id: id_of(camera.index()),
                name: camera.human_name(),
                fake: false,
            })
            .collect(),
        Err(error) => {
            tracing::debug!(%error, "cannot list cameras");
            Vec::new()
        }
    }
}

/// The latest picture and its number (counting from 1).
type Latest = Arc<Mutex<Option<(u64, Arc<RgbaFrame>)>>>;

/// An open camera delivering pictures on its own thread.
pub(crate) struct CameraInput {
    latest: Latest,
    pub(crate) lost: Lost,
    stop: Arc<AtomicBool>,
    /// The device.
    pub(crate) info: DeviceInfo,
}

impl CameraInput {
    /// Opens the camera `pick` names (the first one for [`DevicePick::System`]) asking for the format
    /// closest to `width`x`height` at `fps`, and starts reading it.
    pub(crate) fn open(pick: &DevicePick, width: u32, height: u32, fps: u32) -> Result<Self, DeviceError> {
        let cameras = list();
        let info = match pick {
            DevicePick::Id(id) => cameras.into_iter().find(|camera| &camera.id == id),
            _ => cameras.into_iter().next(),
        }
        .ok_or_else(|| DeviceError::not_found(DeviceKind::Camera, pick))?;
        let index = match info.id.strip_prefix("camera:").map(|rest| rest.parse::<u32>()) {
            Some(Ok(number)) => CameraIndex::Index(number),
            _ => CameraIndex::String(info.id.trim_start_matches("camera:").to_owned()),
        };
        let latest = Latest::default();
        let lost = Lost::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (opened_tx, opened) = mpsc::sync_channel(1);
        let thread = {
            let (latest, lost, stop, name) = (latest.clone(), lost.clone(), stop.clone(), info.name.clone());
            std::thread::Builder::new().name("dialtone-camera-device".into()).spawn(move || {
                let mut camera = match open_camera(index, width, height, fps) {
                    Ok(camera) => {
                        let _ = opened_tx.send(Ok(()));
                        camera
                    }
                    Err(error) => {
                        let _ = opened_tx.send(Err(error));
                        return;
                    }
                };
                read_frames(&mut camera, &latest, &lost, &stop, &name);
                let _ = camera.stop_stream();
            })
        };
        if let Err(error) = thread {
            return Err(DeviceError::Unusable { name: info.name, reason: error.to_string() });
        }
        match opened.recv_timeout(OPEN_TIMEOUT) {
            Ok(Ok(())) => Ok(Self { latest, lost, stop, info }),
            Ok(Err(reason)) => Err(DeviceError::Unusable { name: info.name, reason }),
            Err(_) => {
                stop.store(true, Ordering::Relaxed);
                Err(DeviceError::Unusable { name: info.name, reason: "it did not open in time".into() })
            }
        }
    }

    /// The latest picture, with its number.
    pub(crate) fn latest(&self) -> Option<(u64, Arc<RgbaFrame>)> {
        lock(&self.latest).clone()
    }
}

impl Drop for CameraInput {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Opens a camera in the first of the usual webcam formats it offers, near the wanted size and rate.
fn open_camera(index: CameraIndex, width: u32, height: u32, fps: u32) -> Result<nokhwa::Camera, String> {
    let mut last_error = String::from("no usable format");
    for format in [FrameFormat::YUYV, FrameFormat::MJPEG, FrameFormat::NV12, FrameFormat::GRAY] {
        let wanted = CameraFormat::new_from(width, height, format, fps);
        let formats = [format];
        let request = RequestedFormat::with_formats(RequestedFormatType::Closest(wanted), &formats);
        match nokhwa::Camera::new(index.clone(), request) {
            Ok(mut camera) => match camera.open_stream() {
                Ok(()) => {
                    tracing::info!(format = %camera.camera_format(), "camera open");
                    return Ok(camera);
                }
                Err(error) => last_error = error.to_string(),
            },
            Err(error) => last_error = error.to_string(),
        }
    }
    Err(last_error)
}

fn read_frames(camera: &mut nokhwa::Camera, latest: &Latest, lost: &Lost, stop: &AtomicBool, name: &str) {
    let mut failures = 0;
    let mut number = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let picture = camera.frame().map_err(|e| e.to_string()).and_then(|buffer| to_rgba(&buffer));
        match picture {
            Ok(picture) => {
                failures = 0;
                number += 1;
                *lock(latest) = Some((number, Arc::new(picture)));
            }
            Err(error) => {
                failures += 1;
                tracing::debug!(%error, camera = %name, "camera frame failed");
                if failures >= LOST_AFTER_FAILURES {
                    lost.set(error);
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Decodes a camera buffer (YUYV, MJPEG, NV12, grey, RGB) to RGBA.
fn to_rgba(buffer: &nokhwa::Buffer) -> Result<RgbaFrame, String> {
    let resolution = buffer.resolution();
    let (width, height) = (resolution.width(), resolution.height());
    let data = buffer.buffer();
    let mut pixels = vec![0u8; (width * height * 4) as usize];
    let yuv_error = |e: yuv::YuvError| e.to_string();
    match buffer.source_frame_format() {
        FrameFormat::YUYV => {
            let image = yuv::YuvPackedImage { yuy: data, yuy_stride: width * 2, width, height };
            yuv::yuyv422_to_rgba(&image, &mut pixels, width * 4, yuv::YuvRange::Limited, yuv::YuvStandardMatrix::Bt601)
                .map_err(yuv_error)?;
        }
        FrameFormat::NV12 => {
            let luma = (width * height) as usize;
            if data.len() < luma + luma / 2 {
                return Err("short NV12 frame".into());
            }
            let image = yuv::YuvBiPlanarImage {
                y_plane: &data[..luma],
                y_stride: width,
                uv_plane: &data[luma..],
                uv_stride: width,
                width,
                height,
            };
            yuv::yuv_nv12_to_rgba(
                &image,
                &mut pixels,
                width * 4,
                yuv::YuvRange::Limited,
                yuv::YuvStandardMatrix::Bt601,
                yuv::YuvConversionMode::Balanced,
            )
            .map_err(yuv_error)?;
        }
        FrameFormat::MJPEG => {
            let options = zune_core::options::DecoderOptions::default()
                .jpeg_set_out_colorspace(zune_core::colorspace::ColorSpace::RGBA);
            let mut decoder =
                zune_jpeg::JpegDecoder::new_with_options(zune_core::bytestream::ZCursor::new(data), options);
            let decoded = decoder.decode().map_err(|e| e.to_string())?;
            let (w, h) = decoder.dimensions().ok_or("a JPEG without a size")?;
            return Ok(RgbaFrame { width: w as u32, height: h as u32, pixels: decoded });
        }
        FrameFormat::GRAY => {
            for (out, grey) in pixels.chunks_exact_mut(4).zip(data) {
                out.copy_from_slice(&[*grey, *grey, *grey, 255]);
            }
        }
        FrameFormat::RAWRGB | FrameFormat::RAWBGR => {
            let bgr = buffer.source_frame_format() == FrameFormat::RAWBGR;
            for (out, rgb) in pixels.chunks_exact_mut(4).zip(data.chunks_exact(3)) {
                let (r, b) = if bgr { (rgb[2], rgb[0]) } else { (rgb[0], rgb[2]) };
                out.copy_from_slice(&[r, rgb[1], b, 255]);
            }
        }
    }
    Ok(RgbaFrame { width, height, pixels })
}
