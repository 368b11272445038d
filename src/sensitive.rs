//! Keeps secret material out of logs and output: `Redacted<T>` prints `***`, and the keyed
//! fingerprints (HMAC-SHA256 under the environment's fingerprint key) that stand in for secret
//! values in state and plans are computed and verified here. Where the key lives is `gcp/`'s
//! business (`gcp::fingerprint_key`); this file only holds it in memory.

use hmac::{Hmac, Mac};
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

/// The scheme prefix of keyed fingerprints: `hmac-sha256:<key id>:<hex>`.
pub const KEYED_SCHEME: &str = "hmac-sha256";

/// The scheme prefix of the fingerprints older builds wrote (salt kept beside them in state).
pub const LEGACY_SCHEME: &str = "sha256";

/// The state attribute where older builds kept a resource's fingerprint salt, in clear beside
/// the fingerprints: read to verify them, dropped when `apply` rewrites them.
pub const LEGACY_SALT_ATTRIBUTE: &str = "value_salt";

/// Separates the fingerprint message from any other use of the key.
const DOMAIN: &[u8] = b"infra secret fingerprint v1";

/// The number of random bytes in a new key: 256 bits.
pub const KEY_BYTES: usize = 32;

/// The environment's fingerprint key: its id (the Secret Manager version it came from) and the
/// MAC keyed with its material, which never leaves memory except into Secret Manager when
/// first created.
#[derive(Clone)]
pub struct FingerprintKey {
    id: String,
    keyed: Hmac<Sha256>,
    /// Older versions of the key that state still names: verified, never used to write.
    previous: Vec<FingerprintKey>,
}

/// Key material too short to be a fingerprint key.
#[derive(Debug, thiserror::Error)]
#[error("a fingerprint key needs at least {KEY_BYTES} bytes, got {0}")]
pub struct ShortKeyError(pub usize);

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "FingerprintKey({}, ***)", self.id)
    }
}

/// How a recorded fingerprint relates to a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A keyed fingerprint of this value under the current key.
    Current,
    /// A fingerprint of this value in an older form (salted, or under an older key version):
    /// it stands, and the next apply rewrites it under the current key.
    Legacy,
    /// Not a fingerprint of this value that this run can confirm (another value, another key).
    Unconfirmed,
}

impl FingerprintKey {
    /// Keys the MAC with material read from (or about to be written to) the key's secret
    /// version `id`; refuses material shorter than 256 bits.
    pub fn new(id: impl Into<String>, material: &[u8]) -> Result<Self, ShortKeyError> {
        if material.len() < KEY_BYTES {
            return Err(ShortKeyError(material.len()));
        }
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(material)
            .map_err(|_| ShortKeyError(material.len()))?;
        Ok(Self {
            id: id.into(),
            keyed,
            previous: Vec::new(),
        })
    }

    /// Adds older versions of the key, so fingerprints made with them still verify (after a
    /// rotation, until the next apply rewrites them).
    pub fn with_previous(mut self, previous: Vec<FingerprintKey>) -> Self {
        self.previous = previous;
        self
    }

    /// Returns fresh key material from the OS CSPRNG.
    pub fn generate_material() -> Vec<u8> {
        let mut bytes = vec![0u8; KEY_BYTES];
        rand::fill(bytes.as_mut_slice());
        bytes
    }

    /// Returns the key's id, as fingerprints name it.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac(&self, address: &str, field: &str, value: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        // Lengths first, so no two (address, field, value) triples share a message.
        for part in [DOMAIN, address.as_bytes(), field.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(&(value.len() as u64).to_be_bytes());
        mac.update(value);
        mac
    }

    /// Returns `hmac-sha256:<key id>:<hex>` of the value of `field` of the resource at
    /// `address`: what state and plans record instead of a secret. Equal values in two
    /// resources or fields get unrelated fingerprints.
    pub fn fingerprint(&self, address: &str, field: &str, value: &[u8]) -> String {
        let tag = self.mac(address, field, value).finalize().into_bytes();
        format!("{KEYED_SCHEME}:{}:{}", self.id, hex::encode(tag))
    }

