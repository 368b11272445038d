//! Cloud Monitoring as `infra` uses it: v1 dashboards (create honouring a client-chosen name,
//! get, list, patch as a full replacement guarded by the etag, delete; mosaic tiles must fit the
//! column grid and not overlap unless they lie inside a collapsible group, which makes them its
//! members; the chart fields Google's server fills in), v3 alert policies and notification
//! channels (server-assigned ids, creation and mutation records, `updateMask`, channel labels
//! checked per type with the sensitive ones returned obfuscated, `force` on channel delete), and
//! `timeSeries.create` for user-defined metrics, whose descriptors it creates as Google does.

use super::collection::{self, Call, Method, PageSizes};
use super::discovery::{self, Api};
use super::error::ApiError;
use super::http::{Request, Response};
use super::store::{Store, now, project_number};
use serde_json::{Map, Value as Json, json};

/// A channel type's label keys: (type, required, optional, sensitive).
type ChannelDescriptor = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

/// Label keys per channel type — the content of Google's channel descriptors.
const CHANNEL_TYPES: [ChannelDescriptor; 6] = [
    ("email", &["email_address"], &[], &[]),
    (
        "slack",
        &["channel_name", "auth_token"],
        &["team"],
        &["auth_token"],
    ),
    ("pagerduty", &["service_key"], &[], &["service_key"]),
    ("webhook_tokenauth", &["url"], &[], &[]),
    (
        "webhook_basicauth",
        &["url", "username", "password"],
        &[],
        &["password"],
    ),
    ("pubsub", &["topic"], &[], &[]),
];

/// Cloud Monitoring's methods (v1 dashboards, v3 alert policies, notification channels and
/// their descriptors), by discovery id.
pub const METHODS: &[Method] = &[
    Method {
        id: "monitoring.projects.dashboards.create",
        handler: |call| {
            let project = call.var("projectsId").to_string();
            create_dashboard(call.store, call.request, &project)
        },
    },
    Method {
        id: "monitoring.projects.dashboards.list",
        handler: |call| {
            let prefix = format!(
                "projects/{}/dashboards/",
                project_number(call.var("projectsId"))
            );
            list(call.store, call.request, &prefix, "dashboards")
        },
    },
    Method {
        id: "monitoring.projects.dashboards.get",
        handler: |call| {
            let name = named(call, "dashboards", "dashboardsId");
            get(call.store, call.request, &name, "Dashboard")
        },
    },
    Method {
        id: "monitoring.projects.dashboards.patch",
        handler: |call| {
            let name = named(call, "dashboards", "dashboardsId");
            patch_dashboard(call.store, call.request, &name)
        },
    },
    Method {
        id: "monitoring.projects.dashboards.delete",
        handler: |call| {
            let name = named(call, "dashboards", "dashboardsId");
            delete(call.store, call.request, &name, "Dashboard", &[])
        },
    },
    Method {
        id: "monitoring.projects.alertPolicies.create",
        handler: |call| {
            let project = call.var("projectsId").to_string();
            create_v3(call.store, call.request, &project, "alertPolicies")
        },
    },
    Method {
        id: "monitoring.projects.alertPolicies.list",
        handler: |call| {
            let prefix = format!(
                "projects/{}/alertPolicies/",
                project_number(call.var("projectsId"))
            );
            list(call.store, call.request, &prefix, "alertPolicies")
        },
    },
    Method {
        id: "monitoring.projects.alertPolicies.get",
        handler: |call| {
            let name = named(call, "alertPolicies", "alertPoliciesId");
            get(call.store, call.request, &name, "Alert policy")
        },
    },
    Method {
        id: "monitoring.projects.alertPolicies.patch",
        handler: |call| {
            let name = named(call, "alertPolicies", "alertPoliciesId");
            patch_v3(call.store, call.request, &name, "alertPolicies")
        },
    },
    Method {
        id: "monitoring.projects.alertPolicies.delete",
        handler: |call| {
            let name = named(call, "alertPolicies", "alertPoliciesId");
            delete(call.store, call.request, &name, "Alert policy", &[])
        },
    },
    Method {
        id: "monitoring.projects.notificationChannels.create",
        handler: |call| {
            let project = call.var("projectsId").to_string();
            create_v3(call.store, call.request, &project, "notificationChannels")
        },
    },
    Method {
        id: "monitoring.projects.notificationChannels.list",
        handler: |call| {
            let prefix = format!(
                "projects/{}/notificationChannels/",
                project_number(call.var("projectsId"))
            );
            list(call.store, call.request, &prefix, "notificationChannels")
        },
    },
    Method {
        id: "monitoring.projects.notificationChannels.get",
        handler: |call| {
            let name = named(call, "notificationChannels", "notificationChannelsId");
            get(call.store, call.request, &name, "Notification channel")
        },
    },
    Method {
        id: "monitoring.projects.notificationChannels.patch",
        handler: |call| {
            let name = named(call, "notificationChannels", "notificationChannelsId");
            patch_v3(call.store, call.request, &name, "notificationChannels")
        },
    },
    Method {
        id: "monitoring.projects.notificationChannels.delete",
        handler: |call| {
            let name = named(call, "notificationChannels", "notificationChannelsId");
            delete_channel(call.store, call.request, &name)
        },
    },
    Method {
        id: "monitoring.projects.notificationChannels.sendVerificationCode",
        handler: |call| verification(call, "sendVerificationCode"),
    },
    Method {
        id: "monitoring.projects.notificationChannels.getVerificationCode",
        handler: |call| verification(call, "getVerificationCode"),
    },
    Method {
        id: "monitoring.projects.notificationChannels.verify",
        handler: |call| verification(call, "verify"),
    },
    Method {
        id: "monitoring.projects.timeSeries.create",
        handler: |call| {
            let project = call.var("projectsId").to_string();
            create_time_series(call.store, call.request, &project)
        },
    },
    Method {
        id: "monitoring.projects.notificationChannelDescriptors.list",
        handler: |call| {
            let parent = format!("projects/{}", call.var("projectsId"));
            list_descriptors(call.request, &parent)
        },
    },
    Method {
        id: "monitoring.projects.notificationChannelDescriptors.get",
        handler: |call| {
            call.request.allow_query(&[])?;
            let kind = call.var("notificationChannelDescriptorsId");
            let name = format!(
                "projects/{}/notificationChannelDescriptors/{kind}",
                call.var("projectsId")
            );
            CHANNEL_TYPES
                .iter()
                .find(|descriptor| descriptor.0 == kind)
                .map(|descriptor| Response::read(descriptor_json(&name, descriptor)))
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "Notification channel descriptor {name} does not exist."
                    ))
                })
        },
    },
];

