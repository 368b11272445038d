//! Secret Manager v1 as Google serves it (per `discovery/secretmanager.v1.json`): secrets
//! create/get/list/patch/delete, versions add/get/list/access/enable/disable/destroy with the
//! `latest` alias, and getIamPolicy/setIamPolicy with etags. Names come back with the project
//! number, as Google's do. `latest`, aliases and version lists answer from a lagging view
//! (`secret_views.rs`); reads by version number never lag.

use super::collection::{self, Call, Method};
use super::discovery::{self, Api};
use super::error::ApiError;
use super::http::{Request, Response};
use super::iam;
use super::secret_views::SecretView;
use super::store::{SecretRecord, Store, VersionRecord, now, project_number};
use base64::Engine;
use serde_json::{Value as Json, json};

const SETTABLE_PATHS: [&str; 8] = [
    "labels",
    "annotations",
    "versionAliases",
    "topics",
    "rotation",
    "expireTime",
    "ttl",
    "versionDestroyTtl",
];
const IMMUTABLE_PATHS: [&str; 4] = [
    "replication",
    "secretType",
    "tags",
    "customerManagedEncryption",
];

/// Secret Manager's methods, by discovery id: global secrets (`projects.secrets`) and regional
/// ones (`projects.locations.secrets`) share their handlers; the path's `locationsId` decides.
pub const METHODS: &[Method] = &[
    Method {
        id: "secretmanager.projects.secrets.create",
        handler: create_handler,
    },
    Method {
        id: "secretmanager.projects.locations.secrets.create",
        handler: create_handler,
    },
    Method {
        id: "secretmanager.projects.secrets.list",
        handler: list_handler,
    },
    Method {
        id: "secretmanager.projects.locations.secrets.list",
        handler: list_handler,
    },
    Method {
        id: "secretmanager.projects.secrets.get",
        handler: get_handler,
    },
    Method {
        id: "secretmanager.projects.locations.secrets.get",
        handler: get_handler,
    },
    Method {
        id: "secretmanager.projects.secrets.patch",
        handler: patch_handler,
    },
    Method {
        id: "secretmanager.projects.locations.secrets.patch",
        handler: patch_handler,
    },
    Method {
        id: "secretmanager.projects.secrets.delete",
        handler: delete_handler,
    },
    Method {
        id: "secretmanager.projects.locations.secrets.delete",
        handler: delete_handler,
    },
    Method {
        id: "secretmanager.projects.secrets.addVersion",
        handler: add_version_handler,
    },
    Method {
        id: "secretmanager.projects.locations.secrets.addVersion",
        handler: add_version_handler,
    },
    Method {
        id: "secretmanager.projects.secrets.getIamPolicy",
        handler: get_policy_handler,
    },
    Method {
        id: "secretmanager.projects.locations.secrets.getIamPolicy",
        handler: get_policy_handler,
    },
    Method {
        id: "secretmanager.projects.secrets.setIamPolicy",
        handler: set_policy_handler,
    },
    Method {
        id: "secretmanager.projects.locations.secrets.setIamPolicy",
        handler: set_policy_handler,
    },
    Method {
        id: "secretmanager.projects.secrets.testIamPermissions",
        handler: test_permissions_handler,
    },
    Method {
        id: "secretmanager.projects.locations.secrets.testIamPermissions",
        handler: test_permissions_handler,
    },
    Method {
        id: "secretmanager.projects.secrets.versions.list",
        handler: list_versions_handler,
    },
    Method {
        id: "secretmanager.projects.locations.secrets.versions.list",
        handler: list_versions_handler,
    },
    Method {
        id: "secretmanager.projects.secrets.versions.get",
        handler: get_version_handler,
    },
    Method {
        id: "secretmanager.projects.locations.secrets.versions.get",
        handler: get_version_handler,
    },
    Method {
        id: "secretmanager.projects.secrets.versions.access",
        handler: access_handler,
    },
    Method {
        id: "secretmanager.projects.locations.secrets.versions.access",
        handler: access_handler,
    },
    Method {
        id: "secretmanager.projects.secrets.versions.enable",
        handler: |call| version_state(call, "enable"),
    },
    Method {
        id: "secretmanager.projects.locations.secrets.versions.enable",
        handler: |call| version_state(call, "enable"),
    },
    Method {
        id: "secretmanager.projects.secrets.versions.disable",
        handler: |call| version_state(call, "disable"),
    },
    Method {
        id: "secretmanager.projects.locations.secrets.versions.disable",
        handler: |call| version_state(call, "disable"),
    },
    Method {
        id: "secretmanager.projects.secrets.versions.destroy",
        handler: |call| version_state(call, "destroy"),
    },
    Method {
        id: "secretmanager.projects.locations.secrets.versions.destroy",
        handler: |call| version_state(call, "destroy"),
    },
];

