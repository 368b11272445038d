//! Cloud Storage JSON API v1 (per `discovery/storage.v1.json`): buckets (insert, get, list,
//! patch, update, delete), objects (media, multipart and resumable upload, metadata and media
//! get, patch, update, delete, list, copy, rewrite, compose), generations and metagenerations,
//! and the
//! `ifGenerationMatch` / `ifGenerationNotMatch` / `ifMetagenerationMatch` /
//! `ifMetagenerationNotMatch` preconditions (failed → 412 conditionNotMet; a matched
//! NotMatch on a read → 304). Errors use Storage's older body (`errors[]`, no `status`), and
//! object names must be percent-encoded in paths, `/` included. Writes of one object name above
//! Cloud Storage's rate are refused 429 `rateLimitExceeded` (the rate is `realism.rs`'s).

use super::collection::{self, PageSizes};
use super::realism::Realism;
use super::store::{
    BucketRecord, ObjectGeneration, PolicyRecord, Store, UploadSession, now, project_number,
};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value as Json, json};

/// An error in Cloud Storage's shape.
#[derive(Debug)]
pub struct StorageError {
    code: StatusCode,
    reason: &'static str,
    message: String,
}

impl StorageError {
    pub(super) fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "notFound", message)
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    /// Cloud Storage's answer to a write of one object name above its rate, worded as Google
    /// words it (<https://cloud.google.com/storage/docs/gcs429>).
    fn object_rate(bucket: &str, name: &str) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rateLimitExceeded",
            format!(
                "The object {bucket}/{name} exceeded the rate limit for object mutation operations (create, update, and delete). Please reduce your request rate. See https://cloud.google.com/storage/docs/gcs429."
            ),
        )
    }

    fn precondition() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "conditionNotMet",
            "At least one of the pre-conditions you specified did not hold.",
        )
    }
}

impl IntoResponse for StorageError {
    fn into_response(self) -> Response {
        if self.code == StatusCode::NOT_MODIFIED {
            return StatusCode::NOT_MODIFIED.into_response();
        }
        // Google files rate limits under `usageLimits`, everything else here under `global`.
        let domain = if self.reason == "rateLimitExceeded" {
            "usageLimits"
        } else {
            "global"
        };
        let body = json!({"error": {"code": self.code.as_u16(), "message": self.message, "errors": [{"domain": domain, "reason": self.reason, "message": self.message}]}});
        (self.code, axum::Json(body)).into_response()
    }
}

/// What a storage request answered, and whether the store changed.
pub enum StorageAnswer {
    Json(Json),
    /// Media: the bytes, their content type, the `x-goog-*` headers that describe the object,
    /// and for a ranged read the `Content-Range` (answered 206).
    Media {
        data: Vec<u8>,
        content_type: String,
        headers: Vec<(String, String)>,
        range: Option<String>,
    },
    Empty,
    /// A resumable upload session was opened: 200 with its URI in `Location`.
    Session(String),
    /// A resumable upload is incomplete: 308 with the bytes persisted so far.
    Incomplete(u64),
}

/// A storage request.
#[derive(Clone)]
pub struct StorageRequest<'a> {
    pub method: &'a Method,
    /// The raw (still percent-encoded) path after `/storage/v1/` or `/upload/storage/v1/`.
    pub path: &'a str,
    pub upload: bool,
    pub query: &'a [(String, String)],
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// This emulator's base URL, for `selfLink` and `mediaLink`.
    pub base_url: String,
    /// Google's quirks, for the write rate of one object name (`None`: no limit).
    pub realism: Option<&'a Realism>,
}

impl StorageRequest<'_> {
    fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn number(&self, name: &str) -> Result<Option<i64>, StorageError> {
        match self.query(name) {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| StorageError::invalid(format!("Invalid value for {name}: {text}"))),
        }
    }
}

/// Admits a write (create, update or delete) of `bucket/name`, once every check that could
/// refuse it passed: one write per second per object name (<https://cloud.google.com/storage/quotas>).
fn admit_write(request: &StorageRequest<'_>, bucket: &str, name: &str) -> Result<(), StorageError> {
    match request.realism {
        Some(realism) => realism
            .admit_object_write(bucket, name)
            .map_err(|_| StorageError::object_rate(bucket, name)),
        None => Ok(()),
    }
}

/// Handles one storage request; `Ok((answer, changed))`.
pub fn handle(
    store: &mut Store,
    request: &StorageRequest<'_>,
) -> Result<(StorageAnswer, bool), StorageError> {
    let segments: Vec<&str> = request.path.split('/').collect();
    check_acl_use(store, request, &segments)?;
    match (request.method.as_str(), request.upload, &segments[..]) {
        ("POST", false, ["b"]) => insert_bucket(store, request),
        ("GET", false, ["b"]) => {
            list_buckets(store, request).map(|body| (StorageAnswer::Json(body), false))
        }
        ("GET", false, ["b", bucket]) => get_bucket(store, request, &decode(bucket)?)
            .map(|body| (StorageAnswer::Json(body), false)),
        ("PATCH", false, ["b", bucket]) => patch_bucket(store, request, &decode(bucket)?)
            .map(|body| (StorageAnswer::Json(body), true)),
        ("GET", false, ["b", bucket, "iam"]) => get_bucket_policy(store, request, &decode(bucket)?)
            .map(|body| (StorageAnswer::Json(body), false)),
        ("PUT", false, ["b", bucket, "iam"]) => set_bucket_policy(store, request, &decode(bucket)?)
            .map(|body| (StorageAnswer::Json(body), true)),
        ("GET", false, ["b", bucket, "iam", "testPermissions"]) => {
            test_bucket_permissions(store, request, &decode(bucket)?)
                .map(|body| (StorageAnswer::Json(body), false))
        }
        ("PUT", false, ["b", bucket]) => update_bucket(store, request, &decode(bucket)?)
            .map(|body| (StorageAnswer::Json(body), true)),
        ("DELETE", false, ["b", bucket]) => {
            delete_bucket(store, request, &decode(bucket)?).map(|()| (StorageAnswer::Empty, true))
        }
        ("POST", true, ["b", bucket, "o"]) => upload(store, request, &decode(bucket)?),
        ("PUT", true, ["b", _, "o"]) => continue_resumable(store, request),
        ("DELETE", true, ["b", _, "o"]) => Err(cancel_resumable(store, request)),
        ("GET", false, ["b", bucket, "o"]) => {
            list(store, request, &decode(bucket)?).map(|body| (StorageAnswer::Json(body), false))
        }
        (method, false, ["b", bucket, "o", object]) => {
            let (bucket, object) = (decode(bucket)?, decode(object)?);
            match method {
                "GET" => get_object(store, request, &bucket, &object).map(|answer| (answer, false)),
                "DELETE" => delete_object(store, request, &bucket, &object)
                    .map(|()| (StorageAnswer::Empty, true)),
                "PATCH" => patch_object(store, request, &bucket, &object, false)
                    .map(|body| (StorageAnswer::Json(body), true)),
                "PUT" => patch_object(store, request, &bucket, &object, true)
                    .map(|body| (StorageAnswer::Json(body), true)),
                _ => Err(not_served(request)),
            }
        }
        (
            "POST",
            false,
            [
                "b",
                source_bucket,
                "o",
                source,
                verb @ ("copyTo" | "rewriteTo"),
                "b",
                bucket,
                "o",
                object,
            ],
        ) => copy(
            store,
            request,
            (&decode(source_bucket)?, &decode(source)?),
            (&decode(bucket)?, &decode(object)?),
            *verb == "rewriteTo",
        ),
        ("POST", false, ["b", bucket, "o", object, "compose"]) => {
            compose(store, request, &decode(bucket)?, &decode(object)?)
        }
        _ => Err(not_served(request)),
    }
}

/// Cloud Storage's storage classes (<https://cloud.google.com/storage/docs/storage-classes>,
/// and the legacy ones the JSON API still accepts).
const STORAGE_CLASSES: [&str; 7] = [
    "STANDARD",
    "NEARLINE",
    "COLDLINE",
    "ARCHIVE",
    "MULTI_REGIONAL",
    "REGIONAL",
    "DURABLE_REDUCED_AVAILABILITY",
];

fn check_storage_class(body: &Json) -> Result<(), StorageError> {
    match body.get("storageClass") {
        None | Some(Json::Null) => Ok(()),
        Some(class)
            if class
                .as_str()
                .is_some_and(|class| STORAGE_CLASSES.contains(&class)) =>
        {
            Ok(())
        }
        Some(class) => Err(StorageError::invalid(format!(
            "Invalid storage class: {class}"
        ))),
    }
}

/// An object's storage class: the one it was written with, which defaults to its bucket's
/// ("If you don't specify a storage class for an object, it uses the bucket's default storage
/// class", <https://cloud.google.com/storage/docs/storage-classes>).
fn object_storage_class(version: &ObjectGeneration) -> &str {
    version.storage_class.as_deref().unwrap_or("STANDARD")
}

/// The writable object fields beyond `metadata` and `contentType` (the Object resource,
/// <https://cloud.google.com/storage/docs/json_api/v1/objects#resource>), kept as written.
const OBJECT_WRITABLE: [&str; 9] = [
    "cacheControl",
    "contentDisposition",
    "contentEncoding",
    "contentLanguage",
    "customTime",
    "eventBasedHold",
    "temporaryHold",
    "retention",
    "contexts",
];

