//! IAM v1 service accounts (per `discovery/iam.v1.json`): create (409 on a duplicate account
//! id), get (by email or unique id; `projects/-` answers 403 for a missing account, as Google
//! warns), list, patch (the mask is in the body; only displayName and description), delete,
//! and the account's own IAM policy (POST getIamPolicy). A delete turns the account's members
//! in every policy into `deleted:serviceAccount:EMAIL?uid=ID`; an undelete turns them back.

use super::collection::{self, Call, Method, PageSizes};
use super::discovery::{self, Api};
use super::error::ApiError;
use super::http::{Request, Response};
use super::iam;
use super::store::{ServiceAccountRecord, Store, project_number};
use axum::http::StatusCode;
use serde_json::{Value as Json, json};

/// IAM's service-account methods, by discovery id.
pub const METHODS: &[Method] = &[
    Method {
        id: "iam.projects.serviceAccounts.create",
        handler: |call| {
            let project = call.var("projectsId").to_string();
            create(call.store, call.request, &project)
        },
    },
    Method {
        id: "iam.projects.serviceAccounts.list",
        handler: |call| {
            let project = call.var("projectsId").to_string();
            list(call.store, call.request, &project)
        },
    },
    Method {
        id: "iam.projects.serviceAccounts.get",
        handler: |call| {
            let key = account_of(call)?;
            call.request.allow_query(&[])?;
            Ok(Response::read(account_json(
                &key,
                &call.store.service_accounts[&key],
            )))
        },
    },
    Method {
        id: "iam.projects.serviceAccounts.patch",
        handler: |call| {
            let key = account_of(call)?;
            patch(call.store, call.request, &key)
        },
    },
    Method {
        id: "iam.projects.serviceAccounts.update",
        handler: |call| {
            let key = account_of(call)?;
            update(call.store, call.request, &key)
        },
    },
    Method {
        id: "iam.projects.serviceAccounts.delete",
        handler: |call| {
            let key = account_of(call)?;
            call.request.allow_query(&[])?;
            if let Some(record) = call.store.service_accounts.remove(&key) {
                iam::rewrite_account_members(call.store, &record.email, &record.unique_id, true);
                call.store
                    .deleted_service_accounts
                    .insert(record.unique_id.clone(), (key.clone(), record));
            }
            call.store.policies.remove(&key);
            call.store.replaced_policies.remove(&key);
            call.store.revision += 1;
            Ok(Response::changed(json!({})))
        },
    },
    Method {
        // "Restores a deleted ServiceAccount", named by its unique id.
        id: "iam.projects.serviceAccounts.undelete",
        handler: |call| {
            call.request.allow_query(&[])?;
            let unique_id = call.var("serviceAccountsId").to_string();
            let Some((key, record)) = call.store.deleted_service_accounts.get(&unique_id).cloned()
            else {
                return Err(ApiError::not_found(format!(
                    "Unknown deleted service account: {unique_id}"
                )));
            };
            if call.store.service_accounts.contains_key(&key) {
                return Err(ApiError::failed_precondition(format!(
                    "Cannot restore {}: an account with its email exists.",
                    record.email
                )));
            }
            call.store.deleted_service_accounts.remove(&unique_id);
            iam::rewrite_account_members(call.store, &record.email, &record.unique_id, false);
            let restored = account_json(&key, &record);
            call.store.service_accounts.insert(key, record);
            Ok(Response::changed(json!({"restoredAccount": restored})))
        },
    },
    Method {
        id: "iam.projects.serviceAccounts.disable",
        handler: |call| {
            let key = account_of(call)?;
            set_disabled(call.store, call.request, &key, true)
        },
    },
    Method {
        id: "iam.projects.serviceAccounts.enable",
        handler: |call| {
            let key = account_of(call)?;
            set_disabled(call.store, call.request, &key, false)
        },
    },
    Method {
        id: "iam.projects.serviceAccounts.getIamPolicy",
        handler: |call| {
            let key = account_of(call)?;
            iam::get_policy(call.store, call.request, &key)
        },
    },
    Method {
        id: "iam.projects.serviceAccounts.setIamPolicy",
        handler: |call| {
            let key = account_of(call)?;
            iam::set_policy(call.store, call.request, &key, Api::Iam, false)
        },
    },
    Method {
        id: "iam.projects.serviceAccounts.testIamPermissions",
        handler: |call| {
            account_of(call)?;
            iam::test_permissions(call.request)
        },
    },
];

