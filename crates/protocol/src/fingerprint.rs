//! A server certificate's fingerprint: what a client pins when the server's certificate is self-signed.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The SHA-256 of a certificate's DER bytes. Written as 64 hexadecimal digits; colons between byte
/// pairs (as browsers and `openssl x509 -fingerprint` show them) and either case are accepted.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

/// Why a text is not a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a certificate fingerprint is 64 hexadecimal digits (SHA-256), got {0:?}")]
pub struct FingerprintError(String);

impl Fingerprint {
    /// The fingerprint of a certificate in DER form.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let shown = || FingerprintError(text.chars().take(100).collect());
        let digits: Vec<u8> = text.trim().bytes().filter(|b| *b != b':').collect();
        if digits.len() != 64 {
            return Err(shown());
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| shown())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| shown())?;
        }
        Ok(Fingerprint(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_reads_back_as_written_with_or_without_colons() {
        let fingerprint = Fingerprint::of_der(b"certificate");
        let text = fingerprint.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<Fingerprint>(), Ok(fingerprint));
        let colons: Vec<String> =
            text.as_bytes().chunks(2).map(|p| String::from_utf8_lossy(p).to_uppercase()).collect();
        assert_eq!(colons.join(":").parse::<Fingerprint>(), Ok(fingerprint));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(63), &"a".repeat(66), "ä".repeat(32).as_str()] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad:?}");
        }
    }
}