/// The parent of the secrets a path names: `projects/<number>` or, for regional secrets,
/// `projects/<number>/locations/<location>`.
fn parent_of(call: &Call<'_>) -> String {
    let project = format!("projects/{}", project_number(call.var("projectsId")));
    match call.var("locationsId") {
        "" => project,
        location => format!("{project}/locations/{location}"),
    }
}

fn secret_of(call: &Call<'_>) -> String {
    format!("{}/secrets/{}", parent_of(call), call.var("secretsId"))
}

fn is_regional(name: &str) -> bool {
    name.contains("/locations/")
}

fn create_handler(call: &mut Call<'_>) -> Result<Response, ApiError> {
    let parent = parent_of(call);
    create_secret(call.store, call.request, &parent)
}

fn list_handler(call: &mut Call<'_>) -> Result<Response, ApiError> {
    let parent = parent_of(call);
    list_secrets(call.store, call.request, &parent)
}

fn get_handler(call: &mut Call<'_>) -> Result<Response, ApiError> {
    let secret = secret_of(call);
    get_secret(call.store, call.request, &secret)
}

fn patch_handler(call: &mut Call<'_>) -> Result<Response, ApiError> {
    let secret = secret_of(call);
    patch_secret(call.store, call.request, &secret)
}

fn delete_handler(call: &mut Call<'_>) -> Result<Response, ApiError> {
    let secret = secret_of(call);
    delete_secret(call.store, call.request, &secret)
}

fn add_version_handler(call: &mut Call<'_>) -> Result<Response, ApiError> {
    let secret = secret_of(call);
    add_version(call.store, call.request, &secret)
}

fn get_policy_handler(call: &mut Call<'_>) -> Result<Response, ApiError> {
    let resource = secret_of(call);
    require_secret(call.store, &resource)?;
    iam::get_policy(call.store, call.request, &resource)
}

fn set_policy_handler(call: &mut Call<'_>) -> Result<Response, ApiError> {
    let resource = secret_of(call);
    require_secret(call.store, &resource)?;
    iam::set_policy(
        call.store,
        call.request,
        &resource,
        Api::SecretManager,
        true,
    )
}

fn test_permissions_handler(call: &mut Call<'_>) -> Result<Response, ApiError> {
    let resource = secret_of(call);
    require_secret(call.store, &resource)?;
    iam::test_permissions(call.request)
}

fn list_versions_handler(call: &mut Call<'_>) -> Result<Response, ApiError> {
    let secret = secret_of(call);
    settle_destructions(call.store, &secret);
    list_versions(call.store, call.request, &secret)
}

fn get_version_handler(call: &mut Call<'_>) -> Result<Response, ApiError> {
    let (secret, version) = (secret_of(call), call.var("versionsId").to_string());
    settle_destructions(call.store, &secret);
    get_version(call.store, call.request, &secret, &version)
}

fn access_handler(call: &mut Call<'_>) -> Result<Response, ApiError> {
    let (secret, version) = (secret_of(call), call.var("versionsId").to_string());
    settle_destructions(call.store, &secret);
    access_version(call.store, call.request, &secret, &version)
}

fn version_state(call: &mut Call<'_>, action: &str) -> Result<Response, ApiError> {
    let secret = secret_of(call);
    settle_destructions(call.store, &secret);
    let version = call.var("versionsId").to_string();
    change_version_state(call.store, call.request, &secret, &version, action)
}

fn secret_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Secret [{name}] not found or has no versions."))
}

fn require_secret<'a>(store: &'a Store, name: &str) -> Result<&'a SecretRecord, ApiError> {
    store
        .secrets
        .get(name)
        .ok_or_else(|| secret_not_found(name))
}

fn secret_json(name: &str, record: &SecretRecord) -> Json {
    let mut body = record.body.clone();
    // Proto3 JSON leaves out empty maps; `ttl` is input only.
    body.retain(|_, value| !matches!(value, Json::Object(map) if map.is_empty()));
    body.remove("ttl");
    body.insert("name".into(), json!(name));
    body.insert("createTime".into(), json!(record.create_time));
    body.insert("etag".into(), json!(record.etag));
    Json::Object(body)
}

fn version_json(
    secret: &str,
    number: u64,
    version: &VersionRecord,
    replication: Option<&Json>,
) -> Json {
    let mut body = json!({
        "name": format!("{secret}/versions/{number}"),
        "createTime": version.create_time,
        "state": version.state,
        "etag": version.etag,
    });
    if version.client_checksum {
        body["clientSpecifiedPayloadChecksum"] = json!(true);
    }
    if let Some(destroyed) = &version.destroy_time {
        body["destroyTime"] = json!(destroyed);
    }
    if let Some(scheduled) = &version.scheduled_destroy_time {
        body["scheduledDestroyTime"] = json!(scheduled);
    }
    if !is_regional(secret) {
        body["replicationStatus"] =
            match replication.and_then(|replication| replication.get("userManaged")) {
                Some(_) => json!({"userManaged": {}}),
                None => json!({"automatic": {}}),
            };
    }
    body
}

