//! The app's views and flows, driven through egui_kittest against a real engine, the embedded server
//! and, as the people on the other end, real engines (with fake devices) on real sockets.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dialtone::history::{History, Outcome};
use dialtone::session::{SECRET_FILE, Server, SessionConfig};
use dialtone::settings::Settings;
use dialtone::ui::{App, Paths};
use dialtone_engine::{CameraConfig, Command, DeviceChoice, Engine, EngineConfig, Event, MediaConfig};
use dialtone_protocol::{CallId, CallKind, DeviceId, EndReason, MediaState, UserId};
use dialtone_server::Secret;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use tokio::sync::mpsc::UnboundedReceiver;

const SMALL_CAMERA: CameraConfig =
    CameraConfig { width: 320, height: 180, fps: 15, bitrate_kbps: 300, detailed: false };

/// An app signed in as "me" with its own embedded server, its files in a fresh folder.
struct TestApp {
    harness: Harness<'static, App>,
    folder: tempfile::TempDir,
    /// The people on the other end run here.
    runtime: tokio::runtime::Runtime,
}

fn settings_with_name(folder: &Path, name: &str) {
    let mut settings = Settings::default();
    settings.profile.display_name = name.to_owned();
    dialtone::store::save(&folder.join("settings.toml"), &settings).unwrap();
}

fn start_app(folder: tempfile::TempDir, demo: bool) -> TestApp {
    start_app_with(folder, demo, false)
}

fn start_app_with(folder: tempfile::TempDir, demo: bool, on_network: bool) -> TestApp {
    start_app_on(folder, Server::Embedded { port: 0, demo, on_network })
}

fn start_app_on(folder: tempfile::TempDir, server: Server) -> TestApp {
    let config = SessionConfig {
        server,
        user: UserId::new("me").unwrap(),
        display_name: String::new(),
        device: DeviceId::new("desktop").unwrap(),
        data_dir: folder.path().to_owned(),
        camera: SMALL_CAMERA,
        devices: DeviceChoice::fake(),
        relay_only: false,
    };
    let app = App::start(config, Paths::in_folder(folder.path())).expect("the app starts");
    let harness =
        Harness::builder().with_size(egui::vec2(1000.0, 700.0)).build_ui_state(|ui, app: &mut App| app.frame(ui), app);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    TestApp { harness, folder, runtime }
}

fn named_app(demo: bool) -> TestApp {
    let folder = tempfile::tempdir().unwrap();
    settings_with_name(folder.path(), "Tester");
    start_app(folder, demo)
}