/// The stored key of the account the path names (by email or unique id).
fn account_of(call: &Call<'_>) -> Result<String, ApiError> {
    find(
        call.store,
        call.var("projectsId"),
        call.var("serviceAccountsId"),
    )
}

fn key(project_id: &str, email: &str) -> String {
    format!("projects/{project_id}/serviceAccounts/{email}")
}

fn account_json(key: &str, account: &ServiceAccountRecord) -> Json {
    let mut body = json!({
        "name": key,
        "projectId": account.project_id,
        "uniqueId": account.unique_id,
        "email": account.email,
        "oauth2ClientId": account.unique_id,
        "etag": account.etag,
        "disabled": account.disabled,
    });
    if let Some(name) = &account.display_name {
        body["displayName"] = json!(name);
    }
    if let Some(description) = &account.description {
        body["description"] = json!(description);
    }
    body
}

fn find(store: &Store, project: &str, account: &str) -> Result<String, ApiError> {
    let found = store.service_accounts.iter().find(|(_, record)| {
        (project == "-"
            || record.project_id == project
            || project_number(&record.project_id) == project)
            && (record.email == account || record.unique_id == account)
    });
    match found {
        Some((key, _)) => Ok(key.clone()),
        // With the `-` wildcard Google cannot tell a missing account from a forbidden one.
        None if project == "-" => Err(ApiError::from_status(
            StatusCode::FORBIDDEN,
            format!(
                "Permission 'iam.serviceAccounts.get' denied on resource (or it may not exist): projects/-/serviceAccounts/{account}"
            ),
        )),
        None => Err(ApiError::not_found(format!(
            "Unknown service account: projects/{project}/serviceAccounts/{account}"
        ))),
    }
}

fn check_lengths(account: &Json) -> Result<(), ApiError> {
    if account["displayName"]
        .as_str()
        .is_some_and(|name| name.len() > 100)
    {
        return Err(ApiError::invalid_argument(
            "displayName must be at most 100 bytes.",
        ));
    }
    if account["description"]
        .as_str()
        .is_some_and(|text| text.len() > 256)
    {
        return Err(ApiError::invalid_argument(
            "description must be at most 256 bytes.",
        ));
    }
    Ok(())
}

fn create(store: &mut Store, request: &Request, project: &str) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let body = request.json()?;
    discovery::validate(
        Api::Iam,
        "CreateServiceAccountRequest",
        "create_service_account_request",
        &body,
    )?;
    let account_id = body["accountId"].as_str().unwrap_or_default();
    let valid = (6..=30).contains(&account_id.len())
        && account_id.starts_with(|c: char| c.is_ascii_lowercase())
        && !account_id.ends_with('-')
        && account_id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(ApiError::invalid_argument(format!(
            "accountId {account_id:?} must be 6-30 characters long and match [a-z]([-a-z0-9]*[a-z0-9])."
        )));
    }
    if project.chars().all(|c| c.is_ascii_digit()) || project == "-" {
        return Err(ApiError::invalid_argument(
            "Create needs the project ID, not a number or `-`.",
        ));
    }
    let account = body.get("serviceAccount").cloned().unwrap_or(json!({}));
    check_lengths(&account)?;
    let email = format!("{account_id}@{project}.iam.gserviceaccount.com");
    let key = key(project, &email);
    if store.service_accounts.contains_key(&key) {
        return Err(ApiError::already_exists(format!(
            "Service account {account_id} already exists within project projects/{project}."
        )));
    }
    let etag = store.next_etag();
    let unique_id = format!(
        "1{:020}",
        store.revision * 7_919 + project_number(&email).parse::<u64>().unwrap_or(0) % 1_000_000
    );
    let record = ServiceAccountRecord {
        project_id: project.to_string(),
        email,
        unique_id,
        display_name: account["displayName"].as_str().map(String::from),
        description: account["description"].as_str().map(String::from),
        etag,
        disabled: false,
    };
    let response = account_json(&key, &record);
    store.service_accounts.insert(key, record);
    Ok(Response::changed(response))
}

