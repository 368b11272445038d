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
    match policy {
        Some(policy) if !policy.bindings.is_empty() => {
            json!({"version": policy.version, "bindings": policy.bindings, "etag": policy.etag})
        }
        Some(policy) => json!({"etag": policy.etag}),
        None => json!({"etag": EMPTY_POLICY_ETAG}),
    }
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
    let mut answer = policy_json(store.policies.get(resource));
    if version.unwrap_or(0) < 3 {
        downgrade_conditional_bindings(&mut answer);
    }
    Ok(Response::read(answer))
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
    let current = store.policies.get(resource);
    let current_etag = current.map_or(EMPTY_POLICY_ETAG, |policy| policy.etag.as_str());
    if let Some(etag) = policy.get("etag").and_then(Json::as_str)
        && etag != current_etag
    {
        return Err(ApiError::aborted(
            "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff.",
        ));
    }
    let bindings: Vec<Json> = policy
        .get("bindings")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
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
            if !valid || !email_ok {
                return Err(ApiError::invalid_argument(format!(
                    "Invalid member {member:?} in binding for role {role}."
                )));
            }
        }
        conditional |= binding
            .get("condition")
            .is_some_and(|condition| !condition.is_null());
    }
    let requested_version = policy.get("version").and_then(Json::as_i64).unwrap_or(1);
    if conditional && requested_version != 3 {
        return Err(ApiError::invalid_argument(
            "A policy with conditional role bindings must specify version 3.",
        ));
    }
    let etag = store.next_etag();
    let record = PolicyRecord {
        version: if conditional { 3 } else { 1 },
        bindings,
        etag,
    };
    let response = policy_json(Some(&record));
    store.policies.insert(resource.to_string(), record);
    Ok(Response::changed(response))
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
    Ok(Response::read(if permissions.is_empty() {
        json!({})
    } else {
        json!({"permissions": permissions})
    }))
}