/// The writable bucket fields beyond `versioning` and `labels` (the Bucket resource,
/// <https://cloud.google.com/storage/docs/json_api/v1/buckets#resource>), kept as written
/// (not enforced: no lifecycle runs, no retention holds). `softDeletePolicy` is not among
/// them: soft delete is not modelled.
const BUCKET_WRITABLE: [&str; 16] = [
    "storageClass",
    "autoclass",
    "billing",
    "cors",
    "customPlacementConfig",
    "defaultEventBasedHold",
    "encryption",
    "hierarchicalNamespace",
    "iamConfiguration",
    "ipFilter",
    "lifecycle",
    "logging",
    "objectRetention",
    "retentionPolicy",
    "rpo",
    "website",
];

/// The `allowed` fields of a request body: on insert and update (`replace`) they become the
/// whole set; on patch they are merged in with patch semantics
/// (<https://cloud.google.com/storage/docs/json_api#patch>): a message merges field by field,
/// `null` clears, anything else replaces.
fn write_fields(
    stored: &mut serde_json::Map<String, Json>,
    body: &Json,
    allowed: &[&str],
    replace: bool,
) {
    if replace {
        stored.clear();
    }
    for field in allowed {
        match body.get(*field) {
            Some(Json::Null) => {
                stored.remove(*field);
            }
            Some(value) if !replace => merge_patch(stored, field, value),
            Some(value) => {
                stored.insert(field.to_string(), value.clone());
            }
            None => {}
        }
    }
}

fn merge_patch(stored: &mut serde_json::Map<String, Json>, field: &str, value: &Json) {
    match (stored.get_mut(field), value) {
        (_, Json::Null) => {
            stored.remove(field);
        }
        (Some(Json::Object(current)), Json::Object(incoming)) => {
            for (key, item) in incoming {
                merge_patch(current, key, item);
            }
        }
        _ => {
            stored.insert(field.to_string(), value.clone());
        }
    }
}

/// Whether a bucket has uniform bucket-level access (the emulator's default, see
/// `bucket_json`), from its stored `iamConfiguration` or, for a bucket being created, its body.
fn uniform_access(iam_configuration: Option<&Json>) -> bool {
    let configuration = iam_configuration.unwrap_or(&Json::Null);
    let flag = |field: &str| configuration[field]["enabled"].as_bool();
    flag("uniformBucketLevelAccess")
        .or_else(|| flag("bucketPolicyOnly"))
        .unwrap_or(true)
}

/// "When you enable uniform bucket-level access on a bucket, Access Control Lists (ACLs) are
/// disabled" (<https://cloud.google.com/storage/docs/uniform-bucket-level-access>): the ACL
/// methods and the `predefinedAcl` family of parameters are refused with 400 on such a bucket.
fn check_acl_use(
    store: &Store,
    request: &StorageRequest<'_>,
    segments: &[&str],
) -> Result<(), StorageError> {
    let acl_method = segments
        .iter()
        .any(|segment| matches!(*segment, "acl" | "defaultObjectAcl"));
    let acl_parameter = request.query.iter().any(|(key, _)| {
        matches!(
            key.as_str(),
            "predefinedAcl" | "predefinedDefaultObjectAcl" | "destinationPredefinedAcl"
        )
    });
    if !acl_method && !acl_parameter {
        return Ok(());
    }
    let uniform = match segments {
        ["b"] if request.method == Method::POST => {
            let body: Json = serde_json::from_slice(request.body).unwrap_or_default();
            uniform_access(body.get("iamConfiguration"))
        }
        ["b", bucket, ..] => {
            let bucket = decode(bucket)?;
            match store.buckets.get(&bucket) {
                Some(record) => uniform_access(record.extra.get("iamConfiguration")),
                None => return Ok(()),
            }
        }
        _ => false,
    };
    if uniform {
        return Err(StorageError::invalid(
            "Cannot use ACL API or predefined ACLs: uniform bucket-level access is enabled on this bucket.",
        ));
    }
    Ok(())
}

/// A request no handler serves: 501 naming the method when Cloud Storage has one there, 404
/// otherwise (an object name with an unencoded `/` is no object path at all).
fn not_served(request: &StorageRequest<'_>) -> StorageError {
    let path = if request.upload {
        format!("upload/{}", request.path)
    } else {
        request.path.to_string()
    };
    let method = super::discovery::find_storage_method(request.method.as_str(), request.path)
        .or_else(|| super::discovery::find_storage_method(request.method.as_str(), &path));
    match method {
        Some(method) => StorageError::new(
            StatusCode::NOT_IMPLEMENTED,
            "notImplemented",
            format!("Method {} is not implemented by the emulator.", method.id),
        ),
        None => StorageError::not_found("Not Found"),
    }
}

/// Cloud Storage's list sizes: "The service will use this parameter or 1,000 items, whichever
/// is smaller."
const STORAGE_PAGE_SIZES: PageSizes = PageSizes::new(1000, 1000);

fn page<T>(
    items: Vec<T>,
    request: &StorageRequest<'_>,
) -> Result<(Vec<T>, Option<String>), StorageError> {
    collection::page_of(
        items,
        request.query("maxResults"),
        request.query("pageToken"),
        "maxResults",
        STORAGE_PAGE_SIZES,
    )
    .map_err(StorageError::invalid)
}

fn list_buckets(store: &Store, request: &StorageRequest<'_>) -> Result<Json, StorageError> {
    let project = request.query("project").ok_or_else(|| {
        StorageError::new(
            StatusCode::BAD_REQUEST,
            "required",
            "Required parameter: project",
        )
    })?;
    let number = project_number(project);
    let prefix = request.query("prefix").unwrap_or_default();
    let buckets: Vec<Json> = store
        .buckets
        .iter()
        .filter(|(name, bucket)| bucket.project_number == number && name.starts_with(prefix))
        .map(|(name, bucket)| bucket_json(name, bucket, &request.base_url))
        .collect();
    let (items, next) = page(buckets, request)?;
    let mut body = json!({"kind": "storage#buckets"});
    if !items.is_empty() {
        body["items"] = json!(items);
    }
    if let Some(next) = next {
        body["nextPageToken"] = json!(next);
    }
    Ok(body)
}

/// Checks `ifMetagenerationMatch` / `ifMetagenerationNotMatch` against a bucket.
fn check_bucket_preconditions(
    request: &StorageRequest<'_>,
    bucket: &BucketRecord,
) -> Result<(), StorageError> {
    if let Some(expected) = request.number("ifMetagenerationMatch")?
        && expected != bucket.metageneration
    {
        return Err(StorageError::precondition());
    }
    if let Some(unexpected) = request.number("ifMetagenerationNotMatch")?
        && unexpected == bucket.metageneration
    {
        return Err(StorageError::precondition());
    }
    Ok(())
}

fn patch_bucket(
    store: &mut Store,
    request: &StorageRequest<'_>,
    name: &str,
) -> Result<Json, StorageError> {
    let body: Json = serde_json::from_slice(request.body)
        .map_err(|error| StorageError::invalid(format!("Invalid JSON payload: {error}")))?;
    check_storage_class(&body)?;
    let bucket = store
        .buckets
        .get_mut(name)
        .ok_or_else(|| StorageError::not_found("The specified bucket does not exist."))?;
    check_bucket_preconditions(request, bucket)?;
    if let Some(enabled) = body.pointer("/versioning/enabled").and_then(Json::as_bool) {
        bucket.versioning = enabled;
    }
    if let Some(labels) = body.get("labels") {
        match labels.as_object() {
            // Patch semantics: named labels change, `null` removes one, the others stay.
            Some(entries) => {
                for (key, value) in entries {
                    if value.is_null() {
                        bucket.labels.remove(key);
                    } else {
                        bucket.labels.insert(key.clone(), value.clone());
                    }
                }
            }
            None => bucket.labels.clear(),
        }
    }
    write_fields(&mut bucket.extra, &body, &BUCKET_WRITABLE, false);
    bucket.metageneration += 1;
    bucket.updated = Some(now());
    Ok(bucket_json(name, bucket, &request.base_url))
}

/// `buckets.update` (PUT): the body is the whole writable metadata; what it leaves out is
/// cleared (versioning off, no labels).
fn update_bucket(
    store: &mut Store,
    request: &StorageRequest<'_>,
    name: &str,
) -> Result<Json, StorageError> {
    let body: Json = serde_json::from_slice(request.body)
        .map_err(|error| StorageError::invalid(format!("Invalid JSON payload: {error}")))?;
    check_storage_class(&body)?;
    let bucket = store
        .buckets
        .get_mut(name)
        .ok_or_else(|| StorageError::not_found("The specified bucket does not exist."))?;
    check_bucket_preconditions(request, bucket)?;
    bucket.versioning = body
        .pointer("/versioning/enabled")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    bucket.labels = body["labels"].as_object().cloned().unwrap_or_default();
    bucket.labels.retain(|_, value| !value.is_null());
    write_fields(&mut bucket.extra, &body, &BUCKET_WRITABLE, true);
    bucket.metageneration += 1;
    bucket.updated = Some(now());
    Ok(bucket_json(name, bucket, &request.base_url))
}

