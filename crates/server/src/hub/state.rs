//! What the hub keeps: connections, users and their devices, calls and their members, pictures, timers.
//! Plain records with the queries every concern shares; the flows that change them live in the sibling
//! modules. This module names nothing else of the hub's, so that every other one may name it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use dialtone_protocol::{
    CallId, CallInfo, CallKind, CallMember, DeviceId, ErrorCode, MediaState, MemberStatus, MissedCall, PresenceEntry,
    Profile, UserId,
};

/// Identifies one signed-in connection.
pub type ConnId = u64;

/// Who a signed-in connection is.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) user: UserId,
    pub(super) device: DeviceId,
}

/// One signed-in (or briefly away) device of a user.
#[derive(Debug, Default)]
pub(super) struct Device {
    pub(super) conn: ConnId,
    /// Its connection dropped while it was in a call; it keeps its place until then.
    pub(super) away_until: Option<Instant>,
    /// The call this device is joined to.
    pub(super) joined: Option<CallId>,
    /// Calls ringing on this device.
    pub(super) ringing: BTreeSet<CallId>,
}

/// A user the hub has heard of: signed in, or invited while never signed in.
#[derive(Debug)]
pub(super) struct User {
    pub(super) profile: Profile,
    pub(super) devices: BTreeMap<DeviceId, Device>,
    pub(super) missed: VecDeque<MissedCall>,
    /// Calls in which this user is a ringing member.
    pub(super) invited_to: BTreeSet<CallId>,
    /// The presence last pushed to watchers, to push only changes.
    pub(super) published: Option<PresenceEntry>,
}

impl User {
    /// A user with no devices yet, shown as `display_name`.
    pub(super) fn named(display_name: String) -> Self {
        Self {
            profile: Profile { display_name, avatar: None },
            devices: BTreeMap::new(),
            missed: VecDeque::new(),
            invited_to: BTreeSet::new(),
            published: None,
        }
    }

    /// This user's presence, as watchers see it.
    pub(super) fn presence(&self, id: &UserId) -> PresenceEntry {
        let devices = self.devices.len() as u32;
        PresenceEntry {
            user: id.clone(),
            profile: self.profile.clone(),
            online: devices > 0,
            devices,
            in_call: devices > 0 && self.devices.values().all(|d| d.joined.is_some()),
        }
    }
}

/// Every user the hub knows, by id.
pub(super) type Users = HashMap<UserId, User>;

/// The profile a user shows; one the hub never heard of shows its id.
pub(super) fn profile_of(users: &Users, user: &UserId) -> Profile {
    users
        .get(user)
        .map(|u| u.profile.clone())
        .unwrap_or_else(|| Profile { display_name: user.to_string(), avatar: None })
}

/// A profile picture kept for the users who show it.
#[derive(Debug)]
pub(super) struct Picture {
    pub(super) mime: &'static str,
    /// Base64, as it is sent.
    pub(super) data: String,
    pub(super) users: BTreeSet<UserId>,
}

/// Where a member is in a call.
#[derive(Debug, Clone)]
pub(super) enum Status {
    Ringing {
        devices: BTreeSet<DeviceId>,
        deadline: Instant,
        invited_by: UserId,
        invited_at_unix_ms: u64,
        /// Some device has rung for this invitation; only invitees it never reached get a missed call.
        rang: bool,
    },
    Joined {
        device: DeviceId,
        media: MediaState,
    },
}

/// A user in a call, ringing or joined.
#[derive(Debug, Clone)]
pub(super) struct Member {
    pub(super) user: UserId,
    pub(super) status: Status,
}

