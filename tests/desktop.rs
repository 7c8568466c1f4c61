//! Desktop integration on a private session bus, seen as the desktop sees it:
//! - the tray icon: a StatusNotifierWatcher served by the test takes the icon's registration, then the
//!   test reads the icon's status and tooltip and clicks its menu over D-Bus;
//! - incoming-call notifications: the test serves org.freedesktop.Notifications, reads what is shown,
//!   presses its buttons (ActionInvoked) and sees notifications closed when the ringing stops.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dialtone::notification::{CallNotification, NotificationChoice};
use dialtone::tray::{Tray, TrayAction, TrayState};
use dialtone_protocol::CallKind;
use tokio::sync::mpsc;
use zbus::zvariant::OwnedValue;

/// A `dbus-daemon` of the test's own, stopped when dropped.
struct PrivateBus {
    daemon: Child,
    address: String,
}

impl PrivateBus {
    fn start() -> PrivateBus {
        let mut daemon = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon (package dbus) is installed");
        let mut address = String::new();
        BufReader::new(daemon.stdout.take().expect("piped")).read_line(&mut address).expect("its address");
        PrivateBus { daemon, address: address.trim().to_owned() }
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// The tray host's side: takes registrations, as KDE's and GNOME's watchers do.
struct Watcher {
    registered: mpsc::UnboundedSender<String>,
}

#[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
impl Watcher {
    fn register_status_notifier_item(&self, service: &str) {
        let _ = self.registered.send(service.to_owned());
    }

    fn register_status_notifier_host(&self, _service: &str) {}

    #[zbus(property)]
    fn registered_status_notifier_items(&self) -> Vec<String> {
        Vec::new()
    }

    #[zbus(property)]
    fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    fn protocol_version(&self) -> i32 {
        0
    }
}

async fn property(connection: &zbus::Connection, service: &str, name: &str) -> OwnedValue {
    let properties = zbus::fdo::PropertiesProxy::builder(connection)
        .destination(service.to_owned())
        .unwrap()
        .path("/StatusNotifierItem")
        .unwrap()
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    let interface = zbus::names::InterfaceName::from_static_str("org.kde.StatusNotifierItem").unwrap();
    properties.get(interface, name).await.unwrap_or_else(|error| panic!("{name}: {error}"))
}

async fn status(connection: &zbus::Connection, service: &str) -> String {
    String::try_from(property(connection, service, "Status").await).unwrap()
}

/// A StatusNotifierItem tooltip: icon name, icon pixmaps (width, height, ARGB data), title, description.
type Tooltip = (String, Vec<(i32, i32, Vec<u8>)>, String, String);

async fn tooltip(connection: &zbus::Connection, service: &str) -> String {
    let (_, _, _, description): Tooltip = property(connection, service, "ToolTip").await.try_into().unwrap();
    description
}

/// The menu's items by label, with whether each is enabled.
async fn menu(connection: &zbus::Connection, service: &str) -> HashMap<String, (i32, bool)> {
    let reply = connection
        .call_method(
            Some(service),
            "/MenuBar",
            Some("com.canonical.dbusmenu"),
            "GetGroupProperties",
            &(Vec::<i32>::new(), vec!["label", "enabled"]),
        )
        .await
        .unwrap();
    let items: Vec<(i32, HashMap<String, OwnedValue>)> = reply.body().deserialize().unwrap();
    items
        .into_iter()
        .filter_map(|(id, properties)| {
            let label = String::try_from(properties.get("label")?.try_clone().ok()?).ok()?;
            let enabled = properties.get("enabled").and_then(|v| bool::try_from(v).ok()).unwrap_or(true);
            Some((label, (id, enabled)))
        })
        .collect()
}

async fn click(connection: &zbus::Connection, service: &str, id: i32) {
    let data = zbus::zvariant::Value::from(0i32);
    connection
        .call_method(Some(service), "/MenuBar", Some("com.canonical.dbusmenu"), "Event", &(id, "clicked", data, 0u32))
        .await
        .unwrap();
}

/// Polls until `check` holds for what `read` returns (updates reach the bus asynchronously).
async fn until<T: std::fmt::Debug, F: std::future::Future<Output = T>>(
    what: &str,
    mut read: impl FnMut() -> F,
    check: impl Fn(&T) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let value = read().await;
        if check(&value) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: still {value:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One test for both, because the session bus is named by process-wide environment.
#[test]
fn the_tray_and_call_notifications_work_with_the_desktop() {
    let bus = PrivateBus::start();
    // The icon and the notifications connect to the session bus named here.
    // SAFETY: the only test of this binary, and no runtime has started yet: no other thread exists to
    // read the environment meanwhile.
    unsafe { std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &bus.address) };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(drive_the_tray(&bus));
    runtime.block_on(answer_from_notifications(&bus, runtime.handle()));
}

async fn drive_the_tray(bus: &PrivateBus) {
    let (registered, mut registrations) = mpsc::unbounded_channel();
    let host = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .name("org.kde.StatusNotifierWatcher")
        .unwrap()
        .serve_at("/StatusNotifierWatcher", Watcher { registered })
        .unwrap()
        .build()
        .await
        .unwrap();

    let actions = Arc::new(Mutex::new(Vec::new()));
    let seen = actions.clone();
    let mut tray = Tray::start(Arc::new(move |action| seen.lock().unwrap().push(action))).await.expect("tray");
    let service = tokio::time::timeout(Duration::from_secs(5), registrations.recv())
        .await
        .expect("the icon registered with the watcher")
        .unwrap();

    assert_eq!(status(&host, &service).await, "Active");
    assert_eq!(tooltip(&host, &service).await, "Ready for calls");
    let items = menu(&host, &service).await;
    assert_eq!(items.get("Mute").map(|item| item.1), Some(false), "no call, nothing to mute: {items:?}");
    assert_eq!(items.get("Hang up").map(|item| item.1), Some(false), "{items:?}");

    tray.show(TrayState::Ringing);
    until("ringing", || status(&host, &service), |s| s == "NeedsAttention").await;
    assert_eq!(tooltip(&host, &service).await, "Incoming call");

    tray.show(TrayState::InCall { muted: false });
    until("in a call", || status(&host, &service), |s| s == "Active").await;
    let items = menu(&host, &service).await;
    assert_eq!(items.get("Hang up").map(|item| item.1), Some(true), "{items:?}");
    click(&host, &service, items["Mute"].0).await;
    click(&host, &service, items["Hang up"].0).await;
    tray.show(TrayState::InCall { muted: true });
    until("the menu offers unmute", || menu(&host, &service), |items| items.contains_key("Unmute")).await;
    assert_eq!(tooltip(&host, &service).await, "In a call (muted)");

    tray.show(TrayState::Missed(2));
    until("missed calls", || tooltip(&host, &service), |t| t == "2 missed calls").await;
    assert_eq!(status(&host, &service).await, "NeedsAttention");

    // Changes in quick succession (the UI asks without waiting) end on the last one, whatever order
    // the updates ran in.
    for state in [TrayState::Ringing, TrayState::Idle, TrayState::InCall { muted: true }, TrayState::Missed(3)] {
        tray.show(state);
    }
    until("the last change", || tooltip(&host, &service), |t| t == "3 missed calls").await;

    // A click on the icon itself shows the window; Quit quits.
    host.call_method(
        Some(service.as_str()),
        "/StatusNotifierItem",
        Some("org.kde.StatusNotifierItem"),
        "Activate",
        &(0i32, 0i32),
    )
    .await
    .unwrap();
    click(&host, &service, menu(&host, &service).await["Quit"].0).await;
    let expected = [TrayAction::ToggleMute, TrayAction::Hangup, TrayAction::Show, TrayAction::Quit];
    until("the clicks arrived", || async { actions.lock().unwrap().clone() }, |a| a.len() >= 4).await;
    assert_eq!(*actions.lock().unwrap(), expected);
    tray.stop();
}

/// What a notification service was asked to show.
#[derive(Debug)]
struct Shown {
    id: u32,
    summary: String,
    body: String,
    actions: Vec<String>,
}

/// The desktop's notification service: records what it is asked, hands out ids.
struct Notifications {
    shown: mpsc::UnboundedSender<Shown>,
    closed: mpsc::UnboundedSender<u32>,
    last_id: std::sync::atomic::AtomicU32,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Notifications {
    #[allow(clippy::too_many_arguments)] // the D-Bus method's signature
    fn notify(
        &self,
        _app_name: &str,
        _replaces_id: u32,
        _app_icon: &str,
        summary: &str,
        body: &str,
        actions: Vec<String>,
        _hints: HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let id = self.last_id.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let _ = self.shown.send(Shown { id, summary: summary.to_owned(), body: body.to_owned(), actions });
        id
    }

    fn close_notification(&self, id: u32) {
        let _ = self.closed.send(id);
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["actions".into(), "body".into()]
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        ("test".into(), "dialtone".into(), "1".into(), "1.2".into())
    }

    #[zbus(signal)]
    async fn action_invoked(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        id: u32,
        action_key: &str,
    ) -> zbus::Result<()>;
}

async fn answer_from_notifications(bus: &PrivateBus, runtime: &tokio::runtime::Handle) {
    let (shown, mut shown_rx) = mpsc::unbounded_channel();
    let (closed, mut closed_rx) = mpsc::unbounded_channel();
    let service = Notifications { shown, closed, last_id: 0.into() };
    let desktop = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .name("org.freedesktop.Notifications")
        .unwrap()
        .serve_at("/org/freedesktop/Notifications", service)
        .unwrap()
        .build()
        .await
        .unwrap();
    let emitter = zbus::object_server::SignalEmitter::new(&desktop, "/org/freedesktop/Notifications").unwrap();
    let next_shown = async |shown_rx: &mut mpsc::UnboundedReceiver<Shown>| {
        tokio::time::timeout(Duration::from_secs(5), shown_rx.recv()).await.expect("a notification").unwrap()
    };
    // Presses `action` until the app hears it: the app subscribes to the signal just after the
    // notification is up, so a press in between would be lost (a person cannot press that fast). Each
    // time, the other button of some other notification is pressed first, which must not count.
    let press = async |id: u32, action: &str, chosen_rx: &mut mpsc::UnboundedReceiver<NotificationChoice>| {
        let other = if action == "accept" { "decline" } else { "accept" };
        for _ in 0..50 {
            Notifications::action_invoked(&emitter, id + 100, other).await.unwrap();
            Notifications::action_invoked(&emitter, id, action).await.unwrap();
            if let Ok(Some(choice)) = tokio::time::timeout(Duration::from_millis(100), chosen_rx.recv()).await {
                return choice;
            }
        }
        panic!("{action} on notification {id} never reached the app");
    };

    // Accept.
    let (chosen, mut chosen_rx) = mpsc::unbounded_channel();
    let accept = CallNotification::show(runtime, "Bob", CallKind::Video, move |c| chosen.send(c).unwrap());
    let first = next_shown(&mut shown_rx).await;
    assert_eq!(first.summary, "Bob is calling");
    assert_eq!(first.body, "Incoming video call");
    assert_eq!(first.actions, ["accept", "Accept", "decline", "Decline"]);
    assert_eq!(press(first.id, "accept", &mut chosen_rx).await, NotificationChoice::Accept);
    drop(accept);

    // Decline.
    let (chosen, mut chosen_rx) = mpsc::unbounded_channel();
    let _decline = CallNotification::show(runtime, "Ann", CallKind::Audio, move |c| chosen.send(c).unwrap());
    let second = next_shown(&mut shown_rx).await;
    assert_eq!(second.body, "Incoming audio call");
    assert_eq!(press(second.id, "decline", &mut chosen_rx).await, NotificationChoice::Decline);

    // The call stops ringing here (answered elsewhere, cancelled): the notification is taken down.
    let (chosen, mut chosen_rx) = mpsc::unbounded_channel();
    let stale = CallNotification::show(runtime, "Cy", CallKind::Audio, move |c| chosen.send(c).unwrap());
    let third = next_shown(&mut shown_rx).await;
    drop(stale);
    let closed = tokio::time::timeout(Duration::from_secs(5), closed_rx.recv()).await.expect("closed").unwrap();
    assert_eq!(closed, third.id);
    assert!(chosen_rx.try_recv().is_err(), "nothing was chosen");
}
