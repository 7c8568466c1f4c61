//! The window: the app state, the actions views ask for, and one frame of drawing.
//!
//! Views never change state directly: they push [`Action`]s, which [`App::perform`] turns into engine
//! commands and model updates in one place (rerun's command pattern). Repaints are driven by the
//! engine's waker (events, decoded frames) plus timers for animations and the call clock, never a busy
//! loop, so an idle window costs nothing.

mod action;
mod call;
mod context;
mod desktop;
mod help;
mod home;
mod pictures;
mod repaint;
mod ringing;
mod settings_view;
pub mod theme;
pub mod tour;
pub mod video;
mod view_state;
pub mod widgets;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dialtone_engine::{Command, DeviceChoice, DeviceKind};
use dialtone_protocol::{CallId, CallKind, MediaState, UserId};
use egui::{Color32, Key};

use crate::history::History;
use crate::model::{Model, Stage};
use crate::session::{Session, SessionConfig, SessionError, Wakers};
use crate::settings::Settings;
use crate::store;

pub use action::Action;
pub use call::grid_shape;
use context::View;
use desktop::Desktop;
pub use desktop::TrayRequest;
use pictures::Pictures;
pub use repaint::{FRAME_INTERVAL, PREVIEW_WAIT, Repaint};
use view_state::ViewState;
pub use view_state::{GridLayout, Screen};

/// Every keyboard shortcut and what it does, as the help overlay lists them.
pub fn help_shortcuts() -> &'static [(&'static str, &'static str)] {
    &help::SHORTCUTS
}

/// Where the user's files live.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `settings.toml`.
    pub settings: PathBuf,
    /// `history.toml`.
    pub history: PathBuf,
    /// The data folder (the embedded server's key).
    pub data: PathBuf,
}

impl Paths {
    /// Everything in one folder (tests, portable use).
    pub fn in_folder(folder: impl Into<PathBuf>) -> Self {
        let folder = folder.into();
        Self { settings: folder.join("settings.toml"), history: folder.join("history.toml"), data: folder }
    }

    /// The platform's folders (XDG on Linux).
    pub fn platform() -> Option<Self> {
        let dirs = directories::ProjectDirs::from("org", "Dialtone", "Dialtone")?;
        Some(Self {
            settings: dirs.config_dir().join("settings.toml"),
            history: dirs.data_dir().join("history.toml"),
            data: dirs.data_dir().to_owned(),
        })
    }
}

/// The whole app.
pub struct App {
    session: Session,
    model: Model,
    settings: Settings,
    saved_settings: Settings,
    history: History,
    paths: Paths,
    /// What the views show and remember between frames (not saved).
    view: ViewState,
    /// The tray, notifications, sounds and the window.
    desktop: Desktop,
    textures: video::VideoTextures,
    /// Avatar pictures.
    pictures: Pictures,
    repaint: Arc<Repaint>,
    preview_on: bool,
    started: Instant,
    /// Time from start to the first frame, once painted.
    pub first_frame_after: Option<Duration>,
    /// Frames drawn since the instant, for the paint rate in the log (`dialtone::paint` at debug).
    painted: (Instant, u32),
    themed: bool,
    /// The screenshot tour, when running one.
    tour: Option<tour::Tour>,
    /// The devices of this run where the settings choose none (the system's, or the fake twins).
    default_devices: DeviceChoice,
    /// When the engine was last asked which devices there are.
    devices_listed_at: Option<Instant>,
}