    /// Returns true when `recorded` is this key's fingerprint of the value (constant-time).
    pub fn verifies(&self, recorded: &str, address: &str, field: &str, value: &[u8]) -> bool {
        let Some((id, tag)) = parse_keyed(recorded) else {
            return false;
        };
        let Ok(tag) = hex::decode(tag) else {
            return false;
        };
        id == self.id && self.mac(address, field, value).verify_slice(&tag).is_ok()
    }

    /// Returns true when `recorded` is an older key version's fingerprint of the value.
    pub fn verifies_previous(
        &self,
        recorded: &str,
        address: &str,
        field: &str,
        value: &[u8],
    ) -> bool {
        self.previous
            .iter()
            .any(|previous| previous.verifies(recorded, address, field, value))
    }
}

/// Splits `hmac-sha256:<key id>:<hex>` into the key id and the hex tag.
pub fn parse_keyed(recorded: &str) -> Option<(&str, &str)> {
    recorded
        .strip_prefix(KEYED_SCHEME)?
        .strip_prefix(':')?
        .split_once(':')
}

/// Judges a recorded fingerprint against a value: keyed under `key`, or (for states written
/// before keyed fingerprints) the salted SHA-256 with the salt state kept beside it.
pub fn judge(
    recorded: &str,
    key: Option<&FingerprintKey>,
    legacy_salt: Option<&str>,
    address: &str,
    field: &str,
    value: &[u8],
) -> Verdict {
    if key.is_some_and(|key| key.verifies(recorded, address, field, value)) {
        return Verdict::Current;
    }
    if key.is_some_and(|key| key.verifies_previous(recorded, address, field, value)) {
        return Verdict::Legacy;
    }
    if let Some(salt) = legacy_salt
        && recorded.starts_with(&format!("{LEGACY_SCHEME}:"))
        && legacy_salted_fingerprint(salt, value) == recorded
    {
        return Verdict::Legacy;
    }
    Verdict::Unconfirmed
}