/// The canonical name of a project's `collection` member whose id is path variable `id`.
fn named(call: &Call<'_>, collection: &str, id: &str) -> String {
    format!(
        "projects/{}/{collection}/{}",
        project_number(call.var("projectsId")),
        call.var(id)
    )
}

/// A channel descriptor as `notificationChannelDescriptors.get` returns it.
fn descriptor_json(name: &str, descriptor: &ChannelDescriptor) -> Json {
    let (kind, required, optional, sensitive) = descriptor;
    let labels: Vec<Json> = required
        .iter()
        .chain(optional.iter())
        .map(|key| {
            let mut label =
                json!({"key": key, "description": format!("The {key} of the channel.")});
            if sensitive.contains(key) {
                label["description"] = json!(format!("The {key} of the channel (sensitive)."));
            }
            label
        })
        .collect();
    json!({
        "name": name,
        "type": kind,
        "displayName": kind,
        "description": format!("Notifications through {kind}."),
        "labels": labels,
        "launchStage": "GA",
    })
}

/// `notificationChannelDescriptors.list`, paged (the documented default is "a reasonable
/// value"; the emulator's is 100).
fn list_descriptors(request: &Request, parent: &str) -> Result<Response, ApiError> {
    request.allow_query(&["pageSize", "pageToken"])?;
    let items: Vec<Json> = CHANNEL_TYPES
        .iter()
        .map(|descriptor| {
            descriptor_json(
                &format!("{parent}/notificationChannelDescriptors/{}", descriptor.0),
                descriptor,
            )
        })
        .collect();
    let (items, next) = collection::page(items, request, "pageSize", PageSizes::new(100, 1000))?;
    Ok(Response::read(collection::list_answer(
        "channelDescriptors",
        items,
        next,
    )))
}

/// The verification code the emulator "sends" for a channel: derived from its name, so
/// `getVerificationCode` and `verify` agree without storing it.
fn verification_code(name: &str) -> String {
    format!("G-{}", &super::store::project_number(name)[..6])
}

/// `sendVerificationCode`, `getVerificationCode` and `verify` on a notification channel.
fn verification(call: &mut Call<'_>, verb: &str) -> Result<Response, ApiError> {
    let name = named(call, "notificationChannels", "notificationChannelsId");
    let (store, request) = (&mut *call.store, call.request);
    request.allow_query(&[])?;
    let channel = store
        .documents
        .get(&name)
        .cloned()
        .ok_or_else(|| not_found("Notification channel", &name))?;
    let body = request.json()?;
    match verb {
        "sendVerificationCode" => Ok(Response::read(json!({}))),
        "getVerificationCode" => Ok(Response::read(json!({
            "code": verification_code(&name),
            "expireTime": (chrono::Utc::now() + chrono::Duration::hours(1))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }))),
        _ => {
            if body["code"].as_str() != Some(verification_code(&name).as_str()) {
                return Err(ApiError::invalid_argument(
                    "The verification code is not valid.",
                ));
            }
            let mut channel = channel;
            channel["verificationStatus"] = json!("VERIFIED");
            store.documents.insert(name.clone(), channel.clone());
            store.revision += 1;
            Ok(Response::changed(visible(&channel)))
        }
    }
}

