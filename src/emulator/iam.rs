//! IAM policies as every Google API serves them: `getIamPolicy` returning an empty policy with
//! an etag for a resource without one, `setIamPolicy` refusing a stale etag with 409 ABORTED and
//! malformed bindings with 400. Shared by every emulated API that owns IAM policies.

use super::discovery::{self, Api};
use super::error::ApiError;
use super::http::{Request, Response};
use super::store::{PolicyRecord, Store};
use serde_json::{Value as Json, json};

const MEMBER_PREFIXES: [&str; 8] = [
    "user:",
    "serviceAccount:",
    "group:",
    "domain:",
    "principal://",
    "principalSet://",
    "deleted:",
    "projectOwner:",
];
const EMPTY_POLICY_ETAG: &str = "ACAB";

fn policy_json(policy: Option<&PolicyRecord>) -> Json {
    let Some(policy) = policy else {
        return json!({"etag": EMPTY_POLICY_ETAG});
    };
    let mut answer = json!({"etag": policy.etag});
    if !policy.bindings.is_empty() || !policy.audit_configs.is_empty() {
        answer["version"] = json!(policy.version);
    }
    if !policy.bindings.is_empty() {
        answer["bindings"] = json!(policy.bindings);
    }
    if !policy.audit_configs.is_empty() {
        answer["auditConfigs"] = json!(policy.audit_configs);
    }
    answer
}

/// The fields of the stored policy a `setIamPolicy` writes: its `updateMask` ("Only the fields
/// in the mask will be modified. If no mask is provided, the following default mask is used:
/// `paths: "bindings, etag"`", `SetIamPolicyRequest.update_mask`). A path that is no field
/// of `Policy` is refused.
struct PolicyMask {
    bindings: bool,
    audit_configs: bool,
}

fn policy_mask(body: &Json) -> Result<PolicyMask, ApiError> {
    let mask = body.get("updateMask").and_then(Json::as_str);
    let Some(paths) = super::collection::mask_paths(mask) else {
        return Ok(PolicyMask {
            bindings: true,
            audit_configs: false,
        });
    };
    let mut written = PolicyMask {
        bindings: false,
        audit_configs: false,
    };
    for path in paths {
        match path.as_str() {
            "bindings" | "version" => written.bindings = true,
            "auditConfigs" => written.audit_configs = true,
            "etag" => {}
            other => {
                return Err(ApiError::invalid_argument(format!(
                    "Invalid update_mask path {other:?}: Policy has no such field (use bindings, etag, auditConfigs)."
                )));
            }
        }
    }
    Ok(written)
}

/// Checks `auditConfigs` as `AuditConfig` defines them: a service (or `allServices`) and log
/// types among `ADMIN_READ`, `DATA_WRITE`, `DATA_READ`.
fn check_audit_configs(audit_configs: &[Json]) -> Result<(), ApiError> {
    for config in audit_configs {
        if config["service"].as_str().is_none_or(str::is_empty) {
            return Err(ApiError::invalid_argument(
                "Every audit config must name a service (or allServices).",
            ));
        }
        for log_config in config["auditLogConfigs"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let log_type = log_config["logType"].as_str().unwrap_or_default();
            if !["ADMIN_READ", "DATA_WRITE", "DATA_READ"].contains(&log_type) {
                return Err(ApiError::invalid_argument(format!(
                    "Invalid audit log type {log_type:?}: use ADMIN_READ, DATA_WRITE or DATA_READ."
                )));
            }
        }
    }
    Ok(())
}

fn check_requested_version(version: Option<i64>) -> Result<(), ApiError> {
    match version {
        None | Some(0 | 1 | 3) => Ok(()),
        Some(other) => Err(ApiError::invalid_argument(format!(
            "Invalid requested policy version {other}: use 0, 1 or 3."
        ))),
    }
}