/// A bucket's IAM policy, in Cloud Storage's own shape (`storage#policy`, the bucket as
/// `resourceId`; <https://cloud.google.com/storage/docs/json_api/v1/buckets/getIamPolicy>). A
/// bucket starts with the legacy convenience bindings every new bucket has
/// (<https://cloud.google.com/storage/docs/access-control/iam#convenience-values>).
fn bucket_policy(store: &Store, bucket: &str) -> Result<(String, PolicyRecord), StorageError> {
    let Some(record) = store.buckets.get(bucket) else {
        return Err(StorageError::not_found(
            "The specified bucket does not exist.",
        ));
    };
    let resource = format!("projects/_/buckets/{bucket}");
    let policy = store.policies.get(&resource).cloned().unwrap_or_else(|| {
        let project = &record.project_number;
        PolicyRecord {
            version: 1,
            bindings: vec![
                json!({"role": "roles/storage.legacyBucketOwner", "members": [format!("projectEditor:{project}"), format!("projectOwner:{project}")]}),
                json!({"role": "roles/storage.legacyBucketReader", "members": [format!("projectViewer:{project}")]}),
            ],
            audit_configs: Vec::new(),
            etag: "CAE=".to_string(),
        }
    });
    Ok((resource, policy))
}

fn bucket_policy_json(resource: &str, policy: &PolicyRecord) -> Json {
    let mut body = json!({
        "kind": "storage#policy",
        "resourceId": resource,
        "version": policy.version,
        "etag": policy.etag,
    });
    if !policy.bindings.is_empty() {
        body["bindings"] = json!(policy.bindings);
    }
    body
}

/// `buckets.getIamPolicy`: "If the optionsRequestedPolicyVersion is for an older version that
/// doesn't support part of the requested IAM policy, the request fails."
fn get_bucket_policy(
    store: &Store,
    request: &StorageRequest<'_>,
    bucket: &str,
) -> Result<Json, StorageError> {
    let (resource, policy) = bucket_policy(store, bucket)?;
    let requested = request
        .number("optionsRequestedPolicyVersion")?
        .unwrap_or(1);
    if !matches!(requested, 1 | 3) {
        return Err(StorageError::invalid(format!(
            "Invalid optionsRequestedPolicyVersion {requested}: use 1 or 3."
        )));
    }
    if requested < 3 && policy.version >= 3 {
        return Err(StorageError::invalid(
            "The policy has conditions: request optionsRequestedPolicyVersion=3 to read it.",
        ));
    }
    Ok(bucket_policy_json(&resource, &policy))
}

/// `buckets.setIamPolicy` (PUT, the Policy as body): a stale etag fails the precondition
/// (412), conditions need version 3, every binding names a role and members.
fn set_bucket_policy(
    store: &mut Store,
    request: &StorageRequest<'_>,
    bucket: &str,
) -> Result<Json, StorageError> {
    let body: Json = serde_json::from_slice(request.body)
        .map_err(|error| StorageError::invalid(format!("Invalid JSON payload: {error}")))?;
    let (resource, current) = bucket_policy(store, bucket)?;
    if let Some(etag) = body["etag"].as_str()
        && etag != current.etag
    {
        return Err(StorageError::precondition());
    }
    let bindings = body["bindings"].as_array().cloned().unwrap_or_default();
    let mut conditional = false;
    for binding in &bindings {
        let role = binding["role"].as_str().unwrap_or_default();
        let members = binding["members"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if role.is_empty() || members.is_empty() {
            return Err(StorageError::invalid(
                "Every binding needs a role and at least one member.",
            ));
        }
        for member in members {
            let member = member.as_str().unwrap_or_default();
            let valid = ["allUsers", "allAuthenticatedUsers"].contains(&member)
                || [
                    "user:",
                    "serviceAccount:",
                    "group:",
                    "domain:",
                    "projectOwner:",
                    "projectEditor:",
                    "projectViewer:",
                    "principal://",
                    "principalSet://",
                    "deleted:",
                ]
                .iter()
                .any(|prefix| {
                    member
                        .strip_prefix(prefix)
                        .is_some_and(|rest| !rest.is_empty())
                });
            if !valid {
                return Err(StorageError::invalid(format!(
                    "Invalid member {member:?} for role {role}."
                )));
            }
        }
        conditional |= binding
            .get("condition")
            .is_some_and(|condition| !condition.is_null());
    }
    let version = body["version"].as_i64().unwrap_or(1);
    if conditional && version < 3 {
        return Err(StorageError::invalid(
            "IAM conditions need policy version 3.",
        ));
    }
    let policy = PolicyRecord {
        version: if conditional { 3 } else { 1 },
        bindings,
        audit_configs: Vec::new(),
        etag: store.next_etag(),
    };
    let answer = bucket_policy_json(&resource, &policy);
    store.policies.insert(resource, policy);
    Ok(answer)
}

/// `buckets.testIamPermissions`: the emulator's caller holds every Cloud Storage permission
/// it asks about; a permission of another service is refused.
fn test_bucket_permissions(
    store: &Store,
    request: &StorageRequest<'_>,
    bucket: &str,
) -> Result<Json, StorageError> {
    bucket_policy(store, bucket)?;
    let permissions: Vec<&str> = request
        .query
        .iter()
        .filter(|(key, _)| key == "permissions")
        .map(|(_, value)| value.as_str())
        .collect();
    if permissions.is_empty() {
        return Err(StorageError::new(
            StatusCode::BAD_REQUEST,
            "required",
            "Required parameter: permissions",
        ));
    }
    if let Some(foreign) = permissions
        .iter()
        .find(|permission| !permission.starts_with("storage."))
    {
        return Err(StorageError::invalid(format!(
            "Permission '{foreign}' is not a Cloud Storage permission."
        )));
    }
    Ok(json!({"kind": "storage#testIamPermissionsResponse", "permissions": permissions}))
}

fn delete_bucket(
    store: &mut Store,
    request: &StorageRequest<'_>,
    name: &str,
) -> Result<(), StorageError> {
    let bucket = store
        .buckets
        .get(name)
        .ok_or_else(|| StorageError::not_found("The specified bucket does not exist."))?;
    check_bucket_preconditions(request, bucket)?;
    if store
        .objects
        .get(name)
        .is_some_and(|objects| !objects.is_empty())
    {
        return Err(StorageError::new(
            StatusCode::CONFLICT,
            "conflict",
            "The bucket you tried to delete is not empty.",
        ));
    }
    store.buckets.remove(name);
    store.objects.remove(name);
    store.policies.remove(&format!("projects/_/buckets/{name}"));
    Ok(())
}

/// `objects.patch`, and `objects.update` (PUT, `replace`: what the body leaves out is cleared):
/// metadata only (a new metageneration, same generation); the preconditions apply to the live
/// generation.
fn patch_object(
    store: &mut Store,
    request: &StorageRequest<'_>,
    bucket: &str,
    name: &str,
    replace: bool,
) -> Result<Json, StorageError> {
    if !store.buckets.contains_key(bucket) {
        return Err(StorageError::not_found(
            "The specified bucket does not exist.",
        ));
    }
    let body: Json = serde_json::from_slice(request.body)
        .map_err(|error| StorageError::invalid(format!("Invalid JSON payload: {error}")))?;
    // `generation`: "If present, selects a specific revision of this object (as opposed to the
    // latest version, the default)" — a noncurrent one included.
    let generation = request.number("generation")?;
    let current = at_generation(store, bucket, name, generation).cloned();
    let Some(current) = current else {
        return Err(StorageError::not_found(format!(
            "No such object: {bucket}/{name}"
        )));
    };
    check_preconditions(request, Some(&current), false)?;
    admit_write(request, bucket, name)?;
    let version = store
        .objects
        .get_mut(bucket)
        .and_then(|objects| objects.get_mut(name))
        .and_then(|generations| {
            generations
                .iter_mut()
                .find(|version| version.generation == current.generation)
        })
        .ok_or_else(|| StorageError::not_found(format!("No such object: {bucket}/{name}")))?;
    if replace {
        version.metadata.clear();
    }
    if let Some(metadata) = body.get("metadata") {
        match metadata.as_object() {
            Some(entries) => {
                for (key, value) in entries {
                    if value.is_null() {
                        version.metadata.remove(key);
                    } else {
                        version.metadata.insert(key.clone(), value.clone());
                    }
                }
            }
            None => version.metadata.clear(),
        }
    }
    if let Some(content_type) = body["contentType"].as_str() {
        version.content_type = content_type.to_string();
    }
    write_fields(&mut version.extra, &body, &OBJECT_WRITABLE, replace);
    version.metageneration += 1;
    version.updated = now();
    let answer = object_json(bucket, name, version, &request.base_url);
    Ok(answer)
}

/// `objects.copy` and `objects.rewrite` (which finishes in one call here, so it answers
/// `done: true` with the resource). Source preconditions are the `ifSource…` parameters; the
/// plain ones guard the destination.
fn copy(
    store: &mut Store,
    request: &StorageRequest<'_>,
    (source_bucket, source): (&str, &str),
    (bucket, object): (&str, &str),
    rewrite: bool,
) -> Result<(StorageAnswer, bool), StorageError> {
    for name in [source_bucket, bucket] {
        if !store.buckets.contains_key(name) {
            return Err(StorageError::not_found(
                "The specified bucket does not exist.",
            ));
        }
    }
    let not_found = || StorageError::not_found(format!("No such object: {source_bucket}/{source}"));
    let version = at_generation(
        store,
        source_bucket,
        source,
        request.number("sourceGeneration")?,
    )
    .cloned()
    .ok_or_else(not_found)?;
    let source_query: Vec<(String, String)> = request
        .query
        .iter()
        .filter_map(|(key, value)| {
            key.strip_prefix("ifSource")
                .map(|rest| (format!("if{rest}"), value.clone()))
        })
        .collect();
    let source_request = StorageRequest {
        query: &source_query,
        body: &[],
        ..request.clone()
    };
    check_preconditions(&source_request, Some(&version), false)?;
    let overrides: Json = if request.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(request.body)
            .map_err(|error| StorageError::invalid(format!("Invalid JSON payload: {error}")))?
    };
    // The destination takes the source's metadata, and the body's fields where it has them.
    let mut metadata = json!({
        "metadata": overrides.get("metadata").cloned().unwrap_or(Json::Object(version.metadata.clone())),
        "contentType": overrides["contentType"].as_str().unwrap_or(&version.content_type),
    });
    if let Some(class) = overrides
        .get("storageClass")
        .filter(|class| !class.is_null())
    {
        metadata["storageClass"] = class.clone();
    }
    for field in OBJECT_WRITABLE {
        if let Some(value) = overrides
            .get(field)
            .filter(|value| !value.is_null())
            .or_else(|| version.extra.get(field))
        {
            metadata[field] = value.clone();
        }
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(&version.data)
        .unwrap_or_default();
    let size = data.len();
    let destination_query: Vec<(String, String)> = request
        .query
        .iter()
        .filter(|(key, _)| !key.starts_with("ifSource"))
        .cloned()
        .collect();
    let destination_request = StorageRequest {
        query: &destination_query,
        ..request.clone()
    };
    let content_type = version.content_type.clone();
    let (answer, changed) = store_object(
        store,
        &destination_request,
        bucket,
        object,
        &metadata,
        data,
        content_type,
    )?;
    if !rewrite {
        return Ok((answer, changed));
    }
    let StorageAnswer::Json(resource) = answer else {
        return Ok((answer, changed));
    };
    Ok((
        StorageAnswer::Json(json!({
            "kind": "storage#rewriteResponse",
            "totalBytesRewritten": size.to_string(),
            "objectSize": size.to_string(),
            "done": true,
            "resource": resource,
        })),
        changed,
    ))
}

/// `objects.compose`: concatenates 1 to 32 source objects of the destination's bucket into the
/// destination object (<https://cloud.google.com/storage/docs/json_api/v1/objects/compose>).
/// Each source may pin a `generation` and an `objectPreconditions.ifGenerationMatch`; the
/// query's `ifGenerationMatch` / `ifMetagenerationMatch` guard the destination. The result is a
/// composite object: a `componentCount` (at most 1024), a CRC32C and no MD5 hash.
fn compose(
    store: &mut Store,
    request: &StorageRequest<'_>,
    bucket: &str,
    object: &str,
) -> Result<(StorageAnswer, bool), StorageError> {
    if !store.buckets.contains_key(bucket) {
        return Err(StorageError::not_found(
            "The specified bucket does not exist.",
        ));
    }
    let body: Json = serde_json::from_slice(request.body)
        .map_err(|error| StorageError::invalid(format!("Invalid JSON payload: {error}")))?;
    let sources = body["sourceObjects"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if sources.is_empty() {
        return Err(StorageError::new(
            StatusCode::BAD_REQUEST,
            "required",
            "Required field: sourceObjects",
        ));
    }
    if sources.len() > 32 {
        return Err(StorageError::invalid(
            "The number of source components provided (more than 32) exceeds the maximum (32).",
        ));
    }
    let mut data = Vec::new();
    let mut component_count: u32 = 0;
    for source in sources {
        let name = source["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            return Err(StorageError::new(
                StatusCode::BAD_REQUEST,
                "required",
                "Required field: sourceObjects[].name",
            ));
        }
        let not_found = || StorageError::not_found(format!("No such object: {bucket}/{name}"));
        let generation = match &source["generation"] {
            Json::Null => None,
            Json::String(text) => Some(text.parse::<i64>().map_err(|_| {
                StorageError::invalid(format!(
                    "Invalid value for sourceObjects[].generation: {text}"
                ))
            })?),
            other => other.as_i64().map(Some).ok_or_else(|| {
                StorageError::invalid(format!(
                    "Invalid value for sourceObjects[].generation: {other}"
                ))
            })?,
        };
        let version = at_generation(store, bucket, name, generation).ok_or_else(not_found)?;
        let pinned = &source["objectPreconditions"]["ifGenerationMatch"];
        let pinned = match pinned {
            Json::String(text) => text.parse::<i64>().ok(),
            other => other.as_i64(),
        };
        if pinned.is_some_and(|expected| expected != version.generation) {
            return Err(StorageError::precondition());
        }
        component_count += version.component_count.max(1);
        data.extend(
            base64::engine::general_purpose::STANDARD
                .decode(&version.data)
                .unwrap_or_default(),
        );
    }
    if component_count > 1024 {
        return Err(StorageError::invalid(
            "The number of components in the composite object would exceed the maximum (1024).",
        ));
    }
    let destination = body
        .get("destination")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let content_type = destination["contentType"]
        .as_str()
        .unwrap_or("application/octet-stream")
        .to_string();
    let (_, changed) = store_object(
        store,
        request,
        bucket,
        object,
        &destination,
        data,
        content_type,
    )?;
    let version = store
        .objects
        .get_mut(bucket)
        .and_then(|objects| objects.get_mut(object))
        .and_then(|generations| generations.last_mut())
        .ok_or_else(|| StorageError::not_found(format!("No such object: {bucket}/{object}")))?;
    version.component_count = component_count;
    Ok((
        StorageAnswer::Json(object_json(bucket, object, version, &request.base_url)),
        changed,
    ))
}

