//! Which peer connections exist: one per other device in each call, opened while the call rings.
//!
//! The rules, applied to the engine's own events so they hold however a call got where it is:
//! - a device that rings offers a connection to every joined device of the call (pre-connect);
//! - a device that joins offers to every joined device it has no connection with yet (group members who
//!   answered while it rang); devices already in the call never offer, so two devices never both do;
//! - an offer from a device without a connection opens one that answers;
//! - a connection closes when its device leaves, loses the answer race to another device of its user,
//!   or the call ends;
//! - the video codecs are made while a video call rings; those the call did not take are dropped soon
//!   after it starts, and the heap's free memory is given back once this device has no call left.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dialtone_media::{
    AudioSender, AudioSlot, AudioSource, CodecReserve, DeviceChoice, DeviceKind, DeviceNotify, Link, LinkEvent,
    LinkState, MediaConfig, Role, Speaker, VideoSender, VideoSlot, VideoSource, VoiceProcessing, Wake,
};
use dialtone_protocol::{CallId, CallInfo, CallKind, DeviceAddress, IceServer, MemberStatus, SignalPayload};
use tokio::sync::mpsc;

use crate::api::Event;
use crate::core::{LinkFate, Received};

/// The incoming streams of one kind in every call, by call and sending device: what a UI draws or plays.
#[derive(Debug)]
pub struct Streams<Slot>(Arc<Mutex<StreamMap<Slot>>>);

type StreamMap<Slot> = BTreeMap<(CallId, DeviceAddress), Arc<Slot>>;

/// Incoming video: each slot holds the stream's latest decoded frame.
pub type RemoteVideo = Streams<VideoSlot>;
/// Incoming audio: each slot holds counters, the level and the last half second.
pub type RemoteAudio = Streams<AudioSlot>;

impl<Slot> Clone for Streams<Slot> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<Slot> Default for Streams<Slot> {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(BTreeMap::new())))
    }
}

impl<Slot> Streams<Slot> {
    /// The stream from `peer` in `call`, if there is a connection to it.
    pub fn get(&self, call: &CallId, peer: &DeviceAddress) -> Option<Arc<Slot>> {
        self.0.lock().ok()?.get(&(call.clone(), peer.clone())).cloned()
    }

    /// Every stream of `call`.
    pub fn streams(&self, call: &CallId) -> Vec<(DeviceAddress, Arc<Slot>)> {
        let Ok(map) = self.0.lock() else {
            return Vec::new();
        };
        map.iter().filter(|((c, _), _)| c == call).map(|((_, peer), slot)| (peer.clone(), slot.clone())).collect()
    }

    /// Every stream of every call.
    pub fn all(&self) -> Vec<Arc<Slot>> {
        let Ok(map) = self.0.lock() else {
            return Vec::new();
        };
        map.values().cloned().collect()
    }

    fn insert(&self, call: &CallId, peer: &DeviceAddress, slot: Arc<Slot>) {
        if let Ok(mut map) = self.0.lock() {
            map.insert((call.clone(), peer.clone()), slot);
        }
    }

    fn remove(&self, call: &CallId, peer: &DeviceAddress) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(&(call.clone(), peer.clone()));
        }
    }
}

/// A link's event, tagged with the call, the remote device and the link's generation (a connection
/// made again to the same device is a new generation; late events of the old one are told apart).
pub(crate) type TaggedLinkEvent = (CallId, DeviceAddress, u64, LinkEvent);

/// How many times a failed connection this device offered is made again, per device and call.
const RETRIES: u32 = 3;

/// One peer connection and what is known about how it came to be.
struct Entry {
    link: Link,
    generation: u64,
    /// This device offered it (and so is the one to offer again when it fails).
    offered: bool,
}

