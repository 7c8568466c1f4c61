//! How the engine reaches its server: the URL read and checked (a sign-in token travels in clear text
//! only to this machine, unless the user allows it), and TLS that trusts the system's roots or a pinned
//! certificate fingerprint (a self-signed server).

use std::sync::Arc;

use dialtone_protocol::Fingerprint;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// A server's `ws://` or `wss://` URL, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// `wss://`: signaling over TLS.
    pub secure: bool,
    /// The host name or address (IPv6 without brackets).
    pub host: String,
    /// The port (80 or 443 when the URL names none).
    pub port: u16,
}

/// Why a server URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerUrlError {
    /// Not `ws://` or `wss://`.
    #[error("a server URL starts with wss:// (or ws:// for a server on this machine): {0:?}")]
    Scheme(String),
    /// No host, or a port that is not a number.
    #[error("cannot read the host and port of the server URL {0:?}")]
    Address(String),
    /// `ws://` to another machine: the sign-in token would travel in clear text.
    #[error(
        "refusing to send the sign-in token unencrypted to {0}: use a wss:// address, or allow it explicitly \
         (--insecure) on a network you trust"
    )]
    ClearText(String),
}

impl ServerUrl {
    /// Reads `ws://host[:port][/path]` or `wss://…`.
    pub fn parse(url: &str) -> Result<ServerUrl, ServerUrlError> {
        let (secure, rest) = if let Some(rest) = url.strip_prefix("wss://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("ws://") {
            (false, rest)
        } else {
            return Err(ServerUrlError::Scheme(url.to_owned()));
        };
        let bad = || ServerUrlError::Address(url.to_owned());
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let authority = authority.rsplit('@').next().unwrap_or_default();
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(bad)?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        let port = match port {
            Some(port) => port.parse().map_err(|_| bad())?,
            None if secure => 443,
            None => 80,
        };
        Ok(ServerUrl { secure, host: host.to_owned(), port })
    }

    /// Whether the server is on this machine (a loopback address or `localhost`).
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// Refuses a clear-text connection to another machine unless `allow_clear_text`.
    pub fn check_clear_text(&self, allow_clear_text: bool) -> Result<(), ServerUrlError> {
        if self.secure || allow_clear_text || self.is_loopback() {
            Ok(())
        } else {
            Err(ServerUrlError::ClearText(self.host.clone()))
        }
    }
}

/// The TLS client settings: the system's roots, or only the certificate with `pin` as its fingerprint.
pub(crate) fn tls_config(pin: Option<Fingerprint>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let config = match pin {
        Some(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCertificate {
                pin,
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        None => builder.with_root_certificates(system_roots()).with_no_client_auth(),
    };
    Arc::new(config)
}

/// The system's trusted roots; unreadable ones are skipped (and logged), as browsers do.
fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "a system certificate could not be read");
    }
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(added, ignored, "system roots loaded");
    roots
}

/// The server's certificate is not the pinned one.
#[derive(Debug, thiserror::Error)]
#[error("the server's certificate has fingerprint {found}, not the pinned {pinned}")]
pub(crate) struct PinMismatch {
    pub(crate) found: Fingerprint,
    pub(crate) pinned: Fingerprint,
}

/// Trusts exactly one certificate, named by its fingerprint, whoever signed it and whatever names it
/// carries: the fingerprint came with the invitation, through a channel the user trusts. The handshake's
/// signature is still checked, so only the holder of that certificate's key passes.
#[derive(Debug)]
struct PinnedCertificate {
    pin: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let found = Fingerprint::of_der(end_entity);
        if found == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            let mismatch = PinMismatch { found, pinned: self.pin };
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(Arc::new(
                mismatch,
            )))))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Says in a person's words why a connection to `url` failed, and whether trying again can help.
