//! Embeds the build's version identity (the git commit when built from a checkout) and checks the app
//! icon that `src/main.rs` embeds is a PNG, so a broken icon fails the build rather than the start.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=DIALTONE_COMMIT={commit}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");

    let icon = "assets/dialtone.png";
    println!("cargo:rerun-if-changed={icon}");
    match std::fs::read(icon) {
        Ok(bytes) if bytes.starts_with(b"\x89PNG\r\n\x1a\n") => {}
        Ok(_) => panic!("{icon} is not a PNG file"),
        Err(error) => panic!("cannot read {icon}: {error}"),
    }
}
