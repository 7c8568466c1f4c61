//! What the app knows, built only from engine events and the user's own actions: connection,
//! contacts and presence, the call on screen, calls ringing here, notices and history entries.
//!
//! No egui and no clock in here: every change takes `now` (and the wall-clock time for history) as
//! arguments, so the tests below replay event sequences with made-up instants.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dialtone_engine::{ABSENT_ID, DeviceInfo, DeviceKind, DeviceList, Event, MediaLinkState};
use dialtone_protocol::{CallId, CallInfo, CallKind, DeviceId, MediaState, MemberStatus, Profile, UserId};

use crate::history::{self, Direction, Entry, Outcome};

/// How long a notice ("Answered on another device") stays on screen.
pub const NOTICE_FOR: Duration = Duration::from_secs(4);

/// The connection to the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    /// Connecting (`attempt` 0 is the first).
    Connecting {
        /// Reconnect attempt number.
        attempt: u32,
    },
    /// Signed in.
    Online,
    /// Lost; trying again at `retry_at`.
    Reconnecting {
        /// Why it was lost.
        reason: String,
        /// When the next attempt starts.
        retry_at: Instant,
    },
    /// The engine stopped for good (bad token, shut down).
    Stopped {
        /// Why.
        reason: String,
    },
}

/// Someone this user can call.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// Their id.
    pub user: UserId,
    /// Their profile.
    pub profile: Profile,
    /// Signed in on at least one device.
    pub online: bool,
    /// In a call now.
    pub in_call: bool,
}

/// A named group of contacts that is called together (the demo group).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// What it is called.
    pub name: String,
    /// Its members.
    pub members: Vec<UserId>,
}

/// Where the call on screen stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// This user called; the invitation is on its way or ringing.
    Ringing,
    /// Answered (here or by them); media is being connected.
    Connecting,
    /// In the call.
    Active,
}

/// A network-quality grade for one participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quality {
    /// Losses or delay a person notices.
    Poor,
    /// Some loss or delay.
    Fair,
    /// Fine.
    Good,
}

/// What holds a connection back, the worst of it, for the indicator's tooltip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trouble {
    /// This share of packets (0.0 to 1.0) did not arrive.
    Loss(f64),
    /// The round trip takes this many milliseconds.
    Delay(f64),
    /// The picture froze this many times.
    Freezes(u64),
    /// The network carries only this many kbit/s to them: the picture is kept small.
    Narrow(f64),
}

impl Trouble {
    /// In a few words.
    pub fn describe(self) -> String {
        match self {
            Trouble::Loss(share) => format!("{:.0} % of packets lost", share * 100.0),
            Trouble::Delay(ms) => format!("{ms:.0} ms round trip"),
            Trouble::Freezes(1) => "the picture froze".to_owned(),
            Trouble::Freezes(count) => format!("the picture froze {count} times"),
            Trouble::Narrow(kbps) => format!("a narrow network ({kbps:.0} kbit/s)"),
        }
    }
}

/// What the connection indicator says before the first figures.
pub const MEASURING_CONNECTION: &str = "Measuring the connection";

/// Below this estimate of what the network carries, video is kept small: fair ...
const NARROW_KBPS: f64 = 250.0;
/// ... and below this, poor.
const VERY_NARROW_KBPS: f64 = 120.0;

impl Quality {
    /// Grades round-trip time, the fraction of packets lost and the video freezes over the last period,
    /// and what congestion control estimates the network carries to them (`send_estimate_kbps`, 0 while
    /// unknown); with the worst trouble found.
    pub fn assess(
        rtt_ms: Option<f64>,
        loss: f64,
        freezes: u64,
        send_estimate_kbps: Option<f64>,
    ) -> (Quality, Option<Trouble>) {
        let rtt = rtt_ms.unwrap_or(0.0);
        let estimate = send_estimate_kbps.filter(|kbps| *kbps > 0.0);
        let graded = [
            (loss > 0.08, loss > 0.02, Trouble::Loss(loss)),
            (rtt > 400.0, rtt > 150.0, Trouble::Delay(rtt)),
            (freezes > 1, freezes == 1, Trouble::Freezes(freezes)),
            (
                estimate.is_some_and(|kbps| kbps < VERY_NARROW_KBPS),
                estimate.is_some_and(|kbps| kbps < NARROW_KBPS),
                Trouble::Narrow(estimate.unwrap_or_default()),
            ),
        ];
        if let Some((.., trouble)) = graded.iter().find(|(poor, ..)| *poor) {
            (Quality::Poor, Some(*trouble))
        } else if let Some((.., trouble)) = graded.iter().find(|(_, fair, _)| *fair) {
            (Quality::Fair, Some(*trouble))
        } else {
            (Quality::Good, None)
        }
    }

