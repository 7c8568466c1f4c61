//! Real microphones and speakers through cpal (ALSA on Linux, so also PulseAudio and PipeWire through
//! their ALSA plugins). Everything inside is 48 kHz mono; devices that only do other rates or channel
//! counts are converted on the way in and out.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample, StreamConfig, SupportedStreamConfig};

use super::info::{DeviceError, DeviceInfo, DeviceKind, DevicePick, Lost};
use crate::audio::{FRAME_SAMPLES, SAMPLE_RATE};
use crate::lock;

/// ALSA's "null" device is listed on every machine but is not a device a person would pick (and runs
/// unpaced); it can still be picked by id, which tests do to drive this code without a sound card.
const HIDDEN: &[&str] = &["alsa:null"];

/// The most captured sound held for the microphone thread: more means the device runs faster than
/// the thread takes, and the oldest is dropped to keep the delay short.
const CAPTURE_KEPT: usize = FRAME_SAMPLES * 5;

/// Real microphones and speakers, in the system's order.
pub fn list() -> (Vec<DeviceInfo>, Vec<DeviceInfo>) {
    let (mut microphones, mut speakers) = (Vec::new(), Vec::new());
    super::system_messages::route_to_log();
    let host = cpal::default_host();
    let Ok(devices) = host.devices() else { return (microphones, speakers) };
    for device in devices {
        let Ok(id) = device.id().map(|id| id.to_string()) else { continue };
        if HIDDEN.contains(&id.as_str()) {
            continue;
        }
        let name = device_name(&device);
        if device.supports_input() {
            microphones.push(DeviceInfo {
                kind: DeviceKind::Microphone,
                id: id.clone(),
                name: name.clone(),
                fake: false,
            });
        }
        if device.supports_output() {
            speakers.push(DeviceInfo { kind: DeviceKind::Speaker, id, name, fake: false });
        }
    }
    (microphones, speakers)
}

fn device_name(device: &cpal::Device) -> String {
    device.description().map(|d| d.name().to_owned()).unwrap_or_else(|_| device.to_string())
}

/// The cpal device for `pick` (never the fake twin: the caller handles that).
fn find(kind: DeviceKind, pick: &DevicePick) -> Result<(cpal::Device, DeviceInfo), DeviceError> {
    super::system_messages::route_to_log();
    let host = cpal::default_host();
    let input = kind == DeviceKind::Microphone;
    let device = match pick {
        DevicePick::System | DevicePick::Fake => {
            if input {
                host.default_input_device()
            } else {
                host.default_output_device()
            }
        }
        DevicePick::Id(id) => id.parse().ok().and_then(|id| host.device_by_id(&id)),
    }
    .ok_or_else(|| DeviceError::not_found(kind, pick))?;
    let id = device.id().map(|id| id.to_string()).unwrap_or_else(|_| "default".to_owned());
    let info = DeviceInfo { kind, id, name: device_name(&device), fake: false };
    Ok((device, info))
}

/// The configuration to open: 48 kHz in a sample format handled here with the fewest channels if the
/// device offers it, else its default.
fn choose_config(
    ranges: Result<impl Iterator<Item = cpal::SupportedStreamConfigRange>, cpal::Error>,
    default: Result<SupportedStreamConfig, cpal::Error>,
) -> Result<SupportedStreamConfig, cpal::Error> {
    let handled = |format: SampleFormat| {
        matches!(format, SampleFormat::I16 | SampleFormat::F32 | SampleFormat::I32 | SampleFormat::U16)
    };
    let best = ranges.ok().and_then(|ranges| {
        ranges
            .filter(|range| handled(range.sample_format()) && range.channels() > 0)
            .filter_map(|range| range.try_with_sample_rate(SAMPLE_RATE))
            .min_by_key(|config| (config.channels(), config.sample_format() != SampleFormat::F32))
    });
    match best {
        Some(config) => Ok(config),
        None => default,
    }
}

/// Asks for 10 ms device buffers where the device allows it: the delay a person hears is partly these.
fn stream_config(config: &SupportedStreamConfig) -> StreamConfig {
    let mut stream = config.config();
    let wanted = config.sample_rate() / 100;
    if let cpal::SupportedBufferSize::Range { min, max } = config.buffer_size()
        && (*min..=*max).contains(&wanted)
    {
        stream.buffer_size = cpal::BufferSize::Fixed(wanted);
    }
    stream
}

/// Turns a sample stream at one rate into another by linear interpolation: enough for speech between
/// the common rates (44.1 ↔ 48 kHz), and nothing at all is done when the rates match.
#[derive(Debug, Clone)]
pub(crate) struct Resampler {
    /// Input samples per output sample.
    step: f64,
    /// Where the next output sample falls between `previous` and the next input sample.
    position: f64,
    previous: f32,
}