/// Returns `sha256:<hex>` of the salt followed by the value: the recipe of older builds, which
/// kept the salt in state beside it — so a guessable value could be confirmed offline. Only
/// ever used to verify what such a state recorded, never to write.
pub fn legacy_salted_fingerprint(salt: &str, value: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update([0u8]);
    hasher.update(value);
    format!("{LEGACY_SCHEME}:{}", hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> FingerprintKey {
        FingerprintKey::new(id, &[byte; KEY_BYTES]).expect("key")
    }

    #[test]
    fn redacted_never_prints_its_value() {
        let secret = Redacted::new("hunter2".to_string());
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        assert_eq!(secret.expose(), "hunter2");
        let key = key("1", 7);
        assert_eq!(format!("{key:?}"), "FingerprintKey(1, ***)");
        assert!(FingerprintKey::new("1", &[7; KEY_BYTES - 1]).is_err());
    }

    #[test]
    fn keyed_fingerprints_depend_on_key_address_field_and_value() {
        let first = key("1", 1).fingerprint("secret.a", "value", b"500");
        assert!(first.starts_with("hmac-sha256:1:"), "{first}");
        assert_eq!(first, key("1", 1).fingerprint("secret.a", "value", b"500"));
        assert_ne!(first, key("1", 2).fingerprint("secret.a", "value", b"500"));
        assert_ne!(first, key("1", 1).fingerprint("secret.b", "value", b"500"));
        assert_ne!(first, key("1", 1).fingerprint("secret.a", "other", b"500"));
        assert_ne!(first, key("1", 1).fingerprint("secret.a", "value", b"501"));
        // Length-prefixed parts: moving bytes between address and field changes the message.
        assert_ne!(
            key("1", 1).fingerprint("ab", "c", b"v"),
            key("1", 1).fingerprint("a", "bc", b"v")
        );
        assert!(!first.contains("500"));
    }

    #[test]
    fn verification_needs_the_same_key_id_and_material() {
        let recorded = key("1", 1).fingerprint("secret.a", "value", b"5000");
        assert!(key("1", 1).verifies(&recorded, "secret.a", "value", b"5000"));
        assert!(!key("1", 1).verifies(&recorded, "secret.a", "value", b"5001"));
        assert!(!key("1", 2).verifies(&recorded, "secret.a", "value", b"5000"));
        assert!(!key("2", 1).verifies(&recorded, "secret.a", "value", b"5000"));
        assert!(!key("1", 1).verifies("hmac-sha256:1:zz", "secret.a", "value", b"5000"));
        assert!(!key("1", 1).verifies("sha256:00", "secret.a", "value", b"5000"));
    }

    #[test]
    fn legacy_fingerprints_are_judged_with_their_salt_only() {
        let recorded = legacy_salted_fingerprint("salt", b"5000");
        let current = key("1", 1);
        assert_eq!(
            judge(
                &recorded,
                Some(&current),
                Some("salt"),
                "a",
                "value",
                b"5000"
            ),
            Verdict::Legacy
        );
        assert_eq!(
            judge(
                &recorded,
                Some(&current),
                Some("salt"),
                "a",
                "value",
                b"5001"
            ),
            Verdict::Unconfirmed
        );
        assert_eq!(
            judge(&recorded, None, None, "a", "value", b"5000"),
            Verdict::Unconfirmed
        );
        let keyed = current.fingerprint("a", "value", b"5000");
        assert_eq!(
            judge(&keyed, Some(&current), Some("salt"), "a", "value", b"5000"),
            Verdict::Current
        );
        let rotated = key("2", 2).with_previous(vec![key("1", 1)]);
        assert_eq!(
            judge(&keyed, Some(&rotated), None, "a", "value", b"5000"),
            Verdict::Legacy
        );
        assert_eq!(
            judge(&keyed, Some(&rotated), None, "a", "value", b"5001"),
            Verdict::Unconfirmed
        );
        assert_eq!(
            judge(&keyed, Some(&key("2", 2)), None, "a", "value", b"5000"),
            Verdict::Unconfirmed
        );
        assert_eq!(
            judge(&keyed, None, Some("salt"), "a", "value", b"5000"),
            Verdict::Unconfirmed
        );
    }

    /// What an attacker holding only a state file can do: try guesses against the recorded
    /// fingerprint. With the old recipe the salt is in the file and a low-entropy value falls
    /// at once; with the keyed recipe no guess confirms without the key.
    #[test]
    fn a_low_entropy_value_cannot_be_confirmed_from_state_without_the_key() {
        let guesses: Vec<String> = (0..=10_000).map(|number| number.to_string()).collect();
        let legacy = legacy_salted_fingerprint("0123abcd", b"5000");
        let found_legacy = guesses
            .iter()
            .find(|guess| legacy_salted_fingerprint("0123abcd", guess.as_bytes()) == legacy);
        assert_eq!(found_legacy.map(String::as_str), Some("5000"));

        let environment_key = key("3", 42);
        let keyed = environment_key.fingerprint("secret.beta[\"CREDITS\"]", "value", b"5000");
        let (key_id, tag) = parse_keyed(&keyed).expect("keyed form");
        // Everything the file offers as a salt: the key id, the tag, the whole fingerprint.
        for salt in [key_id, tag, keyed.as_str(), ""] {
            assert!(
                !guesses
                    .iter()
                    .any(|guess| legacy_salted_fingerprint(salt, guess.as_bytes()) == keyed),
                "guessed with salt {salt:?}"
            );
        }
        // A key guessed by an attacker (any other material) confirms nothing either.
        let wrong_key = key("3", 41);
        assert!(!guesses.iter().any(|guess| wrong_key.verifies(
            &keyed,
            "secret.beta[\"CREDITS\"]",
            "value",
            guess.as_bytes()
        )));
        // With the key the same search does find it: the check above can fail.
        let confirmed: Vec<&String> = guesses
            .iter()
            .filter(|guess| {
                environment_key.verifies(
                    &keyed,
                    "secret.beta[\"CREDITS\"]",
                    "value",
                    guess.as_bytes(),
                )
            })
            .collect();
        assert_eq!(confirmed, vec!["5000"]);
    }
}
