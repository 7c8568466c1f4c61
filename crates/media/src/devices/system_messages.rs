//! The sound system's own messages go to the log, not to stderr: on a machine without a sound card
//! ALSA prints several configuration errors whenever devices are listed, which a person starting the
//! app from a terminal should not have to read. They are logged under `dialtone::alsa` at debug level
//! (the device lists and the notices about fake twins already say what matters).

/// Routes the sound system's messages to the log, once per process; later calls do nothing. The
/// device functions call it before they touch the sound system, and an app that also plays sound
/// through another library calls it first thing.
pub fn route_to_log() {
    #[cfg(target_os = "linux")]
    alsa::route_to_log();
}

#[cfg(target_os = "linux")]
mod alsa {
    use std::ffi::{CStr, c_char, c_int};
    use std::sync::Once;

    unsafe extern "C" {
        /// Sets where `dialtone_alsa_error_handler` sends formatted messages (csrc/alsa_messages.c).
        fn dialtone_alsa_set_sink(sink: extern "C" fn(*const c_char, c_int, *const c_char, c_int, *const c_char));
        /// ALSA's handler signature: formats and passes on to the sink.
        fn dialtone_alsa_error_handler(
            file: *const c_char,
            line: c_int,
            function: *const c_char,
            err: c_int,
            fmt: *const c_char,
            ...
        );
    }

    pub(super) fn route_to_log() {
        static ROUTED: Once = Once::new();
        ROUTED.call_once(|| {
            // SAFETY: the sink is set before the handler that reads it is installed, both are plain
            // functions that live for the whole process, and the handler's signature is ALSA's.
            unsafe {
                dialtone_alsa_set_sink(log_message);
                alsa_sys::snd_lib_error_set_handler(Some(dialtone_alsa_error_handler));
            }
        });
    }

    extern "C" fn log_message(
        file: *const c_char,
        line: c_int,
        function: *const c_char,
        err: c_int,
        message: *const c_char,
    ) {
        let text = |pointer: *const c_char| -> String {
            if pointer.is_null() {
                String::new()
            } else {
                // SAFETY: ALSA and the C handler pass NUL-terminated strings that outlive this call;
                // the text is copied before returning.
                unsafe { CStr::from_ptr(pointer) }.to_string_lossy().into_owned()
            }
        };
        let reason = if err == 0 {
            String::new()
        } else {
            // SAFETY: snd_strerror returns a static string for any error number.
            format!(": {}", text(unsafe { alsa_sys::snd_strerror(err) }))
        };
        tracing::debug!(target: "dialtone::alsa", "{}:{line} ({}) {}{reason}", text(file), text(function), text(message));
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// Everything a test's log subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn alsa_messages_reach_the_log_with_their_arguments_filled_in() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            super::route_to_log();
            super::route_to_log(); // a second call changes nothing
            let mut pcm = std::ptr::null_mut();
            // SAFETY: a valid out-pointer and a NUL-terminated name; opening fails, nothing to close.
            let result = unsafe {
                alsa_sys::snd_pcm_open(
                    &mut pcm,
                    c"dialtone-no-such-device".as_ptr(),
                    alsa_sys::SND_PCM_STREAM_PLAYBACK,
                    0,
                )
            };
            assert!(result < 0, "opening a device that does not exist fails");
        });
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("dialtone::alsa"), "{log}");
        assert!(log.contains("Unknown PCM dialtone-no-such-device"), "the message formatted: {log}");
    }
}