impl Resampler {
    pub(crate) fn new(from_rate: u32, to_rate: u32) -> Self {
        Self { step: f64::from(from_rate) / f64::from(to_rate), position: 0.0, previous: 0.0 }
    }

    /// Takes one input sample, gives the output samples it completes.
    pub(crate) fn push(&mut self, sample: f32, mut out: impl FnMut(f32)) {
        if self.step == 1.0 {
            return out(sample);
        }
        while self.position < 1.0 {
            out(self.previous + (sample - self.previous) * self.position as f32);
            self.position += self.step;
        }
        self.position -= 1.0;
        self.previous = sample;
    }
}

fn to_i16(sample: f32) -> i16 {
    (sample.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16
}

fn error_callback(lost: Lost, name: String) -> impl FnMut(cpal::Error) + Send + 'static {
    move |error: cpal::Error| match error.kind() {
        cpal::ErrorKind::DeviceNotAvailable | cpal::ErrorKind::StreamInvalidated | cpal::ErrorKind::DeviceChanged => {
            tracing::warn!(%error, device = %name, "sound device lost");
            lost.set(error.to_string());
        }
        _ => tracing::debug!(%error, device = %name, "sound device hiccup"),
    }
}

fn unusable(info: &DeviceInfo, error: impl std::fmt::Display) -> DeviceError {
    DeviceError::Unusable { name: info.name.clone(), reason: error.to_string().trim_end_matches('.').to_owned() }
}

/// A device failed to open or start: in plain words, and for the system default that is not there (no
/// sound card, no sound server) simply "none found".
fn open_failed(kind: DeviceKind, pick: &DevicePick, info: &DeviceInfo, error: &cpal::Error) -> DeviceError {
    let reason = match error.kind() {
        cpal::ErrorKind::DeviceNotAvailable if *pick == DevicePick::System => {
            return DeviceError::not_found(kind, pick);
        }
        cpal::ErrorKind::DeviceNotAvailable => "it is not available".to_owned(),
        cpal::ErrorKind::DeviceBusy => "another program is using it".to_owned(),
        cpal::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        cpal::ErrorKind::UnsupportedConfig => "it offers no usable sound format".to_owned(),
        _ => error.to_string().trim_end_matches('.').to_owned(),
    };
    DeviceError::Unusable { name: info.name.clone(), reason }
}

/// An open microphone: its callback fills a short queue of 48 kHz mono samples.
pub(crate) struct SoundInput {
    _stream: cpal::Stream,
    captured: Arc<Mutex<VecDeque<i16>>>,
    pub(crate) lost: Lost,
    /// The device.
    pub(crate) info: DeviceInfo,
}

impl SoundInput {
    /// Opens and starts the microphone `pick` names (the system default for [`DevicePick::System`]).
    pub(crate) fn open(pick: &DevicePick) -> Result<Self, DeviceError> {
        let (device, info) = find(DeviceKind::Microphone, pick)?;
        let failed = |e: cpal::Error| open_failed(DeviceKind::Microphone, pick, &info, &e);
        let config = choose_config(device.supported_input_configs(), device.default_input_config()).map_err(failed)?;
        let captured = Arc::new(Mutex::new(VecDeque::with_capacity(CAPTURE_KEPT + FRAME_SAMPLES)));
        let lost = Lost::default();
        let stream = match config.sample_format() {
            SampleFormat::I16 => build_input::<i16>(&device, &config, &captured, &lost, &info).map_err(failed),
            SampleFormat::I32 => build_input::<i32>(&device, &config, &captured, &lost, &info).map_err(failed),
            SampleFormat::U16 => build_input::<u16>(&device, &config, &captured, &lost, &info).map_err(failed),
            SampleFormat::F32 => build_input::<f32>(&device, &config, &captured, &lost, &info).map_err(failed),
            other => Err(unusable(&info, format!("unsupported sample format {other}"))),
        }?;
        stream.play().map_err(failed)?;
        tracing::info!(device = %info.name, rate = config.sample_rate(), channels = config.channels(), format = %config.sample_format(), "microphone open");
        Ok(Self { _stream: stream, captured, lost, info })
    }

    /// The oldest 20 ms captured, padded with silence when the device delivered less.
    pub(crate) fn take_frame(&self) -> [i16; FRAME_SAMPLES] {
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut captured = lock(&self.captured);
        let available = captured.len().min(FRAME_SAMPLES);
        for (out, sample) in frame.iter_mut().zip(captured.drain(..available)) {
            *out = sample;
        }
        frame
    }
}