fn not_found(kind: &str, name: &str) -> ApiError {
    ApiError::not_found(format!("{kind} {name} does not exist."))
}

/// Returns what clients see of a stored document: sensitive channel labels obfuscated.
fn visible(document: &Json) -> Json {
    let mut shown = document.clone();
    let kind = document["type"].as_str().unwrap_or_default();
    if let Some((_, _, _, sensitive)) = CHANNEL_TYPES.iter().find(|(name, ..)| *name == kind) {
        for key in *sensitive {
            if let Some(value) = shown["labels"][*key].as_str() {
                // Google returns sensitive fields "only partially populated".
                let tail: String = value
                    .chars()
                    .rev()
                    .take(4)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                shown["labels"][*key] = json!(format!(
                    "{}{tail}",
                    "*".repeat(value.chars().count().saturating_sub(4))
                ));
            }
        }
    }
    shown
}

fn get(store: &mut Store, request: &Request, name: &str, kind: &str) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    store
        .documents
        .get(name)
        .map(|document| Response::read(visible(document)))
        .ok_or_else(|| not_found(kind, name))
}

fn list(
    store: &mut Store,
    request: &Request,
    prefix: &str,
    collection: &str,
) -> Result<Response, ApiError> {
    request.allow_query(&["filter", "orderBy", "pageSize", "pageToken"])?;
    let items: Vec<Json> = store
        .documents
        .iter()
        .filter(|(name, _)| name.starts_with(prefix) && !name[prefix.len()..].contains('/'))
        .map(|(_, document)| visible(document))
        .collect();
    // <https://cloud.google.com/monitoring/api/v3/sorting-and-filtering>
    let items = match request
        .query("filter")
        .filter(|filter| !filter.trim().is_empty())
    {
        None => items,
        Some(filter) => {
            let mut kept = Vec::new();
            for item in items {
                if collection::filter_matches(&item, &filter)? {
                    kept.push(item);
                }
            }
            kept
        }
    };
    let mut items = items;
    if let Some(order) = request
        .query("orderBy")
        .filter(|order| !order.trim().is_empty())
    {
        collection::order_by(&mut items, &order)?;
    }
    let total = items.len();
    // dashboards.list: "If unspecified, a default of 1000 is used"; alert policies and channels
    // document no default ("a reasonable value"), and Google caps them at 1000 too.
    let (items, next) = collection::page(items, request, "pageSize", PageSizes::new(1000, 1000))?;
    let mut body = collection::list_answer(collection, items, next);
    if collection != "dashboards" && total > 0 {
        body["totalSize"] = json!(total);
    }
    Ok(Response::read(body))
}

fn delete(
    store: &mut Store,
    request: &Request,
    name: &str,
    kind: &str,
    extra_query: &[&str],
) -> Result<Response, ApiError> {
    request.allow_query(extra_query)?;
    if store.documents.remove(name).is_none() {
        return Err(not_found(kind, name));
    }
    store.revision += 1;
    Ok(Response::changed(json!({})))
}

fn etag(store: &mut Store) -> String {
    store
        .next_etag()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase()
}

fn check_mosaic(dashboard: &Json) -> Result<(), ApiError> {
    let Some(layout) = dashboard.get("mosaicLayout") else {
        return Ok(());
    };
    let columns = layout["columns"].as_i64().unwrap_or(12);
    if !(1..=48).contains(&columns) {
        return Err(ApiError::invalid_argument(format!(
            "mosaicLayout.columns must be between 1 and 48, not {columns}."
        )));
    }
    let tiles = layout["tiles"].as_array().cloned().unwrap_or_default();
    let area = |tile: &Json| {
        let get = |field: &str| tile[field].as_i64().unwrap_or(0);
        (get("xPos"), get("yPos"), get("width"), get("height"))
    };
    for (index, tile) in tiles.iter().enumerate() {
        let (x, y, width, height) = area(tile);
        if x < 0 || y < 0 || width < 1 || height < 1 || x + width > columns {
            return Err(ApiError::invalid_argument(format!(
                "mosaicLayout.tiles[{index}] (xPos {x}, width {width}) does not fit the {columns}-column grid."
            )));
        }
        for (other_index, other) in tiles.iter().enumerate().skip(index + 1) {
            let (ox, oy, ow, oh) = area(other);
            // CollapsibleGroup: "All widgets that are within the area spanned by the grouping
            // widget are considered member widgets": lying inside a group is membership.
            let inside = |group: &Json, (mx, my, mw, mh): (i64, i64, i64, i64)| {
                let (gx, gy, gw, gh) = area(group);
                is_group(group) && gx <= mx && mx + mw <= gx + gw && gy <= my && my + mh <= gy + gh
            };
            if inside(tile, (ox, oy, ow, oh)) || inside(other, (x, y, width, height)) {
                continue;
            }
            if x < ox + ow && ox < x + width && y < oy + oh && oy < y + height {
                return Err(ApiError::invalid_argument(format!(
                    "mosaicLayout.tiles[{index}] and tiles[{other_index}] overlap."
                )));
            }
        }
    }
    Ok(())
}

