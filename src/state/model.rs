//! The state document: lineage, serial, checksum, the resources `infra` manages with their
//! normalized attributes (never a secret value), and outputs. Serialization and integrity checks
//! live here; where the document is kept lives in the backends.

use crate::value::{Attributes, Value};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The state format this build reads and writes.
pub const STATE_FORMAT: u32 = 1;

/// One environment's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub format: u32,
    pub lineage: String,
    pub serial: u64,
    #[serde(default)]
    pub checksum: String,
    pub env: String,
    pub resources: Vec<StateResource>,
    #[serde(default)]
    pub outputs: BTreeMap<String, StateOutput>,
}

/// A managed object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StateResource {
    pub address: String,
    pub kind: String,
    /// The full resource name (`projects/p/secrets/s`).
    pub id: String,
    /// `creating` records the intent before a create, so an interrupted run adopts the object.
    #[serde(default, skip_serializing_if = "ResourceStatus::is_created")]
    pub status: ResourceStatus,
    pub attributes: Attributes,
    #[serde(default)]
    pub dependencies: Vec<String>,
}

/// Whether a resource is known to exist.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ResourceStatus {
    #[default]
    Created,
    Creating,
}

impl ResourceStatus {
    fn is_created(&self) -> bool {
        *self == ResourceStatus::Created
    }
}

/// A recorded output value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StateOutput {
    pub value: Value,
    #[serde(default)]
    pub sensitive: bool,
}

/// A state document that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateDocumentError {
    #[error(
        "{location}: not a valid state document: {message}\n  hint: restore a good copy (the local backend keeps the previous state as `<env>.state.json.backup`), or move it aside to start from an empty state"
    )]
    Malformed { location: String, message: String },
    #[error(
        "{location}: format {found} is newer than this build reads ({STATE_FORMAT})\n  hint: upgrade infra"
    )]
    Format { location: String, found: u32 },
    #[error(
        "{location}: checksum mismatch (recorded {recorded}, computed {computed}): the file was edited or damaged\n  hint: restore a good copy (the local backend keeps the previous state as `<env>.state.json.backup`); a deliberate edit goes in with `infra state push --force FILE`"
    )]
    Checksum {
        location: String,
        recorded: String,
        computed: String,
    },
    #[error(
        "{location}: state is for environment `{found}`, not `{expected}`\n  hint: check `--env` and the backend's path; another environment's state never goes here"
    )]
    WrongEnvironment {
        location: String,
        found: String,
        expected: String,
    },
}

impl State {
    /// Returns a new, empty state with a fresh lineage.
    pub fn new(env: &str) -> Self {
        Self {
            format: STATE_FORMAT,
            lineage: uuid::Uuid::new_v4().to_string(),
            serial: 0,
            checksum: String::new(),
            env: env.to_string(),
            resources: Vec::new(),
            outputs: BTreeMap::new(),
        }
    }

    /// Finds a resource by address (resources are kept sorted by address: a binary search).
    pub fn resource(&self, address: &str) -> Option<&StateResource> {
        self.position(address)
            .ok()
            .map(|position| &self.resources[position])
    }

    fn position(&self, address: &str) -> Result<usize, usize> {
        self.resources
            .binary_search_by(|existing| existing.address.as_str().cmp(address))
    }

    /// Inserts or replaces a resource, keeping resources sorted by address.
    pub fn upsert(&mut self, resource: StateResource) {
        match self.position(&resource.address) {
            Ok(position) => self.resources[position] = resource,
            Err(position) => self.resources.insert(position, resource),
        }
    }

    /// Removes a resource by address.
    pub fn remove(&mut self, address: &str) -> Option<StateResource> {
        let position = self.position(address).ok()?;
        Some(self.resources.remove(position))
    }