pub(crate) struct Links {
    config: Option<Arc<MediaConfig>>,
    /// The STUN and TURN servers of the engine's own configuration.
    configured_ice: Vec<IceServer>,
    links: BTreeMap<(CallId, DeviceAddress), Entry>,
    /// The last generation handed out.
    generation: u64,
    /// Connections made again after failing, per call and device.
    retries: BTreeMap<(CallId, DeviceAddress), u32>,
    events: mpsc::UnboundedSender<TaggedLinkEvent>,
    video: RemoteVideo,
    audio: RemoteAudio,
    wake: Option<Wake>,
    /// This device's camera, per call where it sends video; encoded once for all the call's links.
    cameras: BTreeMap<CallId, VideoSender>,
    /// This device's microphone, per call where it is not muted.
    microphones: BTreeMap<CallId, AudioSender>,
    /// What this device's camera captures, for the UI's self view.
    preview: Arc<VideoSlot>,
    /// A camera running for the preview alone (settings, an outgoing video call's ringing view).
    preview_camera: Option<VideoSender>,
    /// Whether the UI wants the preview when no call's camera is on.
    preview_wanted: bool,
    /// What this device's microphone captures, for the UI's level meter.
    local_audio: Arc<AudioSlot>,
    /// A microphone running for the meter alone (settings).
    preview_microphone: Option<AudioSender>,
    /// The devices to use.
    devices: DeviceChoice,
    /// Hears which device is in use, from the threads that open them.
    notify: DeviceNotify,
    /// Calls this device is in, while the speaker plays.
    joined: BTreeSet<CallId>,
    /// Plays every incoming stream while this device is in a call.
    speaker: Option<Speaker>,
    /// What the speaker played (a meter for the UI).
    played: Arc<AudioSlot>,
    /// Echo cancellation and friends, shared by the microphone and the speaker.
    processing: Option<VoiceProcessing>,
    /// Calls ringing here or going on.
    calls: BTreeSet<CallId>,
    /// Video encoders and decoders made while a call rings.
    codecs: CodecReserve,
}

/// How long after a call starts the codecs made for it are dropped if it did not take them (a camera
/// off, nobody sending video): its camera takes its encoder at its first picture, its receivers their
/// decoders at the first packet.
const UNUSED_CODECS_AFTER: Duration = Duration::from_secs(3);
/// How long after this device's last call ends its free memory is given back: time for the call's
/// threads and tasks to finish and free theirs.
const RELEASE_AFTER_CALLS: Duration = Duration::from_secs(2);

/// Where [`Links`] reports to and what it fills besides the incoming streams.
pub(crate) struct LocalMedia {
    /// What this device's camera captures.
    pub(crate) preview: Arc<VideoSlot>,
    /// What this device's microphone captures.
    pub(crate) local_audio: Arc<AudioSlot>,
    /// What the speaker plays.
    pub(crate) played: Arc<AudioSlot>,
    /// Hears which device is in use.
    pub(crate) notify: DeviceNotify,
}

impl Links {
    pub(crate) fn new(
        config: Option<MediaConfig>,
        events: mpsc::UnboundedSender<TaggedLinkEvent>,
        video: RemoteVideo,
        audio: RemoteAudio,
        wake: Option<Wake>,
        local: LocalMedia,
    ) -> Self {
        Self {
            devices: config.as_ref().map(|c| c.devices.clone()).unwrap_or_default(),
            preview: local.preview,
            local_audio: local.local_audio,
            played: local.played,
            notify: local.notify,
            joined: BTreeSet::new(),
            speaker: None,
            processing: config.as_ref().and_then(|c| voice_processing(c, &c.devices)),
            preview_microphone: None,
            preview_camera: None,
            preview_wanted: false,
            configured_ice: config.as_ref().map(|c| c.ice_servers.clone()).unwrap_or_default(),
            config: config.map(Arc::new),
            links: BTreeMap::new(),
            generation: 0,
            retries: BTreeMap::new(),
            events,
            video,
            audio,
            wake,
            cameras: BTreeMap::new(),
            microphones: BTreeMap::new(),
            calls: BTreeSet::new(),
            codecs: CodecReserve::default(),
        }
    }

    /// Adds the STUN and TURN servers the signaling server handed out at sign-in to the configured
    /// ones, for connections made from now on (each sign-in brings fresh TURN credentials).
    pub(crate) fn use_signaling_ice(&mut self, servers: Vec<IceServer>) {
        if let Some(config) = &self.config {
            let mut ice_servers = self.configured_ice.clone();
            ice_servers.extend(servers);
            if ice_servers != config.ice_servers {
                self.config = Some(Arc::new(MediaConfig { ice_servers, ..(**config).clone() }));
            }
        }
    }

    /// Relay only, or any path, for connections made from now on.
    pub(crate) fn set_relay_only(&mut self, relay_only: bool) {
        if let Some(config) = &self.config
            && config.relay_only != relay_only
        {
            self.config = Some(Arc::new(MediaConfig { relay_only, ..(**config).clone() }));
        }
    }

    /// Whether this engine makes peer connections at all.
    pub(crate) fn enabled(&self) -> bool {
        self.config.is_some()
    }

