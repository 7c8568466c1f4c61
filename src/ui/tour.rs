//! The screenshot tour (`dialtone --tour DIR`): the app walks through every view by itself and, at each
//! one, writes `DIR/NN-name.ready`; `scripts/screenshots` then photographs the X screen, so every view
//! is looked at as a person would see it, under Xvfb.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dialtone_protocol::{CallKind, UserId};

use super::action::Action;
use super::view_state::{GridLayout, Screen};
use crate::model::Model;
use crate::session::Session;

/// One step: what to do, what to call the picture, and how long to wait before taking it.
struct Step {
    name: &'static str,
    settle: Duration,
    act: fn(&Model, &Session) -> Vec<Action>,
}

fn users(names: &[&str]) -> Vec<UserId> {
    names.iter().filter_map(|n| UserId::new(*n).ok()).collect()
}

/// A step that only hangs up, without a picture.
const HANG_UP: Step = Step { name: "", settle: Duration::from_millis(700), act: |_, _| vec![Action::Hangup] };

const STEPS: [Step; 12] = [
    Step { name: "contacts", settle: Duration::from_millis(2_500), act: |_, _| vec![Action::Show(Screen::Contacts)] },
    Step { name: "settings", settle: Duration::from_millis(1_500), act: |_, _| vec![Action::Show(Screen::Settings)] },
    Step {
        name: "outgoing-ringing",
        settle: Duration::from_millis(600),
        act: |_, _| {
            vec![
                Action::Show(Screen::Contacts),
                Action::Call { users: users(&["echo"]), kind: CallKind::Video, group: false },
            ]
        },
    },
    Step { name: "call-1v1-echo", settle: Duration::from_millis(3_000), act: |_, _| Vec::new() },
    HANG_UP,
    Step {
        name: "incoming-ringing",
        settle: Duration::from_millis(1_200),
        act: |_, session| {
            session.ring_me_from("ada", CallKind::Video);
            Vec::new()
        },
    },
    Step {
        name: "call-1v1-camera-off",
        settle: Duration::from_millis(2_500),
        act: |model, _| {
            let call = model.incoming.first().map(|i| i.info.call.clone());
            call.map(|call| vec![Action::Accept { call, video: false }]).unwrap_or_default()
        },
    },
    HANG_UP,
    Step {
        name: "group-grid",
        settle: Duration::from_millis(4_000),
        act: |model, _| {
            let group = model.groups.first().map(|g| g.members.clone()).unwrap_or_default();
            vec![Action::Call { users: group, kind: CallKind::Video, group: true }]
        },
    },
    Step {
        name: "group-spotlight",
        settle: Duration::from_millis(1_000),
        act: |_, _| vec![Action::SetLayout(GridLayout::Spotlight)],
    },
    Step {
        name: "help",
        settle: Duration::from_millis(800),
        act: |_, _| vec![Action::SetLayout(GridLayout::Grid), Action::ToggleHelp],
    },
    Step {
        name: "history",
        settle: Duration::from_millis(1_500),
        act: |_, _| vec![Action::ToggleHelp, Action::Hangup, Action::Show(Screen::History)],
    },
];

/// Where the tour is.
pub struct Tour {
    folder: PathBuf,
    next: usize,
    /// When the current step's picture is due, and when the step after may start.
    due: Option<(Instant, Instant)>,
    /// The current step's marker was written.
    marked: bool,
}

impl Tour {
    /// A tour writing its markers into `folder`.
    pub fn new(folder: PathBuf) -> Self {
        Self { folder, next: 0, due: None, marked: false }
    }

    /// Advances; returns actions to perform now, and whether the tour is over.
    pub fn step(&mut self, model: &Model, session: &Session) -> (Vec<Action>, bool) {
        let tour = self;
        let now = Instant::now();
        if let Some((picture_at, next_at)) = tour.due {
            if now >= picture_at && !tour.marked && tour.next > 0 && !STEPS[tour.next - 1].name.is_empty() {
                tour.marked = true;
                let marker = tour.folder.join(format!("{:02}-{}.ready", tour.next, STEPS[tour.next - 1].name));
                if let Err(error) = std::fs::write(&marker, b"") {
                    tracing::warn!(%error, "tour marker");
                }
            }
            if now < next_at {
                return (Vec::new(), false);
            }
        }
        let Some(step) = STEPS.get(tour.next) else {
            return (Vec::new(), true);
        };
        tour.next += 1;
        tour.marked = false;
        // The script takes its picture right after the marker appears; the next step waits a second.
        let picture_at = now + step.settle;
        let shutter = if step.name.is_empty() { Duration::ZERO } else { Duration::from_millis(1_000) };
        tour.due = Some((picture_at, picture_at + shutter));
        ((step.act)(model, session), false)
    }
}