fn quoted_etag(store: &mut Store) -> String {
    format!("\"{}\"", hex::encode(store.next_etag()))
}

fn check_labels(labels: Option<&Json>) -> Result<(), ApiError> {
    let Some(labels) = labels.and_then(Json::as_object) else {
        return Ok(());
    };
    if labels.len() > 64 {
        return Err(ApiError::invalid_argument(
            "Secret can have at most 64 labels.",
        ));
    }
    let charset = |text: &str| {
        text.chars().all(|c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || c == '_'
                || c == '-'
                || (c.is_alphabetic() && c.is_lowercase())
        })
    };
    for (key, value) in labels {
        let value = value.as_str().unwrap_or_default();
        let key_ok = (1..=63).contains(&key.chars().count())
            && key.chars().next().is_some_and(|c| c.is_lowercase())
            && charset(key);
        if !key_ok || value.chars().count() > 63 || !charset(value) {
            return Err(ApiError::invalid_argument(format!(
                "Invalid label {key:?}={value:?}: keys are 1-63 lowercase letters, digits, '_' or '-' starting with a letter; values 0-63 of the same"
            )));
        }
    }
    Ok(())
}

/// Annotations, version aliases and the expiration, as `Secret` documents them: annotation keys
/// "between 1 and 63 characters long, have a UTF-8 encoding of maximum 128 bytes, begin and end
/// with an alphanumeric character … and may have dashes (-), underscores (_), dots (.)", all
/// keys and values "less than 16KiB"; an alias "a maximum length of 63 characters … letters,
/// numerals, and the hyphen (`-`) and underscore", starting with a letter, not `latest` or
/// `NEW`, at most 50; `expireTime` and `ttl` are one field (the `expiration` oneof).
fn check_secret_fields(fields: &serde_json::Map<String, Json>) -> Result<(), ApiError> {
    if let Some(annotations) = fields.get("annotations").and_then(Json::as_object) {
        let mut total = 0;
        for (key, value) in annotations {
            total += key.len() + value.as_str().map_or(0, str::len);
            let edge = |c: char| c.is_ascii_alphanumeric();
            let valid = (1..=63).contains(&key.chars().count())
                && key.len() <= 128
                && key.starts_with(edge)
                && key.ends_with(edge)
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid {
                return Err(ApiError::invalid_argument(format!(
                    "Invalid annotation key {key:?}: 1-63 characters, alphanumeric at both ends, '-', '_' or '.' between."
                )));
            }
        }
        if total >= 16 * 1024 {
            return Err(ApiError::invalid_argument(
                "The total size of annotation keys and values must be less than 16KiB.",
            ));
        }
    }
    if let Some(aliases) = fields.get("versionAliases").and_then(Json::as_object) {
        if aliases.len() > 50 {
            return Err(ApiError::invalid_argument(
                "No more than 50 aliases can be assigned to a secret.",
            ));
        }
        for alias in aliases.keys() {
            let valid = alias.chars().count() <= 63
                && alias.starts_with(|c: char| c.is_ascii_alphabetic())
                && alias
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                && alias != "latest"
                && alias != "NEW";
            if !valid {
                return Err(ApiError::invalid_argument(format!(
                    "Invalid version alias {alias:?}: up to 63 letters, numerals, '-' or '_', starting with a letter, not 'latest' or 'NEW'."
                )));
            }
        }
    }
    Ok(())
}

fn check_replication(replication: Option<&Json>) -> Result<(), ApiError> {
    let Some(replication) = replication.and_then(Json::as_object) else {
        return Err(ApiError::invalid_argument(
            "Secret.replication must be specified.",
        ));
    };
    match (replication.get("automatic"), replication.get("userManaged")) {
        (Some(_), None) => Ok(()),
        (None, Some(managed)) => {
            let replicas = managed["replicas"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            if replicas.is_empty() {
                return Err(ApiError::invalid_argument(
                    "Secret.replication.user_managed.replicas cannot be empty.",
                ));
            }
            if replicas
                .iter()
                .any(|replica| replica["location"].as_str().is_none_or(str::is_empty))
            {
                return Err(ApiError::invalid_argument(
                    "Each replica must specify a location.",
                ));
            }
            Ok(())
        }
        _ => Err(ApiError::invalid_argument(
            "Secret.replication must set exactly one of automatic or user_managed.",
        )),
    }
}

/// `ttl` is input only: "Input only. The TTL for the Secret" becomes the `expireTime` it
/// implies, which is what Google answers.
fn resolve_ttl(
    mut fields: serde_json::Map<String, Json>,
) -> Result<serde_json::Map<String, Json>, ApiError> {
    let Some(ttl) = fields.remove("ttl") else {
        return Ok(fields);
    };
    let seconds = ttl
        .as_str()
        .and_then(|text| text.strip_suffix('s'))
        .and_then(|number| number.parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "Invalid value at 'secret.ttl' (type.googleapis.com/google.protobuf.Duration), {ttl}"
            ))
        })?;
    let expire = chrono::Utc::now() + chrono::Duration::milliseconds((seconds * 1000.0) as i64);
    fields.insert(
        "expireTime".into(),
        json!(expire.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
    );
    Ok(fields)
}