fn decode(segment: &str) -> Result<String, StorageError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| StorageError::invalid("Invalid UTF-8 in the path."))
}

fn bucket_json(name: &str, bucket: &BucketRecord, base: &str) -> Json {
    let mut body = json!({
        "kind": "storage#bucket",
        "id": name,
        "name": name,
        "selfLink": format!("{base}storage/v1/b/{name}"),
        "projectNumber": bucket.project_number,
        "metageneration": bucket.metageneration.to_string(),
        "location": bucket.location,
        "storageClass": "STANDARD",
        "versioning": {"enabled": bucket.versioning},
        "timeCreated": bucket.time_created,
        "updated": bucket.updated.clone().unwrap_or_else(|| bucket.time_created.clone()),
        "etag": base64::engine::general_purpose::STANDARD.encode(format!("{name}/{}", bucket.metageneration)),
    });
    if !bucket.labels.is_empty() {
        body["labels"] = Json::Object(bucket.labels.clone());
    }
    // Server-filled fields: the location's type, and the IAM configuration of a bucket made
    // without one (uniform bucket-level access, as the emulator serves no ACLs).
    body["locationType"] = json!(location_type(&bucket.location));
    // "rpo: The Recovery Point Objective (RPO) of this bucket" — DEFAULT for the dual- and
    // multi-regions that have one (<https://cloud.google.com/storage/docs/turbo-replication>).
    if location_type(&bucket.location) != "region" {
        body["rpo"] = json!("DEFAULT");
    }
    let mut iam_configuration = serde_json::Map::new();
    iam_configuration.insert("uniformBucketLevelAccess".into(), json!({"enabled": true}));
    iam_configuration.insert("bucketPolicyOnly".into(), json!({"enabled": true}));
    iam_configuration.insert("publicAccessPrevention".into(), json!("inherited"));
    for (field, value) in &bucket.extra {
        if field == "iamConfiguration" {
            if let Some(given) = value.as_object() {
                for (key, item) in given {
                    merge_patch(&mut iam_configuration, key, item);
                }
            }
        } else {
            body[field] = value.clone();
        }
    }
    body["iamConfiguration"] = Json::Object(iam_configuration);
    body
}

/// "locationType: The type of the bucket location" — multi-region (`US`, `EU`, `ASIA`),
/// predefined dual-region (`NAM4`, `EUR4`, `ASIA1`, …) or region
/// (<https://cloud.google.com/storage/docs/locations>).
fn location_type(location: &str) -> &'static str {
    match location {
        "US" | "EU" | "ASIA" => "multi-region",
        "NAM4" | "EUR4" | "EUR5" | "EUR7" | "EUR8" | "ASIA1" => "dual-region",
        _ => "region",
    }
}