    /// Returns the addresses in the state closest to `address`, best first, for "did you mean".
    pub fn similar_addresses(&self, address: &str) -> Vec<&str> {
        let mut scored: Vec<(usize, &str)> = self
            .resources
            .iter()
            .map(|resource| {
                (
                    strsim::levenshtein(address, &resource.address),
                    resource.address.as_str(),
                )
            })
            .filter(|(distance, candidate)| {
                *distance <= address.len().max(candidate.len()) / 3 + 1
                    || candidate.contains(address)
                    || address.contains(*candidate)
            })
            .collect();
        scored.sort();
        // The closest only: a near miss should not drown in merely similar addresses.
        let best = scored.first().map(|(distance, _)| *distance);
        scored
            .into_iter()
            .take_while(|(distance, _)| Some(*distance) == best)
            .take(3)
            .map(|(_, found)| found)
            .collect()
    }

    /// Serializes with a fresh checksum, once: the body is serialized compactly with an empty
    /// checksum (the bytes the checksum covers, the rule since format 1), then written with the
    /// checksum filled in and one resource per line. Equal states give identical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut resources: Vec<&StateResource> = self.resources.iter().collect();
        resources.sort_by(|left, right| left.address.cmp(&right.address));
        let serialized: Vec<Vec<u8>> = resources
            .iter()
            .map(|resource| resource.to_bytes())
            .collect();
        self.to_bytes_around(&serialized)
    }

    /// Serializes like `to_bytes`, with `serialized` standing for the resources (each as its
    /// `StateResource::to_bytes`, sorted by address); `self.resources` is not read. A writer
    /// that keeps each resource serialized since it changed writes the whole state for the
    /// price of a copy and a hash.
    pub fn to_bytes_around(&self, serialized: &[impl AsRef<[u8]>]) -> Vec<u8> {
        let frame = serde_json::to_vec(&Frame {
            format: self.format,
            lineage: &self.lineage,
            serial: self.serial,
            checksum: "",
            env: &self.env,
            resources: [],
            outputs: &self.outputs,
        })
        .unwrap_or_default();
        // Strings in JSON escape their quotes, so these markers occur only as the keys themselves.
        let resources_at = find(&frame, RESOURCES_MARKER)
            .map(|at| at + RESOURCES_MARKER.len() - 1)
            .unwrap_or(frame.len());
        let (head, tail) = frame.split_at(resources_at);
        let mut hasher = Sha256::new();
        hasher.update(head);
        for (index, resource) in serialized.iter().enumerate() {
            if index > 0 {
                hasher.update(b",");
            }
            hasher.update(resource.as_ref());
        }
        hasher.update(tail);
        let checksum = format!("sha256:{}", hex::encode(hasher.finalize()));
        let checksum_at = find(head, CHECKSUM_MARKER)
            .map(|at| at + CHECKSUM_MARKER.len() - 1)
            .unwrap_or(0);
        let total: usize = serialized
            .iter()
            .map(|bytes| bytes.as_ref().len() + 2)
            .sum();
        let mut bytes = Vec::with_capacity(frame.len() + checksum.len() + total + 2);
        bytes.extend_from_slice(&head[..checksum_at]);
        bytes.extend_from_slice(checksum.as_bytes());
        bytes.extend_from_slice(&head[checksum_at..]);
        for (index, resource) in serialized.iter().enumerate() {
            bytes.extend_from_slice(if index > 0 { b",\n" } else { b"\n" });
            bytes.extend_from_slice(resource.as_ref());
        }
        if !serialized.is_empty() {
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(tail);
        bytes.push(b'\n');
        bytes
    }

    /// Returns the checksum the document should carry: SHA-256 over its compact serialization
    /// with an empty `checksum`.
    fn body_checksum(&self) -> String {
        // The same bytes as the document with an empty checksum, hashed as they are produced:
        // no copy of the state, no buffer of its serialization.
        let body = Body {
            format: self.format,
            lineage: &self.lineage,
            serial: self.serial,
            checksum: "",
            env: &self.env,
            resources: &self.resources,
            outputs: &self.outputs,
        };
        let mut hasher = Sha256::new();
        let _ = serde_json::to_writer(&mut hasher, &body);
        format!("sha256:{}", hex::encode(hasher.finalize()))
    }

    /// Parses and verifies a state document; `location` names it in errors.
    pub fn from_bytes(
        bytes: &[u8],
        location: &str,
        expected_env: &str,
    ) -> Result<Self, StateDocumentError> {
        let (state, edited) = Self::from_bytes_allowing_edits(bytes, location, expected_env)?;
        match edited {
            Some(computed) => Err(StateDocumentError::Checksum {
                location: location.to_string(),
                recorded: state.checksum,
                computed,
            }),
            None => Ok(state),
        }
    }

    /// Parses and checks a state document like [`State::from_bytes`], except that a checksum
    /// mismatch (a hand edit) is returned as `Some(computed checksum)` instead of refused:
    /// `state push --force` takes deliberate edits.
    pub fn from_bytes_allowing_edits(
        bytes: &[u8],
        location: &str,
        expected_env: &str,
    ) -> Result<(Self, Option<String>), StateDocumentError> {
        let malformed = |message: String| StateDocumentError::Malformed {
            location: location.to_string(),
            message,
        };
        let mut state: State =
            serde_json::from_slice(bytes).map_err(|error| malformed(error.to_string()))?;
        if state.format > STATE_FORMAT {
            return Err(StateDocumentError::Format {
                location: location.to_string(),
                found: state.format,
            });
        }
        if state.format == 0 {
            return Err(malformed("format 0 is not a state format".into()));
        }
        if uuid::Uuid::parse_str(&state.lineage).is_err() {
            return Err(malformed(format!(
                "lineage `{}` is not a UUID",
                state.lineage
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for resource in &state.resources {
            if let Some(problem) = resource.problem() {
                return Err(malformed(problem));
            }
            if !seen.insert(resource.address.as_str()) {
                return Err(malformed(format!(
                    "address `{}` appears twice",
                    resource.address
                )));
            }
        }
        let computed = state.body_checksum();
        let edited = (state.checksum != computed).then_some(computed);
        if state.env != expected_env {
            return Err(StateDocumentError::WrongEnvironment {
                location: location.to_string(),
                found: state.env.clone(),
                expected: expected_env.to_string(),
            });
        }
        // Lookups are binary searches: a document written by hand may be in any order.
        state
            .resources
            .sort_by(|left, right| left.address.cmp(&right.address));
        Ok((state, edited))
    }
}

impl StateResource {
    /// Serializes the record as one line of the state document (compact JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Returns what makes this record unusable, if anything: an empty or control-character
    /// address, kind or id.
    fn problem(&self) -> Option<String> {
        let bad = |text: &str| text.trim().is_empty() || text.chars().any(char::is_control);
        if bad(&self.address) {
            return Some(format!(
                "address {:?} is not a resource address",
                self.address
            ));
        }
        if bad(&self.kind) {
            return Some(format!("`{}`: kind {:?} is empty", self.address, self.kind));
        }
        if bad(&self.id) {
            return Some(format!(
                "`{}`: id {:?} is not a resource name",
                self.address, self.id
            ));
        }
        None
    }
}

/// The state document as its checksum covers it, borrowed from a `State` (same fields, same
/// order, so the same bytes).
#[derive(Serialize)]
struct Body<'a> {
    format: u32,
    lineage: &'a str,
    serial: u64,
    checksum: &'a str,
    env: &'a str,
    resources: &'a [StateResource],
    outputs: &'a BTreeMap<String, StateOutput>,
}

/// The state document without its resources: serialized once per write around them.
#[derive(Serialize)]
struct Frame<'a> {
    format: u32,
    lineage: &'a str,
    serial: u64,
    checksum: &'a str,
    env: &'a str,
    resources: [(); 0],
    outputs: &'a BTreeMap<String, StateOutput>,
}

const RESOURCES_MARKER: &[u8] = b"\"resources\":[]";
const CHECKSUM_MARKER: &[u8] = b"\"checksum\":\"\"";

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let mut state = State::new("local");
        state.upsert(StateResource {
            address: "secret.b".into(),
            kind: "secret".into(),
            id: "projects/p/secrets/b".into(),
            status: ResourceStatus::Created,
            attributes: Attributes::from([("value".into(), Value::sensitive("sha256:00"))]),
            dependencies: vec![],
        });
        state.upsert(StateResource {
            address: "secret.a".into(),
            kind: "secret".into(),
            id: "projects/p/secrets/a".into(),
            status: ResourceStatus::Creating,
            attributes: Attributes::new(),
            dependencies: vec!["secret.b".into()],
        });
        state
    }

    #[test]
    fn round_trip_verifies_the_checksum() {
        let state = sample();
        let bytes = state.to_bytes();
        let back = State::from_bytes(&bytes, "test", "local").expect("valid");
        assert_eq!(back.resources[0].address, "secret.a");
        assert_eq!(back.to_bytes(), bytes, "serialization is deterministic");
    }

    #[test]
    fn an_edited_file_fails_its_checksum() {
        let text = String::from_utf8(sample().to_bytes())
            .expect("utf8")
            .replace("secrets/b", "secrets/c");
        let error = State::from_bytes(text.as_bytes(), "state/local.state.json", "local")
            .expect_err("tampered");
        assert!(error.to_string().contains("checksum mismatch"), "{error}");
    }

    #[test]
    fn the_written_bytes_carry_the_checksum_of_the_compact_body() {
        let state = sample();
        let bytes = state.to_bytes();
        let back: State = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(back.checksum, state.body_checksum());
        let text = String::from_utf8(bytes).expect("utf8");
        assert_eq!(
            text.lines().count(),
            4,
            "one line per resource, readable: {text}"
        );
    }

    #[test]
    fn a_pretty_printed_state_of_earlier_builds_still_verifies() {
        let mut state = sample();
        state.checksum = state.body_checksum();
        let pretty = serde_json::to_vec_pretty(&state).expect("json");
        State::from_bytes(&pretty, "old", "local").expect("the checksum rule is unchanged");
    }

    #[test]
    fn a_hand_edit_is_reported_not_refused_when_allowed() {
        let text = String::from_utf8(sample().to_bytes())
            .expect("utf8")
            .replace("secrets/b", "secrets/c");
        let (state, edited) =
            State::from_bytes_allowing_edits(text.as_bytes(), "x", "local").expect("parses");
        assert!(edited.is_some());
        assert_eq!(state.resources[1].id, "projects/p/secrets/c");
    }

    #[test]
    fn duplicate_addresses_and_empty_ids_are_malformed() {
        let mut state = sample();
        state.resources[1].address = "secret.a".into();
        let error = State::from_bytes(&state.to_bytes(), "x", "local").expect_err("dup");
        assert!(error.to_string().contains("appears twice"), "{error}");
        let mut state = sample();
        state.resources[0].id = String::new();
        let error = State::from_bytes(&state.to_bytes(), "x", "local").expect_err("empty id");
        assert!(error.to_string().contains("not a resource name"), "{error}");
    }

    #[test]
    fn similar_addresses_suggest_the_closest() {
        let state = sample();
        assert_eq!(state.similar_addresses("secret.aa"), vec!["secret.a"]);
        assert_eq!(
            state.similar_addresses("secret.c"),
            vec!["secret.a", "secret.b"]
        );
        assert!(state.similar_addresses("cloud_run_service.api").is_empty());
    }

    #[test]
    fn another_environment_is_refused() {
        let error = State::from_bytes(&sample().to_bytes(), "x", "prod").expect_err("wrong env");
        assert!(matches!(error, StateDocumentError::WrongEnvironment { .. }));
    }
}