/// Checks a secret's rotation policy as `Rotation` documents it: "Secret.topics must be set to
/// configure rotation"; `rotationPeriod` "Must be in seconds and at least 3600s (1h) and at
/// most 3153600000s (100 years). If rotation_period is set, next_rotation_time must be set";
/// `nextRotationTime` "Cannot be set to less than 300s (5 min) in the future" (checked when it
/// is newly written: `previous` is the stored one). Topics: at most 10, `projects/*/topics/*`.
fn check_rotation(
    fields: &serde_json::Map<String, Json>,
    previous: Option<&Json>,
) -> Result<(), ApiError> {
    let topics = fields
        .get("topics")
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if topics.len() > 10 {
        return Err(ApiError::invalid_argument(
            "Secret.topics: a secret can name at most 10 topics.",
        ));
    }
    for topic in topics {
        let name = topic["name"].as_str().unwrap_or_default();
        let parts: Vec<&str> = name.split('/').collect();
        if !matches!(parts[..], ["projects", project, "topics", id] if !project.is_empty() && !id.is_empty())
        {
            return Err(ApiError::invalid_argument(format!(
                "Invalid topic name {name:?}: expected projects/{{project}}/topics/{{topic}}."
            )));
        }
    }
    let Some(rotation) = fields.get("rotation").filter(|rotation| {
        rotation
            .as_object()
            .is_some_and(|rotation| rotation.values().any(|value| !value.is_null()))
    }) else {
        return Ok(());
    };
    if topics.is_empty() {
        return Err(ApiError::invalid_argument(
            "Secret.topics must be set to configure rotation.",
        ));
    }
    let next = rotation["nextRotationTime"].as_str();
    if let Some(period) = rotation
        .get("rotationPeriod")
        .filter(|period| !period.is_null())
    {
        period
            .as_str()
            .and_then(|text| text.strip_suffix('s'))
            .and_then(|number| number.parse::<u64>().ok())
            .filter(|seconds| (3600..=3_153_600_000).contains(seconds))
            .ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "Invalid rotation.rotation_period {period}: whole seconds, at least 3600s and at most 3153600000s."
                ))
            })?;
        if next.is_none() {
            return Err(ApiError::invalid_argument(
                "rotation.next_rotation_time must be set if rotation.rotation_period is set.",
            ));
        }
    }
    if let Some(next) = next
        && previous.and_then(|previous| previous["nextRotationTime"].as_str()) != Some(next)
    {
        let at = chrono::DateTime::parse_from_rfc3339(next).map_err(|_| {
            ApiError::invalid_argument(format!(
                "Invalid value at 'secret.rotation.next_rotation_time' (type.googleapis.com/google.protobuf.Timestamp), {next:?}"
            ))
        })?;
        if at < chrono::Utc::now() + chrono::Duration::seconds(300) {
            return Err(ApiError::invalid_argument(
                "rotation.next_rotation_time cannot be less than 300s (5 min) in the future.",
            ));
        }
    }
    Ok(())
}

fn settable_body(body: &Json) -> serde_json::Map<String, Json> {
    let mut fields = body.as_object().cloned().unwrap_or_default();
    fields.retain(|field, _| {
        !discovery::is_output_only(Api::SecretManager, "Secret", field) && field != "etag"
    });
    fields
}