impl App {
    /// Loads settings and history from `paths` and starts the session.
    pub fn start(mut config: SessionConfig, paths: Paths) -> Result<App, SessionError> {
        let started = Instant::now();
        let settings = store::load::<Settings>(&paths.settings);
        let history = store::load::<History>(&paths.history);
        if config.display_name.is_empty() {
            config.display_name = settings.value.profile.display_name.clone();
        }
        let repaint = Arc::new(Repaint::default());
        let (waker, preview_waker) = (repaint.clone(), repaint.clone());
        config.data_dir = paths.data.clone();
        let default_devices = config.devices.clone();
        config.devices = settings.value.devices.over(&default_devices);
        let wakers =
            Wakers { now: Arc::new(move || waker.wake()), preview: Arc::new(move || preview_waker.wake_for_preview()) };
        let session = Session::start(config, wakers)?;
        let mut model = Model::default();
        model.groups = session.groups().to_vec();
        let now = Instant::now();
        let sounds = crate::sound::Sounds::on(settings.value.devices.speaker.as_deref());
        for problem in [settings.problem, history.problem, sounds.unavailable.clone()].into_iter().flatten() {
            model.notify(problem, now);
        }
        Ok(App {
            session,
            model,
            saved_settings: settings.value.clone(),
            view: ViewState::new(settings.value.profile.display_name.clone()),
            desktop: Desktop::new(sounds, Self::now_unix_ms()),
            settings: settings.value,
            history: history.value,
            pictures: Pictures::in_folder(&paths.data),
            paths,
            textures: video::VideoTextures::default(),
            repaint,
            preview_on: false,
            started,
            first_frame_after: None,
            painted: (started, 0),
            themed: false,
            tour: None,
            default_devices,
            devices_listed_at: None,
        })
    }

    /// What the app knows (for tests and the tray).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The call history.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The session (for tests: the embedded server's URL).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The screen shown outside calls.
    pub fn screen(&self) -> Screen {
        self.view.screen
    }