    fn open(&mut self, call: &CallId, peer: DeviceAddress, role: Role) -> Option<&Link> {
        let config = self.config.clone()?;
        let key = (call.clone(), peer.clone());
        if !self.links.contains_key(&key) {
            let events = self.events.clone();
            let (tag_call, tag_peer) = key.clone();
            self.generation += 1;
            let generation = self.generation;
            let video = VideoSlot::new(self.wake.clone());
            let audio = AudioSlot::new();
            self.video.insert(call, &peer, video.clone());
            self.audio.insert(call, &peer, audio.clone());
            let link = Link::spawn(
                config,
                role,
                Arc::new(move |event| {
                    let _ = events.send((tag_call.clone(), tag_peer.clone(), generation, event));
                }),
                video,
                audio,
                &self.codecs,
            );
            self.links.insert(key.clone(), Entry { link, generation, offered: role == Role::Offerer });
            self.retarget(call);
        }
        self.links.get(&key).map(|entry| &entry.link)
    }

    /// Points the call's camera and microphone at the call's current links.
    fn retarget(&self, call: &CallId) {
        let targets =
            || self.links.iter().filter(|((c, _), _)| c == call).map(|(_, entry)| entry.link.sender()).collect();
        if let Some(camera) = self.cameras.get(call) {
            camera.set_targets(targets());
        }
        if let Some(microphone) = self.microphones.get(call) {
            microphone.set_targets(targets());
        }
    }

    /// Turns this device's microphone on (unmuted) or off (muted) in `call`.
    pub(crate) fn set_microphone(&mut self, call: &CallId, on: bool) {
        let Some(config) = self.config.clone() else {
            return;
        };
        let source = if config.mirror {
            // The echo contact sends back the first participant's sound.
            let (audio, call) = (self.audio.clone(), call.clone());
            AudioSource::Mirror(Arc::new(move || audio.streams(&call).first()?.1.take_frame()))
        } else {
            self.microphone()
        };
        let meter = Some(self.local_audio.clone());
        if switch(&mut self.microphones, call, on, || AudioSender::start(config.microphone, source, meter)) {
            self.retarget(call);
        }
        self.update_preview();
    }

    /// Turns this device's camera on or off in `call`.
    pub(crate) fn set_camera(&mut self, call: &CallId, on: bool) {
        let Some(config) = self.config.clone() else {
            return;
        };
        let source = if config.mirror {
            let (video, call) = (self.video.clone(), call.clone());
            VideoSource::Mirror(Arc::new(move || video.streams(&call).iter().find_map(|(_, slot)| slot.latest())))
        } else {
            self.camera()
        };
        let preview = Some(self.preview.clone());
        if switch(&mut self.cameras, call, on, || VideoSender::start_with(config.camera, source, preview, &self.codecs))
        {
            self.retarget(call);
        }
        self.update_preview();
    }

    fn microphone(&self) -> AudioSource {
        AudioSource::Device {
            pick: self.devices.microphone.clone(),
            notify: self.notify.clone(),
            processing: self.processing.clone(),
        }
    }

    fn camera(&self) -> VideoSource {
        VideoSource::Device { pick: self.devices.camera.clone(), notify: self.notify.clone() }
    }

    /// Switches to other devices, in calls going on too: a source whose device changed starts again on
    /// the new one (its links stay).
    pub(crate) fn use_devices(&mut self, devices: DeviceChoice) {
        let old = std::mem::replace(&mut self.devices, devices);
        let processing_changes =
            self.config.as_ref().is_some_and(|c| processes_voice(c, &self.devices)) != self.processing.is_some();
        if processing_changes {
            self.processing = self.config.as_ref().and_then(|c| voice_processing(c, &self.devices));
            // The speaker feeds the echo canceller the microphone uses: both start again with it.
            self.speaker = None;
        }
        if processing_changes || old.microphone != self.devices.microphone {
            self.preview_microphone = None;
            for call in self.microphones.keys().cloned().collect::<Vec<_>>() {
                self.microphones.remove(&call);
                self.set_microphone(&call, true);
            }
        }
        if old.camera != self.devices.camera {
            self.preview_camera = None;
            for call in self.cameras.keys().cloned().collect::<Vec<_>>() {
                self.cameras.remove(&call);
                self.set_camera(&call, true);
            }
        }
        if old.speaker != self.devices.speaker {
            self.speaker = None;
        }
        self.update_preview();
        self.update_speaker();
    }