    /// What the indicator's tooltip says.
    pub fn label(self) -> &'static str {
        match self {
            Quality::Good => "Good connection",
            Quality::Fair => "Fair connection",
            Quality::Poor => "Poor connection",
        }
    }
}

/// Someone else in the call on screen.
#[derive(Debug, Clone, PartialEq)]
pub struct Participant {
    /// Their id.
    pub user: UserId,
    /// Their profile.
    pub profile: Profile,
    /// Ringing, or joined on `device`.
    pub joined: bool,
    /// The device they answered on.
    pub device: Option<DeviceId>,
    /// Muted, camera on.
    pub media: MediaState,
    /// The latest network grade.
    pub quality: Option<Quality>,
    /// What held it back, if anything.
    pub trouble: Option<Trouble>,
    /// The peer connection's state.
    pub link: Option<MediaLinkState>,
    /// Why no connection to them could be made, until one is being tried again.
    pub unreachable: Option<String>,
    /// Totals from the last statistics, to grade the next period's loss.
    packets: (i64, u64),
    /// Video freezes counted at the last statistics.
    freezes: u64,
}

/// The call on screen (outgoing ringing, connecting, or in progress).
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentCall {
    /// Its id.
    pub id: CallId,
    /// Audio or video.
    pub kind: CallKind,
    /// A group call (grid view).
    pub group: bool,
    /// Who placed it.
    pub direction: Direction,
    /// Where it stands.
    pub stage: Stage,
    /// Everyone else, in the order they appeared.
    pub participants: Vec<Participant>,
    /// What this device sends.
    pub my_media: MediaState,
    /// When it became active.
    pub active_since: Option<Instant>,
    /// When it started, for the history.
    pub started_unix_ms: u64,
    /// Who speaks now.
    pub speaker: Option<UserId>,
}

impl CurrentCall {
    /// The participants who answered.
    pub fn joined(&self) -> impl Iterator<Item = &Participant> {
        self.participants.iter().filter(|p| p.joined)
    }

    /// The worst grade among joined participants, for the call's indicator.
    pub fn quality(&self) -> Option<Quality> {
        self.joined().filter_map(|p| p.quality).min()
    }

    /// What the indicator's tooltip says: the worst grade, and what holds that connection back (with
    /// whose it is in a group call).
    pub fn quality_text(&self) -> String {
        let worst = self.joined().filter_map(|p| Some((p.quality?, p))).min_by_key(|(quality, _)| *quality);
        let Some((quality, worst)) = worst else { return MEASURING_CONNECTION.to_owned() };
        let grade = quality.label();
        match (worst.trouble, self.group) {
            (Some(trouble), true) => format!("{grade}: {} to {}", trouble.describe(), worst.profile.display_name),
            (Some(trouble), false) => format!("{grade}: {}", trouble.describe()),
            (None, _) => grade.to_owned(),
        }
    }

    fn participant(&mut self, user: &UserId) -> Option<&mut Participant> {
        self.participants.iter_mut().find(|p| &p.user == user)
    }
}

/// A call ringing on this device.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The call as the invitation described it.
    pub info: CallInfo,
    /// Who invites.
    pub from: UserId,
    /// Wall-clock start, for the history.
    pub at_unix_ms: u64,
}

/// A short message on screen.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// What it says.
    pub text: String,
    /// When it goes away.
    pub until: Instant,
}

/// Everything the views draw.
#[derive(Debug, Default)]
pub struct Model {
    /// This user, once signed in.
    pub me: Option<UserId>,
    /// This user's profile as the server holds it.
    pub my_profile: Profile,
    /// The server connection; `None` before the engine said anything.
    pub connection: Option<Connection>,
    /// Everyone watched, by id (this user excluded).
    pub contacts: BTreeMap<UserId, Contact>,
    /// Groups to call together.
    pub groups: Vec<Group>,
    /// The call on screen.
    pub call: Option<CurrentCall>,
    /// Calls ringing here, oldest first.
    pub incoming: Vec<Incoming>,
    /// Messages on screen.
    pub notices: Vec<Notice>,
    /// Entries for the history, taken by [`Model::take_history`].
    finished: Vec<Entry>,
    /// Profiles seen in calls, for names of people not among the contacts.
    profiles: BTreeMap<UserId, Profile>,
    /// Peer-connection states by call and device, also for calls that still ring here (they connect
    /// before anyone answers).
    links: BTreeMap<(CallId, UserId, DeviceId), MediaLinkState>,
    /// The microphones, speakers and cameras there are, as last listed.
    pub devices: DeviceList,
    /// The device of each kind in use, and why it is a stand-in when it is one.
    pub in_use: BTreeMap<DeviceKind, (DeviceInfo, Option<String>)>,
}