fn insert_bucket(
    store: &mut Store,
    request: &StorageRequest<'_>,
) -> Result<(StorageAnswer, bool), StorageError> {
    let project = request.query("project").ok_or_else(|| {
        StorageError::new(
            StatusCode::BAD_REQUEST,
            "required",
            "Required parameter: project",
        )
    })?;
    let body: Json = serde_json::from_slice(request.body)
        .map_err(|error| StorageError::invalid(format!("Invalid JSON payload: {error}")))?;
    check_storage_class(&body)?;
    let name = body["name"].as_str().unwrap_or_default().to_string();
    let valid = (3..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' || c == '.'
        });
    if !valid {
        return Err(StorageError::invalid(format!(
            "Invalid bucket name: '{name}'"
        )));
    }
    if store.buckets.contains_key(&name) {
        return Err(StorageError::new(
            StatusCode::CONFLICT,
            "conflict",
            "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
        ));
    }
    let bucket = BucketRecord {
        project_number: project_number(project),
        versioning: body
            .pointer("/versioning/enabled")
            .and_then(Json::as_bool)
            .unwrap_or(false),
        metageneration: 1,
        time_created: now(),
        location: body["location"].as_str().unwrap_or("US").to_uppercase(),
        updated: None,
        labels: body["labels"].as_object().cloned().unwrap_or_default(),
        extra: Default::default(),
    };
    let mut bucket = bucket;
    write_fields(&mut bucket.extra, &body, &BUCKET_WRITABLE, true);
    let answer = bucket_json(&name, &bucket, &request.base_url);
    store.buckets.insert(name, bucket);
    Ok((StorageAnswer::Json(answer), true))
}

fn get_bucket(
    store: &Store,
    request: &StorageRequest<'_>,
    name: &str,
) -> Result<Json, StorageError> {
    let bucket = store
        .buckets
        .get(name)
        .ok_or_else(|| StorageError::not_found("The specified bucket does not exist."))?;
    if let Some(unexpected) = request.number("ifMetagenerationNotMatch")?
        && unexpected == bucket.metageneration
    {
        return Err(StorageError::new(
            StatusCode::NOT_MODIFIED,
            "notModified",
            "",
        ));
    }
    if let Some(expected) = request.number("ifMetagenerationMatch")?
        && expected != bucket.metageneration
    {
        return Err(StorageError::precondition());
    }
    Ok(bucket_json(name, bucket, &request.base_url))
}

fn encode(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The CRC32C and MD5 of `data`, base64 as Cloud Storage shows them.
fn checksums(data: &[u8]) -> (String, String) {
    let engine = &base64::engine::general_purpose::STANDARD;
    (
        engine.encode(crc32c::crc32c(data).to_be_bytes()),
        engine.encode(md5::compute(data).0),
    )
}

/// The number of bytes standard (padded) base64 `encoded` decodes to.
fn decoded_length(encoded: &str) -> usize {
    let padding = encoded
        .bytes()
        .rev()
        .take_while(|byte| *byte == b'=')
        .count();
    encoded.len() / 4 * 3 - padding.min(2)
}

fn object_json(bucket: &str, name: &str, version: &ObjectGeneration, base: &str) -> Json {
    let (crc, md5) = if version.crc32c.is_empty() || version.md5_hash.is_empty() {
        checksums(
            &base64::engine::general_purpose::STANDARD
                .decode(&version.data)
                .unwrap_or_default(),
        )
    } else {
        (version.crc32c.clone(), version.md5_hash.clone())
    };
    let mut body = json!({
        "kind": "storage#object",
        "id": format!("{bucket}/{name}/{}", version.generation),
        "selfLink": format!("{base}storage/v1/b/{bucket}/o/{}", encode(name)),
        "mediaLink": format!("{base}download/storage/v1/b/{bucket}/o/{}?generation={}&alt=media", encode(name), version.generation),
        "name": name,
        "bucket": bucket,
        "generation": version.generation.to_string(),
        "metageneration": version.metageneration.to_string(),
        "contentType": version.content_type,
        "storageClass": object_storage_class(version),
        "size": decoded_length(&version.data).to_string(),
        "crc32c": crc,
        "md5Hash": md5,
        "etag": base64::engine::general_purpose::STANDARD.encode(format!("{}/{}", version.generation, version.metageneration)),
        "timeCreated": version.time_created,
        "updated": version.updated,
        "timeFinalized": version.time_created,
        // "The time at which the object's storage class was last changed": its creation, as
        // classes change only by rewriting into a new generation.
        "timeStorageClassUpdated": version.time_created,
    });
    if let Some(deleted) = &version.time_deleted {
        body["timeDeleted"] = json!(deleted);
    }
    if !version.metadata.is_empty() {
        body["metadata"] = Json::Object(version.metadata.clone());
    }
    for (field, value) in &version.extra {
        body[field] = value.clone();
    }
    // "componentCount: Returned for composite objects only"; composite objects have no MD5
    // ("md5Hash … Not present for composite objects").
    if version.component_count > 0 {
        body["componentCount"] = json!(version.component_count);
        if let Some(body) = body.as_object_mut() {
            body.remove("md5Hash");
        }
    }
    body
}

fn live<'a>(store: &'a Store, bucket: &str, name: &str) -> Option<&'a ObjectGeneration> {
    store
        .objects
        .get(bucket)?
        .get(name)?
        .last()
        .filter(|version| version.time_deleted.is_none())
}

/// The object's version at `generation`, noncurrent ones included, or its live version when no
/// generation is given (Google's "if present, selects a specific revision").
fn at_generation<'a>(
    store: &'a Store,
    bucket: &str,
    name: &str,
    generation: Option<i64>,
) -> Option<&'a ObjectGeneration> {
    match generation {
        Some(generation) => store
            .objects
            .get(bucket)?
            .get(name)?
            .iter()
            .find(|version| version.generation == generation),
        None => live(store, bucket, name),
    }
}