    /// Plays incoming sound while this device is in a call (never for a mirror, which sends it back
    /// instead).
    fn update_speaker(&mut self) {
        let Some(config) = self.config.clone() else {
            return;
        };
        let wanted = !config.mirror && !self.joined.is_empty();
        let (audio, played, notify, pick) =
            (self.audio.clone(), self.played.clone(), self.notify.clone(), self.devices.speaker.clone());
        let processing = self.processing.clone();
        run_alone(&mut self.speaker, wanted, "speaker", || {
            Speaker::start(pick, Arc::new(move || audio.all()), played, notify, processing)
        });
    }

    /// Shows (or stops showing) what the camera captures while no call sends video.
    pub(crate) fn set_preview(&mut self, on: bool) {
        self.preview_wanted = on;
        self.update_preview();
    }

    /// Runs a camera and a microphone for the preview alone when it is wanted and no call's own already
    /// feeds it; a cleared preview tells the UI the camera is off.
    fn update_preview(&mut self) {
        let Some(config) = self.config.clone() else {
            return;
        };
        let (preview, meter) = (self.preview.clone(), self.local_audio.clone());
        let (camera, microphone) = (self.camera(), self.microphone());
        run_alone(&mut self.preview_camera, self.preview_wanted && self.cameras.is_empty(), "camera preview", || {
            VideoSender::start(config.camera, camera, Some(preview))
        });
        run_alone(
            &mut self.preview_microphone,
            self.preview_wanted && self.microphones.is_empty(),
            "microphone meter",
            || AudioSender::start(config.microphone, microphone, Some(meter)),
        );
        if !self.preview_wanted && self.cameras.is_empty() {
            self.preview.clear();
        }
    }

    /// Offers a connection to every joined device of `info` other than `me` that has none yet.
    fn offer_to_joined(&mut self, info: &CallInfo, me: &DeviceAddress) {
        for member in &info.members {
            let (MemberStatus::Joined, Some(device)) = (member.status, &member.device) else {
                continue;
            };
            let peer = DeviceAddress { user: member.user.clone(), device: device.clone() };
            if &peer != me {
                self.open(&info.call, peer, Role::Offerer);
            }
        }
    }

    /// Connects again, as the offerer, to every joined device of the call this device has no connection
    /// to (it could not be reached, and the retries ran out); each gets its retries back.
    pub(crate) fn retry_unreached(&mut self, info: &CallInfo, me: &DeviceAddress) {
        for member in &info.members {
            let (MemberStatus::Joined, Some(device)) = (member.status, &member.device) else {
                continue;
            };
            let peer = DeviceAddress { user: member.user.clone(), device: device.clone() };
            let key = (info.call.clone(), peer.clone());
            if &peer != me && !self.links.contains_key(&key) {
                tracing::info!(call = %info.call, %peer, "connecting again, as asked");
                self.retries.remove(&key);
                self.open(&info.call, peer, Role::Offerer);
            }
        }
    }

    fn close_where(&mut self, call: &CallId, doomed: impl Fn(&DeviceAddress) -> bool) {
        // Dropping a link closes it; its `closed` state still arrives as an event.
        let (video, audio) = (&self.video, &self.audio);
        self.links.retain(|(c, peer), _| {
            let keep = !(c == call && doomed(peer));
            if !keep {
                video.remove(c, peer);
                audio.remove(c, peer);
            }
            keep
        });
        self.retarget(call);
    }

    /// A relayed signal from `from`. An offer always starts a fresh connection (media is negotiated
    /// once, up front): from a device without one it opens one, and from a device with one it replaces
    /// it, because the other side made it again after it failed.
    ///
    /// When both devices offered at once (each asked to connect again), the device with the smaller
    /// address keeps its own offer and drops the other's, which then answers it.
    pub(crate) fn signal(&mut self, call: &CallId, from: DeviceAddress, payload: SignalPayload, me: &DeviceAddress) {
        let link = match payload {
            SignalPayload::Offer { .. } => {
                let key = (call.clone(), from.clone());
                if self.links.get(&key).is_some_and(|entry| entry.offered && !entry.link.connected()) && me < &from {
                    tracing::info!(%call, peer = %from, "both offered at once; ours stands");
                    return;
                }
                if self.links.remove(&key).is_some() {
                    tracing::info!(%call, peer = %from, "the other side connects again");
                }
                self.open(call, from.clone(), Role::Answerer)
            }
            _ => self.links.get(&(call.clone(), from.clone())).map(|entry| &entry.link),
        };
        match link {
            Some(link) => link.remote_signal(payload),
            None => tracing::debug!(%call, %from, "signal for a connection that is gone"),
        }
    }