    fn now_unix_ms() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }

    /// Takes in everything the engine reported.
    fn drain_events(&mut self) {
        let now = Instant::now();
        while let Some(event) = self.session.next_event() {
            tracing::debug!(?event, "engine event");
            match &event {
                // Signed in (again): the server may not have this user's picture yet.
                dialtone_engine::Event::SignedIn { .. } => self.send_picture(now),
                dialtone_engine::Event::Picture { avatar, data, .. } => self.pictures.keep(avatar, data),
                _ => {}
            }
            self.model.apply(event, now, Self::now_unix_ms());
        }
        let finished = self.model.take_history();
        if !finished.is_empty() {
            for entry in finished {
                self.history.record(entry);
            }
            self.save_history(now);
        }
    }

    /// Saves `settings` and starts the app again with them (a change of server); not during a call.
    fn restart_with(&mut self, settings: Settings, now: Instant) {
        if self.model.call.is_some() {
            return self.model.notify("Hang up first: Dialtone starts again for this", now);
        }
        match store::save(&self.paths.settings, &settings) {
            Ok(()) => {
                self.settings = settings.clone();
                self.saved_settings = settings;
                self.desktop.restart.store(true, std::sync::atomic::Ordering::SeqCst);
                self.desktop.quitting = true;
            }
            Err(error) => self.model.notify(format!("Settings could not be saved: {error}"), now),
        }
    }

    /// Sends this user's picture (made small enough to travel), or says that there is none.
    fn send_picture(&mut self, now: Instant) {
        match &self.settings.profile.avatar {
            Some(path) => match crate::avatar::picture_to_send(path) {
                Ok(bytes) => {
                    self.session.send(Command::SetPicture(Some(bytes)));
                }
                Err(error) => self.model.notify(format!("Your picture cannot be shown to others: {error}"), now),
            },
            None => {
                self.session.send(Command::SetPicture(None));
            }
        }
    }

    fn save_history(&mut self, now: Instant) {
        if let Err(error) = store::save(&self.paths.history, &self.history) {
            self.model.notify(format!("The call history could not be saved: {error}"), now);
        }
    }

    /// Carries out one action.
    pub fn perform(&mut self, action: Action) {
        let now = Instant::now();
        match action {
            Action::Call { users, kind, group } => {
                if self.model.call.is_some() {
                    return self.model.notify("Hang up first to start another call", now);
                }
                // The engine names the call and tells the server what this device sends; its
                // `OutgoingCall` puts the call on screen.
                let media = Some(self.start_media(kind));
                self.session.send(Command::Call { call: None, users, kind, group, ring_timeout: None, media });
                self.view.screen = Screen::Contacts;
            }
            Action::Accept { call, video } => {
                if let Some(current) = self.model.call.as_ref().map(|c| c.id.clone()) {
                    // Answering another call ends the one on screen.
                    self.session.send(Command::Hangup { call: current });
                }
                let kind = if video { CallKind::Video } else { CallKind::Audio };
                let media = self.start_media(kind);
                self.model.answering(&call, media);
                self.session.send(Command::Accept { call, media });
            }
            Action::Decline { call } => {
                self.session.send(Command::Decline { call, busy: false });
            }
            Action::Hangup => {
                if let Some(call) = &self.model.call {
                    self.session.send(Command::Hangup { call: call.id.clone() });
                }
            }
            Action::ToggleMute => self.change_media(|media| media.audio_muted = !media.audio_muted),
            Action::ToggleCamera | Action::UpgradeToVideo => {
                self.change_media(|media| media.camera_on = !media.camera_on)
            }
            Action::SignInWithInvite(link) => match crate::invite::read(&link, Self::now_unix_ms() / 1000) {
                Ok(invitation) => {
                    let who = invitation.server.user.clone();
                    let mut settings = self.settings.clone();
                    invitation.apply_to(&mut settings);
                    self.restart_with(settings, now);
                    if self.desktop.quitting {
                        self.model.notify(format!("Signing in as {who}…"), now);
                        self.view.invite_draft.clear();
                    }
                }
                Err(problem) => self.model.notify(crate::model::capitalised(&problem.to_string()), now),
            },
            Action::HostOnNetwork(on) => {
                let mut settings = self.settings.clone();
                settings.server.host_on_network = on;
                self.restart_with(settings, now);
            }
            Action::SignOut => {
                let mut settings = self.settings.clone();
                settings.server = crate::settings::ServerSettings::default();
                self.restart_with(settings, now);
            }
            Action::MakeInvite(name) => {
                let taken: Vec<&UserId> = self.model.contacts.keys().chain(self.model.me.as_ref()).collect();
                let user = guest_user_id(&name, &taken);
                match self.session.invite_link(&user, &name) {
                    Ok(link) => {
                        self.desktop.copy = Some(link.clone());
                        self.view.last_invite = Some((name, link));
                        self.view.guest_name.clear();
                    }
                    Err(error) => self.model.notify(crate::model::capitalised(&error.to_string()), now),
                }
            }
            Action::RetryMedia => {
                self.model.retrying();
                if let Some(call) = &self.model.call {
                    self.session.send(Command::RetryMedia { call: call.id.clone() });
                }
            }
            Action::Invite(users) => {
                if let Some(call) = &self.model.call
                    && !users.is_empty()
                {
                    self.session.send(Command::Invite { call: call.id.clone(), users });
                }
                self.view.invite = None;
            }
            Action::ToggleInvite => {
                self.view.invite = if self.view.invite.is_some() { None } else { Some(BTreeSet::new()) };
            }
            Action::SetLayout(layout) => self.view.layout = layout,
            Action::Show(screen) => self.view.screen = screen,
            Action::HistorySeen => {
                if self.history.mark_seen() {
                    self.save_history(now);
                    // The tab's count changes: draw it again now, not at the next event.
                    self.repaint.wake();
                }
            }
            Action::ToggleHelp => self.view.help_open = !self.view.help_open,
            Action::UseDevice { kind, id } => {
                if kind == DeviceKind::Speaker {
                    // Ringtones and test sounds follow the speaker too.
                    self.desktop.sounds = crate::sound::Sounds::on(id.as_deref());
                }
                self.settings.devices.set(kind, id);
                self.session.send(Command::UseDevices(self.settings.devices.over(&self.default_devices)));
            }
            Action::SwitchCamera => match context::next_camera(&self.model) {
                Some(id) => self.perform(Action::UseDevice { kind: DeviceKind::Camera, id: Some(id) }),
                None => self.model.notify("There is no other camera", now),
            },
            Action::ToggleOutputMenu => self.view.output_menu = !self.view.output_menu,
            Action::MoveSelfView(offset) => self.view.pip_offset = offset,
            Action::ChangeSettings(settings) => {
                // A new picture file is drawn afresh, not from the texture of the old one.
                if settings.profile.avatar != self.settings.profile.avatar
                    && let Some(path) = &settings.profile.avatar
                {
                    self.pictures.forget(path);
                }
                self.settings = *settings;
            }
            Action::TestSound => self.desktop.sounds.test(self.settings.ringtone.volume),
            Action::Notify(text) => self.model.notify(text, now),
            Action::ShowWindow => self.desktop.show_window_soon = true,
        }
    }

    /// Asks the engine which devices there are: at start, and every few seconds while a view lists
    /// them (so a device plugged in shows up).
    fn update_device_list(&mut self, now: Instant) {
        let showing = self.view.screen == Screen::Settings || self.view.output_menu;
        let due = match self.devices_listed_at {
            None => true,
            Some(at) => showing && now.duration_since(at) >= Duration::from_secs(3),
        };
        if due {
            self.devices_listed_at = Some(now);
            self.session.send(Command::ListDevices);
        }
    }

    /// What to send when joining a call of `kind`, following the settings.
    fn start_media(&self, kind: CallKind) -> MediaState {
        let mut media = MediaState::for_kind(kind);
        media.audio_muted = self.settings.calls.start_muted;
        if self.settings.calls.start_camera_off {
            media.camera_on = false;
        }
        media
    }

    fn change_media(&mut self, change: impl FnOnce(&mut MediaState)) {
        let Some(call) = &self.model.call else { return };
        let mut media = call.my_media;
        change(&mut media);
        let id = call.id.clone();
        self.model.set_my_media(media);
        self.session.send(Command::SetMedia { call: id, media });
    }

    /// Keyboard shortcuts (listed in the help overlay).
    fn shortcuts(&mut self, ctx: &egui::Context, actions: &mut Vec<Action>) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let in_call = self.model.call.is_some();
        let ringing = self.model.incoming.first().map(|i| i.info.call.clone());
        ctx.input(|input| {
            let pressed = |key| input.key_pressed(key);
            if pressed(Key::F1) || (input.modifiers.shift && pressed(Key::Slash)) {
                actions.push(Action::ToggleHelp);
            }
            if let Some(call) = ringing {
                if pressed(Key::Enter) {
                    actions.push(Action::Accept { call: call.clone(), video: true });
                } else if pressed(Key::A) {
                    actions.push(Action::Accept { call: call.clone(), video: false });
                } else if pressed(Key::D) {
                    actions.push(Action::Decline { call });
                }
            }
            if in_call {
                for (key, action) in [
                    (Key::M, Action::ToggleMute),
                    (Key::V, Action::ToggleCamera),
                    (Key::I, Action::ToggleInvite),
                    (Key::H, Action::Hangup),
                    (Key::G, Action::SetLayout(self.view.layout.next())),
                    (Key::C, Action::SwitchCamera),
                    (Key::O, Action::ToggleOutputMenu),
                ] {
                    if pressed(key) {
                        actions.push(action);
                    }
                }
            }
            if pressed(Key::Escape) {
                if self.view.help_open {
                    actions.push(Action::ToggleHelp);
                } else if self.view.invite.is_some() {
                    actions.push(Action::ToggleInvite);
                } else if self.view.output_menu {
                    actions.push(Action::ToggleOutputMenu);
                } else if self.view.screen == Screen::Settings {
                    actions.push(Action::Show(Screen::Contacts));
                }
            }
        });
    }

    /// Runs the camera for the self view when a view shows it outside a call's own camera.
    fn update_preview(&mut self) {
        let outgoing_video = self
            .model
            .call
            .as_ref()
            .is_some_and(|c| c.stage != Stage::Active && c.kind == CallKind::Video && c.my_media.camera_on);
        let wanted = (self.view.screen == Screen::Settings && self.model.call.is_none()) || outgoing_video;
        if wanted != self.preview_on {
            self.preview_on = wanted;
            self.session.send(Command::Preview { on: wanted });
        }
    }

    /// Puts the icon in the desktop's tray; without a tray host the app runs without one.
    pub fn start_tray(&mut self) {
        self.desktop.start_tray(self.session.runtime(), self.repaint.clone());
    }

    /// Shows a notice (something that happened before the window opened).
    pub fn notify(&mut self, text: impl Into<String>) {
        self.model.notify(text, Instant::now());
    }

    /// Whether `user`'s own picture (fetched from the server) has been drawn, rather than initials.
    pub fn shows_picture_of(&self, user: &UserId) -> bool {
        let avatar = self.model.profile_of(user).avatar.filter(|avatar| dialtone_protocol::is_picture_ref(avatar));
        avatar.is_some_and(|avatar| self.pictures.shown(&self.pictures.cached(&avatar)))
    }

    /// The last invite link made in the settings.
    pub fn last_invite(&self) -> Option<&str> {
        self.view.last_invite.as_ref().map(|(_, link)| link.as_str())
    }

    /// Set when the app asks to be started again after its window closes (it signed in elsewhere).
    pub fn restart_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.desktop.restart.clone()
    }

    /// Measures the time to the first frame from `start` (the process's start) instead of from
    /// [`App::start`].
    pub fn count_start_from(&mut self, start: Instant) {
        self.started = start;
    }

    /// Walks through every view by itself, writing a marker file into `folder` at each (see
    /// [`tour`]); the window closes at the end.
    pub fn start_tour(&mut self, folder: PathBuf) {
        self.tour = Some(tour::Tour::new(folder));
    }

    /// Whether the tray icon is up.
    pub fn has_tray(&self) -> bool {
        self.desktop.tray.is_some()
    }

    /// Hides the main window (to the tray) or shows it again.
    pub fn set_window_hidden(&mut self, ctx: &egui::Context, hidden: bool) {
        self.desktop.set_window_hidden(ctx, hidden, Self::now_unix_ms());
    }

    /// Requests from the tray and notifications.
    fn tray_requests(&mut self, ctx: &egui::Context, actions: &mut Vec<Action>) {
        use crate::tray::TrayAction;
        while let Some(request) = self.desktop.next_request() {
            match request {
                TrayRequest::Tray(TrayAction::Show) => self.set_window_hidden(ctx, false),
                TrayRequest::Tray(TrayAction::ToggleMute) => actions.push(Action::ToggleMute),
                TrayRequest::Tray(TrayAction::Hangup) => actions.push(Action::Hangup),
                TrayRequest::Tray(TrayAction::Quit) => self.desktop.quit(ctx),
                TrayRequest::Accept(call) => {
                    self.set_window_hidden(ctx, false);
                    let video =
                        self.model.incoming.iter().any(|i| i.info.call == call && i.info.kind == CallKind::Video);
                    actions.push(Action::Accept { call, video });
                }
                TrayRequest::Decline(call) => actions.push(Action::Decline { call }),
            }
        }
    }

    /// Closing the window hides it in the tray when the setting says so and a tray is there.
    fn handle_close(&mut self, ctx: &egui::Context) {
        if ctx.input(|i| i.viewport().close_requested())
            && !self.desktop.quitting
            && self.settings.window.close_to_tray
            && self.desktop.tray.is_some()
        {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.set_window_hidden(ctx, true);
        }
    }

    /// The tray icon follows the calls.
    fn update_tray(&mut self) {
        use crate::tray::TrayState;
        let state = if !self.model.incoming.is_empty() {
            TrayState::Ringing
        } else if let Some(call) = &self.model.call {
            TrayState::InCall { muted: call.my_media.audio_muted }
        } else {
            match self.history.missed_since(self.desktop.missed_seen_unix_ms) {
                0 => TrayState::Idle,
                missed => TrayState::Missed(missed),
            }
        };
        self.desktop.show_in_tray(state);
    }

    /// A desktop notification for a call ringing while the window is away (see `Desktop::notify`).
    fn notify_desktop(&mut self, incoming: Option<&crate::model::Incoming>) {
        let caller = incoming.map(|i| self.model.name_of(&i.from));
        let ringing = incoming.zip(caller.as_deref()).map(|(i, name)| (&i.info.call, name, i.info.kind));
        let incoming_now = &self.model.incoming;
        let still_ringing = |call: &CallId| incoming_now.iter().any(|i| &i.info.call == call);
        self.desktop.notify(self.session.runtime(), self.repaint.clone(), ringing, still_ringing);
    }

    /// Counts a frame, and logs the paint rate every five seconds.
    fn count_frame(&mut self) {
        let (since, frames) = &mut self.painted;
        *frames += 1;
        let elapsed = since.elapsed();
        if elapsed >= Duration::from_secs(5) {
            let fps = f64::from(*frames) / elapsed.as_secs_f64();
            tracing::debug!(target: "dialtone::paint", fps = (fps * 10.0).round() / 10.0, "frames drawn");
            self.painted = (Instant::now(), 0);
        }
    }

    /// What the views see of the app for one frame.
    fn view_context(&mut self) -> View<'_> {
        View {
            model: &self.model,
            settings: &self.settings,
            history: &self.history,
            session: &self.session,
            view: &mut self.view,
            textures: &mut self.textures,
            pictures: &mut self.pictures,
            sounds: &self.desktop.sounds,
            default_devices: &self.default_devices,
            now_unix_ms: Self::now_unix_ms(),
        }
    }

    /// Draws one frame.
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.repaint.frame_begins(&ctx);
        self.count_frame();
        if !self.themed {
            theme::apply(&ctx);
            self.themed = true;
        }
        self.drain_events();
        let now = Instant::now();
        let next_notice = self.model.expire(now);
        let mut actions = Vec::new();
        self.tray_requests(&ctx, &mut actions);
        self.handle_close(&ctx);
        self.shortcuts(&ctx, &mut actions);
        if self.tour.is_some() {
            let (tour_actions, over) = match self.tour.as_mut() {
                Some(tour) => tour.step(&self.model, &self.session),
                None => (Vec::new(), false),
            };
            actions.extend(tour_actions);
            if over {
                self.desktop.quit(&ctx);
            }
            ctx.request_repaint_after(Duration::from_millis(50));
        }

        let needs_profile = self.settings.profile.display_name.trim().is_empty();
        let incoming_here = self.model.incoming.first().cloned();
        egui::CentralPanel::no_frame().show(ui, |ui| {
            if self.desktop.window_hidden {
                // Nothing is seen; only the popup (below) is drawn.
            } else if needs_profile && self.model.call.is_none() && incoming_here.is_none() {
                self.first_run(ui, &mut actions);
            } else if let Some(incoming) = incoming_here.as_ref().filter(|_| self.model.call.is_none()) {
                ringing::incoming(&mut self.view_context(), ui, incoming, &mut actions);
            } else if self.model.call.as_ref().is_some_and(|c| c.stage == Stage::Ringing) {
                ringing::outgoing(&mut self.view_context(), ui, &mut actions);
            } else if self.model.call.is_some() {
                let mut view = self.view_context();
                call::in_call(&mut view, ui, &mut actions);
                if let Some(incoming) = &incoming_here {
                    ringing::waiting_banner(&mut view, ui, incoming, &mut actions);
                }
            } else if self.view.screen == Screen::Settings {
                settings_view::show(&mut self.view_context(), ui, &mut actions);
            } else {
                home::show(&mut self.view_context(), ui, &mut actions);
            }
        });
        self.notices(&ctx);
        let away = incoming_here.as_ref().filter(|_| self.desktop.out_of_sight(&ctx));
        if let Some(incoming) = away {
            ringing::popup(&mut self.view_context(), &ctx, incoming, &mut actions);
        }
        self.notify_desktop(away);
        if self.view.help_open {
            help::show(&ctx, &mut actions);
        }
        for action in actions {
            self.perform(action);
        }
        if std::mem::take(&mut self.desktop.show_window_soon) {
            self.set_window_hidden(&ctx, false);
        }
        if self.desktop.restarting() {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        for avatar in self.pictures.take_wanted() {
            self.session.send(Command::GetPicture { avatar });
        }
        if let Some(text) = self.desktop.copy.take() {
            ctx.copy_text(text);
        }
        self.update_preview();
        self.update_device_list(Instant::now());
        if self.model.call.is_none() {
            self.view.output_menu = false;
        }
        self.update_sounds();
        self.update_tray();
        self.save_settings_if_changed();
        self.textures.sweep();

        // Timers: ringing animations at 15 fps (a slow pulse needs no more, and every frame costs a
        // full-window repaint: 0.39 cores at 30 fps under software GL, see BENCHMARKS.md), the call clock
        // every second, notices when they expire.
        let animating =
            !self.model.incoming.is_empty() || self.model.call.as_ref().is_some_and(|c| c.stage != Stage::Active);
        if animating {
            ctx.request_repaint_after(Duration::from_millis(66));
        } else if self.model.call.is_some() {
            ctx.request_repaint_after(Duration::from_secs(1));
        }
        if let Some(at) = next_notice {
            ctx.request_repaint_after(at.saturating_duration_since(now));
        }
        if self.first_frame_after.is_none() {
            let after = self.started.elapsed();
            self.first_frame_after = Some(after);
            tracing::info!(ms = after.as_millis() as u64, "first frame");
        }
    }

    /// Rings while a call rings here, plays ringback while this user's call rings elsewhere.
    fn update_sounds(&mut self) {
        use crate::sound::Playing;
        let wanted = if !self.model.incoming.is_empty() && self.model.call.is_none() {
            Playing::Ringtone
        } else if self.model.call.as_ref().is_some_and(|c| c.stage == Stage::Ringing) {
            Playing::Ringback
        } else if self.view.ringtone_preview && self.view.screen == Screen::Settings {
            Playing::Ringtone
        } else {
            self.view.ringtone_preview = false;
            Playing::Nothing
        };
        let ringtone = &self.settings.ringtone;
        self.desktop.sounds.set(wanted, ringtone.file.as_deref(), ringtone.volume);
    }

    fn save_settings_if_changed(&mut self) {
        if self.settings == self.saved_settings {
            return;
        }
        match store::save(&self.paths.settings, &self.settings) {
            Ok(()) => {
                if self.settings.profile.display_name != self.saved_settings.profile.display_name {
                    self.session.send(Command::SetProfile {
                        display_name: Some(self.settings.profile.display_name.clone()).filter(|n| !n.trim().is_empty()),
                        avatar: None,
                    });
                }
                if self.settings.profile.avatar != self.saved_settings.profile.avatar {
                    self.send_picture(Instant::now());
                }
                if self.settings.calls.always_relay != self.saved_settings.calls.always_relay {
                    self.session.send(Command::RelayOnly(self.settings.calls.always_relay));
                }
                self.saved_settings = self.settings.clone();
            }
            Err(error) => {
                self.model.notify(format!("Settings could not be saved: {error}"), Instant::now());
                // Do not retry every frame; the next change tries again.
                self.saved_settings = self.settings.clone();
            }
        }
    }

    /// The first-run card: a display name before anything else.
    fn first_run(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        ui.vertical_centered(|ui| {
            ui.add_space((ui.available_height() * 0.25).max(20.0));
            ui.heading("Welcome to Dialtone");
            ui.add_space(6.0);
            ui.label(egui::RichText::new("Choose the name people see when you call them.").color(theme::MUTED_TEXT));
            ui.add_space(16.0);
            let edit =
                egui::TextEdit::singleline(&mut self.view.profile_draft).hint_text("Your name").desired_width(280.0);
            let response = ui.add(edit.id_salt("first-run-name"));
            response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, "Your name"));
            let ready = !self.view.profile_draft.trim().is_empty() && self.view.profile_draft.chars().count() <= 80;
            ui.add_space(10.0);
            let enter = response.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
            if ui.add_enabled(ready, egui::Button::new("Continue").fill(theme::ACCENT)).clicked() || (ready && enter) {
                let mut settings = self.settings.clone();
                settings.profile.display_name = self.view.profile_draft.trim().to_owned();
                actions.push(Action::ChangeSettings(Box::new(settings)));
            }
            ui.add_space(8.0);
            ui.label(egui::RichText::new("A picture can be added later in Settings.").small().color(theme::MUTED_TEXT));
        });
    }

    /// Notices as toasts at the bottom centre.
    fn notices(&self, ctx: &egui::Context) {
        if self.model.notices.is_empty() {
            return;
        }
        let texts: Vec<String> = self.model.notices.iter().map(|n| n.text.clone()).collect();
        // Bottom centre, where nothing of the header or the tabs is covered; above the call controls and
        // the ringing buttons when they are there.
        let busy = self.model.call.is_some() || !self.model.incoming.is_empty();
        let lift = if busy { 150.0 } else { 24.0 };
        egui::Area::new(egui::Id::unique("notices"))
            .anchor(egui::Align2::CENTER_BOTTOM, egui::vec2(0.0, -lift))
            .order(egui::Order::Foreground)
            .interactable(false)
            .show(ctx, |ui| {
                for text in texts {
                    egui::Frame::new()
                        .fill(Color32::from_rgba_unmultiplied(0x30, 0x34, 0x3e, 240))
                        .corner_radius(10)
                        .inner_margin(egui::Margin::symmetric(16, 10))
                        .show(ui, |ui| {
                            ui.set_max_width(560.0);
                            ui.add(egui::Label::new(egui::RichText::new(text).color(theme::TEXT)).wrap());
                        });
                }
            });
    }

    /// Signs out and stops everything (also done on drop).
    pub fn shutdown(&mut self) {
        self.desktop.stop();
        self.session.shutdown();
    }
}

