//! Compiles the small C handler that routes ALSA's messages to the log (Linux only; see
//! `csrc/alsa_messages.c` for why it is C).

fn main() {
    println!("cargo::rerun-if-changed=csrc/alsa_messages.c");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        cc::Build::new().file("csrc/alsa_messages.c").warnings(true).compile("dialtone_alsa_messages");
    }
}