/// Returns true when a mosaic tile's widget is a `collapsibleGroup`.
fn is_group(tile: &Json) -> bool {
    tile.pointer("/widget/collapsibleGroup").is_some()
}

fn check_dashboard(body: &Json) -> Result<(), ApiError> {
    discovery::validate(Api::MonitoringV1, "Dashboard", "dashboard", body)?;
    if body["displayName"].as_str().is_none_or(str::is_empty) {
        return Err(ApiError::invalid_argument("Field displayName is required."));
    }
    let layouts = ["mosaicLayout", "gridLayout", "rowLayout", "columnLayout"]
        .iter()
        .filter(|layout| body.get(**layout).is_some())
        .count();
    if layouts > 1 {
        return Err(ApiError::invalid_argument(
            "A dashboard has one layout: mosaicLayout, gridLayout, rowLayout or columnLayout.",
        ));
    }
    check_mosaic(body)
}

fn create_dashboard(
    store: &mut Store,
    request: &Request,
    project: &str,
) -> Result<Response, ApiError> {
    request.allow_query(&["validateOnly"])?;
    let mut body = request.json()?;
    check_dashboard(&body)?;
    let prefix = format!("projects/{}/dashboards/", project_number(project));
    let id = match body["name"].as_str() {
        Some(name) => {
            let parts: Vec<&str> = name.split('/').collect();
            match parts[..] {
                ["projects", named_project, "dashboards", id]
                    if project_number(named_project) == project_number(project) =>
                {
                    id.to_string()
                }
                _ => {
                    return Err(ApiError::invalid_argument(format!(
                        "The dashboard name {name} does not match the parent projects/{project}."
                    )));
                }
            }
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let name = format!("{prefix}{id}");
    if store.documents.contains_key(&name) {
        return Err(ApiError::already_exists(format!(
            "Dashboard {name} already exists."
        )));
    }
    if request.query_bool("validateOnly")? {
        return Ok(Response::read(body));
    }
    body["name"] = json!(name);
    body["etag"] = json!(etag(store));
    store.documents.insert(name, body.clone());
    Ok(Response::changed(body))
}

fn patch_dashboard(store: &mut Store, request: &Request, name: &str) -> Result<Response, ApiError> {
    request.allow_query(&["validateOnly"])?;
    let mut body = request.json()?;
    check_dashboard(&body)?;
    let current = store
        .documents
        .get(name)
        .ok_or_else(|| not_found("Dashboard", name))?;
    if let Some(given) = body["etag"].as_str()
        && Some(given) != current["etag"].as_str()
    {
        return Err(ApiError::aborted(format!(
            "The etag of dashboard {name} does not match: it was changed since it was read."
        )));
    }
    if request.query_bool("validateOnly")? {
        return Ok(Response::read(body));
    }
    body["name"] = json!(name);
    body["etag"] = json!(etag(store));
    store.documents.insert(name.to_string(), body.clone());
    Ok(Response::changed(body))
}

/// Fills in what Google's server adds to a dashboard's charts when the request left it out, as
/// its answers show (terraform-provider-google issues #7242, #9976 and #16173): every `xyChart`
/// gets `chartOptions.mode` COLOR, `yAxis.scale` LINEAR and `timeshiftDuration` 0s; each of its
/// data sets `plotType` LINE, `targetAxis` Y1 and `minAlignmentPeriod` 60s.
pub fn fill_server_fields(dashboard: &mut Json) {
    fn fill(value: &mut Json) {
        match value {
            Json::Object(fields) => {
                if let Some(Json::Object(chart)) = fields.get_mut("xyChart") {
                    fill_chart(chart);
                }
                for item in fields.values_mut() {
                    fill(item);
                }
            }
            Json::Array(items) => items.iter_mut().for_each(fill),
            _ => {}
        }
    }
    fn fill_chart(chart: &mut Map<String, Json>) {
        let options = chart.entry("chartOptions").or_insert_with(|| json!({}));
        if let Some(options) = options.as_object_mut() {
            options.entry("mode").or_insert_with(|| json!("COLOR"));
        }
        let axis = chart.entry("yAxis").or_insert_with(|| json!({}));
        if let Some(axis) = axis.as_object_mut() {
            axis.entry("scale").or_insert_with(|| json!("LINEAR"));
        }
        chart
            .entry("timeshiftDuration")
            .or_insert_with(|| json!("0s"));
        for data_set in chart
            .get_mut("dataSets")
            .and_then(Json::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(Json::as_object_mut)
        {
            data_set.entry("plotType").or_insert_with(|| json!("LINE"));
            data_set.entry("targetAxis").or_insert_with(|| json!("Y1"));
            data_set
                .entry("minAlignmentPeriod")
                .or_insert_with(|| json!("60s"));
        }
    }
    if let Some(fields) = dashboard.as_object_mut() {
        for (key, layout) in fields.iter_mut() {
            if matches!(
                key.as_str(),
                "mosaicLayout" | "gridLayout" | "rowLayout" | "columnLayout"
            ) {
                fill(layout);
            }
        }
    }
}

/// Metric domains whose metrics users write ("user-defined metrics"): everything else under
/// a Google domain is a system metric, which always exists and cannot be written.
/// <https://cloud.google.com/monitoring/custom-metrics>,
/// <https://cloud.google.com/monitoring/api/metrics_other>.
pub const USER_METRIC_PREFIXES: [&str; 5] = [
    "custom.googleapis.com/",
    "external.googleapis.com/",
    "workload.googleapis.com/",
    "prometheus.googleapis.com/",
    "logging.googleapis.com/user/",
];

/// The name under which `timeSeries.create` records a metric it created the descriptor of.
fn descriptor_name(project: &str, metric_type: &str) -> String {
    format!(
        "projects/{}/metricDescriptors/{metric_type}",
        project_number(project)
    )
}

/// Returns the metric types written to a project through `timeSeries.create`.
pub fn written_metric_types(store: &Store, project: &str) -> Vec<String> {
    let prefix = descriptor_name(project, "");
    store
        .documents
        .range(prefix.clone()..)
        .take_while(|(name, _)| name.starts_with(&prefix))
        .map(|(name, _)| name[prefix.len()..].to_string())
        .collect()
}

/// `timeSeries.create`: "The maximum number of TimeSeries objects per Create request is 200",
/// each with exactly one point, for user-defined metrics only; the metric's descriptor is
/// created from the first write ("auto-creation of custom metrics").
fn create_time_series(
    store: &mut Store,
    request: &Request,
    project: &str,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let body = request.json()?;
    discovery::validate(
        Api::MonitoringV3,
        "CreateTimeSeriesRequest",
        "create_time_series_request",
        &body,
    )?;
    let series = body["timeSeries"].as_array().cloned().unwrap_or_default();
    if series.is_empty() || series.len() > 200 {
        return Err(ApiError::invalid_argument(
            "A CreateTimeSeries request writes 1 to 200 time series.",
        ));
    }
    let mut created = Vec::new();
    for (index, one) in series.iter().enumerate() {
        let metric_type = one.pointer("/metric/type").and_then(Json::as_str);
        let Some(metric_type) = metric_type.filter(|text| !text.is_empty()) else {
            return Err(ApiError::invalid_argument(format!(
                "timeSeries[{index}].metric.type is required."
            )));
        };
        if !USER_METRIC_PREFIXES
            .iter()
            .any(|prefix| metric_type.starts_with(prefix))
        {
            return Err(ApiError::invalid_argument(format!(
                "timeSeries[{index}]: {metric_type} is not a user-defined metric type; only custom.googleapis.com/, external.googleapis.com/, workload.googleapis.com/ and prometheus.googleapis.com/ metrics can be written."
            )));
        }
        if one
            .pointer("/resource/type")
            .and_then(Json::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(ApiError::invalid_argument(format!(
                "timeSeries[{index}].resource.type is required."
            )));
        }
        if one["points"].as_array().map_or(0, Vec::len) != 1 {
            return Err(ApiError::invalid_argument(format!(
                "timeSeries[{index}]: a time series is written with exactly one point."
            )));
        }
        created.push((metric_type.to_string(), one.clone()));
    }
    for (metric_type, one) in created {
        let name = descriptor_name(project, &metric_type);
        store.documents.entry(name.clone()).or_insert_with(|| {
            json!({
                "name": name,
                "type": metric_type,
                "metricKind": one["metricKind"].as_str().unwrap_or("GAUGE"),
                "valueType": one["valueType"].as_str().unwrap_or("DOUBLE"),
            })
        });
    }
    store.revision += 1;
    Ok(Response::changed(json!({})))
}

fn record() -> Json {
    json!({"mutateTime": now(), "mutatedBy": "infra-emulator@example.com"})
}

fn check_user_labels(body: &Json) -> Result<(), ApiError> {
    let Some(labels) = body["userLabels"].as_object() else {
        return Ok(());
    };
    let valid = |text: &str| {
        text.len() <= 63
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    };
    for (key, value) in labels {
        if key.is_empty() || !valid(key) || !value.as_str().is_some_and(valid) {
            return Err(ApiError::invalid_argument(format!(
                "Invalid user label {key:?}: lowercase letters, digits, '_' and '-', at most 63."
            )));
        }
    }
    Ok(())
}

fn check_alert_policy(store: &Store, body: &Json, project: &str) -> Result<(), ApiError> {
    discovery::validate(Api::MonitoringV3, "AlertPolicy", "alert_policy", body)?;
    check_user_labels(body)?;
    let conditions = body["conditions"].as_array().cloned().unwrap_or_default();
    if conditions.is_empty() || conditions.len() > 6 {
        return Err(ApiError::invalid_argument(
            "An alert policy has 1 to 6 conditions.",
        ));
    }
    if conditions.len() > 1
        && body["combiner"]
            .as_str()
            .is_none_or(|combiner| combiner == "COMBINE_UNSPECIFIED")
    {
        return Err(ApiError::invalid_argument(
            "A policy with several conditions needs a combiner.",
        ));
    }
    for (index, condition) in conditions.iter().enumerate() {
        let kinds = [
            "conditionThreshold",
            "conditionAbsent",
            "conditionMatchedLog",
            "conditionMonitoringQueryLanguage",
            "conditionPrometheusQueryLanguage",
            "conditionSql",
        ];
        if kinds
            .iter()
            .filter(|kind| condition.get(**kind).is_some())
            .count()
            != 1
        {
            return Err(ApiError::invalid_argument(format!(
                "conditions[{index}] must set exactly one condition type."
            )));
        }
        if let Some(threshold) = condition.get("conditionThreshold") {
            if threshold["filter"].as_str().is_none_or(str::is_empty) {
                return Err(ApiError::invalid_argument(format!(
                    "conditions[{index}].conditionThreshold.filter is required."
                )));
            }
            let duration = threshold["duration"]
                .as_str()
                .and_then(|text| text.strip_suffix('s'))
                .and_then(|seconds| seconds.parse::<f64>().ok());
            match duration {
                Some(seconds) if seconds >= 0.0 && seconds % 60.0 == 0.0 => {}
                _ => {
                    return Err(ApiError::invalid_argument(format!(
                        "conditions[{index}].conditionThreshold.duration must be a multiple of 60s."
                    )));
                }
            }
        }
        // conditionAbsent.duration: "The minimum value of this field is 120 seconds. Larger
        // values that are a multiple of a minute … are supported."
        if let Some(absent) = condition.get("conditionAbsent") {
            let duration = absent["duration"]
                .as_str()
                .and_then(|text| text.strip_suffix('s'))
                .and_then(|seconds| seconds.parse::<f64>().ok());
            match duration {
                Some(seconds) if seconds >= 120.0 && seconds % 60.0 == 0.0 => {}
                _ => {
                    return Err(ApiError::invalid_argument(format!(
                        "conditions[{index}].conditionAbsent.duration must be at least 120s and a whole number of minutes."
                    )));
                }
            }
        }
        // "If condition_monitoring_query_language is present, it must be the only condition."
        if condition.get("conditionMonitoringQueryLanguage").is_some() && conditions.len() > 1 {
            return Err(ApiError::invalid_argument(format!(
                "conditions[{index}]: a Monitoring Query Language condition must be the only condition."
            )));
        }
        // AlertStrategy.notificationRateLimit: "Required for log-based alerting policies".
        if condition.get("conditionMatchedLog").is_some()
            && body
                .pointer("/alertStrategy/notificationRateLimit/period")
                .is_none_or(Json::is_null)
        {
            return Err(ApiError::invalid_argument(
                "alertStrategy.notificationRateLimit is required for log-based alerting policies.",
            ));
        }
        if let Some(promql) = condition.get("conditionPrometheusQueryLanguage")
            && promql["query"].as_str().is_none_or(str::is_empty)
        {
            return Err(ApiError::invalid_argument(format!(
                "conditions[{index}].conditionPrometheusQueryLanguage.query is required."
            )));
        }
    }
    // "The name is limited to 512 Unicode characters"; documentation content "may not exceed
    // 8,192 Unicode characters and may not exceed more than 10,240 bytes", the subject 10,240
    // bytes, and links "up to 3 entries".
    if body["displayName"]
        .as_str()
        .is_some_and(|name| name.chars().count() > 512)
    {
        return Err(ApiError::invalid_argument(
            "displayName is limited to 512 characters.",
        ));
    }
    if let Some(content) = body
        .pointer("/documentation/content")
        .and_then(Json::as_str)
        && (content.chars().count() > 8192 || content.len() > 10_240)
    {
        return Err(ApiError::invalid_argument(
            "documentation.content may not exceed 8,192 characters or 10,240 bytes.",
        ));
    }
    if body
        .pointer("/documentation/subject")
        .and_then(Json::as_str)
        .is_some_and(|subject| subject.len() > 10_240)
    {
        return Err(ApiError::invalid_argument(
            "documentation.subject may not exceed 10,240 bytes.",
        ));
    }
    if body
        .pointer("/documentation/links")
        .and_then(Json::as_array)
        .is_some_and(|links| links.len() > 3)
    {
        return Err(ApiError::invalid_argument(
            "documentation.links holds up to 3 entries.",
        ));
    }
    if let Some(mime) = body
        .pointer("/documentation/mimeType")
        .and_then(Json::as_str)
        && mime != "text/markdown"
    {
        return Err(ApiError::invalid_argument(
            "documentation.mimeType must be text/markdown.",
        ));
    }
    for channel in body["notificationChannels"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let channel = channel.as_str().unwrap_or_default();
        let canonical = match channel.split('/').collect::<Vec<_>>()[..] {
            ["projects", owner, "notificationChannels", id] => format!(
                "projects/{}/notificationChannels/{id}",
                project_number(owner)
            ),
            _ => String::new(),
        };
        if !store.documents.contains_key(&canonical) {
            return Err(ApiError::invalid_argument(format!(
                "Notification channel {channel} does not exist in projects/{project}."
            )));
        }
    }
    Ok(())
}

fn check_channel(body: &Json) -> Result<(), ApiError> {
    discovery::validate(
        Api::MonitoringV3,
        "NotificationChannel",
        "notification_channel",
        body,
    )?;
    check_user_labels(body)?;
    // "The display name is limited to 512 Unicode characters"; the description "may not exceed
    // 1024 Unicode characters".
    for (field, limit) in [("displayName", 512), ("description", 1024)] {
        if body[field]
            .as_str()
            .is_some_and(|text| text.chars().count() > limit)
        {
            return Err(ApiError::invalid_argument(format!(
                "{field} is limited to {limit} characters."
            )));
        }
    }
    let kind = body["type"].as_str().unwrap_or_default();
    let Some((_, required, optional, _)) = CHANNEL_TYPES.iter().find(|(name, ..)| *name == kind)
    else {
        let known: Vec<&str> = CHANNEL_TYPES.iter().map(|(name, ..)| *name).collect();
        return Err(ApiError::invalid_argument(format!(
            "Unknown notification channel type {kind:?}; known: {}.",
            known.join(", ")
        )));
    };
    let labels = body["labels"].as_object().cloned().unwrap_or_default();
    for key in labels.keys() {
        if !required.contains(&key.as_str()) && !optional.contains(&key.as_str()) {
            return Err(ApiError::invalid_argument(format!(
                "Label {key:?} is not defined for channel type {kind}."
            )));
        }
    }
    if let Some(missing) = required.iter().find(|key| {
        labels
            .get(**key)
            .and_then(Json::as_str)
            .is_none_or(str::is_empty)
    }) {
        return Err(ApiError::invalid_argument(format!(
            "Channel type {kind} requires the label {missing:?}."
        )));
    }
    Ok(())
}

fn name_conditions(policy: &mut Json, name: &str) {
    if let Some(conditions) = policy["conditions"].as_array_mut() {
        for condition in conditions {
            if condition["name"].as_str().is_none_or(str::is_empty) {
                condition["name"] = json!(format!(
                    "{name}/conditions/{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..16]
                ));
            }
        }
    }
}

fn create_v3(
    store: &mut Store,
    request: &Request,
    project: &str,
    collection: &str,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let mut body = request.json()?;
    let name = format!(
        "projects/{}/{collection}/{}",
        project_number(project),
        &uuid::Uuid::new_v4().simple().to_string()[..20]
    );
    if collection == "alertPolicies" {
        if body.get("name").is_some_and(|given| !given.is_null()) {
            return Err(ApiError::invalid_argument(
                "The alert policy name is assigned by the server: omit `name`.",
            ));
        }
        check_alert_policy(store, &body, project)?;
        name_conditions(&mut body, &name);
        body["mutationRecord"] = record();
    } else {
        check_channel(&body)?;
        // verificationStatus "cannot be modified using a standard UpdateNotificationChannel
        // operation. To change the value of this field, you must call
        // VerifyNotificationChannel": a new channel is not verified because it says so.
        if let Some(fields) = body.as_object_mut() {
            fields.remove("verificationStatus");
        }
        body["mutationRecords"] = json!([record()]);
    }
    body["name"] = json!(name);
    body["creationRecord"] = record();
    if body.get("enabled").is_none() {
        body["enabled"] = json!(true);
    }
    store.documents.insert(name, body.clone());
    store.revision += 1;
    Ok(Response::changed(visible(&body)))
}

fn patch_v3(
    store: &mut Store,
    request: &Request,
    name: &str,
    collection: &str,
) -> Result<Response, ApiError> {
    request.allow_query(&["updateMask"])?;
    let body = request.json()?;
    let current = store
        .documents
        .get(name)
        .cloned()
        .ok_or_else(|| not_found(collection, name))?;
    let paths = collection::mask_paths(request.query("updateMask").as_deref())
        .filter(|paths| !paths.iter().any(|path| path == "*"));
    let mut updated = match paths {
        Some(paths) => {
            let schema = if collection == "alertPolicies" {
                "AlertPolicy"
            } else {
                "NotificationChannel"
            };
            for path in &paths {
                let top = path.split('.').next().unwrap_or_default();
                if !discovery::mask_path_exists(Api::MonitoringV3, schema, path)
                    || matches!(
                        top,
                        "name"
                            | "creationRecord"
                            | "mutationRecord"
                            | "mutationRecords"
                            | "verificationStatus"
                    )
                {
                    return Err(ApiError::invalid_argument(format!(
                        "Invalid update_mask path: {path}"
                    )));
                }
            }
            let mut merged: Map<String, Json> = current.as_object().cloned().unwrap_or_default();
            let incoming = body.as_object().cloned().unwrap_or_default();
            collection::apply_mask(&mut merged, &incoming, &paths);
            Json::Object(merged)
        }
        // Without a mask (or with `*`) the supplied resource replaces the stored one.
        None => {
            let mut replaced = body.clone();
            replaced["creationRecord"] = current["creationRecord"].clone();
            replaced
        }
    };
    updated["name"] = json!(name);
    let project = name.split('/').nth(1).unwrap_or_default().to_string();
    if collection == "alertPolicies" {
        check_alert_policy(store, &updated, &project)?;
        name_conditions(&mut updated, name);
        updated["mutationRecord"] = record();
    } else {
        // A masked update may carry the obfuscated value back for an unchanged sensitive label.
        check_channel(&updated)?;
        let mut records = current["mutationRecords"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        records.push(record());
        updated["mutationRecords"] = json!(records);
        updated["verificationStatus"] = current["verificationStatus"].clone();
    }
    if updated.get("enabled").is_none_or(Json::is_null) {
        updated["enabled"] = json!(true);
    }
    store.documents.insert(name.to_string(), updated.clone());
    store.revision += 1;
    Ok(Response::changed(visible(&updated)))
}

fn delete_channel(store: &mut Store, request: &Request, name: &str) -> Result<Response, ApiError> {
    request.allow_query(&["force"])?;
    if !store.documents.contains_key(name) {
        return Err(not_found("Notification channel", name));
    }
    let users: Vec<String> = store
        .documents
        .iter()
        .filter(|(_, document)| {
            document["notificationChannels"]
                .as_array()
                .is_some_and(|channels| {
                    channels.iter().any(|channel| {
                        channel.as_str().is_some_and(|text| {
                            text.ends_with(name.rsplit('/').next().unwrap_or_default())
                        })
                    })
                })
        })
        .map(|(policy, _)| policy.clone())
        .collect();
    if !users.is_empty() {
        if !request.query_bool("force")? {
            return Err(ApiError::failed_precondition(format!(
                "Notification channel {name} is used by alert policies {}; delete with force=true to remove it from them.",
                users.join(", ")
            )));
        }
        let id = name.rsplit('/').next().unwrap_or_default().to_string();
        for policy in users {
            if let Some(channels) = store
                .documents
                .get_mut(&policy)
                .and_then(|document| document["notificationChannels"].as_array_mut())
            {
                channels
                    .retain(|channel| !channel.as_str().is_some_and(|text| text.ends_with(&id)));
            }
        }
    }
    store.documents.remove(name);
    store.revision += 1;
    Ok(Response::changed(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_must_fit_and_not_overlap() {
        let dashboard = |tiles: Json| json!({"displayName": "d", "mosaicLayout": {"columns": 48, "tiles": tiles}});
        assert!(check_mosaic(&dashboard(json!([{"xPos": 0, "yPos": 0, "width": 24, "height": 8}, {"xPos": 24, "yPos": 0, "width": 24, "height": 8}]))).is_ok());
        assert!(
            check_mosaic(&dashboard(
                json!([{"xPos": 40, "yPos": 0, "width": 24, "height": 8}])
            ))
            .is_err()
        );
        assert!(check_mosaic(&dashboard(json!([{"xPos": 0, "yPos": 0, "width": 24, "height": 8}, {"xPos": 12, "yPos": 4, "width": 24, "height": 8}]))).is_err());
    }

    #[test]
    fn tiles_inside_a_collapsible_group_are_its_members_not_an_overlap() {
        let dashboard = |tiles: Json| json!({"displayName": "d", "mosaicLayout": {"columns": 48, "tiles": tiles}});
        let group = json!({"xPos": 0, "yPos": 0, "width": 48, "height": 16, "widget": {"title": "Errors", "collapsibleGroup": {"collapsed": false}}});
        let member = |x: i64, y: i64| json!({"xPos": x, "yPos": y, "width": 24, "height": 8, "widget": {"title": "t"}});
        assert!(check_mosaic(&dashboard(json!([group, member(0, 0), member(24, 8)]))).is_ok());
        // Members still may not overlap one another, and a tile reaching past the group's
        // area is no member: it overlaps.
        assert!(check_mosaic(&dashboard(json!([group, member(0, 0), member(12, 4)]))).is_err());
        assert!(check_mosaic(&dashboard(json!([group, member(0, 12)]))).is_err());
        // A plain tile's area is no group.
        let plain =
            json!({"xPos": 0, "yPos": 0, "width": 48, "height": 16, "widget": {"title": "big"}});
        assert!(check_mosaic(&dashboard(json!([plain, member(0, 0)]))).is_err());
    }

    #[test]
    fn sensitive_channel_labels_come_back_obfuscated() {
        let channel = json!({"type": "slack", "labels": {"channel_name": "#ops", "auth_token": "xoxb-123456789"}});
        let shown = visible(&channel);
        assert_eq!(shown["labels"]["auth_token"], "**********6789");
        assert_eq!(shown["labels"]["channel_name"], "#ops");
    }
}