fn create_secret(store: &mut Store, request: &Request, parent: &str) -> Result<Response, ApiError> {
    request.allow_query(&["secretId"])?;
    let secret_id = request.query("secretId").unwrap_or_default();
    if secret_id.is_empty() {
        return Err(ApiError::invalid_argument(
            "secret_id is required: set the secretId query parameter.",
        ));
    }
    if secret_id.len() > 255
        || !secret_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::invalid_argument(format!(
            "Invalid secret_id {secret_id:?}: up to 255 letters, numerals, hyphens and underscores."
        )));
    }
    let body = request.json()?;
    discovery::validate(Api::SecretManager, "Secret", "secret", &body)?;
    if is_regional(parent) {
        // A regional secret lives in its location: it has no replication policy.
        if body
            .get("replication")
            .is_some_and(|value| !value.is_null())
        {
            return Err(ApiError::invalid_argument(
                "Regional secrets cannot set replication.",
            ));
        }
    } else {
        check_replication(body.get("replication"))?;
    }
    check_labels(body.get("labels"))?;
    let secret_name = format!("{parent}/secrets/{secret_id}");
    if store.secrets.contains_key(&secret_name) {
        return Err(ApiError::already_exists(format!(
            "Secret [{secret_name}] already exists."
        )));
    }
    let settable = settable_body(&body);
    if settable.get("ttl").is_some_and(|ttl| !ttl.is_null())
        && settable
            .get("expireTime")
            .is_some_and(|expire| !expire.is_null())
    {
        return Err(ApiError::invalid_argument(
            "Set expire_time or ttl, not both: they are one expiration.",
        ));
    }
    let fields = resolve_ttl(settable)?;
    check_rotation(&fields, None)?;
    check_secret_fields(&fields)?;
    let etag = quoted_etag(store);
    let record = SecretRecord {
        body: fields,
        create_time: now(),
        etag,
        next_version: 1,
        versions: Default::default(),
    };
    let response = secret_json(&secret_name, &record);
    store.secrets.insert(secret_name, record);
    Ok(Response::changed(response))
}

fn destroy(version: &mut VersionRecord) {
    version.state = "DESTROYED".into();
    version.data = None;
    version.destroy_time = Some(now());
    version.scheduled_destroy_time = None;
}

/// Destroys the secret's versions whose delayed destruction is due, as time passing would on
/// Google's side. Only the secret a request reads can show the difference, so only its versions
/// are looked at: a scan of every secret under the store's lock made each version read cost
/// O(secrets), serializing a refresh of many secrets on the emulator.
fn settle_destructions(store: &mut Store, secret: &str) {
    let Some(record) = store.secrets.get_mut(secret) else {
        return;
    };
    let now_text = now();
    for version in record.versions.values_mut() {
        if version
            .scheduled_destroy_time
            .as_deref()
            .is_some_and(|due| due <= now_text.as_str())
        {
            destroy(version);
        }
    }
}

/// Keeps the items the request's `filter` selects
/// (<https://cloud.google.com/secret-manager/docs/filtering>).
fn keep_matching(items: &mut Vec<Json>, request: &Request) -> Result<(), ApiError> {
    let Some(filter) = request
        .query("filter")
        .filter(|filter| !filter.trim().is_empty())
    else {
        return Ok(());
    };
    let mut kept = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        if collection::filter_matches(&item, &filter)? {
            kept.push(item);
        }
    }
    *items = kept;
    Ok(())
}

/// Secret Manager's lists: "If set to 0, the server decides the number of results to return.
/// If the number is greater than 25000, it is capped at 25000."
fn page(items: Vec<Json>, request: &Request) -> Result<(Vec<Json>, Option<String>), ApiError> {
    super::collection::page(
        items,
        request,
        "pageSize",
        super::collection::PageSizes::new(25_000, 25_000),
    )
}

fn list_secrets(store: &mut Store, request: &Request, parent: &str) -> Result<Response, ApiError> {
    request.allow_query(&["filter", "pageSize", "pageToken"])?;
    let prefix = format!("{parent}/secrets/");
    let mut secrets: Vec<(&String, &SecretRecord)> = store
        .secrets
        .iter()
        .filter(|(key, _)| key.starts_with(&prefix))
        .collect();
    secrets.sort_by(|left, right| {
        right
            .1
            .create_time
            .cmp(&left.1.create_time)
            .then(left.0.cmp(right.0))
    });
    let mut all: Vec<Json> = secrets
        .iter()
        .map(|(key, record)| secret_json(key, record))
        .collect();
    keep_matching(&mut all, request)?;
    let total = all.len();
    let (slice, next) = page(all, request)?;
    let mut body = json!({"secrets": slice, "totalSize": total});
    if let Some(next) = next {
        body["nextPageToken"] = json!(next);
    }
    if total == 0 {
        body = json!({});
    }
    Ok(Response::read(body))
}

fn get_secret(store: &mut Store, request: &Request, secret: &str) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    Ok(Response::read(secret_json(
        secret,
        require_secret(store, secret)?,
    )))
}

