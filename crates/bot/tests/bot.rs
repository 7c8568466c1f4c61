//! The bot binary as automation uses it: real processes against a real server on 127.0.0.1.

use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use dialtone_protocol::UserId;
use dialtone_server::{Secret, ServerConfig, ServerHandle, mint};
use serde_json::Value;

fn secret() -> Secret {
    Secret::from_bytes([5; 32])
}

fn token(user: &str) -> String {
    let expires = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600;
    mint(&secret(), &UserId::new(user).unwrap(), user, expires).unwrap()
}

async fn server() -> ServerHandle {
    dialtone_server::spawn(ServerConfig::new("127.0.0.1:0".parse().unwrap(), secret())).await.unwrap()
}

/// Runs the bot to completion off the async runtime, so the server keeps serving meanwhile.
async fn bot(server: &ServerHandle, user: &str, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dialtone-bot"));
    command.args(["--server", &server.url(), "--token", &token(user)]).args(args);
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

fn lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

fn events<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == name).collect()
}

#[tokio::test]
async fn a_calling_bot_and_an_answering_bot_complete_a_call() {
    let server = server().await;
    let answering = bot(&server, "bob", &["--device", "phone", "--answer", "accept", "--exit-after", "3s"]);
    let calling = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        bot(&server, "alice", &["--call", "bob", "--video", "--hangup-after", "200ms", "--calls", "2"]).await
    };
    let (bob, alice) = tokio::join!(answering, calling);
    assert!(alice.status.success(), "{}", String::from_utf8_lossy(&alice.stderr));
    assert!(bob.status.success(), "{}", String::from_utf8_lossy(&bob.stderr));

    let alice = lines(&alice);
    assert!(alice.iter().all(|l| l["t_ms"].is_u64()), "every line has t_ms");
    assert_eq!(events(&alice, "call_active").len(), 2);
    assert!(events(&alice, "call_ended").iter().all(|e| e["reason"] == "hangup"));
    let summary = alice.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["calls_placed"], 2);
    assert_eq!(summary["answered"], 2);
    assert_eq!(summary["ended"]["hangup"], 2);
    assert_eq!(summary["answer_latency_ms"].as_array().unwrap().len(), 2);

    let bob = lines(&bob);
    let summary = bob.last().unwrap();
    assert_eq!(summary["calls_received"], 2);
    assert_eq!(summary["ended"]["remote_hangup"], 2);
    assert_eq!(events(&bob, "incoming_call")[0]["call"]["kind"], "video");
}

#[tokio::test]
async fn a_busy_bot_makes_the_caller_end_busy() {
    let server = server().await;
    let answering = bot(&server, "bob", &["--answer", "busy", "--exit-after", "2s"]);
    let calling = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        bot(&server, "alice", &["--call", "bob"]).await
    };
    let (bob, alice) = tokio::join!(answering, calling);
    let alice = lines(&alice);
    assert_eq!(alice.last().unwrap()["ended"]["busy"], 1, "{alice:#?}");
    let bob = lines(&bob);
    assert_eq!(bob.last().unwrap()["declined"], 1, "{bob:#?}");
}

#[tokio::test]
async fn a_bad_token_exits_non_zero_with_the_reason() {
    let server = server().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_dialtone-bot"));
    command.args(["--server", &server.url(), "--token", "dt1.bogus.bogus", "--call", "bob"]);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    let lines = lines(&output);
    let stopped = events(&lines, "stopped");
    assert!(stopped[0]["reason"].as_str().unwrap().contains("sign-in refused"), "{lines:#?}");
}

#[test]
fn bad_flags_get_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_dialtone-bot"))
        .args(["--token", "x", "--call", "not a user"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--call") && stderr.contains("letters, digits"), "{stderr}");
}

#[test]
fn a_loss_outside_0_to_100_percent_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_dialtone-bot"))
        .args(["--token", "x", "--media", "--simulate-loss", "150"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--simulate-loss") && stderr.contains("between 0 and 100"), "{stderr}");
}

/// Media tests run one at a time: four bots encoding and decoding video at once on two cores starve
/// each other into freezes the assertions would blame on the code.
static MEDIA: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn bots_with_media_report_the_video_they_received() {
    let _one_at_a_time = MEDIA.lock().await;
    let server = server().await;
    let answering = bot(&server, "bob", &["--media", "--camera", "320x180@30", "--tone", "660", "--exit-after", "4s"]);
    let calling = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        bot(
            &server,
            "alice",
            &["--media", "--camera", "320x180@30", "--call", "bob", "--video", "--hangup-after", "2s"],
        )
        .await
    };
    let (bob, alice) = tokio::join!(answering, calling);
    for output in [&alice, &bob] {
        let lines = lines(output);
        let summary = lines.last().unwrap();
        let video = summary["video"].as_array().unwrap_or_else(|| panic!("{summary}"));
        assert_eq!(video.len(), 1, "{summary}");
        assert!(video[0]["frames_decoded"].as_u64().unwrap() >= 15, "{summary}");
        assert!(video[0]["first_frame_ms"].as_u64().unwrap() < 1_000, "{summary}");
        assert_eq!(video[0]["freezes"], 0, "{summary}");
        assert!(events(&lines, "media_link").iter().any(|e| e["state"] == "connected"), "{lines:#?}");
        let audio = summary["audio"].as_array().unwrap_or_else(|| panic!("{summary}"));
        assert!(audio[0]["frames_decoded"].as_u64().unwrap() >= 25, "{summary}");
    }
    let tone = |output: &Output| lines(output).last().unwrap()["audio"][0]["tone_hz"].as_f64();
    assert_eq!(tone(&alice), Some(660.0), "alice hears bob's tone");
    assert_eq!(tone(&bob), Some(440.0), "bob hears alice's tone");
}

#[tokio::test]
async fn an_echo_bot_sends_back_the_callers_own_picture_and_tone() {
    let _one_at_a_time = MEDIA.lock().await;
    let server = server().await;
    let echo = bot(&server, "echo", &["--echo", "--camera", "320x180@30", "--tone", "300", "--exit-after", "4s"]);
    let calling = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let args =
            ["--media", "--camera", "320x180@30", "--tone", "820", "--call", "echo", "--video", "--hangup-after", "2s"];
        bot(&server, "alice", &args).await
    };
    let (_, alice) = tokio::join!(echo, calling);
    let lines = lines(&alice);
    let summary = lines.last().unwrap();
    let video = &summary["video"][0];
    assert!(video["frames_decoded"].as_u64().unwrap_or(0) >= 15, "{summary}");
    // The pictures are alice's own test pattern: its stamps give the round trip through the echo.
    assert!(video["latency_ms_median"].as_f64().is_some_and(|ms| ms < 300.0), "{summary}");
    let heard = summary["audio"][0]["tone_hz"].as_f64();
    assert!(heard.is_some_and(|hz| (hz - 820.0).abs() < 30.0), "alice hears her own 820 Hz tone, not 300: {summary}");
}

#[test]
fn a_bad_camera_format_is_refused() {
    let output =
        Command::new(env!("CARGO_BIN_EXE_dialtone-bot")).args(["--token", "x", "--camera", "big"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("640x360@30"));
}
