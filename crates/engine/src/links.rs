//! Which peer connections exist: one per other device in each call, opened while the call rings.
//!
//! The rules, applied to the engine's own events so they hold however a call got where it is:
//! - a device that rings offers a connection to every joined device of the call (pre-connect);
//! - a device that joins offers to every joined device it has no connection with yet (group members who
//!   answered while it rang); devices already in the call never offer, so two devices never both do;
//! - an offer from a device without a connection opens one that answers;
//! - a connection closes when its device leaves, loses the answer race to another device of its user,
//!   or the call ends.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use dialtone_media::{Link, LinkEvent, MediaConfig, Role, VideoSender, VideoSlot, Wake};
use dialtone_protocol::{CallId, CallInfo, CallKind, DeviceAddress, MemberStatus, SignalPayload};
use tokio::sync::mpsc;

use crate::api::Event;

/// The incoming video streams of every call, by call and sending device: what a UI draws. Each slot holds
/// the stream's latest decoded frame.
#[derive(Debug, Clone, Default)]
pub struct RemoteVideo(Arc<Mutex<StreamMap>>);

type StreamMap = BTreeMap<(CallId, DeviceAddress), Arc<VideoSlot>>;

impl RemoteVideo {
    /// The stream from `peer` in `call`, if there is a connection to it.
    pub fn get(&self, call: &CallId, peer: &DeviceAddress) -> Option<Arc<VideoSlot>> {
        self.0.lock().ok()?.get(&(call.clone(), peer.clone())).cloned()
    }

    /// Every stream of `call`.
    pub fn streams(&self, call: &CallId) -> Vec<(DeviceAddress, Arc<VideoSlot>)> {
        let Ok(map) = self.0.lock() else { return Vec::new() };
        map.iter().filter(|((c, _), _)| c == call).map(|((_, peer), slot)| (peer.clone(), slot.clone())).collect()
    }

    fn insert(&self, call: &CallId, peer: &DeviceAddress, slot: Arc<VideoSlot>) {
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

/// A link's event, tagged with the call and the remote device it belongs to.
pub(crate) type TaggedLinkEvent = (CallId, DeviceAddress, LinkEvent);

pub(crate) struct Links {
    config: Option<Arc<MediaConfig>>,
    links: BTreeMap<(CallId, DeviceAddress), Link>,
    events: mpsc::UnboundedSender<TaggedLinkEvent>,
    video: RemoteVideo,
    wake: Option<Wake>,
    /// This device's camera, per call where it sends video; encoded once for all the call's links.
    senders: BTreeMap<CallId, VideoSender>,
}

impl Links {
    pub(crate) fn new(
        config: Option<MediaConfig>,
        events: mpsc::UnboundedSender<TaggedLinkEvent>,
        video: RemoteVideo,
        wake: Option<Wake>,
    ) -> Self {
        Self { config: config.map(Arc::new), links: BTreeMap::new(), events, video, wake, senders: BTreeMap::new() }
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
            let slot = VideoSlot::new(self.wake.clone());
            self.video.insert(call, &peer, slot.clone());
            let link = Link::spawn(
                config,
                role,
                Arc::new(move |event| {
                    let _ = events.send((tag_call.clone(), tag_peer.clone(), event));
                }),
                slot,
            );
            self.links.insert(key.clone(), link);
            self.retarget(call);
        }
        self.links.get(&key)
    }

    /// Points the call's video sender at the call's current links.
    fn retarget(&self, call: &CallId) {
        if let Some(sender) = self.senders.get(call) {
            let targets = self.links.iter().filter(|((c, _), _)| c == call).map(|(_, link)| link.sender()).collect();
            sender.set_targets(targets);
        }
    }

    /// Turns this device's camera on or off in `call`.
    pub(crate) fn set_camera(&mut self, call: &CallId, on: bool) {
        let Some(config) = &self.config else { return };
        match (on, self.senders.contains_key(call)) {
            (true, false) => match VideoSender::start(config.camera) {
                Ok(sender) => {
                    self.senders.insert(call.clone(), sender);
                    self.retarget(call);
                }
                Err(error) => tracing::warn!(%error, "cannot start the camera"),
            },
            (false, true) => {
                self.senders.remove(call);
            }
            _ => {}
        }
    }

    /// Offers a connection to every joined device of `info` other than `me` that has none yet.
    fn offer_to_joined(&mut self, info: &CallInfo, me: &DeviceAddress) {
        for member in &info.members {
            let (MemberStatus::Joined, Some(device)) = (member.status, &member.device) else { continue };
            let peer = DeviceAddress { user: member.user.clone(), device: device.clone() };
            if &peer != me {
                self.open(&info.call, peer, Role::Offerer);
            }
        }
    }

    fn close_where(&mut self, call: &CallId, doomed: impl Fn(&DeviceAddress) -> bool) {
        // Dropping a link closes it; its `closed` state still arrives as an event.
        let video = &self.video;
        self.links.retain(|(c, peer), _| {
            let keep = !(c == call && doomed(peer));
            if !keep {
                video.remove(c, peer);
            }
            keep
        });
        self.retarget(call);
    }

    /// A relayed signal from `from`; an offer from a device without a connection opens one.
    pub(crate) fn signal(&mut self, call: &CallId, from: DeviceAddress, payload: SignalPayload) {
        let link = match payload {
            SignalPayload::Offer { .. } => self.open(call, from.clone(), Role::Answerer),
            _ => self.links.get(&(call.clone(), from.clone())),
        };
        match link {
            Some(link) => link.remote_signal(payload),
            None => tracing::debug!(%call, %from, "signal for a connection that is gone"),
        }
    }

    /// Forgets a link that reported itself closed or failed.
    pub(crate) fn forget(&mut self, call: &CallId, peer: &DeviceAddress) {
        if self.links.remove(&(call.clone(), peer.clone())).is_some() {
            self.video.remove(call, peer);
            self.retarget(call);
        }
    }

    /// Closes every connection and stops every camera (the server connection is gone, so are the calls).
    pub(crate) fn close_all(&mut self) {
        for (call, peer) in self.links.keys() {
            self.video.remove(call, peer);
        }
        self.links.clear();
        self.senders.clear();
    }

    /// Applies the rules in the module documentation to one engine event. `joined_here` says whether a
    /// `CallActive` came from this device joining (rather than someone answering its call).
    pub(crate) fn follow(&mut self, event: &Event, me: &DeviceAddress, joined_here: bool) {
        if !self.enabled() {
            return;
        }
        match event {
            Event::IncomingCall { call, .. } => self.offer_to_joined(call, me),
            Event::CallActive { call } => {
                if joined_here {
                    self.offer_to_joined(call, me);
                }
                let camera_on = call.member(&me.user).and_then(|m| m.media).is_some_and(|m| m.camera_on);
                self.set_camera(&call.call, call.kind == CallKind::Video && camera_on);
            }
            Event::ParticipantJoined { call, user, device, .. } => {
                self.close_where(call, |peer| &peer.user == user && &peer.device != device);
            }
            Event::ParticipantLeft { call, user, .. } => self.close_where(call, |peer| &peer.user == user),
            Event::CallEnded { call, .. } | Event::Merged { call, .. } => {
                self.senders.remove(call);
                self.close_where(call, |_| true);
            }
            _ => {}
        }
    }
}