/// Checks the four preconditions against the live generation (`None` when there is none).
/// `read` makes a matched `ifGenerationNotMatch`/`ifMetagenerationNotMatch` a 304, as on GET.
fn check_preconditions(
    request: &StorageRequest<'_>,
    current: Option<&ObjectGeneration>,
    read: bool,
) -> Result<(), StorageError> {
    let generation = current.map_or(0, |version| version.generation);
    let metageneration = current.map(|version| version.metageneration);
    if let Some(expected) = request.number("ifGenerationMatch")?
        && expected != generation
    {
        return Err(StorageError::precondition());
    }
    if let Some(unexpected) = request.number("ifGenerationNotMatch")? {
        let live_exists = current.is_some();
        let matches = if unexpected == 0 {
            !live_exists
        } else {
            unexpected == generation
        };
        if !live_exists && unexpected != 0 {
            return Err(StorageError::precondition());
        }
        if matches {
            return Err(if read {
                StorageError::new(StatusCode::NOT_MODIFIED, "notModified", "")
            } else {
                StorageError::precondition()
            });
        }
    }
    if let Some(expected) = request.number("ifMetagenerationMatch")?
        && Some(expected) != metageneration
    {
        return Err(StorageError::precondition());
    }
    if let Some(unexpected) = request.number("ifMetagenerationNotMatch")? {
        match metageneration {
            None => return Err(StorageError::precondition()),
            Some(value) if value == unexpected => {
                return Err(if read {
                    StorageError::new(StatusCode::NOT_MODIFIED, "notModified", "")
                } else {
                    StorageError::precondition()
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Splits a `multipart/related` body into its JSON metadata and its media.
fn multipart(headers: &HeaderMap, body: &[u8]) -> Result<(Json, Vec<u8>, String), StorageError> {
    let content_type = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let boundary = content_type
        .split(';')
        .find_map(|part| part.trim().strip_prefix("boundary="))
        .map(|boundary| boundary.trim_matches('"').to_string())
        .ok_or_else(|| {
            StorageError::invalid(
                "Multipart upload needs Content-Type: multipart/related; boundary=…",
            )
        })?;
    let delimiter = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delimiter.as_bytes());
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut rest: &[u8] = body;
    while let Some(start) = finder.find(rest) {
        rest = &rest[start + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let end = finder.find(rest).unwrap_or(rest.len());
        parts.push(&rest[..end]);
    }
    if parts.len() != 2 {
        return Err(StorageError::invalid(
            "A multipart upload has two parts: metadata, then media.",
        ));
    }
    let (_, metadata) = multipart_part(parts[0]);
    let (media_headers, media) = multipart_part(parts[1]);
    let media_type = media_headers
        .lines()
        .find_map(|line| {
            line.split_once(':')
                .filter(|(name, _)| name.trim().eq_ignore_ascii_case("content-type"))
                .map(|(_, value)| value.trim().to_string())
        })
        .unwrap_or_else(|| "application/octet-stream".into());
    let metadata: Json = serde_json::from_slice(metadata)
        .map_err(|error| StorageError::invalid(format!("Invalid metadata part: {error}")))?;
    Ok((metadata, media.to_vec(), media_type))
}

/// Splits one part of a multipart body into its headers and its content.
fn multipart_part(part: &[u8]) -> (String, &[u8]) {
    let part = part.strip_prefix(b"\r\n").unwrap_or(part);
    let header_end = memchr::memmem::find(part, b"\r\n\r\n").unwrap_or(0);
    let headers = String::from_utf8_lossy(&part[..header_end]).to_string();
    let content = &part[(header_end + 4).min(part.len())..];
    (headers, content.strip_suffix(b"\r\n").unwrap_or(content))
}

/// `uploadType=resumable`, step one: the metadata is remembered in a session whose URI is
/// answered in `Location` (<https://cloud.google.com/storage/docs/performing-resumable-uploads>).
fn start_resumable(
    store: &mut Store,
    request: &StorageRequest<'_>,
    bucket: &str,
) -> Result<(StorageAnswer, bool), StorageError> {
    let metadata: Json = if request.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(request.body)
            .map_err(|error| StorageError::invalid(format!("Invalid JSON payload: {error}")))?
    };
    let metadata = with_query_encoding(metadata, request);
    let name = request
        .query("name")
        .map(String::from)
        .or_else(|| metadata["name"].as_str().map(String::from))
        .unwrap_or_default();
    if name.is_empty() {
        return Err(StorageError::new(
            StatusCode::BAD_REQUEST,
            "required",
            "Required parameter: name",
        ));
    }
    let content_type = request
        .headers
        .get("x-upload-content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let id = uuid::Uuid::new_v4().simple().to_string();
    store.upload_sessions.insert(
        id.clone(),
        UploadSession {
            bucket: bucket.to_string(),
            name,
            metadata,
            content_type,
            data: String::new(),
            query: request
                .query
                .iter()
                .filter(|(key, _)| key.starts_with("if"))
                .cloned()
                .collect(),
            completed: None,
            completed_at: None,
        },
    );
    let location = format!(
        "{}upload/storage/v1/b/{}/o?uploadType=resumable&upload_id={id}",
        request.base_url,
        encode(bucket)
    );
    Ok((StorageAnswer::Session(location), true))
}

/// `uploadType=resumable`, step two: a PUT of the bytes, whole or in chunks
/// (`Content-Range: bytes first-last/total`, `*` while the total is unknown). An incomplete
/// upload answers 308 with the `Range` persisted so far.
fn continue_resumable(
    store: &mut Store,
    request: &StorageRequest<'_>,
) -> Result<(StorageAnswer, bool), StorageError> {
    let id = request
        .query("upload_id")
        .ok_or_else(|| StorageError::invalid("Required parameter: upload_id"))?
        .to_string();
    let mut session = store
        .upload_sessions
        .get(&id)
        .cloned()
        .ok_or_else(|| StorageError::not_found("No such upload session."))?;
    // "If the upload has already completed, the response is a 200 OK or 201 Created, along
    // with the object's metadata" — what a client asks after losing the last answer.
    if let Some(object) = session.completed {
        return Ok((StorageAnswer::Json(object), false));
    }
    let mut data = base64::engine::general_purpose::STANDARD
        .decode(&session.data)
        .unwrap_or_default();
    let range = request
        .headers
        .get("content-range")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let total = match range
        .as_deref()
        .and_then(|range| range.strip_prefix("bytes "))
    {
        None => Some(request.body.len() as u64 + data.len() as u64),
        Some(spec) => {
            let (span, total) = spec
                .split_once('/')
                .ok_or_else(|| StorageError::invalid("Invalid Content-Range."))?;
            if span != "*" {
                let first: u64 = span
                    .split('-')
                    .next()
                    .and_then(|first| first.parse().ok())
                    .ok_or_else(|| StorageError::invalid("Invalid Content-Range."))?;
                if first != data.len() as u64 {
                    return Err(StorageError::invalid(format!(
                        "Content-Range starts at {first}; {} bytes are persisted.",
                        data.len()
                    )));
                }
                data.extend_from_slice(request.body);
            }
            match total {
                "*" => None,
                number => Some(
                    number
                        .parse()
                        .map_err(|_| StorageError::invalid("Invalid Content-Range."))?,
                ),
            }
        }
    };
    if range.is_none() {
        data.extend_from_slice(request.body);
    }
    if total != Some(data.len() as u64) {
        session.data = base64::engine::general_purpose::STANDARD.encode(&data);
        store.upload_sessions.insert(id, session);
        return Ok((StorageAnswer::Incomplete(data.len() as u64), true));
    }
    store.upload_sessions.remove(&id);
    let finishing = StorageRequest {
        method: request.method,
        path: request.path,
        upload: true,
        query: &session.query,
        headers: request.headers,
        body: &[],
        base_url: request.base_url.clone(),
        realism: request.realism,
    };
    let content_type = session.metadata["contentType"]
        .as_str()
        .map(String::from)
        .unwrap_or(session.content_type.clone());
    let (answer, changed) = store_object(
        store,
        &finishing,
        &session.bucket,
        &session.name,
        &session.metadata,
        data,
        content_type,
    )?;
    if let StorageAnswer::Json(object) = &answer {
        // Google keeps a session URI for a week; the emulator remembers finished sessions for
        // a day, so a long-lived emulator's store does not grow with every upload.
        let horizon = (chrono::Utc::now() - chrono::Duration::days(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        store.upload_sessions.retain(|_, kept| {
            kept.completed_at
                .as_deref()
                .is_none_or(|completed| completed > horizon.as_str())
        });
        session.data = String::new();
        session.completed = Some(object.clone());
        session.completed_at = Some(now());
        store.upload_sessions.insert(id, session);
    }
    Ok((answer, changed))
}

/// Cancels a resumable upload: "send a DELETE request to the session URI … If successful, the
/// response contains a 499 status code"; the session is gone afterwards
/// (<https://cloud.google.com/storage/docs/performing-resumable-uploads#cancel-upload>).
fn cancel_resumable(store: &mut Store, request: &StorageRequest<'_>) -> StorageError {
    let removed = request
        .query("upload_id")
        .and_then(|id| store.upload_sessions.remove(id))
        .filter(|session| session.completed.is_none());
    match removed {
        Some(_) => StorageError::new(
            StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            "clientClosedRequest",
            "The upload was cancelled.",
        ),
        None => StorageError::not_found("No such upload session."),
    }
}

fn upload(
    store: &mut Store,
    request: &StorageRequest<'_>,
    bucket: &str,
) -> Result<(StorageAnswer, bool), StorageError> {
    if !store.buckets.contains_key(bucket) {
        return Err(StorageError::not_found(
            "The specified bucket does not exist.",
        ));
    }
    let (metadata, media, content_type) = match request.query("uploadType") {
        Some("resumable") => return start_resumable(store, request, bucket),
        Some("multipart") => multipart(request.headers, request.body)?,
        Some("media") => (
            json!({}),
            request.body.to_vec(),
            request
                .headers
                .get("content-type")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_string(),
        ),
        Some(other) => {
            return Err(StorageError::invalid(format!(
                "Unsupported uploadType: {other}"
            )));
        }
        None => {
            return Err(StorageError::new(
                StatusCode::BAD_REQUEST,
                "required",
                "Required parameter: uploadType",
            ));
        }
    };
    let metadata = with_query_encoding(metadata, request);
    let name = request
        .query("name")
        .map(String::from)
        .or_else(|| metadata["name"].as_str().map(String::from))
        .unwrap_or_default();
    if name.is_empty() {
        return Err(StorageError::new(
            StatusCode::BAD_REQUEST,
            "required",
            "Required parameter: name",
        ));
    }
    store_object(
        store,
        request,
        bucket,
        &name,
        &metadata,
        media,
        content_type,
    )
}

/// objects.insert's `contentEncoding` parameter: "If set, sets the contentEncoding property of
/// the final object to this value" (the metadata's own value wins).
fn with_query_encoding(mut metadata: Json, request: &StorageRequest<'_>) -> Json {
    if let Some(encoding) = request
        .query("contentEncoding")
        .filter(|encoding| !encoding.is_empty())
        && metadata.get("contentEncoding").is_none_or(Json::is_null)
        && metadata.is_object()
    {
        metadata["contentEncoding"] = json!(encoding);
    }
    metadata
}

/// Object naming requirements (<https://cloud.google.com/storage/docs/objects#naming>): "1-1024
/// bytes when UTF-8 encoded", no carriage return or line feed, not `.` or `..`, and not under
/// `.well-known/acme-challenge/`.
fn check_object_name(name: &str) -> Result<(), StorageError> {
    let valid = !name.is_empty()
        && name.len() <= 1024
        && !name.contains(['\r', '\n'])
        && name != "."
        && name != ".."
        && !name.starts_with(".well-known/acme-challenge/");
    if valid {
        Ok(())
    } else {
        Err(StorageError::invalid(format!(
            "The object name {:?} is not valid: see https://cloud.google.com/storage/docs/objects#naming.",
            name.chars().take(64).collect::<String>()
        )))
    }
}

/// Writes a new generation of `name` (the end of every upload type), after the preconditions.
fn store_object(
    store: &mut Store,
    request: &StorageRequest<'_>,
    bucket: &str,
    name: &str,
    metadata: &Json,
    media: Vec<u8>,
    content_type: String,
) -> Result<(StorageAnswer, bool), StorageError> {
    let name = name.to_string();
    check_object_name(&name)?;
    // A checksum given with the metadata must match the media ("If the checksums don't match,
    // the upload is rejected": https://cloud.google.com/storage/docs/data-validation).
    let (crc32c, md5_hash) = checksums(&media);
    if let Some(expected) = metadata["crc32c"].as_str() {
        let actual = &crc32c;
        if expected != actual {
            return Err(StorageError::invalid(format!(
                "Provided CRC32C \"{expected}\" doesn't match calculated CRC32C \"{actual}\"."
            )));
        }
    }
    if let Some(expected) = metadata["md5Hash"].as_str() {
        let actual = &md5_hash;
        if expected != actual {
            return Err(StorageError::invalid(format!(
                "Provided MD5 hash \"{expected}\" doesn't match calculated MD5 hash \"{actual}\"."
            )));
        }
    }
    let current = live(store, bucket, &name);
    check_preconditions(request, current, false)?;
    // The live generation is overwritten, or archived when versioning keeps it.
    if let (Some(current), Some(record)) = (current, store.buckets.get(bucket)) {
        check_removable(record, bucket, &name, current)?;
    }
    let versioning = store
        .buckets
        .get(bucket)
        .is_some_and(|record| record.versioning);
    // "defaultEventBasedHold: … new objects get eventBasedHold: true" unless they say otherwise.
    let default_hold = store
        .buckets
        .get(bucket)
        .and_then(|record| record.extra.get("defaultEventBasedHold"))
        .and_then(Json::as_bool)
        == Some(true);
    store.last_generation = (chrono::Utc::now().timestamp_micros()).max(store.last_generation + 1);
    let time = now();
    let version = ObjectGeneration {
        generation: store.last_generation,
        metageneration: 1,
        data: base64::engine::general_purpose::STANDARD.encode(&media),
        content_type: metadata["contentType"]
            .as_str()
            .map(String::from)
            .unwrap_or(content_type),
        time_created: time.clone(),
        updated: time.clone(),
        time_deleted: None,
        metadata: metadata["metadata"]
            .as_object()
            .cloned()
            .unwrap_or_default(),
        extra: Default::default(),
        component_count: 0,
        storage_class: None,
        crc32c,
        md5_hash,
    };
    let mut version = version;
    write_fields(&mut version.extra, metadata, &OBJECT_WRITABLE, true);
    check_storage_class(metadata)?;
    admit_write(request, bucket, &name)?;
    let storage_class = metadata["storageClass"]
        .as_str()
        .or_else(|| {
            store
                .buckets
                .get(bucket)
                .and_then(|record| record.extra.get("storageClass"))
                .and_then(Json::as_str)
        })
        .unwrap_or("STANDARD");
    version.storage_class = Some(storage_class.to_string());
    if default_hold && !version.extra.contains_key("eventBasedHold") {
        version.extra.insert("eventBasedHold".into(), json!(true));
    }
    let generations = store
        .objects
        .entry(bucket.to_string())
        .or_default()
        .entry(name.clone())
        .or_default();
    if versioning {
        if let Some(previous) = generations
            .last_mut()
            .filter(|previous| previous.time_deleted.is_none())
        {
            previous.time_deleted = Some(time);
        }
    } else {
        generations.clear();
    }
    let answer = object_json(bucket, &name, &version, &request.base_url);
    generations.push(version);
    Ok((StorageAnswer::Json(answer), true))
}

fn get_object(
    store: &Store,
    request: &StorageRequest<'_>,
    bucket: &str,
    name: &str,
) -> Result<StorageAnswer, StorageError> {
    if !store.buckets.contains_key(bucket) {
        return Err(StorageError::not_found(
            "The specified bucket does not exist.",
        ));
    }
    let not_found = || StorageError::not_found(format!("No such object: {bucket}/{name}"));
    let version =
        at_generation(store, bucket, name, request.number("generation")?).ok_or_else(not_found)?;
    check_preconditions(request, live(store, bucket, name), true)?;
    if request.query("alt") == Some("media") {
        return media(request, version);
    }
    Ok(StorageAnswer::Json(object_json(
        bucket,
        name,
        version,
        &request.base_url,
    )))
}

/// A media read: the object's bytes (or the `Range` asked for) with the headers Cloud Storage
/// describes them by (`x-goog-generation`, `x-goog-hash`, …), which clients rely on.
fn media(
    request: &StorageRequest<'_>,
    version: &ObjectGeneration,
) -> Result<StorageAnswer, StorageError> {
    let data = base64::engine::general_purpose::STANDARD
        .decode(&version.data)
        .unwrap_or_default();
    let total = data.len();
    let crc = base64::engine::general_purpose::STANDARD.encode(crc32c::crc32c(&data).to_be_bytes());
    let mut headers = vec![
        (
            "x-goog-generation".to_string(),
            version.generation.to_string(),
        ),
        (
            "x-goog-metageneration".to_string(),
            version.metageneration.to_string(),
        ),
        (
            "x-goog-stored-content-length".to_string(),
            total.to_string(),
        ),
        (
            "x-goog-stored-content-encoding".to_string(),
            version
                .extra
                .get("contentEncoding")
                .and_then(Json::as_str)
                .unwrap_or("identity")
                .to_string(),
        ),
        (
            "x-goog-storage-class".to_string(),
            object_storage_class(version).to_string(),
        ),
        (
            "x-goog-hash".to_string(),
            if version.component_count > 0 {
                format!("crc32c={crc}")
            } else {
                format!(
                    "crc32c={crc},md5={}",
                    base64::engine::general_purpose::STANDARD.encode(md5::compute(&data).0)
                )
            },
        ),
        (
            "etag".to_string(),
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}/{}", version.generation, version.metageneration)),
        ),
    ];
    for (key, value) in &version.metadata {
        if let Some(value) = value.as_str() {
            headers.push((format!("x-goog-meta-{key}"), value.to_string()));
        }
    }
    // The object's own HTTP metadata is served with its media.
    for (field, header) in [
        ("cacheControl", "cache-control"),
        ("contentDisposition", "content-disposition"),
        ("contentLanguage", "content-language"),
    ] {
        if let Some(value) = version.extra.get(field).and_then(Json::as_str) {
            headers.push((header.to_string(), value.to_string()));
        }
    }
    // Decompressive transcoding (<https://cloud.google.com/storage/docs/transcoding>): an
    // object stored with `contentEncoding: gzip` is served compressed, with `Content-Encoding:
    // gzip`, to a request that says `Accept-Encoding: gzip` (or when its Cache-Control says
    // `no-transform`); to any other it is served decompressed, whole (a Range is ignored).
    let stored_gzip = version.extra.get("contentEncoding").and_then(Json::as_str) == Some("gzip");
    if stored_gzip {
        let accepts_gzip = request
            .headers
            .get("accept-encoding")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value
                    .split(',')
                    .any(|coding| coding.split(';').next().map(str::trim) == Some("gzip"))
            });
        let no_transform = version
            .extra
            .get("cacheControl")
            .and_then(Json::as_str)
            .is_some_and(|control| control.contains("no-transform"));
        if accepts_gzip || no_transform {
            headers.push(("content-encoding".to_string(), "gzip".to_string()));
        } else {
            let mut decompressed = Vec::new();
            if std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(data.as_slice()),
                &mut decompressed,
            )
            .is_ok()
            {
                return Ok(StorageAnswer::Media {
                    data: decompressed,
                    content_type: version.content_type.clone(),
                    headers,
                    range: None,
                });
            }
            // Not gzip after all: Google serves such an object as stored.
            headers.push(("content-encoding".to_string(), "gzip".to_string()));
        }
    }
    let range = request
        .headers
        .get("range")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("bytes="))
        .map(str::to_string);
    let Some(range) = range else {
        return Ok(StorageAnswer::Media {
            data,
            content_type: version.content_type.clone(),
            headers,
            range: None,
        });
    };
    let not_satisfiable = || {
        StorageError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "requestedRangeNotSatisfiable",
            "The requested range cannot be satisfied.",
        )
    };
    let (first, last) = match range.split_once('-') {
        Some(("", suffix)) => {
            let length: usize = suffix.parse().map_err(|_| not_satisfiable())?;
            (total.saturating_sub(length), total.saturating_sub(1))
        }
        Some((first, "")) => (
            first.parse().map_err(|_| not_satisfiable())?,
            total.saturating_sub(1),
        ),
        Some((first, last)) => (
            first.parse().map_err(|_| not_satisfiable())?,
            last.parse::<usize>()
                .map_err(|_| not_satisfiable())?
                .min(total.saturating_sub(1)),
        ),
        None => return Err(not_satisfiable()),
    };
    if total == 0 || first >= total || first > last {
        return Err(not_satisfiable());
    }
    Ok(StorageAnswer::Media {
        data: data[first..=last].to_vec(),
        content_type: version.content_type.clone(),
        headers,
        range: Some(format!("bytes {first}-{last}/{total}")),
    })
}

/// Holds and retention: a generation under a temporary or event-based hold
/// (<https://cloud.google.com/storage/docs/object-holds>), with an object retention whose
/// `retainUntilTime` is ahead (<https://cloud.google.com/storage/docs/object-lock>), or younger
/// than its bucket's `retentionPolicy.retentionPeriod`
/// (<https://cloud.google.com/storage/docs/bucket-lock>) "cannot be deleted, overwritten or
/// archived": 403 `retentionPolicyNotMet`.
fn check_removable(
    bucket: &BucketRecord,
    bucket_name: &str,
    name: &str,
    version: &ObjectGeneration,
) -> Result<(), StorageError> {
    let refused = |why: String| {
        Err(StorageError::new(
            StatusCode::FORBIDDEN,
            "retentionPolicyNotMet",
            format!(
                "Object '{bucket_name}/{name}' {why} and cannot be deleted, overwritten or archived until then."
            ),
        ))
    };
    let held = |field: &str| version.extra.get(field).and_then(Json::as_bool) == Some(true);
    if held("temporaryHold") {
        return refused("is under active Temporary hold".into());
    }
    if held("eventBasedHold") {
        return refused("is under active Event-Based hold".into());
    }
    let now = chrono::Utc::now();
    let until = version
        .extra
        .get("retention")
        .and_then(|retention| retention["retainUntilTime"].as_str())
        .and_then(|time| chrono::DateTime::parse_from_rfc3339(time).ok());
    if let Some(until) = until
        && until > now
    {
        return refused(format!("is retained until {}", until.to_rfc3339()));
    }
    let period =
        bucket
            .extra
            .get("retentionPolicy")
            .and_then(|policy| match &policy["retentionPeriod"] {
                Json::String(text) => text.parse::<i64>().ok(),
                other => other.as_i64(),
            });
    let created = chrono::DateTime::parse_from_rfc3339(&version.time_created).ok();
    if let (Some(period), Some(created)) = (period, created) {
        let expires = created + chrono::Duration::seconds(period);
        if expires > now {
            return refused(format!(
                "is subject to the bucket's retention policy until {}",
                expires.to_rfc3339()
            ));
        }
    }
    Ok(())
}

fn delete_object(
    store: &mut Store,
    request: &StorageRequest<'_>,
    bucket: &str,
    name: &str,
) -> Result<(), StorageError> {
    if !store.buckets.contains_key(bucket) {
        return Err(StorageError::not_found(
            "The specified bucket does not exist.",
        ));
    }
    let not_found = || StorageError::not_found(format!("No such object: {bucket}/{name}"));
    let current = live(store, bucket, name).cloned();
    let versioning = store
        .buckets
        .get(bucket)
        .is_some_and(|record| record.versioning);
    let requested = request.number("generation")?;
    if requested.is_none() && current.is_none() {
        return Err(not_found());
    }
    check_preconditions(request, current.as_ref(), false)?;
    let removed = at_generation(store, bucket, name, requested).cloned();
    if let (Some(removed), Some(record)) = (&removed, store.buckets.get(bucket)) {
        check_removable(record, bucket, name, removed)?;
    }
    admit_write(request, bucket, name)?;
    let generations = store
        .objects
        .get_mut(bucket)
        .and_then(|objects| objects.get_mut(name))
        .ok_or_else(not_found)?;
    match requested {
        // Deleting a named generation is permanent.
        Some(generation) => {
            let before = generations.len();
            generations.retain(|version| version.generation != generation);
            if generations.len() == before {
                return Err(not_found());
            }
        }
        None if versioning => {
            if let Some(last) = generations.last_mut() {
                last.time_deleted = Some(now());
            }
        }
        None => generations.clear(),
    }
    if generations.is_empty()
        && let Some(objects) = store.objects.get_mut(bucket)
    {
        objects.remove(name);
    }
    Ok(())
}

fn boolean(request: &StorageRequest<'_>, name: &str) -> Result<bool, StorageError> {
    match request.query(name) {
        None => Ok(false),
        Some(text) => super::http::parse_bool(text).ok_or_else(|| {
            StorageError::invalid(format!("Invalid boolean value for {name}: {text}"))
        }),
    }
}

/// `matchGlob`: "Filter results to objects and prefixes that match this glob pattern", with
/// Cloud Storage's glob syntax (<https://cloud.google.com/storage/docs/json_api/v1/objects/list#list-object-glob>):
/// `*` stops at `/`, `**` crosses it, `?`, `[...]`, `[!...]` and `{a,b}`.
fn match_glob(request: &StorageRequest<'_>) -> Result<Option<globset::GlobMatcher>, StorageError> {
    let Some(pattern) = request
        .query("matchGlob")
        .filter(|pattern| !pattern.is_empty())
    else {
        return Ok(None);
    };
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|glob| Some(glob.compile_matcher()))
        .map_err(|error| StorageError::invalid(format!("Invalid matchGlob {pattern:?}: {error}")))
}

fn list(store: &Store, request: &StorageRequest<'_>, bucket: &str) -> Result<Json, StorageError> {
    if !store.buckets.contains_key(bucket) {
        return Err(StorageError::not_found(
            "The specified bucket does not exist.",
        ));
    }
    let prefix = request.query("prefix").unwrap_or_default();
    let delimiter = request.query("delimiter").filter(|text| !text.is_empty());
    let versions = boolean(request, "versions")?;
    let include_trailing = boolean(request, "includeTrailingDelimiter")?;
    // Soft delete is not modelled (buckets behave as with soft delete off): a deleted object is
    // gone, so "only soft-deleted object versions" are none.
    let soft_deleted = boolean(request, "softDeleted")?;
    let start_offset = request.query("startOffset").filter(|text| !text.is_empty());
    let end_offset = request.query("endOffset").filter(|text| !text.is_empty());
    let glob = match_glob(request)?;
    let in_range = |name: &str| {
        start_offset.is_none_or(|start| name >= start) && end_offset.is_none_or(|end| name < end)
    };
    // Entries in name order: an object generation, or a prefix standing for every name under it
    // ("items plus prefixes" count against maxResults).
    let mut entries: Vec<(String, Option<Json>)> = Vec::new();
    let mut last_prefix: Option<String> = None;
    for (name, generations) in store
        .objects
        .get(bucket)
        .into_iter()
        .flatten()
        .filter(|(name, _)| name.starts_with(prefix) && in_range(name) && !soft_deleted)
    {
        let listed: Vec<&ObjectGeneration> = generations
            .iter()
            .filter(|version| versions || version.time_deleted.is_none())
            .collect();
        if listed.is_empty() {
            continue;
        }
        let mut as_item = true;
        if let Some(delimiter) = delimiter
            && let Some(position) = name[prefix.len()..].find(delimiter)
        {
            let end = prefix.len() + position + delimiter.len();
            let folded = name[..end].to_string();
            if glob.as_ref().is_none_or(|glob| glob.is_match(&folded))
                && last_prefix.as_deref() != Some(folded.as_str())
            {
                entries.push((folded.clone(), None));
                last_prefix = Some(folded);
            }
            // includeTrailingDelimiter: "objects that end in exactly one instance of delimiter
            // will have their metadata included in items in addition to prefixes".
            as_item = include_trailing && end == name.len();
        }
        if as_item && glob.as_ref().is_none_or(|glob| glob.is_match(name)) {
            for version in listed {
                entries.push((
                    name.clone(),
                    Some(object_json(bucket, name, version, &request.base_url)),
                ));
            }
        }
    }
    let (entries, next) = page(entries, request)?;
    let mut items = Vec::new();
    let mut prefixes = Vec::new();
    for (name, item) in entries {
        match item {
            Some(item) => items.push(item),
            None => prefixes.push(name),
        }
    }
    let mut body = json!({"kind": "storage#objects"});
    if !items.is_empty() {
        body["items"] = json!(items);
    }
    if !prefixes.is_empty() {
        body["prefixes"] = json!(prefixes);
    }
    if let Some(next) = next {
        body["nextPageToken"] = json!(next);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_size_read_from_base64_is_the_decoded_length() {
        let engine = &base64::engine::general_purpose::STANDARD;
        for length in 0..10 {
            let data = vec![7u8; length];
            assert_eq!(decoded_length(&engine.encode(&data)), length);
        }
    }

    #[test]
    fn multipart_bodies_split_into_metadata_and_media() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            "multipart/related; boundary=XYZ".parse().expect("header"),
        );
        let body = b"--XYZ\r\nContent-Type: application/json\r\n\r\n{\"name\":\"a/b.json\"}\r\n--XYZ\r\nContent-Type: application/json\r\n\r\n{\"x\":1}\r\n--XYZ--\r\n";
        let (metadata, media, media_type) = multipart(&headers, body).expect("parses");
        assert_eq!(metadata["name"], "a/b.json");
        assert_eq!(media, b"{\"x\":1}");
        assert_eq!(media_type, "application/json");
    }

    #[test]
    fn finished_upload_sessions_are_forgotten_after_a_day() {
        let mut store = Store::default();
        store.buckets.insert(
            "b".into(),
            BucketRecord {
                project_number: "1".into(),
                versioning: false,
                metageneration: 1,
                time_created: now(),
                location: "US".into(),
                updated: None,
                labels: Default::default(),
                extra: Default::default(),
            },
        );
        let session = |completed_at: Option<String>| UploadSession {
            bucket: "b".into(),
            name: "o".into(),
            metadata: json!({}),
            content_type: "text/plain".into(),
            data: String::new(),
            query: Vec::new(),
            completed: completed_at.as_ref().map(|_| json!({"name": "o"})),
            completed_at,
        };
        let old = (chrono::Utc::now() - chrono::Duration::days(2))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        store
            .upload_sessions
            .insert("old".into(), session(Some(old)));
        store
            .upload_sessions
            .insert("recent".into(), session(Some(now())));
        store.upload_sessions.insert("open".into(), session(None));
        let method = Method::PUT;
        let headers = HeaderMap::new();
        let query = vec![("upload_id".to_string(), "open".to_string())];
        let request = StorageRequest {
            method: &method,
            path: "b/b/o",
            upload: true,
            query: &query,
            headers: &headers,
            body: b"data",
            base_url: "http://127.0.0.1/".into(),
            realism: None,
        };
        continue_resumable(&mut store, &request).expect("the upload completes");
        let kept: Vec<&str> = store.upload_sessions.keys().map(String::as_str).collect();
        assert_eq!(
            kept,
            ["open", "recent"],
            "the day-old finished session is gone"
        );
    }
}
