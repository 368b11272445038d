//! The emulator's data: what Google would hold (secrets, versions with their payloads, IAM
//! policies), with persistence to `<data>/emulator.json` after every change. This is Google's
//! side of the wire; `infra`'s own state never holds these payloads.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// Everything the emulator stores.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Store {
    /// Increments on every change; etags derive from it.
    pub revision: u64,
    /// Secrets by canonical name (`projects/<number>/secrets/<id>`).
    pub secrets: BTreeMap<String, SecretRecord>,
    /// IAM policies by canonical resource name.
    pub policies: BTreeMap<String, PolicyRecord>,
    /// Service accounts by `projects/<project id>/serviceAccounts/<email>`.
    #[serde(default)]
    pub service_accounts: BTreeMap<String, ServiceAccountRecord>,
    /// Deleted service accounts by unique id, which `undelete` can restore.
    #[serde(default)]
    pub deleted_service_accounts: BTreeMap<String, (String, ServiceAccountRecord)>,
    /// Cloud Run services by `projects/<number>/locations/<region>/services/<id>`.
    #[serde(default)]
    pub run_services: BTreeMap<String, RunServiceRecord>,
    /// Cloud Run long-running operations by name.
    #[serde(default)]
    pub run_operations: BTreeMap<String, OperationRecord>,
    /// Dashboards, alert policies, notification channels and budgets: by canonical name, the
    /// resource as the API returns it (output-only fields included).
    #[serde(default)]
    pub documents: BTreeMap<String, Json>,
    /// Cloud Storage buckets by name.
    #[serde(default)]
    pub buckets: BTreeMap<String, BucketRecord>,
    /// Cloud Storage objects by bucket and name: every generation, oldest first.
    #[serde(default)]
    pub objects: BTreeMap<String, BTreeMap<String, Vec<ObjectGeneration>>>,
    /// The last generation number handed out (they only grow, like Google's).
    #[serde(default)]
    pub last_generation: i64,
    /// Project ids seen in request paths, by project number, so that a project read by its
    /// number answers with its id.
    #[serde(default)]
    pub project_ids: BTreeMap<String, String>,
    /// Realism, never persisted: when each secret-accessor grant was made (by
    /// `secret|member`, in milliseconds since the epoch), and how long one takes to reach a
    /// starting Cloud Run revision (0: at once; `RealismOptions::secret_access_propagation`).
    #[serde(skip)]
    pub secret_grants: BTreeMap<String, i64>,
    #[serde(skip)]
    pub access_propagation_ms: i64,
    /// The currency of each billing account given one (`infra emulator
    /// --billing-account-currency`); the others bill in USD. Never persisted: the flags say it.
    #[serde(skip)]
    pub billing_currencies: BTreeMap<String, String>,
    /// Open resumable uploads by upload id.
    #[serde(default)]
    pub upload_sessions: BTreeMap<String, UploadSession>,
    // Secret Manager's eventually consistent reads (realism, never persisted).
    /// The views of each secret's versions that `latest`, aliases and version lists may still
    /// answer from, by canonical secret name.
    #[serde(skip)]
    pub secret_views: BTreeMap<String, super::secret_views::ViewHistory>,
    /// How long those reads lag a change, in milliseconds (0: they never lag).
    #[serde(skip)]
    pub secret_alias_lag_ms: i64,
    // IAM read-after-write (issue 18, IAM): realism, never persisted.
    /// How long a `getIamPolicy` keeps answering the policy a `setIamPolicy` replaced, in
    /// milliseconds (0: reads are consistent at once).
    #[serde(skip)]
    pub policy_read_lag_ms: i64,
    /// The policy each recent `setIamPolicy` replaced (`None`: there was none), by canonical
    /// resource name, with when the write was made (milliseconds since the epoch).
    #[serde(skip)]
    pub replaced_policies: BTreeMap<String, (i64, Option<PolicyRecord>)>,
}

/// An open resumable upload: where it goes and what has arrived.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadSession {
    pub bucket: String,
    pub name: String,
    pub metadata: Json,
    pub content_type: String,
    /// Base64 of the bytes persisted so far.
    pub data: String,
    /// The preconditions given when the session opened, checked when it completes.
    pub query: Vec<(String, String)>,
    /// The object the session finished with: a later status check or a re-sent last chunk is
    /// answered with it, as the session URI stays valid after the upload completes.
    #[serde(default)]
    pub completed: Option<Json>,
    /// When it completed (RFC 3339), so finished sessions can be forgotten after a while.
    #[serde(default)]
    pub completed_at: Option<String>,
}

/// A stored bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketRecord {
    pub project_number: String,
    pub versioning: bool,
    pub metageneration: i64,
    pub time_created: String,
    pub location: String,
    /// When the bucket's metadata last changed; `None` until a patch.
    #[serde(default)]
    pub updated: Option<String>,
    #[serde(default)]
    pub labels: serde_json::Map<String, Json>,
    /// The other writable bucket fields (`storageClass`, `lifecycle`, `cors`, …), as written.
    #[serde(default)]
    pub extra: serde_json::Map<String, Json>,
}