fn list(store: &mut Store, request: &Request, project: &str) -> Result<Response, ApiError> {
    request.allow_query(&["pageSize", "pageToken"])?;
    let accounts: Vec<Json> = store
        .service_accounts
        .iter()
        .filter(|(_, record)| {
            record.project_id == project || project_number(&record.project_id) == project
        })
        .map(|(key, record)| account_json(key, record))
        .collect();
    // pageSize: "The default is 20, and the maximum is 100."
    let (accounts, next) =
        collection::page(accounts, request, "pageSize", PageSizes::new(20, 100))?;
    Ok(Response::read(collection::list_answer(
        "accounts", accounts, next,
    )))
}

/// `disable` and `enable`: both answer Empty, and are idempotent.
fn set_disabled(
    store: &mut Store,
    request: &Request,
    key: &str,
    disabled: bool,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let etag = store.next_etag();
    let Some(record) = store.service_accounts.get_mut(key) else {
        return Err(ApiError::not_found(format!(
            "Unknown service account: {key}"
        )));
    };
    record.disabled = disabled;
    record.etag = etag;
    Ok(Response::changed(json!({})))
}

fn patch(store: &mut Store, request: &Request, key: &str) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let body = request.json()?;
    discovery::validate(
        Api::Iam,
        "PatchServiceAccountRequest",
        "patch_service_account_request",
        &body,
    )?;
    let Some(paths) = collection::mask_paths(body["updateMask"].as_str()) else {
        return Err(ApiError::invalid_argument(
            "update_mask is required: name the fields to update.",
        ));
    };
    let account = body.get("serviceAccount").cloned().unwrap_or(json!({}));
    check_lengths(&account)?;
    let Some(mut record) = store.service_accounts.get(key).cloned() else {
        return Err(ApiError::not_found(format!(
            "Unknown service account: {key}"
        )));
    };
    for path in &paths {
        match path.as_str() {
            "displayName" => {
                record.display_name = account["displayName"].as_str().map(String::from)
            }
            "description" => record.description = account["description"].as_str().map(String::from),
            other => {
                return Err(ApiError::invalid_argument(format!(
                    "Invalid update_mask path {other:?}: only display_name and description can be patched."
                )));
            }
        }
    }
    record.etag = store.next_etag();
    let response = account_json(key, &record);
    store.service_accounts.insert(key.to_string(), record);
    Ok(Response::changed(response))
}

/// `serviceAccounts.update` (PUT, deprecated for patch): "You can update only the
/// `display_name` field" — the body's display name replaces the account's; every other field
/// of the body is ignored.
fn update(store: &mut Store, request: &Request, key: &str) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let body = request.json()?;
    discovery::validate(Api::Iam, "ServiceAccount", "service_account", &body)?;
    check_lengths(&body)?;
    let Some(mut record) = store.service_accounts.get(key).cloned() else {
        return Err(ApiError::not_found(format!(
            "Unknown service account: {key}"
        )));
    };
    record.display_name = body["displayName"]
        .as_str()
        .filter(|name| !name.is_empty())
        .map(String::from);
    record.etag = store.next_etag();
    let response = account_json(key, &record);
    store.service_accounts.insert(key.to_string(), record);
    Ok(Response::changed(response))
}