/// Answers `getIamPolicy`; the requested version comes from the query (GET) or the body (POST).
pub fn get_policy(
    store: &mut Store,
    request: &Request,
    resource: &str,
) -> Result<Response, ApiError> {
    request.allow_query(&["options.requestedPolicyVersion"])?;
    let from_query = request.query("options.requestedPolicyVersion").map(|text| {
        text.parse::<i64>().map_err(|_| {
            ApiError::invalid_argument(format!(
                "Invalid value for options.requestedPolicyVersion: {text}"
            ))
        })
    });
    let version = match from_query {
        Some(parsed) => Some(parsed?),
        None => request
            .json()?
            .pointer("/options/requestedPolicyVersion")
            .and_then(Json::as_i64),
    };
    check_requested_version(version)?;
    let mut answer = policy_json(readable_policy(store, resource));
    if version.unwrap_or(0) < 3 {
        downgrade_conditional_bindings(&mut answer);
    }
    Ok(Response::read(answer))
}

/// Returns the policy a read sees: IAM reads are eventually consistent ("if you write data
/// with the IAM API, then immediately read that data, the read operation might return an older
/// version of the data", IAM v1 API overview), so within the read lag of a `setIamPolicy` a
/// read answers the policy that write replaced — with that policy's own etag, as the older
/// version it is: a write built on it is refused 409 ABORTED, never applied over the newer one.
fn readable_policy<'a>(store: &'a mut Store, resource: &str) -> Option<&'a PolicyRecord> {
    let now = chrono::Utc::now().timestamp_millis();
    let lag = store.policy_read_lag_ms;
    let lagging = match store.replaced_policies.get(resource) {
        Some((written_at, _)) if now - written_at < lag => true,
        Some(_) => {
            store.replaced_policies.remove(resource);
            false
        }
        None => false,
    };
    if lagging {
        store
            .replaced_policies
            .get(resource)
            .and_then(|(_, replaced)| replaced.as_ref())
    } else {
        store.policies.get(resource)
    }
}

/// A policy read at version 0 or 1 cannot show conditions: each conditional binding's role is
/// suffixed `_withcond_<hash>` and its condition left out, and the policy says version 1
/// (<https://cloud.google.com/iam/docs/troubleshooting-withcond>).
fn downgrade_conditional_bindings(policy: &mut Json) {
    let Some(bindings) = policy.get_mut("bindings").and_then(Json::as_array_mut) else {
        return;
    };
    let mut downgraded = false;
    for binding in bindings.iter_mut() {
        let Some(condition) = binding
            .as_object_mut()
            .and_then(|binding| binding.remove("condition"))
        else {
            continue;
        };
        if condition.is_null() {
            continue;
        }
        let role = binding["role"].as_str().unwrap_or_default().to_string();
        let hash = super::store::project_number(&format!("{role}{condition}"));
        binding["role"] = json!(format!("{role}_withcond_{}", &hash[..10]));
        downgraded = true;
    }
    if downgraded {
        policy["version"] = json!(1);
    }
}