fn build_input<T>(
    device: &cpal::Device,
    config: &SupportedStreamConfig,
    captured: &Arc<Mutex<VecDeque<i16>>>,
    lost: &Lost,
    info: &DeviceInfo,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels().max(1));
    let mut resampler = Resampler::new(config.sample_rate(), SAMPLE_RATE);
    let captured = captured.clone();
    let data = move |data: &[T], _: &cpal::InputCallbackInfo| {
        let mut captured = lock(&captured);
        for frame in data.chunks(channels) {
            // Mono: the channels' average.
            let sum: f32 = frame.iter().map(|s| s.to_sample::<f32>()).sum();
            resampler.push(sum / channels as f32, |sample| captured.push_back(to_i16(sample)));
        }
        let excess = captured.len().saturating_sub(CAPTURE_KEPT);
        captured.drain(..excess);
    };
    device.build_input_stream::<T, _, _>(
        stream_config(config),
        data,
        error_callback(lost.clone(), info.name.clone()),
        None,
    )
}

/// An open speaker: its callback asks for 20 ms of 48 kHz mono at a time.
pub(crate) struct SoundOutput {
    _stream: cpal::Stream,
    pub(crate) lost: Lost,
    /// The device.
    pub(crate) info: DeviceInfo,
}

/// Gives the next 20 ms to play.
pub(crate) type Fill = Box<dyn FnMut() -> [i16; FRAME_SAMPLES] + Send>;

impl SoundOutput {
    /// Opens and starts the speaker `pick` names; `fill` is called from the device's thread.
    pub(crate) fn open(pick: &DevicePick, fill: Fill) -> Result<Self, DeviceError> {
        let (device, info) = find(DeviceKind::Speaker, pick)?;
        let failed = |e: cpal::Error| open_failed(DeviceKind::Speaker, pick, &info, &e);
        let config =
            choose_config(device.supported_output_configs(), device.default_output_config()).map_err(failed)?;
        let lost = Lost::default();
        let stream = match config.sample_format() {
            SampleFormat::I16 => build_output::<i16>(&device, &config, fill, &lost, &info).map_err(failed),
            SampleFormat::I32 => build_output::<i32>(&device, &config, fill, &lost, &info).map_err(failed),
            SampleFormat::U16 => build_output::<u16>(&device, &config, fill, &lost, &info).map_err(failed),
            SampleFormat::F32 => build_output::<f32>(&device, &config, fill, &lost, &info).map_err(failed),
            other => Err(unusable(&info, format!("unsupported sample format {other}"))),
        }?;
        stream.play().map_err(failed)?;
        tracing::info!(device = %info.name, rate = config.sample_rate(), channels = config.channels(), format = %config.sample_format(), "speaker open");
        Ok(Self { _stream: stream, lost, info })
    }
}

fn build_output<T>(
    device: &cpal::Device,
    config: &SupportedStreamConfig,
    mut fill: Fill,
    lost: &Lost,
    info: &DeviceInfo,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32>,
{
    let channels = usize::from(config.channels().max(1));
    let mut resampler = Resampler::new(SAMPLE_RATE, config.sample_rate());
    let mut pending: VecDeque<f32> = VecDeque::with_capacity(FRAME_SAMPLES * 2);
    let data = move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
        for frame in data.chunks_mut(channels) {
            while pending.is_empty() {
                for sample in fill() {
                    resampler.push(f32::from(sample) / f32::from(i16::MAX), |s| pending.push_back(s));
                }
            }
            let sample = T::from_sample(pending.pop_front().unwrap_or(0.0));
            frame.fill(sample);
        }
    };
    device.build_output_stream::<T, _, _>(
        stream_config(config),
        data,
        error_callback(lost.clone(), info.name.clone()),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_the_count_and_the_shape() {
        for (from, to) in [(44_100, 48_000), (48_000, 44_100), (48_000, 48_000), (16_000, 48_000)] {
            let mut resampler = Resampler::new(from, to);
            let mut out = Vec::new();
            // One second of a 500 Hz sine.
            for n in 0..from {
                let t = f64::from(n) / f64::from(from);
                resampler.push((t * 500.0 * std::f64::consts::TAU).sin() as f32, |s| out.push(s));
            }
            assert!((out.len() as i64 - i64::from(to)).abs() <= 2, "{from} -> {to}: {}", out.len());
            let as_i16: Vec<i16> = out.iter().map(|s| to_i16(*s * 0.5)).collect();
            let hz = crate::audio::dominant_frequency(&as_i16[as_i16.len() - 24_000..]);
            if to == SAMPLE_RATE {
                assert_eq!(hz, Some(500.0), "{from} -> {to}");
            }
        }
    }
}
