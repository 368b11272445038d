//! IAM policies as every parent kind's API exposes them, and the read-modify-write cycle the
//! IAM kinds share: read with the etag, edit, write; on a concurrency conflict (409 ABORTED,
//! 412, 400 FAILED_PRECONDITION) read again with backoff; after a write, read back until the
//! changes show, since IAM reads are eventually consistent. Cycles on one parent are
//! serialized, each holding the parent only while it runs: the next one starts from the policy
//! the last write answered, and one read-back per parent confirms the writes made to it.
//! The APIs differ in small ways (GET vs POST getIamPolicy, version in the query or the body):
//! those differences live here and nowhere else.

use super::KindError;
use crate::gcp::{GcpClient, GcpError, Service};
use reqwest::Method;
use serde_json::{Value as Json, json};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// The supported parents, written as full resource names.
pub const SUPPORTED_PARENTS: &str = "projects/P, projects/P/secrets/S, projects/P/serviceAccounts/EMAIL, projects/P/locations/L/services/S";

/// A resource that owns an IAM policy.
pub enum PolicyParent {
    Project(String),
    Secret(String),
    ServiceAccount(String),
    RunService(String),
}

impl PolicyParent {
    /// Recognizes a parent from its full resource name.
    pub fn parse(parent: &str) -> Option<Self> {
        let non_empty = |parts: &[&str]| parts.iter().all(|part| !part.is_empty());
        match parent.split('/').collect::<Vec<_>>()[..] {
            ["projects", project] if non_empty(&[project]) => Some(Self::Project(parent.into())),
            ["projects", project, "secrets", secret] if non_empty(&[project, secret]) => {
                Some(Self::Secret(parent.into()))
            }
            ["projects", project, "serviceAccounts", email] if non_empty(&[project, email]) => {
                Some(Self::ServiceAccount(parent.into()))
            }
            [
                "projects",
                project,
                "locations",
                region,
                "services",
                service,
            ] if non_empty(&[project, region, service]) => Some(Self::RunService(parent.into())),
            _ => None,
        }
    }

    /// Returns true when the parent's API accepts `allUsers` and `allAuthenticatedUsers`.
    pub fn allows_public_members(&self) -> bool {
        matches!(self, Self::Secret(_) | Self::RunService(_))
    }

    async fn get(&self, client: &GcpClient) -> Result<Json, GcpError> {
        let version = [("options.requestedPolicyVersion", "3".to_string())];
        match self {
            Self::Secret(name) => {
                let path = format!("v1/{name}:getIamPolicy");
                client
                    .call(Method::GET, Service::SecretManager, &path, &version, None)
                    .await
            }
            Self::ServiceAccount(name) => {
                let path = format!("v1/{name}:getIamPolicy");
                client
                    .call_replayable(Method::POST, Service::Iam, &path, &version, None)
                    .await
            }
            Self::RunService(name) => {
                let path = format!("v2/{name}:getIamPolicy");
                client
                    .call(Method::GET, Service::Run, &path, &version, None)
                    .await
            }
            Self::Project(name) => {
                let body = json!({"options": {"requestedPolicyVersion": 3}});
                let path = format!("v3/{name}:getIamPolicy");
                client
                    .call_replayable(
                        Method::POST,
                        Service::ResourceManager,
                        &path,
                        &[],
                        Some(&body),
                    )
                    .await
            }
        }
    }

    async fn set(&self, client: &GcpClient, policy: Json) -> Result<Json, GcpError> {
        let body = json!({"policy": policy});
        let (service, path) = match self {
            Self::Secret(name) => (Service::SecretManager, format!("v1/{name}:setIamPolicy")),
            Self::ServiceAccount(name) => (Service::Iam, format!("v1/{name}:setIamPolicy")),
            Self::RunService(name) => (Service::Run, format!("v2/{name}:setIamPolicy")),
            Self::Project(name) => (Service::ResourceManager, format!("v3/{name}:setIamPolicy")),
        };
        // Guarded by the policy's etag: a repeat after a lost answer meets a conflict (and
        // the cycle reads again and finds nothing left to do), never a second change.
        client
            .call_replayable(Method::POST, service, &path, &[], Some(&body))
            .await
    }
}

