//! Cloud Run Admin v2 services (per `discovery/run.v2.json`): create (with `serviceId`), get,
//! list, patch (`updateMask` honoured), delete — each a long-running operation served by
//! `operations.get` that finishes after the configured delay. Server defaults are filled in as
//! Google fills them, a template change makes a new revision (`<service>-<5 digits>-<3 letters>`),
//! traffic must sum to 100 and name existing revisions, and a revision whose secret does not
//! exist (or whose access to it has not propagated) fails its operation, as a real deployment
//! would, and stays failed: only a new revision is judged again.

use super::collection::{self, Call, Method, PageSizes};
use super::discovery::{self, Api};
use super::error::ApiError;
use super::http::{Request, Response};
use super::iam;
use super::store::{OperationRecord, RunServiceRecord, Store, now, project_number};
use serde_json::{Map, Value as Json, json};
use std::time::Duration;

const SERVICE_TYPE: &str = "type.googleapis.com/google.cloud.run.v2.Service";
const REVISION_TYPE: &str = "type.googleapis.com/google.cloud.run.v2.Revision";
/// Run's lists document no default page size; operations.list documents 100 as both.
const PAGE_SIZES: PageSizes = PageSizes::new(100, 1000);
const RESERVED_LABEL_PREFIXES: [&str; 4] = [
    "run.googleapis.com/",
    "cloud.googleapis.com/",
    "serving.knative.dev/",
    "autoscaling.knative.dev/",
];

fn millis_now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Cloud Run's methods, by discovery id. Each first settles the reconciliations that are due,
/// as time passing would have on Google's side.
pub const METHODS: &[Method] = &[
    Method {
        id: "run.projects.locations.services.create",
        handler: |call| {
            settle(call.store);
            let (project, region) = parent_of(call);
            create(
                call.store,
                call.request,
                &project,
                &region,
                call.operation_delay,
            )
        },
    },
    Method {
        id: "run.projects.locations.services.list",
        handler: |call| {
            settle(call.store);
            let (project, region) = parent_of(call);
            list(call.store, call.request, &project, &region)
        },
    },
    Method {
        id: "run.projects.locations.services.get",
        handler: |call| {
            settle(call.store);
            call.request.allow_query(&[])?;
            let name = service_of(call);
            let record = call
                .store
                .run_services
                .get(&name)
                .ok_or_else(|| not_found(&name))?;
            Ok(Response::read(service_json(&name, record)))
        },
    },
    Method {
        id: "run.projects.locations.services.patch",
        handler: |call| {
            settle(call.store);
            let name = service_of(call);
            patch(call.store, call.request, &name, call.operation_delay)
        },
    },
    Method {
        id: "run.projects.locations.services.delete",
        handler: |call| {
            settle(call.store);
            let name = service_of(call);
            delete(call.store, call.request, &name, call.operation_delay)
        },
    },
    Method {
        id: "run.projects.locations.services.getIamPolicy",
        handler: |call| {
            let name = existing_service(call)?;
            iam::get_policy(call.store, call.request, &name)
        },
    },
    Method {
        id: "run.projects.locations.services.setIamPolicy",
        handler: |call| {
            let name = existing_service(call)?;
            iam::set_policy(call.store, call.request, &name, Api::Run, true)
        },
    },
    Method {
        id: "run.projects.locations.services.testIamPermissions",
        handler: |call| {
            existing_service(call)?;
            iam::test_permissions(call.request)
        },
    },
    Method {
        id: "run.projects.locations.services.revisions.list",
        handler: |call| {
            settle(call.store);
            let service = service_of(call);
            list_revisions(call.store, call.request, &service)
        },
    },
    Method {
        id: "run.projects.locations.services.revisions.get",
        handler: |call| {
            settle(call.store);
            let (service, revision) = (service_of(call), call.var("revisionsId").to_string());
            get_revision(call.store, call.request, &service, &revision)
        },
    },
    Method {
        id: "run.projects.locations.services.revisions.delete",
        handler: |call| {
            settle(call.store);
            let (service, revision) = (service_of(call), call.var("revisionsId").to_string());
            delete_revision(
                call.store,
                call.request,
                &service,
                &revision,
                call.operation_delay,
            )
        },
    },
    Method {
        id: "run.projects.locations.operations.list",
        handler: |call| {
            settle(call.store);
            let (project, region) = parent_of(call);
            list_operations(call.store, call.request, &project, &region)
        },
    },
    Method {
        id: "run.projects.locations.operations.get",
        handler: |call| {
            settle(call.store);
            call.request.allow_query(&[])?;
            let name = operation_of(call);
            get_operation(call.store, &name)
        },
    },
    Method {
        // The server has waited (see `wait_for`) before this answers.
        id: "run.projects.locations.operations.wait",
        handler: |call| {
            settle(call.store);
            let name = operation_of(call);
            get_operation(call.store, &name)
        },
    },
    Method {
        id: "run.projects.locations.operations.delete",
        handler: |call| {
            call.request.allow_query(&[])?;
            let name = operation_of(call);
            call.store
                .run_operations
                .remove(&name)
                .map(|_| Response::changed(json!({})))
                .ok_or_else(|| ApiError::not_found(format!("Operation {name} not found.")))
        },
    },
];

fn parent_of(call: &Call<'_>) -> (String, String) {
    (
        call.var("projectsId").to_string(),
        call.var("locationsId").to_string(),
    )
}

fn service_of(call: &Call<'_>) -> String {
    canonical(
        call.var("projectsId"),
        call.var("locationsId"),
        call.var("servicesId"),
    )
}

fn existing_service(call: &mut Call<'_>) -> Result<String, ApiError> {
    settle(call.store);
    let name = service_of(call);
    if call.store.run_services.contains_key(&name) {
        Ok(name)
    } else {
        Err(not_found(&name))
    }
}

fn operation_of(call: &Call<'_>) -> String {
    format!(
        "projects/{}/locations/{}/operations/{}",
        project_number(call.var("projectsId")),
        call.var("locationsId"),
        call.var("operationsId")
    )
}

fn canonical(project: &str, region: &str, service: &str) -> String {
    format!(
        "projects/{}/locations/{region}/services/{service}",
        project_number(project)
    )
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Resource '{}' of kind 'SERVICE' in region '{}' in project '{}' does not exist.",
        name.rsplit('/').next().unwrap_or(name),
        name.split('/').nth(3).unwrap_or(""),
        name.split('/').nth(1).unwrap_or("")
    ))
}