/// One generation of a stored object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectGeneration {
    pub generation: i64,
    pub metageneration: i64,
    pub data: String,
    pub content_type: String,
    pub time_created: String,
    pub updated: String,
    /// Set when this generation stopped being the live one.
    pub time_deleted: Option<String>,
    #[serde(default)]
    pub metadata: serde_json::Map<String, Json>,
    /// The other writable object fields (`cacheControl`, `contentDisposition`, …), as written.
    #[serde(default)]
    pub extra: serde_json::Map<String, Json>,
    /// How many objects a composite object was composed of; 0 for an uploaded one.
    #[serde(default)]
    pub component_count: u32,
    /// The storage class it was written with; `None` (older stores) is STANDARD.
    #[serde(default)]
    pub storage_class: Option<String>,
    /// The data's CRC32C and MD5, base64 as Cloud Storage shows them, computed once when it is
    /// written (every metadata answer shows them); empty in older stores, computed then.
    #[serde(default)]
    pub crc32c: String,
    #[serde(default)]
    pub md5_hash: String,
}

/// A stored Cloud Run service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunServiceRecord {
    /// The settable fields, server defaults filled in.
    pub body: serde_json::Map<String, Json>,
    pub uid: String,
    pub generation: u64,
    pub observed_generation: u64,
    pub create_time: String,
    pub update_time: String,
    pub etag: String,
    /// Revision names, oldest first.
    pub revisions: Vec<String>,
    pub latest_ready: Option<String>,
    /// When the current reconciliation finishes (Unix milliseconds); `None` when settled.
    pub settle_at: Option<i64>,
    /// Why the last reconciliation failed, if it did.
    pub failure: Option<String>,
    /// Each revision as it was created (its template and creation time), by revision id.
    #[serde(default)]
    pub revision_records: BTreeMap<String, Json>,
    /// Why each revision that failed to start failed, by revision id: a failed revision stays
    /// failed (only a new revision is judged again).
    #[serde(default)]
    pub failed_revisions: BTreeMap<String, String>,
}

/// A stored long-running operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperationRecord {
    pub service: String,
    pub done_at: i64,
    /// `true` for a delete, whose response is what was deleted (the metadata).
    pub deletes: bool,
    /// For a revision's delete: the revision's full name.
    #[serde(default)]
    pub revision: Option<String>,
    /// The service as it was when the operation started (the metadata).
    pub metadata: Json,
}

/// A stored service account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceAccountRecord {
    pub project_id: String,
    pub email: String,
    pub unique_id: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub etag: String,
    #[serde(default)]
    pub disabled: bool,
}

/// A stored secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretRecord {
    /// The settable fields as the client sent them (camelCase JSON).
    pub body: serde_json::Map<String, Json>,
    pub create_time: String,
    pub etag: String,
    pub next_version: u64,
    pub versions: BTreeMap<u64, VersionRecord>,
}

/// A stored secret version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionRecord {
    pub create_time: String,
    pub state: String,
    pub etag: String,
    /// Base64 payload; `None` once destroyed.
    pub data: Option<String>,
    pub crc32c: String,
    pub client_checksum: bool,
    pub destroy_time: Option<String>,
    /// Set when a destroy waits out the secret's `versionDestroyTtl`.
    #[serde(default)]
    pub scheduled_destroy_time: Option<String>,
}

/// A stored IAM policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub version: i64,
    pub bindings: Vec<Json>,
    /// `auditConfigs`, written only when a `setIamPolicy` mask names them.
    #[serde(default)]
    pub audit_configs: Vec<Json>,
    pub etag: String,
}

impl Store {
    /// Advances the revision and returns an opaque etag for it.
    pub fn next_etag(&mut self) -> String {
        use base64::Engine;
        self.revision += 1;
        base64::engine::general_purpose::STANDARD.encode(self.revision.to_be_bytes())
    }
}

/// Returns the project number the emulator assigns to a project id (numbers map to themselves),
/// as Google answers with `projects/<number>/…` whatever the request said.
pub fn project_number(project: &str) -> String {
    if !project.is_empty() && project.chars().all(|c| c.is_ascii_digit()) {
        return project.to_string();
    }
    // FNV-1a: stable across runs and builds.
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in project.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{}", 100_000_000_000 + hash % 900_000_000_000)
}

/// Returns the current time as Google formats timestamps.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_numbers_are_stable_twelve_digit_numbers() {
        let number = project_number("br-stage-4821");
        assert_eq!(number.len(), 12);
        assert_eq!(number, project_number("br-stage-4821"));
        assert_ne!(number, project_number("br-dev-1"));
        assert_eq!(project_number("123"), "123");
    }

    #[test]
    fn etags_change_on_every_revision() {
        let mut store = Store::default();
        let first = store.next_etag();
        assert_ne!(first, store.next_etag());
    }
}