impl TestApp {
    /// Steps frames until `done` holds, failing after `limit`.
    fn until(&mut self, what: &str, limit: Duration, done: impl Fn(&Harness<'static, App>) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            self.harness.step();
            if done(&self.harness) {
                return;
            }
            assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn until_label(&mut self, label: &str) {
        let owned = label.to_owned();
        self.until(&format!("{label:?} on screen"), Duration::from_secs(10), move |h| {
            h.query_all_by_label(&owned).next().is_some()
        });
    }

    fn until_label_contains(&mut self, label: &str) {
        let owned = label.to_owned();
        self.until(&format!("a label containing {label:?}"), Duration::from_secs(10), move |h| {
            h.query_all_by_label_contains(&owned).next().is_some()
        });
    }

    fn click(&mut self, label: &str) {
        self.harness.get_by_label(label).scroll_to_me();
        // Scrolling is animated: let it settle before clicking where the widget ends up.
        self.harness.run_steps(20);
        self.harness.get_by_label(label).click();
        // One frame takes the click and performs the action, the next shows its effect.
        self.harness.step();
        self.harness.step();
    }

    /// Another person (or another device of "me"), signed in to the app's server.
    fn person(&self, user: &str, device: &str, media: bool) -> Person {
        let secret = Secret::load_or_create(&self.folder.path().join(SECRET_FILE)).unwrap();
        let id = UserId::new(user).unwrap();
        let expires = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600;
        let name = format!("{}{}", user[..1].to_uppercase(), &user[1..]);
        let token = dialtone_server::mint(&secret, &id, &name, expires).unwrap();
        let mut config =
            EngineConfig::new(self.harness.state().session().server_url(), token, DeviceId::new(device).unwrap());
        if media {
            config.media = Some(MediaConfig { camera: SMALL_CAMERA, ..MediaConfig::default() });
        }
        let (engine, events) = {
            let _guard = self.runtime.enter();
            Engine::start(config)
        };
        let mut person = Person { engine, events };
        person.wait(|e| matches!(e, Event::SignedIn { .. }));
        person
    }
}

struct Person {
    engine: Engine,
    events: UnboundedReceiver<Event>,
}

impl Person {
    /// Waits (up to 10 s) for an event that `matches`, returning it.
    fn wait(&mut self, matches: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.events.try_recv() {
                Ok(event) if matches(&event) => return event,
                Ok(_) => continue,
                Err(_) => {
                    assert!(Instant::now() < deadline, "the event never came");
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }

    fn call(&self, users: &[&str], kind: CallKind) -> CallId {
        let call =
            CallId::new(format!("test-{}", SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos())).unwrap();
        let users = users.iter().map(|u| UserId::new(*u).unwrap()).collect();
        self.engine
            .send(Command::Call {
                call: Some(call.clone()),
                users,
                kind,
                group: false,
                ring_timeout: None,
                media: None,
            })
            .unwrap();
        call
    }
}

#[test]
fn first_run_asks_for_a_name_and_keeps_it() {
    let folder = tempfile::tempdir().unwrap();
    let mut app = start_app(folder, false);
    app.until_label("Welcome to Dialtone");
    app.harness.get_by_label("Your name").focus();
    app.harness.step();
    app.harness.get_by_label("Your name").type_text("Ada Tester");
    app.harness.step();
    app.click("Continue");
    app.until_label("Contacts");
    assert!(app.harness.query_by_label("Ada Tester").is_some(), "the header shows the name");
    let saved: Settings = dialtone::store::load(&app.folder.path().join("settings.toml")).value;
    assert_eq!(saved.profile.display_name, "Ada Tester");
}

#[test]
fn an_incoming_video_call_is_accepted_shown_muted_and_hung_up() {
    let mut app = named_app(false);
    app.until_label("Online");
    let mut bob = app.person("bob", "laptop", true);
    app.until_label("Bob");
    let call = bob.call(&["me"], CallKind::Video);
    app.until_label("Incoming video call");
    assert!(app.harness.query_by_label("Bob").is_some());
    app.click("Accept with video");
    bob.wait(|e| matches!(e, Event::CallActive { .. }));
    // The remote picture arrives and the call clock runs.
    app.until("bob's video", Duration::from_secs(10), |h| {
        let slots =
            h.state().session().remote_video().streams(
                &h.state().model().call.as_ref().map(|c| c.id.clone()).unwrap_or(CallId::new("none").unwrap()),
            );
        slots.iter().any(|(_, slot)| slot.frames_decoded() > 3)
    });
    app.until_label_contains("0:0");
    app.click("Mute");
    let muted = bob.wait(|e| matches!(e, Event::MediaChanged { .. }));
    assert!(matches!(muted, Event::MediaChanged { media: MediaState { audio_muted: true, .. }, .. }), "{muted:?}");
    assert!(app.harness.query_by_label("Unmute").is_some(), "the button now says unmute");
    app.click("Hang up");
    let ended = bob.wait(|e| matches!(e, Event::CallEnded { .. }));
    assert!(matches!(ended, Event::CallEnded { reason: EndReason::RemoteHangup, .. }), "{ended:?}");
    app.until_label("Contacts");
    let entry = app.harness.state().history().entries[0].clone();
    assert_eq!((entry.outcome, entry.call), (Outcome::Answered, call.to_string()));
    assert!(entry.duration_ms.is_some());
    let saved: History = dialtone::store::load(&app.folder.path().join("history.toml")).value;
    assert_eq!(saved.entries[0].outcome, Outcome::Answered, "the history is on disk");
}

#[test]
fn declining_tells_the_caller_and_is_recorded() {
    let mut app = named_app(false);
    app.until_label("Online");
    let mut bob = app.person("bob", "laptop", false);
    bob.call(&["me"], CallKind::Audio);
    app.until_label("Incoming audio call");
    app.click("Decline");
    let ended = bob.wait(|e| matches!(e, Event::CallEnded { .. }));
    assert!(matches!(ended, Event::CallEnded { reason: EndReason::Declined, .. }), "{ended:?}");
    app.until("the history entry", Duration::from_secs(5), |h| !h.state().history().entries.is_empty());
    assert_eq!(app.harness.state().history().entries[0].outcome, Outcome::Declined);
    app.click("History");
    app.until_label_contains("Declined");
}

#[test]
fn a_call_answered_on_another_device_stops_ringing_and_says_so() {
    let mut app = named_app(false);
    app.until_label("Online");
    let mut phone = app.person("me", "phone", false);
    let bob = app.person("bob", "laptop", false);
    bob.call(&["me"], CallKind::Video);
    app.until_label("Incoming video call");
    let incoming = phone.wait(|e| matches!(e, Event::IncomingCall { .. }));
    let Event::IncomingCall { call, .. } = incoming else { unreachable!() };
    phone.engine.send(Command::Accept { call: call.call, media: MediaState::for_kind(CallKind::Video) }).unwrap();
    app.until_label("Answered on another device");
    assert!(app.harness.query_by_label("Incoming video call").is_none(), "it stopped ringing here");
    assert_eq!(app.harness.state().history().entries[0].outcome, Outcome::AnsweredElsewhere);
}

#[test]
fn calling_echo_shows_ringing_then_my_own_picture_coming_back() {
    let mut app = named_app(true);
    app.until_label("Online");
    app.until_label("Echo");
    app.click("Video call Echo");
    app.until_label_contains("Ringing");
    assert!(app.harness.query_by_label("Cancel call").is_some());
    app.until_label("Hang up");
    app.until("echoed frames", Duration::from_secs(15), |h| {
        let Some(call) = h.state().model().call.as_ref() else { return false };
        h.state().session().remote_video().streams(&call.id).iter().any(|(_, slot)| {
            // Echo's pictures are my own test pattern: its stamps survive the round trip.
            slot.latest().is_some_and(|frame| frame.stamp.is_some()) && slot.frames_decoded() > 5
        })
    });
    app.click("Hang up");
    app.until_label("Contacts");
}

#[test]
fn the_demo_group_fills_a_grid_and_the_layouts_switch() {
    let mut app = named_app(true);
    app.until_label("Online");
    app.until_label("Video call Demo group");
    app.until("the demo group online", Duration::from_secs(10), |h| {
        h.state().model().contacts.values().filter(|c| c.online).count() >= 4
    });
    app.click("Video call Demo group");
    app.until("three answers", Duration::from_secs(15), |h| {
        h.state().model().call.as_ref().is_some_and(|c| c.joined().count() == 3)
    });
    for name in ["Ada", "Grace", "Alan", "Tester (you)"] {
        app.until_label_contains(name);
    }
    app.click("Layout: Grid (switch to Spotlight)");
    assert!(app.harness.query_by_label("Layout: Spotlight (switch to Single)").is_some());
    app.click("Hang up");
    app.until_label("Contacts");
}

#[test]
fn grids_of_one_four_and_nine_tiles() {
    for others in [0usize, 3, 8] {
        let mut app = named_app(false);
        app.until_label("Online");
        let names: Vec<String> = (0..others.max(1)).map(|i| format!("p{i}")).collect();
        let mut people: Vec<Person> = names.iter().map(|n| app.person(n, "desk", false)).collect();
        let users: Vec<UserId> = names.iter().map(|n| UserId::new(n).unwrap()).collect();
        app.harness.state_mut().perform(dialtone::ui::Action::Call { users, kind: CallKind::Audio, group: true });
        for person in &mut people {
            let Event::IncomingCall { call, .. } = person.wait(|e| matches!(e, Event::IncomingCall { .. })) else {
                unreachable!()
            };
            person
                .engine
                .send(Command::Accept { call: call.call, media: MediaState::for_kind(CallKind::Audio) })
                .unwrap();
        }
        if others == 0 {
            // The only other member leaves: a group call goes on with one tile.
            app.until("p0 joined", Duration::from_secs(10), |h| {
                h.state().model().call.as_ref().is_some_and(|c| c.joined().count() == 1)
            });
            let call = app.harness.state().model().call.as_ref().unwrap().id.clone();
            people[0].engine.send(Command::Hangup { call }).unwrap();
        }
        let expected = others;
        app.until("everyone joined", Duration::from_secs(10), move |h| {
            h.state()
                .model()
                .call
                .as_ref()
                .is_some_and(|c| c.joined().count() == expected && c.participants.len() == expected)
        });
        app.harness.run_steps(3);
        let tiles = app.harness.query_all_by_label_contains("camera off").count();
        assert_eq!(tiles, others + 1, "{} tiles for {others} others and me", others + 1);
        app.click("Hang up");
    }
}

#[test]
fn settings_apply_at_once_survive_a_restart_and_a_corrupt_file_is_kept() {
    let mut app = named_app(false);
    app.until_label("Online");
    app.click("Settings");
    app.until_label("Camera preview");
    app.click("Start calls muted");
    assert!(app.harness.state().settings().calls.start_muted);
    app.until("the camera preview", Duration::from_secs(10), |h| h.state().session().local_video().latest().is_some());
    // The microphone's level meter moves (the test tone plays at about -9 dBFS).
    app.until_label_contains("Microphone level");
    app.until("the level meter", Duration::from_secs(5), |h| {
        h.state().session().local_audio().level() > 0.05 && h.query_by_label("Microphone level 0 %").is_none()
    });
    app.click("⬅ Back");
    app.until("the preview to stop", Duration::from_secs(5), |h| h.state().session().local_video().latest().is_none());
    let folder = app.folder;
    drop(app.harness);
    let saved: Settings = dialtone::store::load(&folder.path().join("settings.toml")).value;
    assert!(saved.calls.start_muted, "saved at once");

    std::fs::write(folder.path().join("history.toml"), "entries = 3").unwrap();
    let mut app = start_app(folder, false);
    app.until_label_contains("could not be read");
    assert!(app.harness.state().settings().calls.start_muted, "settings survive the restart");
    let kept = std::fs::read_dir(app.folder.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("history.toml.corrupt-"));
    assert!(kept, "the unreadable history was set aside, not lost");
}

#[test]
fn a_device_chosen_in_settings_is_used_at_once_and_a_missing_one_is_explained() {
    let folder = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.profile.display_name = "Tester".into();
    settings.devices.microphone = Some("alsa:unplugged".into());
    dialtone::store::save(&folder.path().join("settings.toml"), &settings).unwrap();
    let mut app = start_app(folder, false);
    app.until_label("Online");
    app.click("Settings");
    app.until_label("Camera preview");
    // The meter's microphone cannot be the one chosen: nothing stands in (silence), and both the notice
    // and the settings row say why; the choice itself is kept.
    let explained = "no microphone called \"alsa:unplugged\" — the others hear silence from you";
    app.until_label(explained);
    app.until_label_contains("No microphone called \"alsa:unplugged\" — the others hear silence from you");
    assert_eq!(
        app.harness.state().settings().devices.microphone.as_deref(),
        Some("alsa:unplugged"),
        "the choice is kept"
    );
    app.until("the meter runs", Duration::from_secs(5), |h| h.state().session().local_audio().frames_decoded() > 10);
    assert_eq!(app.harness.state().session().local_audio().level(), 0.0, "silence, not a tone");

    app.click("Choose microphone");
    // The menu lists what the engine reported; wait for the list on a slow machine.
    app.until_label("Test tone");
    app.click("Test tone");
    assert_eq!(app.harness.state().settings().devices.microphone.as_deref(), Some("fake:tone"));
    app.until("the twin in use without a problem", Duration::from_secs(5), |h| h.query_by_label(explained).is_none());
    app.click("Choose camera");
    app.until_label("Test pattern");
    app.click("Test pattern");
    app.until("the preview from the chosen camera", Duration::from_secs(5), |h| {
        h.state().session().local_video().latest().is_some_and(|frame| frame.stamp.is_some())
    });
    let folder = app.folder;
    drop(app.harness);
    let saved: Settings = dialtone::store::load(&folder.path().join("settings.toml")).value;
    assert_eq!(
        (saved.devices.microphone.as_deref(), saved.devices.camera.as_deref()),
        (Some("fake:tone"), Some("fake:pattern"))
    );
}

#[test]
fn the_help_overlay_lists_every_shortcut() {
    let mut app = named_app(false);
    app.until_label("Online");
    app.harness.key_press(egui::Key::F1);
    app.harness.step();
    app.until_label("Keyboard shortcuts");
    for (key, what) in dialtone::ui::help_shortcuts() {
        assert!(
            app.harness.query_by_label(key).is_some() && app.harness.query_by_label(what).is_some(),
            "{key}: {what}"
        );
    }
    app.harness.key_press(egui::Key::Escape);
    app.harness.step();
    app.harness.step();
    assert!(app.harness.query_by_label("Keyboard shortcuts").is_none());
}

#[test]
fn with_the_window_in_the_tray_a_popup_answers_the_call() {
    let mut app = named_app(false);
    app.until_label("Online");
    let mut bob = app.person("bob", "laptop", false);
    let ctx = app.harness.ctx.clone();
    app.harness.state_mut().set_window_hidden(&ctx, true);
    bob.call(&["me"], CallKind::Audio);
    app.until_label("Incoming audio call");
    app.until_label("Accept");
    app.click("Accept");
    bob.wait(|e| matches!(e, Event::CallActive { .. }));
    app.until_label("Hang up");
    app.click("Hang up");
    bob.wait(|e| matches!(e, Event::CallEnded { .. }));

    // Declining from the popup.
    app.harness.state_mut().set_window_hidden(&ctx, true);
    bob.call(&["me"], CallKind::Video);
    app.until_label("Decline");
    app.click("Decline");
    let ended = bob.wait(|e| matches!(e, Event::CallEnded { .. }));
    assert!(matches!(ended, Event::CallEnded { reason: EndReason::Declined, .. }), "{ended:?}");
}

impl TestApp {
    /// Compares the window with `tests/snapshots/{name}.png`, drawn at a fixed animation time so the
    /// ringing pulse is the same in every run.
    fn picture(&mut self, name: &str) {
        self.harness.input_mut().time = Some(10.0);
        self.harness.step();
        self.harness.snapshot(name);
    }

    /// Like [`TestApp::picture`] (without fixing the animation time: the caller does where something
    /// is animated), with the widgets labelled `covered` (where shown) painted over in grey
    /// first: live measurements that differ from run to run, such as a network quality that a loaded
    /// machine grades lower for a second.
    fn picture_covering(&mut self, name: &str, covered: &[&str]) {
        self.harness.step();
        let mut image = self.harness.render().expect("the view renders");
        for label in covered {
            for node in self.harness.query_all_by_label(label) {
                let rect = node.rect();
                for y in rect.top().floor() as u32..(rect.bottom().ceil() as u32).min(image.height()) {
                    for x in rect.left().floor() as u32..(rect.right().ceil() as u32).min(image.width()) {
                        image.put_pixel(x, y, image::Rgba([128, 128, 128, 255]));
                    }
                }
            }
        }
        egui_kittest::image_snapshot(&image, name);
    }
}

/// The network-quality indicator's labels: what it shows depends on the moment's measurements.
const QUALITY_LABELS: [&str; 4] = ["Good connection", "Fair connection", "Poor connection", "Measuring the connection"];

/// What the main views look like, compared with the images in `tests/snapshots` (drawn by wgpu on
/// the software Vulkan driver; `UPDATE_SNAPSHOTS=1 cargo test` rewrites them after an intended change).
/// What moves is kept out: the people on the other end send no pictures, the start-up notices are
/// waited out, the call clock is caught at a fixed second and the network-quality bars are covered.
#[test]
fn the_main_views_look_as_they_should() {
    let folder = tempfile::tempdir().unwrap();
    settings_with_name(folder.path(), "Tester");
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let peer = |user: &str, name: &str| dialtone::history::Peer { user: user.into(), name: name.into() };
    let entry =
        |call: &str, direction, peers, video, minutes_ago: u64, duration_ms, outcome| dialtone::history::Entry {
            call: call.into(),
            direction,
            peers,
            group: false,
            video,
            at_unix_ms: now_ms - minutes_ago * 60_000,
            duration_ms,
            outcome,
        };
    use dialtone::history::Direction::{Incoming, Outgoing};
    let history = History {
        entries: vec![
            entry("h3", Incoming, vec![peer("ada", "Ada")], true, 5, None, Outcome::Missed),
            entry("h2", Outgoing, vec![peer("bob", "Bob")], false, 150, Some(754_000), Outcome::Answered),
            entry("h1", Incoming, vec![peer("bob", "Bob")], true, 3 * 24 * 60, None, Outcome::Declined),
        ],
        seen_until_unix_ms: 0,
    };
    dialtone::store::save(&folder.path().join("history.toml"), &history).unwrap();
    let folder_path = folder.path().to_owned();
    let mut app = start_app(folder, false);
    app.until_label("Online");
    let mut bob = app.person("bob", "laptop", true);
    let mut ada = app.person("ada", "desk", true);
    app.until("both online", Duration::from_secs(10), |h| {
        h.state().model().contacts.values().filter(|c| c.online).count() == 2
    });
    app.until("the start-up notices to go", Duration::from_secs(10), |h| h.state().model().notices.is_empty());
    app.picture("contacts");

    app.click("History (1 missed)");
    app.until_label_contains("Missed");
    // Looking at the list is seeing the missed call: the tab stops counting it, also after a restart.
    app.until_label("History");
    let saved: History = dialtone::store::load(&folder_path.join("history.toml")).value;
    assert_eq!(saved.unseen_missed(), 0, "the seen marker is saved");
    app.picture("history");
    app.click("Contacts");
    assert!(app.harness.query_by_label("History").is_some(), "the count does not come back");

    app.harness.key_press(egui::Key::F1);
    app.until_label("Keyboard shortcuts");
    app.picture("help");
    app.harness.key_press(egui::Key::Escape);
    app.harness.step();

    let call = bob.call(&["me"], CallKind::Video);
    app.until_label("Incoming video call");
    app.picture("incoming_video_call");
    app.click("Accept audio only");
    bob.wait(|e| matches!(e, Event::CallActive { .. }));
    // Bob's test pattern changes every frame; with his camera off his avatar shows.
    bob.engine.send(Command::SetMedia { call, media: MediaState { audio_muted: false, camera_on: false } }).unwrap();
    app.until("Bob's camera off", Duration::from_secs(5), |h| h.query_all_by_label_contains("camera off").count() == 2);
    app.until_label_contains("0:03"); // the call clock, caught at a fixed second
    app.harness.input_mut().time = Some(10.0);
    app.picture_covering("one_to_one_call", &QUALITY_LABELS);
    app.click("Hang up");
    bob.wait(|e| matches!(e, Event::CallEnded { .. }));
    app.until_label("Contacts");
    app.until("the call's notices to go", Duration::from_secs(10), |h| h.state().model().notices.is_empty());

    app.harness.state_mut().perform(dialtone::ui::Action::Call {
        users: vec![UserId::new("ada").unwrap(), UserId::new("bob").unwrap()],
        kind: CallKind::Audio,
        group: true,
    });
    app.until_label_contains("Ringing");
    let mut invited = Vec::new();
    for person in [&mut ada, &mut bob] {
        let Event::IncomingCall { call, .. } = person.wait(|e| matches!(e, Event::IncomingCall { .. })) else {
            unreachable!()
        };
        invited.push(call.call);
    }
    app.picture("outgoing_group_call");
    // Ada joins muted, so the speaker highlighted is always Bob.
    let muted = MediaState { audio_muted: true, camera_on: false };
    for ((person, media), call) in
        [(&ada, muted), (&bob, MediaState::for_kind(CallKind::Audio))].into_iter().zip(invited)
    {
        person.engine.send(Command::Accept { call, media }).unwrap();
    }
    app.until("Bob speaking, Ada muted", Duration::from_secs(10), |h| {
        h.query_by_label_contains("Bob, camera off, speaking").is_some()
            && h.query_by_label_contains("Ada, muted, camera off").is_some()
    });
    app.until_label_contains("0:03");
    app.harness.input_mut().time = Some(10.0);
    app.picture_covering("group_call", &QUALITY_LABELS);
    app.click("Hang up");
}

/// The settings panel as it looks with the fake devices, compared with `tests/snapshots/settings.png`.
/// The microphone's meter is live (the test tone's level is steady); what differs from run to run is
/// painted over before comparing: the camera preview (a moving pattern) and the embedded server's
/// address (a new port each run).
#[test]
fn the_settings_look_as_they_should() {
    let mut app = named_app(false);
    app.until_label("Online");
    app.until("the start-up notices to go", Duration::from_secs(10), |h| h.state().model().notices.is_empty());
    // Tall enough for the whole panel.
    app.harness.set_size(egui::vec2(1000.0, 1500.0));
    app.click("Settings");
    app.until_label("Camera preview");
    app.until("the preview and the meter running", Duration::from_secs(10), |h| {
        h.state().session().local_video().latest().is_some() && h.state().session().local_audio().level() > 0.05
    });
    let address =
        format!("Dialtone runs its own server on this machine at {}.", app.harness.state().session().server_url());
    assert!(app.harness.query_by_label(&address).is_some(), "the address shown");
    app.picture_covering("settings", &["Camera preview", &address]);
}

#[test]
fn an_invite_link_pasted_in_the_settings_signs_in_there_after_a_restart() {
    let mut app = named_app(false);
    app.until_label("Online");
    app.click("Settings");
    app.until_label("Camera preview");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let bob = UserId::new("bob").unwrap();
    let link = |expires: u64| {
        let token = dialtone_server::mint(&Secret::from_bytes([9; 32]), &bob, "Bob", expires).unwrap();
        let fingerprint = Some(dialtone_protocol::Fingerprint::of_der(b"their certificate"));
        dialtone_protocol::Invite { server: "wss://192.0.2.9:7600".into(), token, fingerprint }.to_string()
    };
    let paste = |app: &mut TestApp, text: &str| {
        app.harness.get_by_label("Paste an invite link").focus();
        app.harness.step();
        app.harness.get_by_label("Paste an invite link").type_text(text);
        app.harness.step();
        app.click("Sign in");
    };

    // An expired one is refused with a reason, and nothing changes.
    paste(&mut app, &link(now - 2 * 86_400));
    app.until_label_contains("This invitation expired 2 days ago; ask for a new one");
    assert!(!app.harness.state().restart_flag().load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(app.harness.state().settings().server.url, "");

    // A good one is kept in the settings, and the app asks to start again signed in there.
    app.harness.get_by_label("Paste an invite link").focus();
    app.harness.step();
    app.harness.key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::A]);
    app.harness.key_press(egui::Key::Backspace);
    app.harness.step();
    paste(&mut app, &link(now + 3_600));
    app.until("the restart", Duration::from_secs(5), |h| {
        h.state().restart_flag().load(std::sync::atomic::Ordering::SeqCst)
    });
    let folder = app.folder;
    drop(app.harness);
    let saved: Settings = dialtone::store::load(&folder.path().join("settings.toml")).value;
    assert_eq!((saved.server.url.as_str(), saved.server.user.as_str()), ("wss://192.0.2.9:7600", "bob"));
    assert_eq!(saved.server.fingerprint, dialtone_protocol::Fingerprint::of_der(b"their certificate").to_string());
    assert_eq!(saved.profile.display_name, "Tester", "the rest of the settings is kept");
}

#[test]
fn hosting_for_the_network_makes_invite_links_that_sign_a_new_person_in() {
    let folder = tempfile::tempdir().unwrap();
    settings_with_name(folder.path(), "Tester");
    let mut app = start_app_with(folder, false, true);
    // The app signs in to its own server over TLS, pinned like anyone else.
    app.until_label("Online");
    assert!(app.harness.state().session().server_url().starts_with("wss://127.0.0.1:"));
    app.click("Settings");
    app.until_label("Let people on my network call me");
    app.harness.get_by_label("Name of the person to invite").focus();
    app.harness.step();
    app.harness.get_by_label("Name of the person to invite").type_text("Grace Hopper");
    app.harness.step();
    app.click("Copy invite link");
    app.until("the invite link", Duration::from_secs(5), |h| h.state().last_invite().is_some());
    let link: dialtone_protocol::Invite = app.harness.state().last_invite().unwrap().parse().unwrap();
    assert!(
        link.server.starts_with("wss://") && !link.server.contains("127.0.0.1"),
        "a network address: {}",
        link.server
    );
    assert!(link.fingerprint.is_some());

    // Grace, on another computer of this network, signs in with nothing but the link.
    let mut config = EngineConfig::new(&link.server, &link.token, DeviceId::new("laptop").unwrap());
    config.server_fingerprint = link.fingerprint;
    let (engine, events) = {
        let _guard = app.runtime.enter();
        Engine::start(config)
    };
    let mut grace = Person { engine, events };
    let Event::SignedIn { user, profile, .. } = grace.wait(|e| matches!(e, Event::SignedIn { .. })) else {
        unreachable!()
    };
    assert_eq!((user.as_str(), profile.display_name.as_str()), ("grace.hopper", "Grace Hopper"));
    app.click("⬅ Back");
    app.until_label_contains("Grace Hopper");
}

#[test]
fn pictures_travel_the_callers_shows_on_the_ringing_view_and_mine_reaches_others() {
    let mut app = named_app(false);
    app.until_label("Online");
    let mut bob = app.person("bob", "laptop", false);
    app.until_label("Bob");
    let mut png = Vec::new();
    image::RgbImage::from_pixel(64, 64, image::Rgb([200, 30, 30]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    bob.engine.send(Command::SetPicture(Some(png.clone()))).unwrap();
    let name = dialtone_protocol::picture_ref(&png);
    bob.call(&["me"], CallKind::Audio);
    app.until_label("Incoming audio call");
    let bob_id = UserId::new("bob").unwrap();
    app.until("bob's picture on the ringing view", Duration::from_secs(5), |h| h.state().shows_picture_of(&bob_id));
    let cached = app.folder.path().join("pictures").join(name.trim_start_matches("sha256:"));
    assert_eq!(std::fs::read(&cached).unwrap(), png, "kept for next time");
    app.click("Decline");

    // My picture, chosen as a large photo, reaches bob made small enough to travel.
    let photo = app.folder.path().join("me.png");
    let mut seed = 7u32;
    image::RgbImage::from_fn(800, 800, |_, _| {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        image::Rgb([(seed >> 24) as u8, (seed >> 16) as u8, 90])
    })
    .save(&photo)
    .unwrap();
    bob.engine.send(Command::WatchPresence(None)).unwrap();
    app.until_label("Settings");
    app.click("Settings");
    app.until_label("Camera preview");
    app.harness.get_by_role_and_label(egui::accesskit::Role::TextInput, "Picture file").focus();
    app.harness.step();
    app.harness
        .get_by_role_and_label(egui::accesskit::Role::TextInput, "Picture file")
        .type_text(&photo.display().to_string());
    app.harness.step();
    // Leaving the field takes the path.
    app.harness.get_by_role_and_label(egui::accesskit::Role::TextInput, "Display name").focus();
    app.harness.run_steps(3);
    app.until("the picture chosen", Duration::from_secs(5), |h| h.state().settings().profile.avatar.is_some());
    let Event::PresenceChanged { entry } = bob.wait(|e| {
        matches!(e, Event::PresenceChanged { entry } if entry.user.as_str() == "me" && entry.profile.avatar.is_some())
    }) else {
        unreachable!()
    };
    let avatar = entry.profile.avatar.unwrap();
    bob.engine.send(Command::GetPicture { avatar }).unwrap();
    let Event::Picture { mime, data, .. } = bob.wait(|e| matches!(e, Event::Picture { .. })) else { unreachable!() };
    assert_eq!(mime, "image/jpeg");
    assert!(data.len() <= dialtone_protocol::MAX_PICTURE_BYTES);
}

#[test]
fn a_person_who_cannot_be_reached_is_named_with_the_reason_and_a_retry() {
    let mut app = named_app(false);
    app.until_label("Online");
    // Bob's media goes through a relay only, and this server offers none: no path can exist.
    let secret = Secret::load_or_create(&app.folder.path().join(SECRET_FILE)).unwrap();
    let expires = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600;
    let token = dialtone_server::mint(&secret, &UserId::new("bob").unwrap(), "Bob", expires).unwrap();
    let mut config =
        EngineConfig::new(app.harness.state().session().server_url(), token, DeviceId::new("laptop").unwrap());
    config.media = Some(MediaConfig { camera: SMALL_CAMERA, relay_only: true, ..MediaConfig::default() });
    let (engine, events) = {
        let _guard = app.runtime.enter();
        Engine::start(config)
    };
    let mut bob = Person { engine, events };
    bob.wait(|e| matches!(e, Event::SignedIn { .. }));
    app.until_label("Bob");
    bob.call(&["me"], CallKind::Audio);
    app.until_label("Incoming audio call");
    app.click("Accept audio only");
    app.until("the call's view", Duration::from_secs(5), |h| h.state().model().call.is_some());
    // After the connect limit (10 s) the call view says who cannot be reached and why.
    app.until("the reason", Duration::from_secs(20), |h| h.query_by_label("Can't reach Bob").is_some());
    assert!(app.harness.query_by_label("No network address arrived from the other device").is_some());
    app.click("Try again");
    app.until("connecting again", Duration::from_secs(5), |h| h.query_by_label("Can't reach Bob").is_none());
}

#[test]
fn signing_out_forgets_the_server_and_starts_again_on_this_computer() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let secret = Secret::from_bytes([5; 32]);
    let server = runtime
        .block_on(dialtone_server::spawn(dialtone_server::ServerConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            secret.clone(),
        )))
        .unwrap();
    let expires = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600;
    let token = dialtone_server::mint(&secret, &UserId::new("me").unwrap(), "Tester", expires).unwrap();
    let folder = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.profile.display_name = "Tester".into();
    settings.server.url = server.url();
    settings.server.token = token.clone();
    dialtone::store::save(&folder.path().join("settings.toml"), &settings).unwrap();
    let remote = Server::Remote { url: server.url(), token: Some(token), fingerprint: None, allow_clear_text: false };
    let mut app = start_app_on(folder, remote);
    app.until_label("Online");
    app.click("Settings");
    app.until_label_contains("Signed in to");
    app.click("Sign out");
    app.until("the restart", Duration::from_secs(5), |h| {
        h.state().restart_flag().load(std::sync::atomic::Ordering::SeqCst)
    });
    let folder = app.folder;
    drop(app.harness);
    let saved: Settings = dialtone::store::load(&folder.path().join("settings.toml")).value;
    assert_eq!(saved.server, dialtone::settings::ServerSettings::default(), "the server is forgotten");
    assert_eq!(saved.profile.display_name, "Tester", "the rest is kept");
    drop(runtime);
}