impl eframe::App for App {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        // While the window is hidden eframe runs only this; a call ringing then needs the full pass
        // for its popup window.
        if self.desktop.window_hidden && (!self.model.incoming.is_empty() || self.session.has_events()) {
            ctx.send_viewport_cmd(egui::ViewportCommand::RequestPaintWhileHidden);
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame(ui);
    }

    fn clear_color(&self, _visuals: &egui::Visuals) -> [f32; 4] {
        theme::BACKGROUND.to_normalized_gamma_f32()
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.shutdown();
    }
}

/// A user id for a person invited by name: the name in lower case, spaces as dots, other characters an
/// id cannot hold left out, made unique among `taken` (an invitation must never sign someone in as
/// someone else).
fn guest_user_id(name: &str, taken: &[&UserId]) -> UserId {
    let base: String = name
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_whitespace() { '.' } else { c })
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .take(48)
        .collect();
    let base = if base.trim_matches('.').is_empty() { "guest".to_owned() } else { base };
    (1u32..)
        .map(|n| if n == 1 { base.clone() } else { format!("{base}-{n}") })
        .filter_map(|candidate| UserId::new(&candidate).ok())
        .find(|candidate| !taken.contains(&candidate))
        .expect("a free id exists")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invited_person_gets_an_id_of_their_own() {
        let me = UserId::new("me").unwrap();
        let bob = UserId::new("bob").unwrap();
        let taken = [&me, &bob];
        let id = |name: &str| guest_user_id(name, &taken).to_string();
        assert_eq!(id("Ada Lovelace"), "ada.lovelace");
        assert_eq!(id("Bob"), "bob-2", "never someone who is already here");
        assert_eq!(id("me"), "me-2", "never the host");
        assert_eq!(id("Zoë"), "zo");
        assert_eq!(id("张伟"), "guest");
    }
}