    /// A link connected: it may fail and be made again as many times as before (a laptop that moves
    /// between networks several times in a call).
    fn connected(&mut self, call: &CallId, peer: &DeviceAddress) {
        self.retries.remove(&(call.clone(), peer.clone()));
    }

    /// Forgets a link that reported itself closed or failed. False when a newer connection to the same
    /// device replaced it: then the report is old news and the newer link stays.
    fn forget(&mut self, call: &CallId, peer: &DeviceAddress, generation: u64) -> bool {
        let key = (call.clone(), peer.clone());
        match self.links.get(&key) {
            Some(entry) if entry.generation != generation => false,
            Some(_) => {
                self.links.remove(&key);
                self.video.remove(call, peer);
                self.audio.remove(call, peer);
                self.retarget(call);
                true
            }
            None => true,
        }
    }

    /// Settles a connection's change of state: a connected one resets its retries, a failed one is made
    /// again (by this device, when it offered it and the call is still `live`), a closed or failed one is
    /// forgotten unless a newer one replaced it.
    pub(crate) fn settle(
        &mut self,
        call: &CallId,
        peer: &DeviceAddress,
        generation: u64,
        state: LinkState,
        live: bool,
    ) -> LinkFate {
        if state == LinkState::Connected {
            self.connected(call, peer);
        }
        if state == LinkState::Failed && live && self.retry(call, peer, generation) {
            return LinkFate::Retried;
        }
        if matches!(state, LinkState::Closed | LinkState::Failed) && !self.forget(call, peer, generation) {
            return LinkFate::Replaced;
        }
        LinkFate::Current
    }

    /// Makes a failed connection again when this device offered it and has retries left (the other
    /// side, on the new offer, replaces its own); true when it did.
    fn retry(&mut self, call: &CallId, peer: &DeviceAddress, generation: u64) -> bool {
        let key = (call.clone(), peer.clone());
        let ours = self.links.get(&key).is_some_and(|entry| entry.generation == generation && entry.offered);
        let tries = self.retries.entry(key.clone()).or_insert(0);
        if !ours || *tries >= RETRIES {
            return false;
        }
        *tries += 1;
        tracing::info!(%call, %peer, attempt = *tries, "the connection failed; connecting again");
        self.links.remove(&key);
        self.open(call, peer.clone(), Role::Offerer);
        true
    }

    /// Closes every connection and stops every camera (the server connection is gone, so are the calls).
    pub(crate) fn close_all(&mut self) {
        self.retries.clear();
        for (call, peer) in self.links.keys() {
            self.video.remove(call, peer);
            self.audio.remove(call, peer);
        }
        self.links.clear();
        self.cameras.clear();
        self.microphones.clear();
        self.joined.clear();
        self.update_preview();
        self.update_speaker();
    }

    /// What has arrived from `peer`: (video frames decoded, latest picture size, audio frames concealed).
    pub(crate) fn received(&self, call: &CallId, peer: &DeviceAddress) -> Received {
        let video = self.video.get(call, peer);
        let freezes = video.as_ref().map(|slot| slot.freezes()).unwrap_or_default();
        Received {
            video_frames: video.as_ref().map_or(0, |slot| slot.frames_decoded()),
            video_dropped: video.as_ref().map_or(0, |slot| slot.frames_dropped()),
            video_freezes: freezes.count,
            video_frozen: freezes.total,
            video_size: video.and_then(|slot| slot.latest()).map_or((0, 0), |f| (f.picture.width, f.picture.height)),
            audio_concealed: self.audio.get(call, peer).map_or(0, |slot| slot.frames_concealed()),
        }
    }

