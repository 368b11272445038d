//! Keeps secret material out of logs and output: `Redacted<T>` prints `***`, and the salted
//! fingerprints that stand in for secret values in state and plans are computed here.

use sha2::{Digest, Sha256};
use std::fmt;

/// Wraps a value whose `Debug` and `Display` must never show it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Redacted<T>(T);

impl<T> Redacted<T> {
    /// Wraps a secret value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// Returns the secret value; every caller is a place where the secret leaves its box.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("***")
    }
}

impl<T> fmt::Display for Redacted<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("***")
    }
}

/// Returns `sha256:<hex>` of the salt followed by the value: what state and plans record
/// instead of a secret.
pub fn salted_fingerprint(salt: &str, value: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update([0u8]);
    hasher.update(value);
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Returns a fresh random salt (128 bits from the OS CSPRNG, hex).
pub fn new_salt() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_never_prints_its_value() {
        let secret = Redacted::new("hunter2".to_string());
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn fingerprint_depends_on_salt_and_value() {
        let first = salted_fingerprint("a", b"500");
        assert_eq!(first, salted_fingerprint("a", b"500"));
        assert_ne!(first, salted_fingerprint("b", b"500"));
        assert_ne!(first, salted_fingerprint("a", b"501"));
        assert!(!first.contains("500"));
    }
}
