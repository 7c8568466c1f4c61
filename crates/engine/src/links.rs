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
use std::sync::Arc;

use dialtone_media::{Link, LinkEvent, MediaConfig, Role};
use dialtone_protocol::{CallId, CallInfo, DeviceAddress, MemberStatus, SignalPayload};
use tokio::sync::mpsc;

use crate::api::Event;

/// A link's event, tagged with the call and the remote device it belongs to.
pub(crate) type TaggedLinkEvent = (CallId, DeviceAddress, LinkEvent);

pub(crate) struct Links {
    config: Option<Arc<MediaConfig>>,
    links: BTreeMap<(CallId, DeviceAddress), Link>,
    events: mpsc::UnboundedSender<TaggedLinkEvent>,
}

impl Links {
    pub(crate) fn new(config: Option<MediaConfig>, events: mpsc::UnboundedSender<TaggedLinkEvent>) -> Self {
        Self { config: config.map(Arc::new), links: BTreeMap::new(), events }
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
            let link = Link::spawn(
                config,
                role,
                Arc::new(move |event| {
                    let _ = events.send((tag_call.clone(), tag_peer.clone(), event));
                }),
            );
            self.links.insert(key.clone(), link);
        }
        self.links.get(&key)
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
        self.links.retain(|(c, peer), _| !(c == call && doomed(peer)));
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
        self.links.remove(&(call.clone(), peer.clone()));
    }

    /// Closes every connection (the server connection is gone, so are the calls).
    pub(crate) fn close_all(&mut self) {
        self.links.clear();
    }

    /// Applies the rules in the module documentation to one engine event. `joined_here` says whether a
    /// `CallActive` came from this device joining (rather than someone answering its call).
    pub(crate) fn follow(&mut self, event: &Event, me: &DeviceAddress, joined_here: bool) {
        if !self.enabled() {
            return;
        }
        match event {
            Event::IncomingCall { call, .. } => self.offer_to_joined(call, me),
            Event::CallActive { call } if joined_here => self.offer_to_joined(call, me),
            Event::ParticipantJoined { call, user, device, .. } => {
                self.close_where(call, |peer| &peer.user == user && &peer.device != device);
            }
            Event::ParticipantLeft { call, user, .. } => self.close_where(call, |peer| &peer.user == user),
            Event::CallEnded { call, .. } | Event::Merged { call, .. } => self.close_where(call, |_| true),
            _ => {}
        }
    }
}