fn patch_secret(store: &mut Store, request: &Request, secret: &str) -> Result<Response, ApiError> {
    request.allow_query(&["updateMask"])?;
    let body = request.json()?;
    discovery::validate(Api::SecretManager, "Secret", "secret", &body)?;
    let Some(mut paths) = collection::mask_paths(request.query("updateMask").as_deref()) else {
        return Err(ApiError::invalid_argument(
            "update_mask is required: name the fields to update.",
        ));
    };
    // `*` names every field the update may change.
    if paths.iter().any(|path| path == "*") {
        paths = SETTABLE_PATHS.iter().map(|path| path.to_string()).collect();
    }
    let record = require_secret(store, secret)?.clone();
    if let Some(etag) = body.get("etag").and_then(Json::as_str)
        && etag != record.etag
    {
        return Err(ApiError::failed_precondition(format!(
            "The etag provided for Secret [{secret}] does not match the current etag."
        )));
    }
    for path in &paths {
        let top = path.split('.').next().unwrap_or_default();
        if IMMUTABLE_PATHS.contains(&top) {
            return Err(ApiError::invalid_argument(format!(
                "Secret.{path} is immutable and cannot be updated."
            )));
        }
        if !SETTABLE_PATHS.contains(&top)
            || !discovery::mask_path_exists(Api::SecretManager, "Secret", path)
        {
            return Err(ApiError::invalid_argument(format!(
                "Invalid update_mask path: {path}"
            )));
        }
    }
    let mut updated = record.clone();
    let mut incoming = body.as_object().cloned().unwrap_or_default();
    incoming.retain(|_, value| !value.is_null());
    collection::apply_mask(&mut updated.body, &incoming, &paths);
    updated.body = resolve_ttl(std::mem::take(&mut updated.body))?;
    check_labels(updated.body.get("labels"))?;
    check_rotation(&updated.body, record.body.get("rotation"))?;
    check_secret_fields(&updated.body)?;
    updated.etag = quoted_etag(store);
    let response = secret_json(secret, &updated);
    let before = view_before_change(store, secret);
    store.secrets.insert(secret.to_string(), updated);
    note_change(store, secret, before);
    Ok(Response::changed(response))
}

fn delete_secret(store: &mut Store, request: &Request, secret: &str) -> Result<Response, ApiError> {
    request.allow_query(&["etag"])?;
    let record = require_secret(store, secret)?;
    if let Some(etag) = request.query("etag").filter(|etag| !etag.is_empty())
        && etag != record.etag
    {
        return Err(ApiError::failed_precondition(format!(
            "The etag provided for Secret [{secret}] does not match the current etag."
        )));
    }
    store.secrets.remove(secret);
    store.secret_views.remove(secret);
    store.policies.remove(secret);
    store.revision += 1;
    Ok(Response::changed(json!({})))
}

fn add_version(store: &mut Store, request: &Request, secret: &str) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let body = request.json()?;
    discovery::validate(
        Api::SecretManager,
        "AddSecretVersionRequest",
        "add_secret_version_request",
        &body,
    )?;
    require_secret(store, secret)?;
    let Some(data) = body.pointer("/payload/data").and_then(Json::as_str) else {
        return Err(ApiError::invalid_argument("payload.data is required."));
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(data))
        .map_err(|_| {
            ApiError::invalid_argument(
                "Invalid value at 'payload.data' (TYPE_BYTES), Base64 decoding failed",
            )
        })?;
    if decoded.len() > 64 * 1024 {
        return Err(ApiError::invalid_argument(
            "Secret payload data must be no larger than 64KiB.",
        ));
    }
    let computed = crc32c::crc32c(&decoded);
    let client_checksum = match body.pointer("/payload/dataCrc32c") {
        None | Some(Json::Null) => false,
        Some(given) => {
            let given = given
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| given.to_string());
            if given.parse::<u64>().ok() != Some(u64::from(computed)) {
                return Err(ApiError::invalid_argument(
                    "The checksum of the payload does not match data_crc32c: the data was corrupted in transit.",
                ));
            }
            true
        }
    };
    let etag = quoted_etag(store);
    let before = view_before_change(store, secret);
    let Some(record) = store.secrets.get_mut(secret) else {
        return Err(secret_not_found(secret));
    };
    let number = record.next_version;
    record.next_version += 1;
    let version = VersionRecord {
        create_time: now(),
        state: "ENABLED".into(),
        etag,
        data: Some(base64::engine::general_purpose::STANDARD.encode(&decoded)),
        crc32c: computed.to_string(),
        client_checksum,
        destroy_time: None,
        scheduled_destroy_time: None,
    };
    let response = version_json(secret, number, &version, record.body.get("replication"));
    record.versions.insert(number, version);
    note_change(store, secret, before);
    Ok(Response::changed(response))
}

/// Returns the number a version id names and the state the read sees it in. A number is read
/// from the store (strongly consistent); `latest` and aliases resolve in the view eventually
/// consistent reads have (`eventual_view`), and answer the state that view holds.
fn resolve_version(store: &Store, secret: &str, version: &str) -> Result<(u64, String), ApiError> {
    let not_found = || {
        ApiError::not_found(format!(
            "Secret Version [{secret}/versions/{version}] not found."
        ))
    };
    let record = require_secret(store, secret)?;
    if let Ok(number) = version.parse::<u64>() {
        return match record.versions.get(&number) {
            Some(stored) => Ok((number, stored.state.clone())),
            None => Err(not_found()),
        };
    }
    let view = eventual_view(store, secret).ok_or_else(not_found)?;
    match view.resolve(version) {
        Some(number) if record.versions.contains_key(&number) => {
            Ok((number, view.versions[&number].clone()))
        }
        _ => Err(not_found()),
    }
}