impl Model {
    /// A display name for `user`: their profile's, or their id.
    pub fn name_of(&self, user: &UserId) -> String {
        let profile = self.contacts.get(user).map(|c| &c.profile).or_else(|| self.profiles.get(user));
        match profile {
            Some(profile) if !profile.display_name.is_empty() => profile.display_name.clone(),
            _ => user.to_string(),
        }
    }

    /// `user`'s profile, as far as known.
    pub fn profile_of(&self, user: &UserId) -> Profile {
        self.contacts
            .get(user)
            .map(|c| c.profile.clone())
            .or_else(|| self.profiles.get(user).cloned())
            .unwrap_or_default()
    }

    /// Finished calls for the history since the last call, oldest first.
    pub fn take_history(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.finished)
    }

    /// Shows a message for [`NOTICE_FOR`].
    pub fn notify(&mut self, text: impl Into<String>, now: Instant) {
        self.notices.push(Notice { text: text.into(), until: now + NOTICE_FOR });
    }

    /// Drops notices whose time is up; returns when the next one expires.
    pub fn expire(&mut self, now: Instant) -> Option<Instant> {
        self.notices.retain(|n| n.until > now);
        self.notices.iter().map(|n| n.until).min()
    }

    /// Applies one engine event: the connection, errors and devices here; calls (`calls.rs`), contacts
    /// (`contacts.rs`) and how calls end (`outcomes.rs`) in their own files.
    pub fn apply(&mut self, event: Event, now: Instant, now_unix_ms: u64) {
        match event {
            Event::Presence { .. } | Event::PresenceChanged { .. } | Event::MissedCalls { .. } => {
                self.contacts_event(event)
            }
            Event::OutgoingCall { .. }
            | Event::IncomingCall { .. }
            | Event::Ringing { .. }
            | Event::CallActive { .. }
            | Event::ParticipantJoined { .. }
            | Event::ParticipantLeft { .. }
            | Event::MediaChanged { .. }
            | Event::KindChanged { .. }
            | Event::Merged { .. }
            | Event::MediaLink { .. }
            | Event::MediaStats { .. }
            | Event::ActiveSpeaker { .. }
            | Event::CallEnded { .. } => self.call_event(event, now, now_unix_ms),
            Event::Connecting { attempt, .. } => self.connection = Some(Connection::Connecting { attempt }),
            Event::SignedIn { user, profile, .. } => {
                self.contacts.remove(&user);
                self.me = Some(user);
                self.my_profile = profile;
                self.connection = Some(Connection::Online);
            }
            Event::Reconnecting { reason, retry_in_ms, .. } => {
                self.connection =
                    Some(Connection::Reconnecting { reason, retry_at: now + Duration::from_millis(retry_in_ms) });
            }
            Event::Stopped { reason } => self.connection = Some(Connection::Stopped { reason }),
            Event::Error { message, call, .. } => {
                // Errors about a call that is on screen or ringing are worth saying; the rest go to the log.
                let concerns_user = call.as_ref().is_some_and(|c| {
                    self.call.as_ref().is_some_and(|current| &current.id == c)
                        || self.incoming.iter().any(|i| &i.info.call == c)
                });
                if concerns_user || call.is_none() {
                    self.notify(message, now);
                }
            }
            // Pictures are kept by the app (a cache on disk), not the model.
            Event::Signal { .. } | Event::Picture { .. } | Event::CallResumed { .. } => {}
            Event::Devices { devices } => self.devices = devices,
            Event::DeviceInUse { kind, device, problem } => {
                // Each start of a camera or microphone reports; a problem is told once until it changes.
                let told = self.in_use.get(&kind).and_then(|(_, told)| told.as_ref());
                if let Some(problem) = problem.as_ref().filter(|p| Some(*p) != told) {
                    self.notify(format!("{} — {}", capitalised(problem), stand_in(kind, &device)), now);
                } else if problem.is_none() && told.is_some() {
                    self.notify(format!("Now using {}", device.name), now);
                }
                self.in_use.insert(kind, (device, problem));
            }
        }
    }
}

mod calls;
mod contacts;
mod outcomes;
#[cfg(test)]
mod tests;

/// What standing in for a device that cannot be used means, in words.
pub fn stand_in(kind: DeviceKind, device: &DeviceInfo) -> String {
    match kind {
        DeviceKind::Speaker if device.fake => "calls play silently".to_owned(),
        DeviceKind::Microphone if device.id == ABSENT_ID => "the others hear silence from you".to_owned(),
        DeviceKind::Camera if device.id == ABSENT_ID => "the others see your picture instead of video".to_owned(),
        _ => format!("using {} instead", device.name),
    }
}

/// The text with its first letter in upper case.
pub(crate) fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
