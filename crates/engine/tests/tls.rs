//! Signaling over TLS: a self-signed server pinned by its fingerprint, and each way of getting it wrong
//! said plainly.

mod common;

use common::*;
use dialtone_engine::{Engine, EngineConfig, Event};
use dialtone_protocol::{CallKind, EndReason, Fingerprint};
use dialtone_server::{ServerHandle, TlsIdentity};

async fn tls_server() -> ServerHandle {
    let (identity, _, _) = TlsIdentity::generate(&["localhost".into()]).unwrap();
    server_with(|config| config.tls = Some(identity)).await
}

fn pinned(server: &ServerHandle, name: &str, device: &str) -> EngineConfig {
    let mut config = engine_config(&server.url(), name, device);
    config.server_fingerprint = server.fingerprint();
    config
}

/// Starts an engine that must stop without signing in, and returns why it stopped.
async fn refused(config: EngineConfig) -> String {
    let (engine, mut events) = Engine::start(config);
    let mut seen = Vec::new();
    let reason = tokio::time::timeout(WAIT, async {
        while let Some(event) = events.recv().await {
            match event {
                Event::Stopped { reason } => return reason,
                Event::SignedIn { .. } => panic!("signed in: {seen:?}"),
                other => seen.push(other),
            }
        }
        panic!("the engine ended without a reason: {seen:?}")
    })
    .await
    .expect("the engine gives up at once");
    engine.shutdown().await;
    reason
}

#[tokio::test]
async fn a_call_over_tls_to_a_pinned_self_signed_server() {
    let server = tls_server().await;
    assert!(server.url().starts_with("wss://"), "{}", server.url());
    let mut alice = Client::start(pinned(&server, "alice", "laptop"), "alice").await;
    let mut bob = Client::start(pinned(&server, "bob", "phone"), "bob").await;
    let call = alice.call(&["bob"], CallKind::Audio, false).await;
    bob.incoming(&call).await;
    bob.accept(&call, CallKind::Audio).await;
    alice.expect("active", |e| matches!(e, Event::CallActive { .. })).await;
    alice.send(dialtone_engine::Command::Hangup { call: call.clone() });
    bob.ended(&call, EndReason::RemoteHangup).await;
}

#[tokio::test]
async fn another_certificate_than_the_pinned_one_is_refused_for_good() {
    let server = tls_server().await;
    let mut config = pinned(&server, "alice", "laptop");
    let wrong = Fingerprint::of_der(b"some other certificate");
    config.server_fingerprint = Some(wrong);
    let reason = refused(config).await;
    assert!(reason.contains("not the one you were invited to"), "{reason}");
    assert!(reason.contains(&wrong.to_string()), "{reason}");
    assert!(reason.contains(&server.fingerprint().unwrap().to_string()), "{reason}");
}

#[tokio::test]
async fn a_self_signed_certificate_without_a_pin_is_not_trusted() {
    let server = tls_server().await;
    let reason = refused(engine_config(&server.url(), "alice", "laptop")).await;
    assert!(reason.contains("not trusted"), "{reason}");
    assert!(reason.contains("fingerprint"), "{reason}");
}

#[tokio::test]
async fn plain_websocket_to_a_tls_server_is_told_to_use_wss() {
    let server = tls_server().await;
    let url = server.url().replace("wss://", "ws://");
    let reason = refused(engine_config(&url, "alice", "laptop")).await;
    assert!(reason.contains("only speaks TLS"), "{reason}");
    assert!(reason.contains("wss://"), "{reason}");
    // The server goes on serving the others.
    Client::start(pinned(&server, "bob", "phone"), "bob").await;
}

#[tokio::test]
async fn tls_to_a_plain_server_asks_whether_it_speaks_tls() {
    let server = server().await;
    let url = server.url().replace("ws://", "wss://");
    let mut config = engine_config(&url, "alice", "laptop");
    config.server_fingerprint = Some(Fingerprint::of_der(b"anything"));
    let (engine, mut events) = Engine::start(config);
    let reconnecting = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Some(Event::Reconnecting { reason, .. }) => return reason,
                Some(Event::SignedIn { .. }) | None => panic!("signed in or stopped"),
                Some(_) => {}
            }
        }
    })
    .await
    .expect("a failed attempt");
    assert!(reconnecting.contains("does it speak TLS"), "{reconnecting}");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_token_is_not_sent_in_clear_text_to_another_machine() {
    // Nothing listens there: the engine refuses before connecting.
    let reason = refused(engine_config("ws://192.0.2.44:7600", "alice", "laptop")).await;
    assert!(reason.contains("unencrypted"), "{reason}");
}