fn millis_now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Returns what eventually consistent reads of `secret` see now (`None`: no such secret): the
/// view it had `secret_alias_lag_ms` ago, or its current one when nothing changed since.
pub(super) fn eventual_view(store: &Store, secret: &str) -> Option<SecretView> {
    let record = store.secrets.get(secret)?;
    let visible = store
        .secret_views
        .get(secret)
        .and_then(|history| history.visible(millis_now(), store.secret_alias_lag_ms));
    Some(visible.cloned().unwrap_or_else(|| SecretView::of(record)))
}

/// Returns the view of `secret` a change is about to replace, when reads lag at all.
fn view_before_change(store: &Store, secret: &str) -> Option<SecretView> {
    if store.secret_alias_lag_ms <= 0 {
        return None;
    }
    store.secrets.get(secret).map(SecretView::of)
}

/// Notes that a change replaced `before`, so that lagging reads keep seeing it for a while.
fn note_change(store: &mut Store, secret: &str, before: Option<SecretView>) {
    let (Some(before), Some(record)) = (before, store.secrets.get(secret)) else {
        return;
    };
    if SecretView::of(record) == before {
        return;
    }
    let lag = store.secret_alias_lag_ms;
    store
        .secret_views
        .entry(secret.to_string())
        .or_default()
        .record(before, millis_now(), lag);
}

/// Resolves a version as a reader of `secret` does (Cloud Run resolving an environment
/// variable's `secretKeyRef`): the version's number when it exists and is enabled, otherwise
/// why not. `latest` and aliases lag like every eventually consistent read.
pub(super) fn resolve_for_reader(
    store: &Store,
    secret: &str,
    version: &str,
) -> Result<u64, String> {
    match resolve_version(store, secret, version) {
        Ok((number, state)) if state == "ENABLED" => Ok(number),
        Ok((number, state)) => Err(format!(
            "Secret version {secret}/versions/{number} is in {state} state."
        )),
        Err(_) => Err(format!(
            "Secret version {secret}/versions/{version} was not found."
        )),
    }
}

/// Returns a version as the read sees it: in the state `seen`, which differs from the stored
/// one while a lagging view is read.
fn seen_in_state(mut body: Json, seen: &str) -> Json {
    if body["state"] != seen {
        body["state"] = json!(seen);
        if seen != "DESTROYED"
            && let Some(fields) = body.as_object_mut()
        {
            fields.remove("destroyTime");
        }
    }
    body
}

fn get_version(
    store: &mut Store,
    request: &Request,
    secret: &str,
    version: &str,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let (number, seen) = resolve_version(store, secret, version)?;
    let record = require_secret(store, secret)?;
    Ok(Response::read(seen_in_state(
        version_json(
            secret,
            number,
            &record.versions[&number],
            record.body.get("replication"),
        ),
        &seen,
    )))
}

fn access_version(
    store: &mut Store,
    request: &Request,
    secret: &str,
    version: &str,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let (number, seen) = resolve_version(store, secret, version)?;
    let record = require_secret(store, secret)?;
    let stored = &record.versions[&number];
    let full_name = format!("{secret}/versions/{number}");
    // A lagging view may still see a version enabled that has been disabled since (its payload
    // is served, as a lagging replica would), but never the payload of a destroyed one.
    let state = if stored.data.is_none() {
        stored.state.as_str()
    } else {
        seen.as_str()
    };
    if state != "ENABLED" {
        return Err(ApiError::failed_precondition(format!(
            "Secret Version [{full_name}] is in {state} state."
        )));
    }
    Ok(Response::read(json!({
        "name": full_name,
        "payload": {"data": stored.data, "dataCrc32c": stored.crc32c},
    })))
}

fn list_versions(store: &mut Store, request: &Request, secret: &str) -> Result<Response, ApiError> {
    request.allow_query(&["filter", "pageSize", "pageToken"])?;
    let record = require_secret(store, secret)?;
    // A list is one of the "other operations" that are eventually consistent: it shows the
    // versions, and their states, of the lagging view.
    let view = eventual_view(store, secret).unwrap_or_default();
    let mut all: Vec<Json> = view
        .versions
        .iter()
        .rev()
        .filter_map(|(number, seen)| {
            let version = record.versions.get(number)?;
            Some(seen_in_state(
                version_json(secret, *number, version, record.body.get("replication")),
                seen,
            ))
        })
        .collect();
    keep_matching(&mut all, request)?;
    let total = all.len();
    let (slice, next) = page(all, request)?;
    let mut body = if total == 0 {
        json!({})
    } else {
        json!({"versions": slice, "totalSize": total})
    };
    if let Some(next) = next {
        body["nextPageToken"] = json!(next);
    }
    Ok(Response::read(body))
}