pub(crate) fn explain(url: &ServerUrl, error: &tokio_tungstenite::tungstenite::Error) -> (String, bool) {
    use tokio_tungstenite::tungstenite::Error;
    let address = format!("{}:{}", url.host, url.port);
    if let Error::Http(response) = error
        && response.status().as_u16() == 400
        && !url.secure
        && response.body().as_ref().is_some_and(|body| String::from_utf8_lossy(body).contains("TLS"))
    {
        return (format!("the server at {address} only speaks TLS: use wss://{address}"), false);
    }
    let tls = match error {
        Error::Io(io) => io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        Error::Tls(tokio_tungstenite::tungstenite::error::TlsError::Rustls(inner)) => Some(&**inner),
        _ => None,
    };
    match tls {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) => {
            match other.0.downcast_ref::<PinMismatch>() {
                Some(mismatch) => (
                    format!(
                        "the server at {address} is not the one you were invited to: its certificate has \
                         fingerprint {}, the invitation says {}",
                        mismatch.found, mismatch.pinned
                    ),
                    false,
                ),
                None => (format!("the certificate of {address} is not valid: {other}"), false),
            }
        }
        Some(rustls::Error::InvalidCertificate(problem)) => (
            format!(
                "the certificate of {address} is not trusted ({problem:?}); for a self-signed server, use the \
                 fingerprint it prints (--fingerprint)"
            ),
            false,
        ),
        Some(rustls::Error::InvalidMessage(_)) | Some(rustls::Error::InappropriateMessage { .. }) => {
            (format!("the server at {address} does not speak TLS: check the address (ws:// for plain)"), false)
        }
        Some(other) => (format!("TLS with {address} failed: {other}"), true),
        // A plain server reads the TLS hello as a broken HTTP request and hangs up; so may a server that
        // is restarting, so this one is worth trying again.
        None if url.secure && matches!(error, Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof) => (
            format!("the server at {address} hung up during the TLS handshake: does it speak TLS? (ws:// is plain)"),
            true,
        ),
        None => (format!("cannot connect to {address}: {error}"), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_with_their_defaults() {
        let cases = [
            ("ws://127.0.0.1:7600", true, false, "127.0.0.1", 7600),
            ("wss://calls.example.org", false, true, "calls.example.org", 443),
            ("ws://localhost/", true, false, "localhost", 80),
            ("wss://[::1]:9000/path", true, true, "::1", 9000),
            ("wss://[2001:db8::5]", false, true, "2001:db8::5", 443),
            ("ws://192.0.2.7:7600?x=1", false, false, "192.0.2.7", 7600),
        ];
        for (url, loopback, secure, host, port) in cases {
            let parsed = ServerUrl::parse(url).unwrap();
            assert_eq!(parsed, ServerUrl { secure, host: host.into(), port }, "{url}");
            assert_eq!(parsed.is_loopback(), loopback, "{url}");
        }
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert!(matches!(ServerUrl::parse("http://x"), Err(ServerUrlError::Scheme(_))));
        assert!(matches!(ServerUrl::parse("calls.example.org"), Err(ServerUrlError::Scheme(_))));
        assert!(matches!(ServerUrl::parse("ws://"), Err(ServerUrlError::Address(_))));
        assert!(matches!(ServerUrl::parse("ws://host:port"), Err(ServerUrlError::Address(_))));
        assert!(matches!(ServerUrl::parse("wss://[::1"), Err(ServerUrlError::Address(_))));
    }

    #[test]
    fn a_token_goes_in_clear_text_only_to_this_machine_unless_allowed() {
        let check = |url: &str, allow| ServerUrl::parse(url).unwrap().check_clear_text(allow);
        assert_eq!(check("ws://127.0.0.1:7600", false), Ok(()));
        assert_eq!(check("ws://localhost:7600", false), Ok(()));
        assert_eq!(check("wss://192.0.2.7", false), Ok(()));
        assert_eq!(check("ws://192.0.2.7:7600", true), Ok(()));
        let refused = check("ws://192.0.2.7:7600", false).unwrap_err();
        assert!(refused.to_string().contains("unencrypted to 192.0.2.7"), "{refused}");
    }
}