/// A call, from the first invitation until it ends.
#[derive(Debug)]
pub(super) struct Call {
    pub(super) id: CallId,
    pub(super) kind: CallKind,
    pub(super) group: bool,
    pub(super) initiator: UserId,
    pub(super) members: Vec<Member>,
    /// Someone other than the initiator has joined at some point.
    pub(super) answered: bool,
    /// Users who were in the call and left; they may join it again by its id.
    pub(super) former: BTreeSet<UserId>,
    pub(super) idle_deadline: Option<Instant>,
    /// Taken up again after a server restart: the joined devices that have not claimed it yet.
    pub(super) expected: Vec<(UserId, DeviceId)>,
}

impl Call {
    pub(super) fn member(&self, user: &UserId) -> Option<&Member> {
        self.members.iter().find(|m| &m.user == user)
    }

    pub(super) fn member_mut(&mut self, user: &UserId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| &m.user == user)
    }

    pub(super) fn joined_device(&self, user: &UserId) -> Option<&DeviceId> {
        match &self.member(user)?.status {
            Status::Joined { device, .. } => Some(device),
            Status::Ringing { .. } => None,
        }
    }

    pub(super) fn joined_count(&self) -> usize {
        self.members.iter().filter(|m| matches!(m.status, Status::Joined { .. })).count()
    }

    pub(super) fn ringing_count(&self) -> usize {
        self.members.iter().filter(|m| matches!(m.status, Status::Ringing { .. })).count()
    }

    /// Whether a device takes part in the call's signaling: joined, or ringing for it.
    pub(super) fn has_device(&self, user: &UserId, device: &DeviceId) -> bool {
        match self.member(user).map(|m| &m.status) {
            Some(Status::Joined { device: joined, .. }) => joined == device,
            Some(Status::Ringing { devices, .. }) => devices.contains(device),
            None => false,
        }
    }

    /// Adds the invitees as ringing members, none of whose devices rings yet.
    pub(super) fn add_ringing(
        &mut self,
        invitees: &[UserId],
        invited_by: &UserId,
        deadline: Instant,
        invited_at_unix_ms: u64,
    ) {
        for invitee in invitees {
            self.members.push(Member {
                user: invitee.clone(),
                status: Status::Ringing {
                    devices: BTreeSet::new(),
                    deadline,
                    invited_by: invited_by.clone(),
                    invited_at_unix_ms,
                    rang: false,
                },
            });
        }
    }

    /// The call as clients see it.
    pub(super) fn info(&self, users: &Users) -> CallInfo {
        CallInfo {
            call: self.id.clone(),
            kind: self.kind,
            group: self.group,
            initiator: self.initiator.clone(),
            members: self
                .members
                .iter()
                .map(|m| {
                    let (status, device, media) = match &m.status {
                        Status::Ringing { .. } => (MemberStatus::Ringing, None, None),
                        Status::Joined { device, media } => (MemberStatus::Joined, Some(device.clone()), Some(*media)),
                    };
                    CallMember { user: m.user.clone(), profile: profile_of(users, &m.user), status, device, media }
                })
                // Devices a resumed call still expects are shown as the joined members they were.
                .chain(self.expected.iter().map(|(user, device)| CallMember {
                    user: user.clone(),
                    profile: profile_of(users, user),
                    status: MemberStatus::Joined,
                    device: Some(device.clone()),
                    media: None,
                }))
                .collect(),
        }
    }
}

/// Something due at an instant; each is checked against the state when it fires, so a stale one is a no-op.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    Ring(CallId, UserId),
    Idle(CallId),
    Away(UserId, DeviceId),
    /// The grace for the devices a resumed call expects to claim it again.
    Expected(CallId),
}

/// A request failure: the code and a readable message.
pub(super) type Refusal = (ErrorCode, String);

pub(super) fn refuse<T>(code: ErrorCode, message: impl Into<String>) -> Result<T, Refusal> {
    Err((code, message.into()))
}

/// Refuses a request about a call the hub does not know (never was, or already over).
pub(super) fn unknown_call<T>(call_id: &CallId) -> Result<T, Refusal> {
    refuse(ErrorCode::UnknownCall, format!("no call {call_id}"))
}