fn unsupported(parent: &str) -> KindError {
    KindError::Invalid(format!(
        "parent `{parent}`: not a supported resource ({SUPPORTED_PARENTS})"
    ))
}

/// Reads a parent's policy; `None` when the parent does not exist.
pub async fn read_policy(client: &GcpClient, parent: &str) -> Result<Option<Json>, KindError> {
    let policy_parent = PolicyParent::parse(parent).ok_or_else(|| unsupported(parent))?;
    match policy_parent.get(client).await {
        Ok(policy) => Ok(Some(policy)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// An edit of a policy: returns false, leaving the policy untouched, when it already says what
/// it should.
type Edit = Arc<dyn Fn(&mut Json) -> bool + Send + Sync>;

/// What one client's own policy writes on one parent taught it. The parent's lock
/// (`GcpClient::parent_lock`) is held for one read-modify-write cycle and no longer: the cycle
/// after a write starts from the policy that write answered, so writes to one parent follow
/// each other at write latency, not at the read lag; one read-back per parent then confirms
/// all of them.
#[derive(Default)]
pub struct ParentWrites {
    written: Mutex<Written>,
    unconfirmed: Mutex<Unconfirmed>,
}

#[derive(Default)]
struct Written {
    /// The policy the last accepted write answered (its etag included).
    policy: Option<Json>,
    /// Etags of versions this client knows to be replaced: ones it wrote over, and its own
    /// written version once another writer's change refused a write built on it. A read
    /// answering one lags (IAM reads are eventually consistent).
    replaced_etags: HashSet<String>,
}

#[derive(Default)]
struct Unconfirmed {
    /// The edits written and not yet seen in reads.
    edits: Vec<Edit>,
    /// Counts the writes: reads begun before the latest one say nothing about it.
    generation: u64,
    /// The etag the latest write answered: a read answering it shows every edit before it.
    latest_etag: Option<String>,
    latest_write: Option<Instant>,
    /// Whether a read-back runs for this parent.
    reading: bool,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn etag_of(policy: &Json) -> Option<String> {
    policy.get("etag").and_then(Json::as_str).map(String::from)
}

impl ParentWrites {
    fn last_written(&self) -> Option<Json> {
        locked(&self.written).policy.clone()
    }

    fn is_replaced(&self, policy: &Json) -> bool {
        etag_of(policy).is_some_and(|etag| locked(&self.written).replaced_etags.contains(&etag))
    }

    /// Records an accepted write of a policy read (or last written) at `based_on`.
    fn wrote(&self, based_on: Option<String>, answer: &Json, edit: Edit) -> bool {
        let mut written = locked(&self.written);
        written.replaced_etags.extend(based_on);
        written.policy = etag_of(answer).map(|_| answer.clone());
        drop(written);
        let mut unconfirmed = locked(&self.unconfirmed);
        unconfirmed.edits.push(edit);
        unconfirmed.generation += 1;
        unconfirmed.latest_etag = etag_of(answer);
        unconfirmed.latest_write = Some(Instant::now());
        !std::mem::replace(&mut unconfirmed.reading, true)
    }

    /// Forgets the last written policy after another writer's change refused a write on it.
    fn superseded(&self) {
        let mut written = locked(&self.written);
        if let Some(etag) = written.policy.take().as_ref().and_then(etag_of) {
            written.replaced_etags.insert(etag);
        }
    }
}

/// Runs read-modify-write cycles until `edit` leaves nothing to write or a write succeeds.
/// `edit` returns false, leaving the policy as it was, when the policy already says what it
/// should. A missing parent is fine when `missing_is_done` (removing from something gone).
pub async fn modify_policy(
    client: &GcpClient,
    parent: &str,
    missing_is_done: bool,
    edit: impl Fn(&mut Json) -> bool + Send + Sync + 'static,
) -> Result<(), KindError> {
    let policy_parent = Arc::new(PolicyParent::parse(parent).ok_or_else(|| unsupported(parent))?);
    let edit: Edit = Arc::new(edit);
    let writes = client.policy_writes(parent);
    // Held for this cycle only: the next cycle on the parent starts from what this one wrote.
    let _serialized = client.parent_lock(parent).lock_owned().await;
    let retry = client.retry_policy().clone();
    let started = Instant::now();
    let mut attempt = 0;
    let mut propagation_attempt = 0;
    let mut from_written = true;
    loop {
        attempt += 1;
        // The policy this client last wrote is newer than any read may answer; "nothing to
        // do" is only believed from a read (someone else may have changed it since).
        let last_written = if from_written {
            writes.last_written()
        } else {
            None
        };
        let mut policy = match last_written {
            Some(policy) => {
                let mut edited = policy.clone();
                if edit(&mut edited) {
                    edited
                } else {
                    from_written = false;
                    attempt -= 1;
                    continue;
                }
            }
            None => {
                let mut policy = match read_current(client, &policy_parent, &writes).await {
                    Ok(policy) => policy,
                    Err(error) if error.is_not_found() && missing_is_done => return Ok(()),
                    Err(error) => return Err(error.into()),
                };
                if !edit(&mut policy) {
                    return Ok(());
                }
                policy
            }
        };
        let based_on = etag_of(&policy);
        // Conditional bindings need version 3; writing it is harmless otherwise.
        policy["version"] = json!(3);
        match policy_parent.set(client, policy).await {
            Ok(answer) => {
                if writes.wrote(based_on, &answer, edit.clone()) {
                    // One read-back per parent, in the background: it holds neither the
                    // parent's lock nor one of the apply's operations for the seconds reads
                    // may lag; `confirm_policy_writes` awaits it.
                    let client = client.clone();
                    let parent = parent.to_string();
                    let writes = writes.clone();
                    let confirmation = tokio::spawn(async move {
                        confirm_written(&client, &policy_parent, &parent, &writes).await;
                    });
                    pending_confirmations().push(confirmation);
                }
                return Ok(());
            }
            Err(error) if error.is_concurrency_conflict() && attempt < retry.max_attempts => {
                tracing::debug!(
                    parent,
                    attempt,
                    "policy changed under us, reading it again: {error}"
                );
                if from_written {
                    // Someone else wrote after this client: its version is replaced too.
                    writes.superseded();
                    from_written = false;
                } else {
                    tokio::time::sleep(retry.delay(attempt)).await;
                }
            }
            // The parent may be gone since this client wrote it: a read says so, and whether
            // that is fine (`missing_is_done`).
            Err(error) if error.is_not_found() && from_written => {
                writes.superseded();
                from_written = false;
            }
            Err(error)
                if is_unpropagated_member(&error)
                    && started.elapsed() < MEMBER_PROPAGATION_WINDOW =>
            {
                // IAM docs: a new service account may be refused in policies for up to a
                // minute after its create; Google advises waiting and retrying.
                propagation_attempt += 1;
                attempt = 0;
                let delay = retry
                    .delay(propagation_attempt)
                    .max(std::time::Duration::from_millis(500));
                tracing::debug!(parent, ?delay, "member not yet known to IAM: {error}");
                tokio::time::sleep(delay).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Reads a policy to edit: a read answering a version this client knows to be replaced lags,
/// and is read again (for up to `CONFIRM_WITHIN`; after that the etag guard still refuses a
/// write built on it) rather than edited into a write that can only meet a 409.
async fn read_current(
    client: &GcpClient,
    policy_parent: &PolicyParent,
    writes: &ParentWrites,
) -> Result<Json, GcpError> {
    let started = Instant::now();
    let mut stale_reads = 0;
    loop {
        let policy = policy_parent.get(client).await?;
        if !writes.is_replaced(&policy) || started.elapsed() >= CONFIRM_WITHIN {
            return Ok(policy);
        }
        stale_reads += 1;
        tokio::time::sleep(client.retry_policy().delay(stale_reads)).await;
    }
}

/// How many reads in a row must show a written change before the write counts as visible
/// (the Terraform provider's practice after `setIamPolicy`, hashicorp/terraform-provider-google#2625).
const CONFIRMING_READS: u32 = 3;

/// How long a written change may take to show in reads before infra goes on without it; also
/// the most `confirm_policy_writes` waits in all.
pub const CONFIRM_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a refresh keeps reading a policy that disagrees with what state recorded before it
/// believes it: a read right after a write may answer the policy before it ("each read is
/// eventually consistent", IAM v1 overview). Longer than the emulator's default read lag.
pub const STALE_READ_SETTLE: std::time::Duration = std::time::Duration::from_secs(4);

/// The read-backs of policy writes still running (`modify_policy` starts one per parent).
static PENDING_CONFIRMATIONS: Mutex<Vec<tokio::task::JoinHandle<()>>> = Mutex::new(Vec::new());

fn pending_confirmations() -> MutexGuard<'static, Vec<tokio::task::JoinHandle<()>>> {
    locked(&PENDING_CONFIRMATIONS)
}

/// How `confirm_policy_writes` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyConfirmation {
    /// Every write shows in reads, or its read-back gave up and warned.
    Done,
    /// `stop` was set: the read-backs were abandoned.
    Interrupted,
    /// `CONFIRM_WITHIN` passed: the read-backs were abandoned.
    TimedOut,
}

/// Waits until every policy write made so far shows in reads (or its read-back gave up), so
/// that the plan made next sees its grants: an apply calls it before it ends. It gives up
/// when `stop` is set (an interrupt lets nothing wait on reads; the writes are recorded
/// already) or after `CONFIRM_WITHIN` in all, abandoning the read-backs still running.
pub async fn confirm_policy_writes(stop: &AtomicBool) -> PolicyConfirmation {
    let deadline = tokio::time::Instant::now() + CONFIRM_WITHIN;
    loop {
        let pending = std::mem::take(&mut *pending_confirmations());
        if pending.is_empty() {
            return PolicyConfirmation::Done;
        }
        let aborts: Vec<_> = pending.iter().map(|task| task.abort_handle()).collect();
        let outcome = tokio::select! {
            // A read-back cancelled with its runtime has nothing left to report.
            _ = futures::future::join_all(pending) => continue,
            () = stopped(stop) => PolicyConfirmation::Interrupted,
            () = tokio::time::sleep_until(deadline) => PolicyConfirmation::TimedOut,
        };
        let abandoned = std::mem::take(&mut *pending_confirmations());
        for task in &aborts {
            task.abort();
        }
        for task in &abandoned {
            task.abort();
        }
        tracing::warn!(
            "policy writes not yet seen in reads ({}); a plan made now may show them again",
            match outcome {
                PolicyConfirmation::Interrupted => "interrupted",
                _ => "stopped waiting after 60s",
            }
        );
        return outcome;
    }
}

/// Resolves once `stop` is set.
async fn stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Ends a parent's read-back: its edits are dropped and a later write starts another. Ended
/// under the lock that writes take, so a write landing as the read-back decides to stop is
/// never left unread; one abandoned with its task is ended when dropped.
struct ReadBack<'a> {
    writes: &'a ParentWrites,
    ended: bool,
}

impl ReadBack<'_> {
    fn end(&mut self, unconfirmed: &mut Unconfirmed) {
        unconfirmed.reading = false;
        unconfirmed.edits.clear();
        self.ended = true;
    }
}

impl Drop for ReadBack<'_> {
    fn drop(&mut self) {
        if !self.ended {
            let writes = self.writes;
            self.end(&mut locked(&writes.unconfirmed));
        }
    }
}

/// Reads a parent's policy back after writes until every edit written shows (nothing left to
/// do, or the read answers the latest write's etag) in `CONFIRMING_READS` reads in a row begun
/// after the latest write, so that a plan made next sees the changes. Writes made meanwhile
/// join in. Bounded by `CONFIRM_WITHIN` after the latest write: a change still unseen then
/// (someone else's later write may have undone it) is reported, not fatal — the write itself
/// was accepted.
async fn confirm_written(
    client: &GcpClient,
    policy_parent: &PolicyParent,
    parent: &str,
    writes: &ParentWrites,
) {
    let mut read_back = ReadBack {
        writes,
        ended: false,
    };
    let retry = client.retry_policy();
    let mut stale_reads = 0;
    let mut good_reads = 0;
    let mut counted_generation = 0;
    loop {
        let generation_before = locked(&writes.unconfirmed).generation;
        let read = policy_parent.get(client).await;
        let mut policy = match read {
            Ok(policy) => policy,
            // A parent deleted meanwhile has nothing left to show.
            Err(error) if error.is_not_found() => {
                read_back.end(&mut locked(&writes.unconfirmed));
                return;
            }
            Err(error) => {
                read_back.end(&mut locked(&writes.unconfirmed));
                tracing::warn!(parent, "reading the policy back after a write: {error}");
                return;
            }
        };
        let gave_up = {
            let mut unconfirmed = locked(&writes.unconfirmed);
            if unconfirmed.generation != generation_before {
                // A write landed while this read ran: it says nothing about that write.
                good_reads = 0;
            } else {
                if counted_generation != unconfirmed.generation {
                    counted_generation = unconfirmed.generation;
                    good_reads = 0;
                }
                let answers_latest = etag_of(&policy)
                    .is_some_and(|etag| unconfirmed.latest_etag.as_ref() == Some(&etag));
                if answers_latest || unconfirmed.edits.iter().all(|edit| !edit(&mut policy)) {
                    good_reads += 1;
                    if good_reads >= CONFIRMING_READS {
                        read_back.end(&mut unconfirmed);
                        return;
                    }
                } else {
                    good_reads = 0;
                    stale_reads += 1;
                }
            }
            let since_write = unconfirmed
                .latest_write
                .map_or(CONFIRM_WITHIN, |written| written.elapsed());
            let gave_up = since_write >= CONFIRM_WITHIN;
            if gave_up {
                read_back.end(&mut unconfirmed);
            }
            gave_up
        };
        if gave_up {
            tracing::warn!(
                parent,
                "the policy written was not seen in reads within {}s; a plan made now may show it again",
                CONFIRM_WITHIN.as_secs()
            );
            return;
        }
        let delay = if good_reads > 0 || stale_reads == 0 {
            retry.initial_delay
        } else {
            retry.delay(stale_reads)
        };
        tokio::time::sleep(delay).await;
    }
}

/// Reads a parent's policy for a refresh; when it disagrees with what state recorded
/// (`agrees` false), reads again until it agrees or `STALE_READ_SETTLE` has passed, so a
/// single stale read right after a write never makes a grant look deleted. `None` when the
/// parent does not exist.
pub async fn read_policy_settled(
    client: &GcpClient,
    parent: &str,
    agrees: impl Fn(&Json) -> bool,
) -> Result<Option<Json>, KindError> {
    let started = std::time::Instant::now();
    let mut attempt = 0;
    loop {
        let Some(policy) = read_policy(client, parent).await? else {
            return Ok(None);
        };
        let waited = started.elapsed();
        if agrees(&policy) || waited >= STALE_READ_SETTLE {
            return Ok(Some(policy));
        }
        attempt += 1;
        let delay = client
            .retry_policy()
            .delay(attempt)
            .min(STALE_READ_SETTLE - waited);
        tracing::debug!(
            parent,
            ?delay,
            "the policy read disagrees with state; reading again"
        );
        tokio::time::sleep(delay).await;
    }
}

/// How long a policy write naming a just-created member is retried (IAM documents up to 60 s,
/// with headroom).
pub const MEMBER_PROPAGATION_WINDOW: std::time::Duration = std::time::Duration::from_secs(120);

/// Returns true for IAM's refusal of a member it does not know yet: `400 INVALID_ARGUMENT`
/// with "… does not exist" (the Terraform provider's `IamServiceAccountNotFound`).
pub fn is_unpropagated_member(error: &GcpError) -> bool {
    match error {
        GcpError::Api {
            code: 400,
            status,
            message,
            ..
        } => status == "INVALID_ARGUMENT" && message.contains("does not exist"),
        _ => false,
    }
}

/// Returns a member as Google compares it: the type prefix as Google spells it and the email
/// or domain lowercased (IAM stores them lowercased). A `deleted:` member is
/// `deleted:TYPE:EMAIL?uid=ID` in Google's documented form (`Binding.members`): its inner type
/// keeps Google's case whatever case it arrives in (`deleted:serviceaccount:` compares equal to
/// `deleted:serviceAccount:`, and is written back as the latter, which Google requires), and
/// its `?uid=` is kept.
pub fn member_key(member: &str) -> String {
    if let Some((kind, inner)) = member.split_once(':')
        && kind.eq_ignore_ascii_case("deleted")
    {
        return format!("deleted:{}", member_key(inner));
    }
    match member.split_once(':') {
        Some((kind, rest)) => {
            let kind = match kind.to_ascii_lowercase().as_str() {
                "user" => "user",
                "serviceaccount" => "serviceAccount",
                "group" => "group",
                "domain" => "domain",
                _ => return member.to_string(),
            };
            format!("{kind}:{}", rest.to_lowercase())
        }
        None => member.to_string(),
    }
}

fn is_unconditional_binding(binding: &Json, role: &str) -> bool {
    binding["role"] == role && binding.get("condition").is_none_or(Json::is_null)
}

/// Returns the members of the unconditional binding of `role`, sorted.
pub fn binding_members(policy: &Json, role: &str) -> Vec<String> {
    let mut members: Vec<String> = policy["bindings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|binding| is_unconditional_binding(binding, role))
        .flat_map(|binding| binding["members"].as_array().cloned().unwrap_or_default())
        .filter_map(|member| member.as_str().map(member_key))
        .collect();
    members.sort();
    members.dedup();
    members
}

/// Sets the members of the unconditional binding of `role` (none removes the binding);
/// returns false when nothing changes. Other roles and conditional bindings are untouched.
pub fn set_binding_members(policy: &mut Json, role: &str, members: &[String]) -> bool {
    let mut wanted: Vec<String> = members.iter().map(|member| member_key(member)).collect();
    wanted.sort();
    wanted.dedup();
    if binding_members(policy, role) == wanted {
        return false;
    }
    if !policy["bindings"].is_array() {
        policy["bindings"] = json!([]);
    }
    let Some(bindings) = policy["bindings"].as_array_mut() else {
        return false;
    };
    bindings.retain(|binding| !is_unconditional_binding(binding, role));
    if !wanted.is_empty() {
        bindings.push(json!({"role": role, "members": wanted}));
    }
    true
}

/// Adds or removes one member of the unconditional binding of `role`; false when nothing changes.
pub fn set_member(policy: &mut Json, role: &str, member: &str, present: bool) -> bool {
    let member = member_key(member);
    let mut members = binding_members(policy, role);
    let has = members.contains(&member);
    if has == present {
        return false;
    }
    if present {
        members.push(member);
    } else {
        members.retain(|candidate| *candidate != member);
    }
    set_binding_members(policy, role, &members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parents_writes_start_one_read_back_and_mark_what_they_replaced() {
        let writes = ParentWrites::default();
        let edit: Edit = Arc::new(|_: &mut Json| false);
        let read = json!({"etag": "e1"});
        assert!(!writes.is_replaced(&read));
        assert!(
            writes.wrote(Some("e1".into()), &json!({"etag": "e2"}), edit.clone()),
            "the first write starts the parent's read-back"
        );
        assert!(
            !writes.wrote(Some("e2".into()), &json!({"etag": "e3"}), edit.clone()),
            "later writes join it"
        );
        assert!(writes.is_replaced(&read), "a read answering e1 lags");
        assert!(writes.is_replaced(&json!({"etag": "e2"})));
        assert_eq!(writes.last_written(), Some(json!({"etag": "e3"})));
        assert!(!writes.is_replaced(&json!({"etag": "e3"})));
        writes.superseded();
        assert_eq!(writes.last_written(), None, "someone else wrote after e3");
        assert!(writes.is_replaced(&json!({"etag": "e3"})));
        ReadBack {
            writes: &writes,
            ended: false,
        };
        assert!(
            writes.wrote(None, &json!({"etag": "e4"}), edit),
            "an ended read-back lets the next write start another"
        );
    }

    #[test]
    fn members_compare_as_google_compares_them() {
        assert_eq!(
            member_key("serviceAccount:Run-SA@P.iam.gserviceaccount.com"),
            "serviceAccount:run-sa@p.iam.gserviceaccount.com"
        );
        assert_eq!(member_key("User:Ann@Example.com"), "user:ann@example.com");
        assert_eq!(member_key("allUsers"), "allUsers");
        let mut policy =
            json!({"bindings": [{"role": "roles/viewer", "members": ["user:ann@example.com"]}]});
        assert!(!set_member(
            &mut policy,
            "roles/viewer",
            "user:Ann@Example.com",
            true
        ));
    }

    #[test]
    fn deleted_members_compare_in_googles_form_whatever_the_inner_types_case() {
        let documented = "deleted:serviceAccount:run@p.iam.gserviceaccount.com?uid=1234567890";
        assert_eq!(member_key(documented), documented);
        assert_eq!(
            member_key("deleted:serviceaccount:Run@P.iam.gserviceaccount.com?uid=1234567890"),
            documented
        );
        assert_eq!(
            member_key("Deleted:User:Ann@Example.com?uid=42"),
            "deleted:user:ann@example.com?uid=42"
        );
        assert_ne!(
            member_key(documented),
            member_key("serviceAccount:run@p.iam.gserviceaccount.com"),
            "a deleted account's grant is not the new account's"
        );
        let mut policy = json!({"bindings": [{"role": "roles/viewer", "members": [
            "deleted:serviceaccount:run@p.iam.gserviceaccount.com?uid=1234567890"
        ]}]});
        assert!(!set_member(&mut policy, "roles/viewer", documented, true));
        assert!(set_member(
            &mut policy,
            "roles/viewer",
            "user:ann@example.com",
            true
        ));
        assert_eq!(
            policy["bindings"][0]["members"],
            json!([documented, "user:ann@example.com"]),
            "written back with the inner type Google requires"
        );
    }

    #[test]
    fn only_an_unknown_member_is_a_propagation_refusal() {
        let refusal = |code: u16, status: &str, message: &str| GcpError::Api {
            method: "POST".into(),
            url: "u".into(),
            code,
            status: status.into(),
            message: message.into(),
            details: Default::default(),
        };
        assert!(is_unpropagated_member(&refusal(
            400,
            "INVALID_ARGUMENT",
            "Service account run@p.iam.gserviceaccount.com does not exist."
        )));
        assert!(!is_unpropagated_member(&refusal(
            400,
            "INVALID_ARGUMENT",
            "Role roles/x is not supported."
        )));
        assert!(!is_unpropagated_member(&refusal(
            404,
            "NOT_FOUND",
            "does not exist"
        )));
    }

    #[test]
    fn parents_are_recognized_by_their_names() {
        assert!(matches!(
            PolicyParent::parse("projects/p"),
            Some(PolicyParent::Project(_))
        ));
        assert!(matches!(
            PolicyParent::parse("projects/p/secrets/s"),
            Some(PolicyParent::Secret(_))
        ));
        assert!(matches!(
            PolicyParent::parse("projects/p/serviceAccounts/a@p.iam.gserviceaccount.com"),
            Some(PolicyParent::ServiceAccount(_))
        ));
        assert!(PolicyParent::parse("projects/p/buckets/b").is_none());
        assert!(PolicyParent::parse("projects/").is_none());
    }

    #[test]
    fn adding_a_member_joins_the_existing_binding_and_keeps_the_etag() {
        let mut policy = json!({"etag": "BwE=", "bindings": [{"role": "roles/viewer", "members": ["user:a@x.com"]}]});
        assert!(set_member(
            &mut policy,
            "roles/viewer",
            "user:b@x.com",
            true
        ));
        assert_eq!(
            binding_members(&policy, "roles/viewer"),
            vec!["user:a@x.com", "user:b@x.com"]
        );
        assert!(
            !set_member(&mut policy, "roles/viewer", "user:b@x.com", true),
            "second add is a no-op"
        );
        assert_eq!(policy["etag"], "BwE=");
    }

    #[test]
    fn removing_the_last_member_drops_the_binding() {
        let mut policy =
            json!({"bindings": [{"role": "roles/viewer", "members": ["user:a@x.com"]}]});
        assert!(set_member(
            &mut policy,
            "roles/viewer",
            "user:a@x.com",
            false
        ));
        assert_eq!(policy["bindings"], json!([]));
    }

    #[test]
    fn conditional_bindings_are_left_alone() {
        let conditional =
            json!({"role": "r", "members": ["user:a@x.com"], "condition": {"expression": "true"}});
        let mut policy = json!({"bindings": [conditional.clone()]});
        assert!(binding_members(&policy, "r").is_empty());
        assert!(set_binding_members(
            &mut policy,
            "r",
            &["user:b@x.com".into()]
        ));
        assert_eq!(policy["bindings"][0], conditional);
        assert_eq!(binding_members(&policy, "r"), vec!["user:b@x.com"]);
    }
}
