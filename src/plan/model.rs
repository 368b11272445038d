//! The plan: per resource an action with before/after attributes (secrets as fingerprints,
//! unknowns marked), the changed paths and update mask, drift found while refreshing, and
//! output changes. It serializes as the JSON plan (docs/plan-json.md) and as the plan file.

use crate::value::{Attributes, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The plan format this build writes and reads.
/// Format 2 dropped the plan-wide salt: fingerprints are keyed (docs/state.md).
pub const PLAN_FORMAT: u32 = 2;

/// A plan for one environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    pub format: u32,
    pub env: String,
    /// The state this plan was made against: `apply FILE` refuses any other.
    pub lineage: String,
    pub serial: u64,
    /// SHA-256 of every configuration file read: `apply FILE` refuses a changed configuration.
    pub config_digest: String,
    pub destroy: bool,
    /// A `--refresh-only` plan: its changes bring the state in line with the live objects and
    /// touch no object (plan/refresh_only.rs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refresh_only: bool,
    /// The `--target` addresses this plan was narrowed to (plan/target.rs); empty for all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    pub changes: Vec<ResourceChange>,
    pub drift: Vec<Drift>,
    pub outputs: BTreeMap<String, OutputChange>,
}

/// What happens to one resource.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    NoOp,
    Create,
    Update,
    Replace,
    Delete,
}

impl Action {
    /// Returns the symbol plans show (`+ ~ - -/+`).
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }
}

/// One resource's planned change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResourceChange {
    pub address: String,
    pub kind: String,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Why, when it is not plain configuration (drift, a replaced parent, --replace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub before: Option<Attributes>,
    pub after: Option<Attributes>,
    /// Attribute paths whose value changes (`labels.env`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// Attribute paths that force replacement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace_paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub update_mask: Vec<String>,
    /// Fields whose values are secrets (shown as `(sensitive value)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
}

/// A difference between the last applied state and the live object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Drift {
    pub address: String,
    /// `deleted` or `changed`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

/// An output's planned value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputChange {
    pub action: Action,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub sensitive: bool,
}

impl Plan {
    /// Returns true when applying would change anything (resources or outputs); for a
    /// refresh-only plan, when there is drift to record.
    pub fn has_changes(&self) -> bool {
        if self.refresh_only {
            return !self.changes.is_empty();
        }
        self.changes
            .iter()
            .any(|change| change.action != Action::NoOp)
            || self
                .outputs
                .values()
                .any(|output| output.action != Action::NoOp)
    }

    /// Returns the counts Terraform prints: to add, to change, to destroy.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        for change in &self.changes {
            match change.action {
                Action::Create => counts.0 += 1,
                Action::Update => counts.1 += 1,
                Action::Replace => {
                    counts.0 += 1;
                    counts.2 += 1;
                }
                Action::Delete => counts.2 += 1,
                Action::NoOp => {}
            }
        }
        counts
    }

    /// Finds a change by address.
    pub fn change(&self, address: &str) -> Option<&ResourceChange> {
        // Changes are sorted by address when planned; a plan file read back keeps that order
        // (and one edited out of order fails its stale check rather than misleading a lookup).
        self.changes
            .binary_search_by(|change| change.address.as_str().cmp(address))
            .ok()
            .map(|position| &self.changes[position])
    }
}