    /// The loudest other device in `call`, if anyone is above a speaking threshold (about -34 dBFS).
    pub(crate) fn loudest(&self, call: &CallId) -> Option<DeviceAddress> {
        self.audio
            .streams(call)
            .into_iter()
            .map(|(peer, slot)| (peer, slot.level()))
            .filter(|(_, level)| *level > 0.02)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(peer, _)| peer)
    }

    /// Applies the rules in the module documentation to one engine event. `joined_here` says whether a
    /// `CallActive` came from this device joining (rather than someone answering its call).
    pub(crate) fn follow(&mut self, event: &Event, me: &DeviceAddress, joined_here: bool) {
        if !self.enabled() {
            return;
        }
        match event {
            Event::OutgoingCall { call, kind, .. } => self.call_starts(call, *kind),
            Event::IncomingCall { call, .. } => {
                self.call_starts(&call.call, call.kind);
                self.offer_to_joined(call, me);
            }
            Event::CallActive { call } => {
                self.calls.insert(call.call.clone());
                let (codecs, mark) = (self.codecs.clone(), self.codecs.mark());
                tokio::spawn(async move {
                    tokio::time::sleep(UNUSED_CODECS_AFTER).await;
                    codecs.release_unless_prepared_since(mark);
                });
                if joined_here {
                    self.offer_to_joined(call, me);
                }
                let media = call.member(&me.user).and_then(|m| m.media).unwrap_or_default();
                self.set_camera(&call.call, call.kind == CallKind::Video && media.camera_on);
                self.set_microphone(&call.call, !media.audio_muted);
                self.joined.insert(call.call.clone());
                self.update_speaker();
            }
            Event::ParticipantJoined { call, user, device, .. } => {
                self.close_where(call, |peer| &peer.user == user && &peer.device != device);
            }
            Event::ParticipantLeft { call, user, .. } => self.close_where(call, |peer| &peer.user == user),
            Event::CallEnded { call, .. } | Event::Merged { call, .. } => {
                self.retries.retain(|(c, _), _| c != call);
                self.cameras.remove(call);
                self.microphones.remove(call);
                self.joined.remove(call);
                self.close_where(call, |_| true);
                self.update_preview();
                self.update_speaker();
                self.calls.remove(call);
                if self.calls.is_empty() {
                    self.calls_over();
                }
            }
            _ => {}
        }
    }

    /// A call rings here (either way): a video call's codecs are made now, so that answering does not
    /// wait for them.
    fn call_starts(&mut self, call: &CallId, kind: CallKind) {
        self.calls.insert(call.clone());
        if let Some(config) = &self.config
            && kind == CallKind::Video
        {
            self.codecs.prepare(config.camera.width, config.camera.height);
        }
    }

    /// This device has no call left: codecs made and not taken go, and once the calls' threads and tasks
    /// have ended, the heap's free memory goes back to the system.
    fn calls_over(&mut self) {
        self.codecs.release();
        tokio::spawn(async {
            tokio::time::sleep(RELEASE_AFTER_CALLS).await;
            let _ = tokio::task::spawn_blocking(dialtone_media::release_free_memory).await;
        });
    }
}

/// Voice processing for an engine that captures and plays sound (not for a mirror, which sends back
/// what it hears, nor when it is turned off).
/// A fake microphone's tone needs none, and the speaker's work of feeding the echo canceller is saved.
fn voice_processing(config: &MediaConfig, devices: &DeviceChoice) -> Option<VoiceProcessing> {
    if !processes_voice(config, devices) {
        return None;
    }
    VoiceProcessing::new().inspect_err(|error| tracing::warn!(%error, "no echo cancellation")).ok()
}

fn processes_voice(config: &MediaConfig, devices: &DeviceChoice) -> bool {
    !config.mirror && config.voice_processing && !devices.microphone.is_fake(DeviceKind::Microphone)
}

/// Starts (`wanted`) or stops a source kept in `running`, for the preview.
fn run_alone<Source, Error: std::fmt::Display>(
    running: &mut Option<Source>,
    wanted: bool,
    what: &str,
    start: impl FnOnce() -> Result<Source, Error>,
) {
    match (wanted, running.is_some()) {
        (true, false) => match start() {
            Ok(source) => *running = Some(source),
            Err(error) => tracing::warn!(%error, "cannot start the {what}"),
        },
        (false, true) => *running = None,
        _ => {}
    }
}

/// Starts (`on`) or stops a call's source in `sources`; true when one was started.
fn switch<Source, Error: std::fmt::Display>(
    sources: &mut BTreeMap<CallId, Source>,
    call: &CallId,
    on: bool,
    start: impl FnOnce() -> Result<Source, Error>,
) -> bool {
    if !on {
        sources.remove(call);
        return false;
    }
    if sources.contains_key(call) {
        return false;
    }
    match start() {
        Ok(source) => {
            sources.insert(call.clone(), source);
            true
        }
        Err(error) => {
            tracing::warn!(%error, %call, "cannot start a media source");
            false
        }
    }
}
