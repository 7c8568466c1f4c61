//! Two links in one process, their signaling relayed directly: they connect over loopback.

use std::sync::Arc;
use std::time::Duration;

use dialtone_media::{Link, LinkEvent, LinkState, MediaConfig, Role};
use tokio::sync::mpsc;

type Events = mpsc::UnboundedReceiver<LinkEvent>;

fn spawn(role: Role) -> (Link, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let link = Link::spawn(Arc::new(MediaConfig::default()), role, Arc::new(move |event| {
        let _ = tx.send(event);
    }));
    (link, rx)
}

/// Relays signals both ways until both sides report `Connected`; returns the offerer's time to connect.
async fn connect(offerer: &Link, offers: &mut Events, answerer: &Link, answers: &mut Events) -> Duration {
    let mut connected = (None, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while connected.0.is_none() || connected.1.is_none() {
        tokio::select! {
            Some(event) = offers.recv() => match event {
                LinkEvent::Signal(payload) => answerer.remote_signal(payload),
                LinkEvent::State { state: LinkState::Connected, after } => connected.0 = Some(after),
                LinkEvent::State { state: LinkState::Failed, .. } | LinkEvent::Error(_) => panic!("offerer: {event:?}"),
                LinkEvent::State { .. } => {}
            },
            Some(event) = answers.recv() => match event {
                LinkEvent::Signal(payload) => offerer.remote_signal(payload),
                LinkEvent::State { state: LinkState::Connected, after } => connected.1 = Some(after),
                LinkEvent::State { state: LinkState::Failed, .. } | LinkEvent::Error(_) => panic!("answerer: {event:?}"),
                LinkEvent::State { .. } => {}
            },
            _ = tokio::time::sleep_until(deadline) => panic!("not connected within 10 s: {connected:?}"),
        }
    }
    connected.0.expect("checked")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_links_connect_over_loopback_and_close() {
    let (offerer, mut offers) = spawn(Role::Offerer);
    let (answerer, mut answers) = spawn(Role::Answerer);
    let took = connect(&offerer, &mut offers, &answerer, &mut answers).await;
    eprintln!("offer to connected: {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    offerer.close();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), offers.recv()).await.expect("closed in time") {
            Some(LinkEvent::State { state: LinkState::Closed, .. }) => break,
            Some(_) => {}
            None => panic!("events ended without closed"),
        }
    }
}