/// Answers `setIamPolicy` for a resource whose API's schema is `api`.
pub fn set_policy(
    store: &mut Store,
    request: &Request,
    resource: &str,
    api: Api,
    allow_public: bool,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let body = request.json()?;
    discovery::validate(
        api,
        &api.iam_schema("SetIamPolicyRequest"),
        "set_iam_policy_request",
        &body,
    )?;
    let Some(policy) = body.get("policy").filter(|policy| policy.is_object()) else {
        return Err(ApiError::invalid_argument("policy is required."));
    };
    let mask = policy_mask(&body)?;
    let current = store.policies.get(resource);
    let current_etag = current.map_or(EMPTY_POLICY_ETAG, |policy| policy.etag.as_str());
    if let Some(etag) = policy.get("etag").and_then(Json::as_str)
        && etag != current_etag
    {
        return Err(ApiError::aborted(
            "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.",
        ));
    }
    let field = |name: &str| -> Vec<Json> {
        policy
            .get(name)
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let bindings = if mask.bindings {
        field("bindings")
    } else {
        current
            .map(|policy| policy.bindings.clone())
            .unwrap_or_default()
    };
    let audit_configs = if mask.audit_configs {
        field("auditConfigs")
    } else {
        current
            .map(|policy| policy.audit_configs.clone())
            .unwrap_or_default()
    };
    check_audit_configs(&audit_configs)?;
    let mut conditional = false;
    for binding in &bindings {
        let role = binding["role"].as_str().unwrap_or_default();
        if !(role.starts_with("roles/") || role.contains("/roles/")) {
            return Err(ApiError::invalid_argument(format!(
                "Role {role:?} is not a valid role name."
            )));
        }
        let members = binding["members"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if members.is_empty() {
            return Err(ApiError::invalid_argument(format!(
                "Binding for role {role} must contain at least one member."
            )));
        }
        for member in members {
            let member = member.as_str().unwrap_or_default();
            if !allow_public && (member == "allUsers" || member == "allAuthenticatedUsers") {
                return Err(ApiError::invalid_argument(format!(
                    "{member} is not supported on this resource's policy."
                )));
            }
            let valid = member == "allUsers"
                || member == "allAuthenticatedUsers"
                || MEMBER_PREFIXES.iter().any(|prefix| {
                    member
                        .strip_prefix(prefix)
                        .is_some_and(|rest| !rest.is_empty())
                });
            let email_ok = !(member.starts_with("user:")
                || member.starts_with("serviceAccount:")
                || member.starts_with("group:"))
                || member
                    .split_once(':')
                    .is_some_and(|(_, email)| email.contains('@'));
            if !valid || !email_ok || !is_documented_deleted_member(member) {
                return Err(ApiError::invalid_argument(format!(
                    "Invalid member {member:?} in binding for role {role}."
                )));
            }
        }
        conditional |= binding
            .get("condition")
            .is_some_and(|condition| !condition.is_null());
    }
    let requested_version = match policy.get("version").and_then(Json::as_i64) {
        Some(version) => version,
        // Bindings left as they were keep the version they were written at.
        None if !mask.bindings => current.map_or(1, |policy| policy.version),
        None => 1,
    };
    if conditional && requested_version != 3 {
        return Err(ApiError::invalid_argument(
            "A policy with conditional role bindings must specify version 3.",
        ));
    }
    let etag = store.next_etag();
    let record = PolicyRecord {
        version: if conditional { 3 } else { 1 },
        bindings,
        audit_configs,
        etag,
    };
    let response = policy_json(Some(&record));
    let replaced = store.policies.insert(resource.to_string(), record);
    if store.policy_read_lag_ms > 0 {
        let now = chrono::Utc::now().timestamp_millis();
        store
            .replaced_policies
            .insert(resource.to_string(), (now, replaced));
    }
    Ok(Response::changed(response))
}

/// Returns true for a `deleted:` member in the form Google documents for it:
/// `deleted:user:`, `deleted:serviceAccount:` or `deleted:group:` with an email and
/// `?uid=`, or `deleted:principal://…`. The inner type is case-sensitive: Google refuses
/// `deleted:serviceaccount:` (magic-modules #2819 met that 400 after lowercasing it).
fn is_documented_deleted_member(member: &str) -> bool {
    let Some(rest) = member.strip_prefix("deleted:") else {
        return true;
    };
    if rest.starts_with("principal://") {
        return true;
    }
    ["user:", "serviceAccount:", "group:"].iter().any(|kind| {
        rest.strip_prefix(kind).is_some_and(|email| {
            email
                .split_once("?uid=")
                .is_some_and(|(email, uid)| email.contains('@') && !uid.is_empty())
        })
    })
}

/// Answers `testIamPermissions`: the emulator authorises every caller, so every permission
/// asked about is held (Google answers the subset the caller holds).
pub fn test_permissions(request: &Request) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let body = request.json()?;
    let permissions: Vec<Json> = body["permissions"].as_array().cloned().unwrap_or_default();
    if permissions.iter().any(|permission| {
        permission
            .as_str()
            .is_none_or(|permission| permission.contains(['*', ' ']) || permission.is_empty())
    }) {
        return Err(ApiError::invalid_argument(
            "Permissions with wildcards (such as '*') are not allowed.",
        ));
    }
    // Permissions are `service.resource.verb` (<https://cloud.google.com/iam/docs/permissions-reference>);
    // anything else is no permission at all.
    if let Some(malformed) = permissions
        .iter()
        .filter_map(Json::as_str)
        .find(|permission| {
            let parts: Vec<&str> = permission.split('.').collect();
            parts.len() != 3 || parts.iter().any(|part| part.is_empty())
        })
    {
        return Err(ApiError::invalid_argument(format!(
            "Permission {malformed} is not valid: permissions are service.resource.verb."
        )));
    }
    Ok(Response::read(if permissions.is_empty() {
        json!({})
    } else {
        json!({"permissions": permissions})
    }))
}

/// Rewrites a service account's members in every policy when it is deleted or undeleted, as
/// IAM does: `serviceAccount:EMAIL` becomes `deleted:serviceAccount:EMAIL?uid=UNIQUE_ID`
/// ("If the service account is undeleted, this value reverts to `serviceAccount:{emailid}`
/// and the undeleted service account retains the role in the binding", `Binding.members`).
pub fn rewrite_account_members(store: &mut Store, email: &str, unique_id: &str, deleted: bool) {
    let active = format!("serviceAccount:{email}").to_ascii_lowercase();
    let tombstone = format!("deleted:serviceAccount:{email}?uid={unique_id}");
    let mut rewritten = Vec::new();
    for (resource, policy) in &mut store.policies {
        let mut changed = false;
        for binding in &mut policy.bindings {
            let Some(members) = binding.get_mut("members").and_then(Json::as_array_mut) else {
                continue;
            };
            for member in members.iter_mut() {
                let Some(text) = member.as_str() else {
                    continue;
                };
                let matches = if deleted {
                    text.to_ascii_lowercase() == active
                } else {
                    text.eq_ignore_ascii_case(&tombstone)
                };
                if matches {
                    *member = json!(if deleted {
                        tombstone.clone()
                    } else {
                        format!("serviceAccount:{email}")
                    });
                    changed = true;
                }
            }
        }
        if changed {
            rewritten.push(resource.clone());
        }
    }
    for resource in rewritten {
        let etag = store.next_etag();
        if let Some(policy) = store.policies.get_mut(&resource) {
            policy.etag = etag;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(etag: &str, members: &[&str]) -> PolicyRecord {
        PolicyRecord {
            version: 1,
            bindings: vec![json!({"role": "roles/viewer", "members": members})],
            audit_configs: Vec::new(),
            etag: etag.into(),
        }
    }

    #[test]
    fn a_read_within_the_lag_answers_the_replaced_policy_with_its_own_etag() {
        let mut store = Store {
            policy_read_lag_ms: 60_000,
            ..Store::default()
        };
        store
            .policies
            .insert("r".into(), record("new", &["user:b@x.com"]));
        let now = chrono::Utc::now().timestamp_millis();
        store
            .replaced_policies
            .insert("r".into(), (now, Some(record("old", &["user:a@x.com"]))));
        assert_eq!(
            readable_policy(&mut store, "r").map(|policy| policy.etag.clone()),
            Some("old".to_string())
        );
        store
            .replaced_policies
            .insert("r".into(), (now - 61_000, None));
        assert_eq!(
            readable_policy(&mut store, "r").map(|policy| policy.etag.clone()),
            Some("new".to_string())
        );
        assert!(
            store.replaced_policies.is_empty(),
            "expired entries are dropped"
        );
    }

    #[test]
    fn deleted_members_must_keep_the_documented_inner_type() {
        assert!(is_documented_deleted_member(
            "deleted:serviceAccount:run@p.iam.gserviceaccount.com?uid=123"
        ));
        assert!(!is_documented_deleted_member(
            "deleted:serviceaccount:run@p.iam.gserviceaccount.com?uid=123"
        ));
        assert!(!is_documented_deleted_member("deleted:user:ann@x.com"));
        assert!(is_documented_deleted_member("user:ann@x.com"));
    }

    #[test]
    fn deleting_an_account_tombstones_its_members_and_undeleting_restores_them() {
        let mut store = Store::default();
        store.policies.insert(
            "r".into(),
            record(
                "e",
                &[
                    "serviceAccount:Run@p.iam.gserviceaccount.com",
                    "user:a@x.com",
                ],
            ),
        );
        rewrite_account_members(&mut store, "run@p.iam.gserviceaccount.com", "42", true);
        assert_eq!(
            store.policies["r"].bindings[0]["members"],
            json!([
                "deleted:serviceAccount:run@p.iam.gserviceaccount.com?uid=42",
                "user:a@x.com"
            ])
        );
        assert_ne!(store.policies["r"].etag, "e");
        rewrite_account_members(&mut store, "run@p.iam.gserviceaccount.com", "42", false);
        assert_eq!(
            store.policies["r"].bindings[0]["members"],
            json!([
                "serviceAccount:run@p.iam.gserviceaccount.com",
                "user:a@x.com"
            ])
        );
    }
}