/// Finishes every reconciliation whose time has come: the latest revision becomes ready (or
/// the reconciliation fails when a referenced secret does not exist). A revision is judged
/// once, when it starts: one that failed stays failed and one that is ready stays ready, so a
/// PATCH that makes no new revision (no template change, no `forceNewRevision`) changes
/// neither, as on Cloud Run.
fn settle(store: &mut Store) {
    let now = millis_now();
    let due: Vec<String> = store
        .run_services
        .iter()
        .filter(|(_, record)| record.settle_at.is_some_and(|at| at <= now))
        .map(|(name, _)| name.clone())
        .collect();
    for name in due {
        if let Some(record) = store.run_services.get_mut(&name)
            && settle_judged(record)
        {
            continue;
        }
        // When the revision started: the judgement does not depend on when it is next read.
        let now = store.run_services[&name].settle_at.unwrap_or(now);
        let project_number = name.split('/').nth(1).unwrap_or_default().to_string();
        let referenced = referenced_secrets(&store.run_services[&name].body, &project_number);
        // Cloud Run resolves each variable's version when the revision starts: a number as
        // stored, `latest` or an alias through Secret Manager's lagging view.
        let missing: Option<String> = referenced.iter().find_map(|reference| {
            if !store.secrets.contains_key(&reference.canonical) {
                return Some(format!(
                    "Secret {} was not found or the service account lacks access.",
                    reference.secret
                ));
            }
            super::secretmanager::resolve_for_reader(
                store,
                &reference.canonical,
                &reference.version,
            )
            .err()
        });
        // A grant of the secret to the revision's account that IAM has not propagated yet:
        // Google's revision fails to start with "Permission denied on secret".
        let runtime_account = store.run_services[&name].body["template"]["serviceAccount"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let unpropagated: Option<String> = referenced
            .iter()
            .find(|reference| {
                store
                    .secret_grants
                    .get(&format!(
                        "{}|serviceaccount:{runtime_account}",
                        reference.canonical
                    ))
                    .is_some_and(|granted| now - granted < store.access_propagation_ms)
            })
            .map(|reference| reference.secret.clone());
        let Some(record) = store.run_services.get_mut(&name) else {
            continue;
        };
        record.settle_at = None;
        record.observed_generation = record.generation;
        if let (None, Some(secret)) = (&missing, &unpropagated) {
            record.observed_generation = record.generation;
            record.failure = Some(format!(
                "Revision '{}' is not ready and cannot serve traffic. Permission denied on secret: {secret}/versions/latest for Revision service account {runtime_account}. The service account used must be granted the 'Secret Manager Secret Accessor' role (roles/secretmanager.secretAccessor) at the secret, project or higher level.",
                record.revisions.last().cloned().unwrap_or_default()
            ));
            remember_failure(record);
            continue;
        }
        match missing {
            Some(reason) => {
                record.failure = Some(format!(
                    "Revision '{}' is not ready and cannot serve traffic. {reason}",
                    record.revisions.last().cloned().unwrap_or_default()
                ));
                remember_failure(record);
            }
            None => {
                record.failure = None;
                record.latest_ready = record.revisions.last().cloned();
            }
        }
    }
}

/// Settles a reconciliation whose latest revision was judged before (the PATCH made no new
/// revision): the service keeps that revision's verdict. Returns false when the latest
/// revision is new and must be judged.
fn settle_judged(record: &mut RunServiceRecord) -> bool {
    let Some(latest) = record.revisions.last().cloned() else {
        return false;
    };
    let failure = record.failed_revisions.get(&latest).cloned();
    if failure.is_none() && record.latest_ready.as_deref() != Some(latest.as_str()) {
        return false;
    }
    record.settle_at = None;
    record.observed_generation = record.generation;
    record.failure = failure;
    true
}

/// Notes that the latest revision failed to start, for good.
fn remember_failure(record: &mut RunServiceRecord) {
    if let (Some(revision), Some(failure)) = (record.revisions.last(), &record.failure) {
        record
            .failed_revisions
            .insert(revision.clone(), failure.clone());
    }
}

fn uri(name: &str) -> String {
    let parts: Vec<&str> = name.split('/').collect();
    let (project, region, service) = (parts[1], parts[3], parts[5]);
    let short = region
        .split('-')
        .map(|piece| piece.chars().next().unwrap_or('x'))
        .collect::<String>();
    let hash = &project_number(&format!("{project}/{service}"))[..10];
    format!("https://{service}-{hash}-{short}.a.run.app")
}

/// The deterministic URL every service also answers on: "https://SERVICE-PROJECT_NUMBER.REGION.run.app"
/// (<https://cloud.google.com/run/docs/triggering/https-request#deterministic>).
fn deterministic_uri(name: &str) -> String {
    let parts: Vec<&str> = name.split('/').collect();
    let (project, region, service) = (parts[1], parts[3], parts[5]);
    format!(
        "https://{service}-{}.{region}.run.app",
        project_number(project)
    )
}

fn traffic_statuses(name: &str, record: &RunServiceRecord) -> Vec<Json> {
    record.body["traffic"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|target| {
            let mut status = target.clone();
            if status["type"] == "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
                && let Some(ready) = &record.latest_ready
            {
                status["revision"] = json!(ready);
            }
            if let Some(tag) = target["tag"].as_str() {
                status["uri"] = json!(format!(
                    "https://{tag}---{}",
                    uri(name).trim_start_matches("https://")
                ));
            }
            status
        })
        .collect()
}

fn service_json(name: &str, record: &RunServiceRecord) -> Json {
    let mut body = Json::Object(record.body.clone());
    let reconciling = record.settle_at.is_some();
    let condition = match (&record.failure, reconciling) {
        (_, true) => {
            json!({"type": "Ready", "state": "CONDITION_RECONCILING", "lastTransitionTime": record.update_time})
        }
        (Some(message), false) => {
            json!({"type": "Ready", "state": "CONDITION_FAILED", "message": message, "reason": "REVISION_FAILED", "severity": "ERROR", "lastTransitionTime": record.update_time})
        }
        (None, false) => {
            json!({"type": "Ready", "state": "CONDITION_SUCCEEDED", "lastTransitionTime": record.update_time})
        }
    };
    let fields = [
        ("name", json!(name)),
        ("uid", json!(record.uid)),
        ("generation", json!(record.generation.to_string())),
        (
            "observedGeneration",
            json!(record.observed_generation.to_string()),
        ),
        ("createTime", json!(record.create_time)),
        ("updateTime", json!(record.update_time)),
        ("creator", json!("infra-emulator@example.com")),
        ("lastModifier", json!("infra-emulator@example.com")),
        (
            "latestCreatedRevision",
            json!(
                record
                    .revisions
                    .last()
                    .map(|revision| format!("{name}/revisions/{revision}"))
            ),
        ),
        (
            "latestReadyRevision",
            json!(
                record
                    .latest_ready
                    .as_ref()
                    .map(|revision| format!("{name}/revisions/{revision}"))
            ),
        ),
        ("terminalCondition", condition),
        ("conditions", json!([])),
        ("trafficStatuses", json!(traffic_statuses(name, record))),
        ("uri", json!(uri(name))),
        ("urls", json!([uri(name), deterministic_uri(name)])),
        ("reconciling", json!(reconciling)),
        ("etag", json!(record.etag)),
    ];
    for (field, value) in fields {
        if !value.is_null() {
            body[field] = value;
        }
    }
    // Service.ingress: "On output, returns the currently observed ingress settings, or
    // INGRESS_TRAFFIC_UNSPECIFIED if no revision is active" — none is until one became ready
    // (proto3 JSON then leaves the field out).
    if record.latest_ready.is_none() {
        body["ingress"] = json!("INGRESS_TRAFFIC_UNSPECIFIED");
    }
    body
}

/// Writes each `secretKeyRef.secret` that names a secret of the service's own project (by
/// id or number) in the short form Cloud Run answers with: SecretKeySelector.secret is
/// "{secret_name} if the secret is in the same project.
/// projects/{project}/secrets/{secret_name} if the secret is in a different project."
fn shorten_same_project_secrets(body: &mut Map<String, Json>, project: &str) {
    let own_number = project_number(project);
    let containers = body
        .get_mut("template")
        .and_then(|template| template.get_mut("containers"))
        .and_then(Json::as_array_mut);
    for container in containers.into_iter().flatten() {
        let variables = container.get_mut("env").and_then(Json::as_array_mut);
        for variable in variables.into_iter().flatten() {
            let Some(secret) = variable.pointer_mut("/valueSource/secretKeyRef/secret") else {
                continue;
            };
            let short = match secret
                .as_str()
                .map(|name| name.split('/').collect::<Vec<_>>())
            {
                Some(parts) => match parts[..] {
                    ["projects", owner, "secrets", id] if project_number(owner) == own_number => {
                        Some(id.to_string())
                    }
                    _ => None,
                },
                None => None,
            };
            if let Some(short) = short {
                *secret = json!(short);
            }
        }
    }
}

/// Fills in what Google fills in when the client leaves it out.
fn apply_defaults(body: &mut Map<String, Json>, project: &str) {
    body.entry("ingress")
        .or_insert(json!("INGRESS_TRAFFIC_ALL"));
    body.entry("launchStage").or_insert(json!("GA"));
    if body
        .get("traffic")
        .and_then(Json::as_array)
        .is_none_or(Vec::is_empty)
    {
        body.insert(
            "traffic".into(),
            json!([{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]),
        );
    }
    let template = body.entry("template").or_insert(json!({}));
    if template
        .get("serviceAccount")
        .and_then(Json::as_str)
        .is_none_or(str::is_empty)
    {
        template["serviceAccount"] = json!(format!(
            "{}-compute@developer.gserviceaccount.com",
            project_number(project)
        ));
    }
    if template.get("timeout").is_none() {
        template["timeout"] = json!("300s");
    }
    // "If not specified or 0, concurrency defaults to 80 when requested `CPU >= 1` and defaults
    // to 1 when requested `CPU < 1`."
    if template
        .get("maxInstanceRequestConcurrency")
        .is_none_or(|concurrency| concurrency.as_i64() == Some(0))
    {
        let fractional = template["containers"]
            .as_array()
            .and_then(|containers| containers.first())
            .and_then(|container| container.pointer("/resources/limits/cpu"))
            .and_then(Json::as_str)
            .and_then(cpu_cores)
            .is_some_and(|cores| cores < 1.0);
        template["maxInstanceRequestConcurrency"] = json!(if fractional { 1 } else { 80 });
    }
    if template.pointer("/scaling/maxInstanceCount").is_none() {
        if !template["scaling"].is_object() {
            template["scaling"] = json!({});
        }
        template["scaling"]["maxInstanceCount"] = json!(100);
    }
    if let Some(containers) = template["containers"].as_array_mut() {
        // A lone container is the ingress container, port 8080 unless it says; with sidecars
        // the ingress container names its port itself.
        let single = containers.len() == 1;
        for container in containers {
            if container.get("resources").is_none() {
                container["resources"] =
                    json!({"limits": {"cpu": "1000m", "memory": "512Mi"}, "cpuIdle": true});
            }
            if single && container.get("ports").is_none() {
                container["ports"] = json!([{"name": "http1", "containerPort": 8080}]);
            }
        }
    }
}

/// A CPU limit in cores (`"1"`, `"2"`, `"1000m"`, `"500m"`).
fn cpu_cores(cpu: &str) -> Option<f64> {
    match cpu.strip_suffix('m') {
        Some(millis) => millis.parse::<f64>().ok().map(|millis| millis / 1000.0),
        None => cpu.parse::<f64>().ok(),
    }
}

/// Seconds of a protobuf Duration in JSON (`"300s"`, `"1.5s"`).
fn duration_seconds(text: &str) -> Option<f64> {
    text.strip_suffix('s')?.parse::<f64>().ok()
}

fn check_labels(body: &Map<String, Json>, field: &str) -> Result<(), ApiError> {
    for map in [
        body.get(field),
        body.get("template")
            .and_then(|template| template.get(field)),
    ]
    .into_iter()
    .flatten()
    {
        if let Some(keys) = map.as_object()
            && let Some(reserved) = keys.keys().find(|key| {
                RESERVED_LABEL_PREFIXES
                    .iter()
                    .any(|prefix| key.starts_with(prefix))
            })
        {
            return Err(ApiError::invalid_argument(format!(
                "The {field} key '{reserved}' is in a reserved namespace."
            )));
        }
    }
    Ok(())
}

fn check_service(body: &Map<String, Json>) -> Result<(), ApiError> {
    let containers = body
        .get("template")
        .and_then(|template| template["containers"].as_array());
    let Some(containers) = containers.filter(|containers| !containers.is_empty()) else {
        return Err(ApiError::invalid_argument(
            "spec.template.spec.containers: at least one container is required.",
        ));
    };
    // Container.ports: "Only a single port can be specified"; with several containers exactly
    // one, the ingress container, exposes one
    // (<https://cloud.google.com/run/docs/deploying#sidecars>); names are DNS labels, unique.
    let with_ports = containers
        .iter()
        .filter(|container| {
            container["ports"]
                .as_array()
                .is_some_and(|ports| !ports.is_empty())
        })
        .count();
    if containers.len() > 1 && with_ports != 1 {
        return Err(ApiError::invalid_argument(
            "spec.template.spec.containers: exactly one container (the ingress container) must specify a port.",
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for container in containers {
        if container["ports"]
            .as_array()
            .is_some_and(|ports| ports.len() > 1)
        {
            return Err(ApiError::invalid_argument(
                "spec.template.spec.containers.ports: only a single port can be specified.",
            ));
        }
        if let Some(name) = container["name"].as_str().filter(|name| !name.is_empty()) {
            let dns_label = name.len() <= 63
                && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !dns_label {
                return Err(ApiError::invalid_argument(format!(
                    "spec.template.spec.containers.name: {name:?} is not a DNS label (RFC 1123)."
                )));
            }
            if !names.insert(name) {
                return Err(ApiError::invalid_argument(format!(
                    "spec.template.spec.containers.name: {name:?} is used by two containers."
                )));
            }
        }
    }
    for container in containers {
        if container["image"].as_str().is_none_or(str::is_empty) {
            return Err(ApiError::invalid_argument(
                "spec.template.spec.containers[0].image: Required field is missing.",
            ));
        }
        if let Some(cpu) = container
            .pointer("/resources/limits/cpu")
            .and_then(Json::as_str)
            && !["1", "2", "4", "8", "1000m", "2000m", "4000m", "8000m"].contains(&cpu)
            && !cpu.ends_with('m')
        {
            return Err(ApiError::invalid_argument(format!(
                "Invalid value for CPU limit {cpu:?}: use 1, 2, 4 or 8."
            )));
        }
        for variable in container["env"].as_array().into_iter().flatten() {
            if variable["name"].as_str().is_none_or(str::is_empty) {
                return Err(ApiError::invalid_argument(
                    "spec.template.spec.containers[0].env: every variable needs a name.",
                ));
            }
        }
    }
    // Service.description: "This field currently has a 512-character limit."
    if body
        .get("description")
        .and_then(Json::as_str)
        .is_some_and(|description| description.chars().count() > 512)
    {
        return Err(ApiError::invalid_argument(
            "description: the limit is 512 characters.",
        ));
    }
    let template = body.get("template").cloned().unwrap_or_default();
    // Request timeouts go up to 60 minutes, concurrency up to 1000
    // (<https://cloud.google.com/run/docs/configuring/request-timeout>,
    // <https://cloud.google.com/run/docs/configuring/concurrency>).
    if let Some(timeout) = template["timeout"].as_str() {
        match duration_seconds(timeout) {
            Some(seconds) if seconds > 0.0 && seconds <= 3600.0 => {}
            _ => {
                return Err(ApiError::invalid_argument(format!(
                    "spec.template.spec.timeoutSeconds: {timeout} is not between 1s and 3600s."
                )));
            }
        }
    }
    if let Some(concurrency) = template["maxInstanceRequestConcurrency"].as_i64()
        && !(0..=1000).contains(&concurrency)
    {
        return Err(ApiError::invalid_argument(format!(
            "spec.template.spec.containerConcurrency: {concurrency} is not between 0 and 1000."
        )));
    }
    check_labels(body, "labels")?;
    check_labels(body, "annotations")
}

fn check_traffic(body: &Map<String, Json>, revisions: &[String]) -> Result<(), ApiError> {
    let Some(targets) = body
        .get("traffic")
        .and_then(Json::as_array)
        .filter(|targets| !targets.is_empty())
    else {
        return Ok(());
    };
    let mut total = 0;
    // A tag becomes part of a URL (`https://TAG---SERVICE-…`): a DNS label, starting with a
    // letter, and naming one target only.
    let mut tags = std::collections::BTreeSet::new();
    for tag in targets
        .iter()
        .filter_map(|target| target["tag"].as_str())
        .filter(|tag| !tag.is_empty())
    {
        let label = tag.len() <= 63
            && tag.starts_with(|c: char| c.is_ascii_lowercase())
            && !tag.ends_with('-')
            && tag
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !label {
            return Err(ApiError::invalid_argument(format!(
                "Invalid traffic tag {tag:?}: lowercase letters, digits and hyphens, starting with a letter."
            )));
        }
        if !tags.insert(tag) {
            return Err(ApiError::invalid_argument(format!(
                "Traffic tag {tag:?} is given to more than one target."
            )));
        }
    }
    for target in targets {
        total += target["percent"].as_i64().unwrap_or(0);
        let latest = target["type"] == "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST";
        match target["revision"].as_str() {
            Some(revision) if latest => {
                return Err(ApiError::invalid_argument(format!(
                    "A traffic target of type LATEST cannot name revision {revision}."
                )));
            }
            Some(revision) if !revisions.iter().any(|known| known == revision) => {
                return Err(ApiError::invalid_argument(format!(
                    "Revision named '{revision}' referenced in traffic not found."
                )));
            }
            None if !latest => {
                return Err(ApiError::invalid_argument(
                    "A traffic target of type REVISION must name a revision.",
                ));
            }
            _ => {}
        }
    }
    if total != 100 {
        return Err(ApiError::invalid_argument(format!(
            "Traffic percents must add up to 100 (they add up to {total})."
        )));
    }
    Ok(())
}

fn revision_name(service: &str, generation: u64) -> String {
    let seed = project_number(&format!("{service}#{generation}"));
    let letters: String = seed
        .bytes()
        .rev()
        .take(3)
        .map(|digit| char::from(b'a' + (digit - b'0') * 2 % 26))
        .collect();
    format!("{service}-{generation:05}-{letters}")
}

fn settable(body: &Json) -> Map<String, Json> {
    let mut fields = body.as_object().cloned().unwrap_or_default();
    fields.retain(|field, _| {
        !discovery::is_output_only(Api::Run, "GoogleCloudRunV2Service", field)
            && field != "etag"
            && field != "name"
    });
    if let Some(containers) = fields
        .get_mut("template")
        .and_then(|template| template.get_mut("containers"))
        .and_then(Json::as_array_mut)
    {
        for container in containers {
            if let Some(container) = container.as_object_mut() {
                container.remove("buildInfo");
            }
        }
    }
    fields
}

fn operation(
    store: &mut Store,
    service: &str,
    deletes: bool,
    metadata: Json,
    delay: Duration,
) -> Json {
    operation_for(store, service, deletes, None, metadata, delay)
}

fn operation_for(
    store: &mut Store,
    service: &str,
    deletes: bool,
    revision: Option<String>,
    metadata: Json,
    delay: Duration,
) -> Json {
    let parts: Vec<&str> = service.split('/').collect();
    let name = format!(
        "projects/{}/locations/{}/operations/{}",
        parts[1],
        parts[3],
        uuid::Uuid::new_v4()
    );
    let done_at = millis_now() + delay.as_millis() as i64;
    store.run_operations.insert(
        name.clone(),
        OperationRecord {
            service: service.to_string(),
            done_at,
            deletes,
            revision,
            metadata: metadata.clone(),
        },
    );
    operation_json(&name, false, &metadata, None)
}

fn operation_json(name: &str, done: bool, metadata: &Json, outcome: Option<Json>) -> Json {
    let mut metadata = metadata.clone();
    if metadata.get("@type").is_none() {
        metadata["@type"] = json!(SERVICE_TYPE);
    }
    let mut body = json!({"name": name, "metadata": metadata, "done": done});
    if let Some(outcome) = outcome {
        let key = if outcome.get("code").is_some() && outcome.get("@type").is_none() {
            "error"
        } else {
            "response"
        };
        body[key] = outcome;
    }
    body
}

/// The answer to a `validateOnly` request: "validated and default values populated, without
/// persisting the request or creating any resources". It is a finished operation (nothing is
/// stored, so it is never polled), and, as `google.longrunning.Operation` requires of a done
/// one, it carries a result: the validated resource, defaults filled in, as `response`.
fn validated_operation(resource: &str, validated: &Json) -> Json {
    let parts: Vec<&str> = resource.split('/').collect();
    let name = format!(
        "projects/{}/locations/{}/operations/{}",
        parts.get(1).unwrap_or(&""),
        parts.get(3).unwrap_or(&""),
        uuid::Uuid::new_v4()
    );
    let mut response = validated.clone();
    if response.get("name").is_none() {
        response["name"] = json!(resource);
    }
    if response.get("@type").is_none() {
        response["@type"] = json!(SERVICE_TYPE);
    }
    operation_json(&name, true, &response, Some(response.clone()))
}

fn get_operation(store: &mut Store, name: &str) -> Result<Response, ApiError> {
    let record = store
        .run_operations
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("Operation {name} not found.")))?;
    if millis_now() < record.done_at {
        return Ok(Response::read(operation_json(
            name,
            false,
            &record.metadata,
            None,
        )));
    }
    if record.deletes {
        // DeleteService and DeleteRevision: "response_type: Service" / "Revision" — what was
        // deleted, as it was.
        let mut response = record.metadata.clone();
        if response.get("@type").is_none() {
            response["@type"] = json!(SERVICE_TYPE);
        }
        return Ok(Response::read(operation_json(
            name,
            true,
            &record.metadata,
            Some(response),
        )));
    }
    let Some(service) = store.run_services.get(&record.service) else {
        return Ok(Response::read(operation_json(
            name,
            true,
            &record.metadata,
            Some(json!({"code": 5, "message": "The service was deleted."})),
        )));
    };
    if service.settle_at.is_some() {
        return Ok(Response::read(operation_json(
            name,
            false,
            &record.metadata,
            None,
        )));
    }
    let outcome = match &service.failure {
        Some(message) => json!({"code": 9, "message": message}),
        None => {
            let mut response = service_json(&record.service, service);
            response["@type"] = json!(SERVICE_TYPE);
            response
        }
    };
    Ok(Response::read(operation_json(
        name,
        true,
        &record.metadata,
        Some(outcome),
    )))
}

fn create(
    store: &mut Store,
    request: &Request,
    project: &str,
    region: &str,
    delay: Duration,
) -> Result<Response, ApiError> {
    request.allow_query(&["serviceId", "validateOnly"])?;
    let body = request.json()?;
    discovery::validate(Api::Run, "GoogleCloudRunV2Service", "service", &body)?;
    let service_id = request.query("serviceId").unwrap_or_else(|| {
        format!(
            "service-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    });
    create_from(store, request, body, project, region, service_id, delay)
}

/// The create itself, shared with a patch that `allowMissing` turns into one.
fn create_from(
    store: &mut Store,
    request: &Request,
    body: Json,
    project: &str,
    region: &str,
    service_id: String,
    delay: Duration,
) -> Result<Response, ApiError> {
    let valid = service_id.len() < 50
        && service_id.starts_with(|c: char| c.is_ascii_lowercase())
        && !service_id.ends_with('-')
        && service_id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(ApiError::invalid_argument(format!(
            "service_id {service_id:?} must begin with a letter, contain only lowercase letters, digits and hyphens, not end with a hyphen, and be shorter than 50 characters."
        )));
    }
    let mut fields = settable(&body);
    check_service(&fields)?;
    let name = canonical(project, region, &service_id);
    if store.run_services.contains_key(&name) {
        return Err(ApiError::already_exists(format!(
            "Resource '{service_id}' already exists."
        )));
    }
    apply_defaults(&mut fields, project);
    shorten_same_project_secrets(&mut fields, project);
    let revision = fields["template"]["revision"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| revision_name(&service_id, 1));
    check_revision_name(&service_id, &revision)?;
    check_traffic(&fields, std::slice::from_ref(&revision))?;
    if request.query_bool("validateOnly")? {
        return Ok(Response::read(validated_operation(
            &name,
            &Json::Object(fields.clone()),
        )));
    }
    let time = now();
    let mut record = RunServiceRecord {
        body: fields,
        uid: uuid::Uuid::new_v4().to_string(),
        generation: 1,
        observed_generation: 0,
        create_time: time.clone(),
        update_time: time,
        etag: format!("\"{}\"", store.next_etag()),
        revisions: vec![revision.clone()],
        latest_ready: None,
        settle_at: Some(millis_now() + delay.as_millis() as i64),
        failure: None,
        revision_records: Default::default(),
        failed_revisions: Default::default(),
    };
    record_revision(&mut record, &name, &revision);
    let metadata = service_json(&name, &record);
    store.run_services.insert(name.clone(), record);
    Ok(Response::changed(operation(
        store, &name, false, metadata, delay,
    )))
}

fn list(
    store: &mut Store,
    request: &Request,
    project: &str,
    region: &str,
) -> Result<Response, ApiError> {
    request.allow_query(&["pageSize", "pageToken", "showDeleted"])?;
    if region == "-" {
        return Err(ApiError::invalid_argument(
            "Location must be a valid Google Cloud region, and cannot be the \"-\" wildcard.",
        ));
    }
    let prefix = format!(
        "projects/{}/locations/{region}/services/",
        project_number(project)
    );
    let mut services: Vec<(&String, &RunServiceRecord)> = store
        .run_services
        .iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .collect();
    services.sort_by(|left, right| right.1.create_time.cmp(&left.1.create_time));
    let body: Vec<Json> = services
        .into_iter()
        .map(|(name, record)| service_json(name, record))
        .collect();
    let (items, next) = collection::page(body, request, "pageSize", PAGE_SIZES)?;
    Ok(Response::read(collection::list_answer(
        "services", items, next,
    )))
}

fn patch(
    store: &mut Store,
    request: &Request,
    name: &str,
    delay: Duration,
) -> Result<Response, ApiError> {
    request.allow_query(&[
        "updateMask",
        "validateOnly",
        "allowMissing",
        "forceNewRevision",
    ])?;
    let body = request.json()?;
    discovery::validate(Api::Run, "GoogleCloudRunV2Service", "service", &body)?;
    let Some(current) = store.run_services.get(name).cloned() else {
        // allowMissing: "If set to true, and if the Service does not exist, it will create a
        // new one."
        if request.query_bool("allowMissing")? {
            let parts: Vec<&str> = name.split('/').collect();
            return create_from(
                store,
                request,
                body,
                parts[1],
                parts[3],
                parts[5].to_string(),
                delay,
            );
        }
        return Err(not_found(name));
    };
    if let Some(etag) = body.get("etag").and_then(Json::as_str)
        && etag != current.etag
    {
        return Err(ApiError::aborted(format!(
            "The etag of service {name} does not match: it changed since it was read."
        )));
    }
    let incoming = settable(&body);
    let mut fields = current.body.clone();
    match collection::mask_paths(request.query("updateMask").as_deref()) {
        // `*` is a full replacement, as an absent mask is for Cloud Run.
        Some(paths) if paths.iter().any(|path| path == "*") => fields = incoming,
        Some(paths) => {
            for path in &paths {
                let top = path.split('.').next().unwrap_or_default();
                if !discovery::mask_path_exists(Api::Run, "GoogleCloudRunV2Service", path)
                    || discovery::is_output_only(Api::Run, "GoogleCloudRunV2Service", top)
                {
                    return Err(ApiError::invalid_argument(format!(
                        "Invalid update_mask path: {path}"
                    )));
                }
            }
            collection::apply_mask(&mut fields, &incoming, &paths);
        }
        None => fields = incoming,
    }
    check_service(&fields)?;
    let project = name.split('/').nth(1).unwrap_or_default().to_string();
    apply_defaults(&mut fields, &project);
    shorten_same_project_secrets(&mut fields, &project);
    let template_changed = fields.get("template") != current.body.get("template");
    let force = request.query_bool("forceNewRevision")?;
    let mut record = current.clone();
    record.generation += 1;
    if template_changed || force {
        let service_id = name.rsplit('/').next().unwrap_or_default();
        let revision = fields["template"]["revision"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| revision_name(service_id, record.generation));
        check_revision_name(service_id, &revision)?;
        if record.revisions.contains(&revision) {
            // What Cloud Run answers when a template change reuses a revision's name.
            return Err(ApiError::already_exists(format!(
                "Revision named '{revision}' with different configuration already exists."
            )));
        }
        record.revisions.push(revision);
    }
    check_traffic(&fields, &record.revisions)?;
    if request.query_bool("validateOnly")? {
        return Ok(Response::read(validated_operation(
            name,
            &Json::Object(fields),
        )));
    }
    record.body = fields;
    if let Some(revision) = record.revisions.last().cloned()
        && !record.revision_records.contains_key(&revision)
    {
        record_revision(&mut record, name, &revision);
    }
    record.update_time = now();
    record.etag = format!("\"{}\"", store.next_etag());
    record.settle_at = Some(millis_now() + delay.as_millis() as i64);
    let metadata = service_json(name, &record);
    store.run_services.insert(name.to_string(), record);
    Ok(Response::changed(operation(
        store, name, false, metadata, delay,
    )))
}

fn delete(
    store: &mut Store,
    request: &Request,
    name: &str,
    delay: Duration,
) -> Result<Response, ApiError> {
    request.allow_query(&["etag", "validateOnly"])?;
    let record = store
        .run_services
        .get(name)
        .cloned()
        .ok_or_else(|| not_found(name))?;
    if let Some(etag) = request.query("etag").filter(|etag| !etag.is_empty())
        && etag != record.etag
    {
        return Err(ApiError::aborted(format!(
            "The etag of service {name} does not match: it changed since it was read."
        )));
    }
    let mut metadata = service_json(name, &record);
    // Service.deleteTime: "It is only populated as a response to a Delete request."
    metadata["deleteTime"] = json!(now());
    if request.query_bool("validateOnly")? {
        return Ok(Response::read(validated_operation(name, &metadata)));
    }
    store.run_services.remove(name);
    store.policies.remove(name);
    Ok(Response::changed(operation(
        store, name, true, metadata, delay,
    )))
}

/// Run's rule for `template.revision`: "must be prefixed by the Service name followed by a
/// dash" (RevisionTemplate.revision in run.v2).
fn check_revision_name(service_id: &str, revision: &str) -> Result<(), ApiError> {
    let valid = revision.starts_with(&format!("{service_id}-"))
        && revision.len() <= 63
        && revision
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid_argument(format!(
            "template.revision {revision:?} must start with the service name followed by a dash ('{service_id}-') and use lowercase letters, digits and dashes."
        )))
    }
}

/// Remembers a new revision as Cloud Run would have created it from the service's template.
fn record_revision(record: &mut RunServiceRecord, service: &str, revision: &str) {
    let mut body = Map::new();
    let properties = discovery::properties(Api::Run, "GoogleCloudRunV2Revision");
    if let Some(template) = record.body.get("template").and_then(Json::as_object) {
        for (key, value) in template {
            if key != "revision" && properties.iter().any(|property| property == key) {
                body.insert(key.clone(), value.clone());
            }
        }
    }
    body.insert(
        "name".into(),
        json!(format!("{service}/revisions/{revision}")),
    );
    body.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    body.insert("generation".into(), json!("1"));
    body.insert("createTime".into(), json!(now()));
    body.insert("updateTime".into(), json!(now()));
    body.insert("service".into(), json!(service));
    body.insert(
        "launchStage".into(),
        record
            .body
            .get("launchStage")
            .cloned()
            .unwrap_or(json!("GA")),
    );
    record
        .revision_records
        .insert(revision.to_string(), Json::Object(body));
}

fn revision_not_found(service: &str, revision: &str) -> ApiError {
    ApiError::not_found(format!(
        "Resource '{revision}' of kind 'REVISION' in region '{}' in project '{}' does not exist.",
        service.split('/').nth(3).unwrap_or(""),
        service.split('/').nth(1).unwrap_or("")
    ))
}

/// A revision as `revisions.get` returns it: ready once its service settled on it.
fn revision_json(record: &RunServiceRecord, revision: &str) -> Option<Json> {
    let mut body = record.revision_records.get(revision)?.clone();
    let failure = record.failed_revisions.get(revision);
    // A revision older than the ready one served before it; a failed one never did.
    let ready = failure.is_none()
        && (record.latest_ready.as_deref() == Some(revision)
            || record
                .revisions
                .iter()
                .position(|known| known == revision)
                .zip(
                    record
                        .latest_ready
                        .as_ref()
                        .and_then(|ready| record.revisions.iter().position(|known| known == ready)),
                )
                .is_some_and(|(this, ready)| this <= ready));
    body["conditions"] = match (ready, failure) {
        (true, _) => json!([{"type": "Ready", "state": "CONDITION_SUCCEEDED"}]),
        (false, Some(message)) => {
            json!([{"type": "Ready", "state": "CONDITION_FAILED", "message": message, "severity": "ERROR"}])
        }
        (false, None) => json!([{"type": "Ready", "state": "CONDITION_RECONCILING"}]),
    };
    body["reconciling"] = json!(!ready && failure.is_none());
    body["observedGeneration"] = json!("1");
    body["etag"] = json!(format!(
        "\"{}\"",
        project_number(&format!("{revision}#etag"))
    ));
    Some(body)
}

fn get_revision(
    store: &mut Store,
    request: &Request,
    service: &str,
    revision: &str,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let record = store
        .run_services
        .get(service)
        .ok_or_else(|| revision_not_found(service, revision))?;
    revision_json(record, revision)
        .map(Response::read)
        .ok_or_else(|| revision_not_found(service, revision))
}

fn list_revisions(
    store: &mut Store,
    request: &Request,
    service: &str,
) -> Result<Response, ApiError> {
    request.allow_query(&["pageSize", "pageToken", "showDeleted"])?;
    // "To list all Revisions across Services, use \"-\" instead of Service name"; newest
    // first ("Results are sorted by creation time, descending").
    if let Some(location) = service.strip_suffix("/services/-") {
        let prefix = format!("{location}/services/");
        let mut items: Vec<Json> = store
            .run_services
            .iter()
            .filter(|(name, _)| name.starts_with(&prefix))
            .flat_map(|(_, record)| {
                record
                    .revisions
                    .iter()
                    .filter_map(|revision| revision_json(record, revision))
            })
            .collect();
        items.sort_by(|left, right| {
            right["createTime"]
                .as_str()
                .cmp(&left["createTime"].as_str())
                .then_with(|| right["name"].as_str().cmp(&left["name"].as_str()))
        });
        let (items, next) = collection::page(items, request, "pageSize", PAGE_SIZES)?;
        return Ok(Response::read(collection::list_answer(
            "revisions",
            items,
            next,
        )));
    }
    let record = store
        .run_services
        .get(service)
        .ok_or_else(|| not_found(service))?;
    // Newest first, as Cloud Run lists them.
    let items: Vec<Json> = record
        .revisions
        .iter()
        .rev()
        .filter_map(|revision| revision_json(record, revision))
        .collect();
    let (items, next) = collection::page(items, request, "pageSize", PAGE_SIZES)?;
    Ok(Response::read(collection::list_answer(
        "revisions",
        items,
        next,
    )))
}

/// `revisions.delete`: refused for a revision that serves traffic or is the latest, as Cloud
/// Run refuses it; otherwise a long-running operation whose response is the Revision.
fn delete_revision(
    store: &mut Store,
    request: &Request,
    service: &str,
    revision: &str,
    delay: Duration,
) -> Result<Response, ApiError> {
    request.allow_query(&["etag", "validateOnly"])?;
    let record = store
        .run_services
        .get(service)
        .cloned()
        .ok_or_else(|| revision_not_found(service, revision))?;
    let mut body =
        revision_json(&record, revision).ok_or_else(|| revision_not_found(service, revision))?;
    let serving = record.revisions.last().map(String::as_str) == Some(revision)
        || traffic_statuses(service, &record)
            .iter()
            .any(|status| status["revision"].as_str() == Some(revision));
    if serving {
        return Err(ApiError::failed_precondition(format!(
            "Revision {revision} cannot be deleted: it is the latest revision or serves traffic."
        )));
    }
    if let Some(etag) = request.query("etag").filter(|etag| !etag.is_empty())
        && Some(etag.as_str()) != body["etag"].as_str()
    {
        return Err(ApiError::aborted(format!(
            "The etag of revision {revision} does not match."
        )));
    }
    body["@type"] = json!(REVISION_TYPE);
    if request.query_bool("validateOnly")? {
        return Ok(Response::read(validated_operation(service, &body)));
    }
    if let Some(record) = store.run_services.get_mut(service) {
        record.revisions.retain(|known| known != revision);
        record.revision_records.remove(revision);
    }
    let full = format!("{service}/revisions/{revision}");
    Ok(Response::changed(operation_for(
        store,
        service,
        true,
        Some(full),
        body,
        delay,
    )))
}

fn list_operations(
    store: &mut Store,
    request: &Request,
    project: &str,
    region: &str,
) -> Result<Response, ApiError> {
    request.allow_query(&["filter", "pageSize", "pageToken", "returnPartialSuccess"])?;
    // filter: "To query for only completed operations: done:true To query for only ongoing
    // operations: done:false Must be empty to query for all".
    let wanted_done = match request
        .query("filter")
        .map(|filter| filter.split_whitespace().collect::<String>())
        .as_deref()
    {
        None | Some("") => None,
        Some("done:true" | "done=true") => Some(true),
        Some("done:false" | "done=false") => Some(false),
        Some(other) => {
            return Err(ApiError::invalid_argument(format!(
                "Invalid filter {other:?}: use done:true or done:false, or no filter."
            )));
        }
    };
    // A `-` location reads across the project's locations.
    let prefix = if region == "-" {
        format!("projects/{}/locations/", project_number(project))
    } else {
        format!(
            "projects/{}/locations/{region}/operations/",
            project_number(project)
        )
    };
    let names: Vec<String> = store
        .run_operations
        .keys()
        .filter(|name| name.starts_with(&prefix))
        .cloned()
        .collect();
    let mut items = Vec::new();
    for name in names {
        let operation = get_operation(store, &name)?.body;
        let done = operation["done"].as_bool().unwrap_or(false);
        if wanted_done.is_none_or(|wanted| wanted == done) {
            items.push(operation);
        }
    }
    // operations.list: "Requested page size cannot exceed 100. If not set or set to less than
    // or equal to 0, the default page size is 100."
    let (items, next) = collection::page(items, request, "pageSize", PageSizes::new(100, 100))?;
    Ok(Response::read(collection::list_answer(
        "operations",
        items,
        next,
    )))
}

/// How long `operations.wait` should wait before answering: until the operation is due, at
/// most the request's `timeout` (Google's default and cap are not documented beyond "the
/// server may cap it"; the emulator caps at 60 s).
pub fn wait_for(store: &Store, request: &Request) -> Option<Duration> {
    let name = request.path.strip_suffix(":wait")?;
    let record = store.run_operations.get(name.trim_start_matches('/'))?;
    let remaining = record.done_at - millis_now();
    let requested = request
        .json()
        .ok()
        .and_then(|body| body["timeout"].as_str().map(String::from))
        .and_then(|text| text.trim_end_matches('s').parse::<f64>().ok())
        .unwrap_or(60.0)
        .min(60.0);
    let wait = (remaining.max(0) as f64 / 1000.0).min(requested) + 0.05;
    Some(Duration::from_secs_f64(wait))
}

/// A secret a service's template reads through `secretKeyRef`.
struct SecretReference {
    /// As written.
    secret: String,
    /// In its canonical `projects/<number>/secrets/<id>` form.
    canonical: String,
    /// The version: a number, `latest` (the default) or an alias.
    version: String,
}

/// Returns the secrets a service's template reads through `secretKeyRef`.
fn referenced_secrets(
    body: &serde_json::Map<String, Json>,
    project_number: &str,
) -> Vec<SecretReference> {
    body.get("template").unwrap_or(&Json::Null)["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|container| container["env"].as_array().cloned().unwrap_or_default())
        .filter_map(|variable| {
            let reference = variable.pointer("/valueSource/secretKeyRef")?;
            let secret = reference["secret"].as_str()?.to_string();
            let version = reference["version"]
                .as_str()
                .filter(|version| !version.is_empty())
                .unwrap_or("latest")
                .to_string();
            Some((secret, version))
        })
        .map(|(secret, version)| {
            let canonical = match secret.split('/').collect::<Vec<_>>()[..] {
                ["projects", project, "secrets", id] => format!(
                    "projects/{}/secrets/{id}",
                    super::store::project_number(project)
                ),
                _ => format!("projects/{project_number}/secrets/{secret}"),
            };
            SecretReference {
                secret,
                canonical,
                version,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_names_follow_cloud_runs_pattern() {
        let name = revision_name("bayit-plus-backend", 3);
        let (prefix, letters) = name.rsplit_once('-').expect("suffix");
        assert!(prefix.ends_with("-00003"), "{name}");
        assert_eq!(letters.len(), 3);
        assert!(letters.chars().all(|c| c.is_ascii_lowercase()), "{name}");
        assert_eq!(
            name,
            revision_name("bayit-plus-backend", 3),
            "deterministic"
        );
    }

    #[test]
    fn traffic_must_sum_to_one_hundred_and_name_known_revisions() {
        let revisions = vec!["svc-00001-abc".to_string()];
        let targets = |traffic: Json| Map::from_iter([("traffic".to_string(), traffic)]);
        assert!(
            check_traffic(
                &targets(
                    json!([{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}])
                ),
                &revisions
            )
            .is_ok()
        );
        let split = json!([{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 10}, {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "svc-00001-abc", "percent": 90}]);
        assert!(check_traffic(&targets(split), &revisions).is_ok());
        assert!(
            check_traffic(
                &targets(json!([{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 90}])),
                &revisions
            )
            .is_err()
        );
        let unknown = json!([{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "svc-00009-zzz", "percent": 100}]);
        assert!(check_traffic(&targets(unknown), &revisions).is_err());
    }

    #[test]
    fn defaults_are_filled_where_google_fills_them() {
        let mut body = Map::new();
        body.insert(
            "template".into(),
            json!({"containers": [{"image": "us-docker.pkg.dev/x/y:1"}]}),
        );
        apply_defaults(&mut body, "p");
        assert_eq!(body["ingress"], "INGRESS_TRAFFIC_ALL");
        assert_eq!(body["traffic"][0]["percent"], 100);
        assert_eq!(body["template"]["scaling"]["maxInstanceCount"], 100);
        assert_eq!(
            body["template"]["containers"][0]["resources"]["limits"]["memory"],
            "512Mi"
        );
        assert!(
            body["template"]["serviceAccount"]
                .as_str()
                .is_some_and(|account| account.ends_with("-compute@developer.gserviceaccount.com"))
        );
    }

    fn service_record(revisions: &[&str]) -> RunServiceRecord {
        let mut body = Map::new();
        body.insert(
            "template".into(),
            json!({"containers": [{"image": "img:1"}], "serviceAccount": "run@p.iam.gserviceaccount.com"}),
        );
        body.insert("ingress".into(), json!("INGRESS_TRAFFIC_INTERNAL_ONLY"));
        body.insert(
            "traffic".into(),
            json!([{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]),
        );
        RunServiceRecord {
            body,
            uid: "u".into(),
            generation: 1,
            observed_generation: 0,
            create_time: now(),
            update_time: now(),
            etag: "\"1\"".into(),
            revisions: revisions
                .iter()
                .map(|revision| revision.to_string())
                .collect(),
            latest_ready: None,
            settle_at: Some(millis_now() - 1),
            failure: None,
            revision_records: revisions
                .iter()
                .map(|revision| (revision.to_string(), json!({"name": revision})))
                .collect(),
            failed_revisions: Default::default(),
        }
    }

    #[test]
    fn a_failed_revision_stays_failed_and_only_a_new_revision_is_judged_again() {
        let name = canonical("p", "us-central1", "api");
        let mut store = Store::default();
        let mut record = service_record(&["api-00001-abc"]);
        record
            .failed_revisions
            .insert("api-00001-abc".into(), "Permission denied on secret".into());
        store.run_services.insert(name.clone(), record);
        settle(&mut store);
        let settled = &store.run_services[&name];
        assert_eq!(
            settled.failure.as_deref(),
            Some("Permission denied on secret")
        );
        assert_eq!(settled.latest_ready, None);
        assert_eq!(settled.settle_at, None);
        let failed = revision_json(settled, "api-00001-abc").expect("revision");
        assert_eq!(failed["conditions"][0]["state"], "CONDITION_FAILED");
        assert_eq!(failed["reconciling"], false);

        // A new revision (a template change, or forceNewRevision) is judged: nothing refuses it.
        let record = store.run_services.get_mut(&name).expect("service");
        record.revisions.push("api-00002-abd".into());
        record
            .revision_records
            .insert("api-00002-abd".into(), json!({"name": "api-00002-abd"}));
        record.settle_at = Some(millis_now() - 1);
        settle(&mut store);
        let settled = &store.run_services[&name];
        assert_eq!(settled.failure, None);
        assert_eq!(settled.latest_ready.as_deref(), Some("api-00002-abd"));
        assert_eq!(
            revision_json(settled, "api-00001-abc").expect("revision")["conditions"][0]["state"],
            "CONDITION_FAILED",
            "older than the ready revision, and still failed"
        );
    }

    #[test]
    fn ingress_is_unspecified_until_a_revision_is_active() {
        let name = canonical("p", "us-central1", "api");
        let mut record = service_record(&["api-00001-abc"]);
        assert_eq!(
            service_json(&name, &record)["ingress"],
            "INGRESS_TRAFFIC_UNSPECIFIED"
        );
        record.latest_ready = Some("api-00001-abc".into());
        assert_eq!(
            service_json(&name, &record)["ingress"],
            "INGRESS_TRAFFIC_INTERNAL_ONLY"
        );
    }

    #[test]
    fn secrets_of_the_services_project_are_answered_by_their_short_name() {
        let number = project_number("p");
        let mut body = Map::new();
        body.insert(
            "template".into(),
            json!({"containers": [{"image": "img:1", "env": [
                {"name": "A", "valueSource": {"secretKeyRef": {"secret": "projects/p/secrets/A"}}},
                {"name": "B", "valueSource": {"secretKeyRef": {"secret": format!("projects/{number}/secrets/B")}}},
                {"name": "C", "valueSource": {"secretKeyRef": {"secret": "projects/other/secrets/C"}}},
                {"name": "D", "valueSource": {"secretKeyRef": {"secret": "D"}}},
                {"name": "E", "value": "plain"},
            ]}]}),
        );
        shorten_same_project_secrets(&mut body, &number);
        let secrets: Vec<&str> = body["template"]["containers"][0]["env"]
            .as_array()
            .expect("env")
            .iter()
            .filter_map(|variable| variable.pointer("/valueSource/secretKeyRef/secret"))
            .filter_map(Json::as_str)
            .collect();
        assert_eq!(secrets, ["A", "B", "projects/other/secrets/C", "D"]);
    }
}
