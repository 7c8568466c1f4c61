//! The server's TLS identity: a certificate and key from PEM files, or a self-signed certificate made
//! once and kept in the server's data folder, whose fingerprint clients pin.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dialtone_protocol::Fingerprint;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The file a self-signed certificate is kept in, in the data folder.
pub const SELF_SIGNED_CERT_FILE: &str = "tls-cert.pem";
/// The file its key is kept in (mode 0600).
pub const SELF_SIGNED_KEY_FILE: &str = "tls-key.pem";

/// A certificate chain and key, ready to serve.
#[derive(Clone)]
pub struct TlsIdentity {
    /// rustls's settings for accepting connections.
    pub config: Arc<rustls::ServerConfig>,
    /// The fingerprint of the certificate served (what clients of a self-signed server pin).
    pub fingerprint: Fingerprint,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}

/// Why the TLS identity could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{0}: no PEM certificate (-----BEGIN CERTIFICATE-----) found")]
    NoCertificate(PathBuf),
    /// The key file holds no PEM private key.
    #[error("{0}: no PEM private key found")]
    NoKey(PathBuf),
    /// rustls refused the certificate or key (for example a key that does not match the certificate).
    #[error("the certificate or key cannot be used: {0}")]
    Rejected(#[from] rustls::Error),
    /// Making a self-signed certificate failed.
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::File { path: path.to_owned(), source }
}

impl TlsIdentity {
    /// A certificate chain (leaf first) and its private key, both PEM.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsIdentity, TlsError> {
        let cert_pem = std::fs::read(cert).map_err(file_error(cert))?;
        let key_pem = std::fs::read(key).map_err(file_error(key))?;
        Self::from_pem(&cert_pem, &key_pem, cert, key)
    }

    fn from_pem(cert_pem: &[u8], key_pem: &[u8], cert: &Path, key: &Path) -> Result<TlsIdentity, TlsError> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem).filter_map(Result::ok).collect();
        if chain.is_empty() {
            return Err(TlsError::NoCertificate(cert.to_owned()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsError::NoKey(key.to_owned()))?;
        Self::from_der(chain, key)
    }

    /// A certificate chain (leaf first) and its private key.
    pub fn from_der(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<TlsIdentity, TlsError> {
        let fingerprint = Fingerprint::of_der(chain.first().map(|c| c.as_ref()).unwrap_or_default());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsIdentity { config: Arc::new(config), fingerprint })
    }

    /// A new self-signed certificate for `names` (host names or addresses), in memory.
    pub fn generate(names: &[String]) -> Result<(TlsIdentity, String, String), TlsError> {
        let certified = rcgen::generate_simple_self_signed(names.to_vec())?;
        let cert_pem = certified.cert.pem();
        let key_pem = certified.signing_key.serialize_pem();
        let identity = Self::from_pem(cert_pem.as_bytes(), key_pem.as_bytes(), Path::new("(new)"), Path::new("(new)"))?;
        Ok((identity, cert_pem, key_pem))
    }

    /// The self-signed certificate kept in `dir`, made (for `names`) and kept there the first time, so
    /// that its fingerprint, which clients pin, stays the same across restarts.
    pub fn self_signed_in(dir: &Path, names: &[String]) -> Result<TlsIdentity, TlsError> {
        let cert = dir.join(SELF_SIGNED_CERT_FILE);
        let key = dir.join(SELF_SIGNED_KEY_FILE);
        if cert.exists() || key.exists() {
            return Self::from_pem_files(&cert, &key);
        }
        std::fs::create_dir_all(dir).map_err(file_error(dir))?;
        let (identity, cert_pem, key_pem) = Self::generate(names)?;
        crate::files::write_new(&key, key_pem.as_bytes(), true).map_err(file_error(&key))?;
        crate::files::write_new(&cert, cert_pem.as_bytes(), false).map_err(file_error(&cert))?;
        Ok(identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_kept_and_keeps_its_fingerprint() {
        let dir = std::env::temp_dir().join(format!("dialtone-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = TlsIdentity::self_signed_in(&dir, &["localhost".into()]).unwrap();
        let again = TlsIdentity::self_signed_in(&dir, &["localhost".into()]).unwrap();
        assert_eq!(first.fingerprint, again.fingerprint);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(SELF_SIGNED_KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_that_are_not_pem_say_so() {
        let dir = std::env::temp_dir().join(format!("dialtone-tls-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        assert!(matches!(TlsIdentity::from_pem_files(&cert, &key), Err(TlsError::NoCertificate(_))));
        let (_, cert_pem, _) = TlsIdentity::generate(&["localhost".into()]).unwrap();
        std::fs::write(&cert, cert_pem).unwrap();
        assert!(matches!(TlsIdentity::from_pem_files(&cert, &key), Err(TlsError::NoKey(_))));
        // A key that is not the certificate's.
        let (_, _, other_key) = TlsIdentity::generate(&["localhost".into()]).unwrap();
        std::fs::write(&key, other_key).unwrap();
        assert!(matches!(TlsIdentity::from_pem_files(&cert, &key), Err(TlsError::Rejected(_))));
        let missing = dir.join("missing.pem");
        let error = TlsIdentity::from_pem_files(&missing, &key).unwrap_err();
        assert!(error.to_string().contains("missing.pem"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