fn change_version_state(
    store: &mut Store,
    request: &Request,
    secret: &str,
    version: &str,
    action: &str,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let body = request.json()?;
    discovery::validate(
        Api::SecretManager,
        "EnableSecretVersionRequest",
        "request",
        &body,
    )?;
    let (number, _) = resolve_version(store, secret, version)?;
    let record = require_secret(store, secret)?;
    let current = record.versions[&number].clone();
    let full_name = format!("{secret}/versions/{number}");
    if let Some(etag) = body.get("etag").and_then(Json::as_str)
        && etag != current.etag
    {
        return Err(ApiError::failed_precondition(format!(
            "The etag provided for Secret Version [{full_name}] does not match the current etag."
        )));
    }
    if current.state == "DESTROYED" {
        return Err(ApiError::failed_precondition(format!(
            "Secret Version [{full_name}] is in DESTROYED state."
        )));
    }
    let etag = quoted_etag(store);
    let before = view_before_change(store, secret);
    let Some(record) = store.secrets.get_mut(secret) else {
        return Err(secret_not_found(secret));
    };
    let replication = record.body.get("replication").cloned();
    let destroy_delay = record
        .body
        .get("versionDestroyTtl")
        .and_then(Json::as_str)
        .and_then(|ttl| ttl.strip_suffix('s'))
        .and_then(|seconds| seconds.parse::<f64>().ok())
        .filter(|seconds| *seconds > 0.0)
        .map(|seconds| chrono::Duration::milliseconds((seconds * 1000.0) as i64));
    let Some(stored) = record.versions.get_mut(&number) else {
        return Err(secret_not_found(secret));
    };
    stored.etag = etag;
    match action {
        "enable" => {
            stored.state = "ENABLED".into();
            // Enabling a version whose destruction is pending cancels it.
            stored.scheduled_destroy_time = None;
        }
        "disable" => stored.state = "DISABLED".into(),
        _ => match destroy_delay {
            // versionDestroyTtl: "the version goes to a disabled state and destruction happens
            // after the TTL expires".
            Some(delay) => {
                stored.state = "DISABLED".into();
                stored.scheduled_destroy_time = Some(
                    (chrono::Utc::now() + delay)
                        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                );
            }
            None => destroy(stored),
        },
    }
    let response = version_json(secret, number, stored, replication.as_ref());
    note_change(store, secret, before);
    Ok(Response::changed(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(state: &str) -> VersionRecord {
        VersionRecord {
            create_time: now(),
            state: state.into(),
            etag: "\"e\"".into(),
            data: Some("b25l".into()),
            crc32c: "0".into(),
            client_checksum: false,
            destroy_time: None,
            scheduled_destroy_time: None,
        }
    }

    /// A store whose secret `s` has had version 1, and has just been given version 2.
    fn store_after_a_second_add(lag_ms: i64) -> (Store, String) {
        let name = "projects/1/secrets/s".to_string();
        let mut store = Store {
            secret_alias_lag_ms: lag_ms,
            ..Store::default()
        };
        let mut record = SecretRecord {
            body: Default::default(),
            create_time: now(),
            etag: "\"e\"".into(),
            next_version: 2,
            versions: Default::default(),
        };
        record.versions.insert(1, version("ENABLED"));
        store.secrets.insert(name.clone(), record);
        let before = view_before_change(&store, &name);
        let record = store.secrets.get_mut(&name).expect("secret");
        record.versions.insert(2, version("ENABLED"));
        record.next_version = 3;
        note_change(&mut store, &name, before);
        (store, name)
    }

    #[test]
    fn latest_lags_an_add_while_the_number_resolves_at_once() {
        let (store, name) = store_after_a_second_add(60_000);
        assert_eq!(resolve_for_reader(&store, &name, "latest"), Ok(1));
        assert_eq!(resolve_for_reader(&store, &name, "2"), Ok(2));
        assert!(resolve_for_reader(&store, &name, "3").is_err());
        let (current, _) = store_after_a_second_add(0);
        assert_eq!(
            resolve_for_reader(&current, &name, "latest"),
            Ok(2),
            "no lag"
        );
    }

    #[test]
    fn a_lagging_read_shows_the_state_it_saw() {
        let mut body = json!({"name": "x", "state": "DESTROYED", "destroyTime": "t"});
        body = seen_in_state(body, "ENABLED");
        assert_eq!(body, json!({"name": "x", "state": "ENABLED"}));
        let unchanged = seen_in_state(json!({"state": "DISABLED"}), "DISABLED");
        assert_eq!(unchanged, json!({"state": "DISABLED"}));
    }
}
