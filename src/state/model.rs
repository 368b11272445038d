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
        "{location}: not a valid state document: {message}\n  hint: restore a good copy, or move it aside to start from an empty state"
    )]
    Malformed { location: String, message: String },
    #[error(
        "{location}: format {found} is newer than this build reads ({STATE_FORMAT})\n  hint: upgrade infra"
    )]
    Format { location: String, found: u32 },
    #[error(
        "{location}: checksum mismatch (recorded {recorded}, computed {computed}): the file was edited or damaged\n  hint: restore a good copy; edit state only with `infra state …` commands"
    )]
    Checksum {
        location: String,
        recorded: String,
        computed: String,
    },
    #[error("{location}: state is for environment `{found}`, not `{expected}`")]
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

    fn body_checksum(&self) -> String {
        let mut body = self.clone();
        body.checksum = String::new();
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    /// Serializes with a fresh checksum; the output is byte-identical for equal states.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut sealed = self.clone();
        sealed
            .resources
            .sort_by(|left, right| left.address.cmp(&right.address));
        sealed.checksum = sealed.body_checksum();
        let mut bytes = serde_json::to_vec_pretty(&sealed).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Parses and verifies a state document; `location` names it in errors.
    pub fn from_bytes(
        bytes: &[u8],
        location: &str,
        expected_env: &str,
    ) -> Result<Self, StateDocumentError> {
        let mut state: State =
            serde_json::from_slice(bytes).map_err(|error| StateDocumentError::Malformed {
                location: location.to_string(),
                message: error.to_string(),
            })?;
        if state.format > STATE_FORMAT {
            return Err(StateDocumentError::Format {
                location: location.to_string(),
                found: state.format,
            });
        }
        let computed = state.body_checksum();
        if state.checksum != computed {
            return Err(StateDocumentError::Checksum {
                location: location.to_string(),
                recorded: state.checksum.clone(),
                computed,
            });
        }
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
        if let Some(pair) = state
            .resources
            .windows(2)
            .find(|pair| pair[0].address == pair[1].address)
        {
            return Err(StateDocumentError::Malformed {
                location: location.to_string(),
                message: format!("the address `{}` appears twice", pair[0].address),
            });
        }
        Ok(state)
    }
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
    fn another_environment_is_refused() {
        let error = State::from_bytes(&sample().to_bytes(), "x", "prod").expect_err("wrong env");
        assert!(matches!(error, StateDocumentError::WrongEnvironment { .. }));
    }
}
