//! The `monitoring_dashboard` kind: a Cloud Monitoring v1 dashboard whose layout comes from a
//! JSON document (`dashboard_json`, a string or a TOML table in the API's shape). The whole
//! layout is compared structurally, so a plan names the JSON paths that change; a key removed
//! from the configuration is a change. Updates replace the dashboard, guarded by its etag.
//! Google leaves zero-valued fields out of its answers (proto3), so both sides are compared
//! with them dropped: a tile at `xPos = 0` is no change. Google also fills chart fields the
//! configuration left out (`targetAxis`, `minAlignmentPeriod`, …): the layout is compared over
//! the keys the configuration sets (`server_filled.rs`), so those are no change either. The id state records is the one in
//! Google's answer; the `infra-key` label finds a dashboard whose create answer was lost.

use super::limits::INT32_MAX;
use super::server_filled::trim_server_filled;
use super::{
    Bound, Created, FieldSpec, FieldType, Kind, KindContext, KindError, Lookup, check_owner,
    create_checked, delete_if_exists, get_if_exists, managed_labels, string_attribute,
};
use crate::gcp::{GcpClient, Service};
use crate::state::StateResource;
use crate::value::{Attributes, Value};
use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

/// Cloud Monitoring dashboards (`projects/{project}/dashboards/{id}`).
pub struct MonitoringDashboardKind;

/// monitoring.v1 `MosaicLayout.columns` is 1 to 48; a `Tile`'s position and size are `int32`,
/// never negative, and a tile is at least one block wide and high.
static BOUNDS: [Bound; 5] = [
    Bound::new(
        "dashboard_json.mosaicLayout.columns",
        1,
        48,
        "monitoring.v1 MosaicLayout.columns is between 1 and 48",
    ),
    Bound::new(
        "dashboard_json.mosaicLayout.tiles[].xPos",
        0,
        INT32_MAX,
        "monitoring.v1 Tile.xPos is a non-negative int32",
    ),
    Bound::new(
        "dashboard_json.mosaicLayout.tiles[].yPos",
        0,
        INT32_MAX,
        "monitoring.v1 Tile.yPos is a non-negative int32",
    ),
    Bound::new(
        "dashboard_json.mosaicLayout.tiles[].width",
        1,
        INT32_MAX,
        "monitoring.v1 Tile.width is an int32 of at least 1",
    ),
    Bound::new(
        "dashboard_json.mosaicLayout.tiles[].height",
        1,
        INT32_MAX,
        "monitoring.v1 Tile.height is an int32 of at least 1",
    ),
];

static FIELDS: [FieldSpec; 5] = [
    FieldSpec::optional("display_name", FieldType::String).required(),
    FieldSpec::optional("dashboard_json", FieldType::Any).required(),
    FieldSpec::optional("labels", FieldType::StringMap),
    FieldSpec::optional("dashboard_id", FieldType::String).force_new(),
    FieldSpec::optional("project", FieldType::String).force_new(),
];

/// The attributes Google fills in beyond what was sent: compared over the configured keys.
const SERVER_FILLED: [&str; 1] = ["dashboard"];

/// Dashboard fields that are not part of the compared layout document.
const ENVELOPE: [&str; 4] = ["name", "etag", "displayName", "labels"];

impl MonitoringDashboardKind {
    fn project(context: &KindContext, config: &Attributes) -> String {
        string_attribute(config, "project")
            .unwrap_or(&context.project)
            .to_string()
    }

    /// The dashboard id: configured, or a stable digest of the resource's address, so a create
    /// interrupted before state was written finds the same dashboard again.
    fn dashboard_id(context: &KindContext, config: &Attributes) -> String {
        match string_attribute(config, "dashboard_id") {
            Some(id) => id.to_string(),
            None => format!(
                "infra-{}",
                &hex::encode(Sha256::digest(format!(
                    "{}/{}",
                    context.env_name, context.address
                )))[..20]
            ),
        }
    }

    /// Returns the layout document: the configured JSON without the envelope fields.
    fn document(config: &Attributes) -> Result<Json, KindError> {
        let parsed = match config.get("dashboard_json") {
            Some(Value::String(text)) => serde_json::from_str::<Json>(text).map_err(|error| {
                KindError::Invalid(format!("dashboard_json is not valid JSON: {error}"))
            })?,
            Some(value @ Value::Map(_)) => value.to_json(),
            Some(Value::Marker(_)) | None => Json::Null,
            Some(other) => {
                return Err(KindError::Invalid(format!(
                    "dashboard_json must be a JSON string or a table (got {})",
                    other.type_name()
                )));
            }
        };
        Ok(strip_envelope(parsed))
    }

    fn body(context: &KindContext, config: &Attributes, desired: &Attributes) -> Json {
        let mut body = desired
            .get("dashboard")
            .map(Value::to_json)
            .unwrap_or(json!({}));
        body["displayName"] = desired["display_name"].to_json();
        body["labels"] = desired["labels"].to_json();
        body["name"] = json!(format!(
            "projects/{}/dashboards/{}",
            Self::project(context, config),
            Self::dashboard_id(context, config)
        ));
        body
    }

    fn normalize(live: &Json) -> Attributes {
        Attributes::from([
            (
                "display_name".into(),
                Value::from_json(&live["displayName"]),
            ),
            (
                "labels".into(),
                Value::from_json(live.get("labels").unwrap_or(&json!({}))),
            ),
            (
                "dashboard".into(),
                Value::from_json(&strip_envelope(live.clone())),
            ),
        ])
    }
}

/// Returns a problem for each mosaic tile reaching past the grid's right edge ("Tiles must be
/// contained within the specified number of columns", monitoring.v1 `Tile.xPos`). Values out of
/// their own range are left to the kind's bounds.
fn tiles_outside_the_grid(document: &Json) -> Vec<String> {
    let Some(layout) = document.get("mosaicLayout") else {
        return Vec::new();
    };
    // Google's default grid, as the emulator applies it.
    let columns = layout.get("columns").map_or(Some(12), Json::as_i64);
    let Some(columns) = columns.filter(|columns| (1..=48).contains(columns)) else {
        return Vec::new();
    };
    let tiles = layout.get("tiles").and_then(Json::as_array);
    tiles
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(index, tile)| {
            let x_pos = tile.get("xPos").map_or(Some(0), Json::as_i64)?;
            let width = tile.get("width").and_then(Json::as_i64)?;
            (x_pos >= 0 && width >= 1 && x_pos.saturating_add(width) > columns).then(|| {
                format!(
                    "dashboard_json: mosaicLayout.tiles[{index}] (xPos {x_pos}, width {width}) does not fit the {columns}-column grid\n  hint: keep xPos + width at most {columns}, or raise mosaicLayout.columns (up to 48)"
                )
            })
        })
        .collect()
}

fn strip_envelope(mut document: Json) -> Json {
    if let Some(object) = document.as_object_mut() {
        for field in ENVELOPE {
            object.remove(field);
        }
    }
    // Google leaves defaults out of its answers (proto3 JSON); the tiles' positions come back
    // in, so a moved tile reads as a changed value.
    let mut document = crate::gcp::proto3::omit_defaults(&document);
    place_tiles(&mut document);
    document
}

/// Gives every mosaic tile its `xPos` and `yPos`, 0 when absent, so a moved tile reads as
/// `24 -> 0` rather than as a removed field.
fn place_tiles(document: &mut Json) {
    let Some(tiles) = document
        .pointer_mut("/mosaicLayout/tiles")
        .and_then(Json::as_array_mut)
    else {
        return;
    };
    for tile in tiles.iter_mut().filter_map(Json::as_object_mut) {
        for position in ["xPos", "yPos"] {
            tile.entry(position).or_insert(json!(0));
        }
    }
}

#[async_trait]
impl Kind for MonitoringDashboardKind {
    fn name(&self) -> &'static str {
        "monitoring_dashboard"
    }

    fn fields(&self) -> &'static [FieldSpec] {
        &FIELDS
    }

    fn bounds(&self) -> &'static [Bound] {
        &BOUNDS
    }

    fn check(&self, config: &Attributes) -> Vec<String> {
        match Self::document(config) {
            Ok(document @ Json::Object(_)) => tiles_outside_the_grid(&document),
            Ok(Json::Null) => Vec::new(),
            Ok(other) => vec![format!(
                "dashboard_json must be a JSON object, not {}",
                other
            )],
            Err(error) => vec![error.to_string()],
        }
    }

    fn needs_intent_record(&self) -> bool {
        // A create that meets its dashboard id taken adopts the dashboard when infra labelled it.
        false
    }

    fn resource_id(&self, context: &KindContext, config: &Attributes) -> Option<String> {
        Some(format!(
            "projects/{}/dashboards/{}",
            Self::project(context, config),
            Self::dashboard_id(context, config)
        ))
    }

    fn desired(
        &self,
        context: &KindContext,
        config: &Attributes,
        _prior: Option<&StateResource>,
    ) -> Result<Attributes, KindError> {
        let mut labels = managed_labels(context, config, "labels");
        labels.insert(
            super::INFRA_KEY_LABEL.into(),
            Value::string(super::ownership::infra_key(context)),
        );
        let document = if config
            .get("dashboard_json")
            .is_some_and(Value::contains_unknown)
        {
            Value::unknown()
        } else {
            // `document` drops proto3 defaults as Google's answers do: like compares with like.
            Value::from_json(&Self::document(config)?)
        };
        Ok(Attributes::from([
            (
                "display_name".into(),
                config.get("display_name").cloned().unwrap_or_default(),
            ),
            ("labels".into(), Value::Map(labels)),
            ("dashboard".into(), document),
        ]))
    }

    fn exported(
        &self,
        context: &KindContext,
        config: &Attributes,
        _prior: Option<&StateResource>,
        _changing: bool,
    ) -> Attributes {
        let id = self
            .resource_id(context, config)
            .map_or_else(Value::unknown, Value::String);
        Attributes::from([
            ("id".into(), id.clone()),
            ("name".into(), id),
            (
                "display_name".into(),
                config.get("display_name").cloned().unwrap_or_default(),
            ),
        ])
    }

    fn update_mask(&self, _changed_fields: &[String]) -> Vec<String> {
        // PATCH replaces the whole dashboard: there is no mask to send.
        Vec::new()
    }

    async fn read(
        &self,
        client: &GcpClient,
        id: &str,
        prior: Option<&StateResource>,
    ) -> Result<Option<Attributes>, KindError> {
        Ok(
            get_if_exists(client, Service::Monitoring, &format!("v1/{id}"))
                .await?
                .map(|live| {
                    let mut attributes = Self::normalize(&live);
                    if let Some(prior) = prior {
                        trim_server_filled(&mut attributes, &prior.attributes, &SERVER_FILLED);
                    }
                    attributes
                }),
        )
    }

    async fn create(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
    ) -> Result<Created, KindError> {
        let desired = self.desired(context, config, None)?;
        let body = Self::body(context, config, &desired);
        let planned_id = self.resource_id(context, config).unwrap_or_default();
        let project = Self::project(context, config);
        let collection = format!("v1/projects/{project}/dashboards");
        let key = super::ownership::infra_key(context);
        let find_ours = || async {
            let candidates = super::ownership::find_by_label(
                client,
                Service::Monitoring,
                &collection,
                "dashboards",
                "labels",
                &key,
            )
            .await?;
            match candidates.first() {
                Some(found) => {
                    let name = found["name"].as_str().unwrap_or_default();
                    check_owner(context, name, found.get("labels"))?;
                    Ok(Some(found.clone()))
                }
                None => Ok(None),
            }
        };
        let body_sent = &body;
        let adopt = |existing: Json| async move {
            let id = existing["name"].as_str().unwrap_or_default().to_string();
            tracing::info!("adopting {id}, created by an interrupted run");
            let mut replacement = body_sent.clone();
            replacement["name"] = json!(id);
            replacement["etag"] = existing["etag"].clone();
            client
                .call(
                    Method::PATCH,
                    Service::Monitoring,
                    &format!("v1/{id}"),
                    &[],
                    Some(&replacement),
                )
                .await
        };
        let live = match find_ours().await? {
            Some(existing) => adopt(existing).await?,
            None => match create_checked(
                client,
                Service::Monitoring,
                &collection,
                &[],
                &body,
                // A create repeated under the dashboard's client-chosen name meets it (409),
                // which is adopted below: the lagging list need not prove absence.
                Lookup::Settles,
                find_ours,
            )
            .await
            {
                Ok(live) => live,
                Err(KindError::Gcp(error)) if error.code() == Some(409) => {
                    let existing = client
                        .call(
                            Method::GET,
                            Service::Monitoring,
                            &format!("v1/{planned_id}"),
                            &[],
                            None,
                        )
                        .await?;
                    check_owner(context, &planned_id, existing.get("labels"))?;
                    adopt(existing).await?
                }
                Err(error) => return Err(error),
            },
        };
        // Google's answer names the dashboard (the name asked for is only a request); it
        // spells the project by number, state by id.
        let id = match live["name"]
            .as_str()
            .and_then(|name| name.rsplit_once("/dashboards/"))
        {
            Some((_, dashboard_id)) if !dashboard_id.is_empty() => {
                format!("projects/{project}/dashboards/{dashboard_id}")
            }
            _ => planned_id,
        };
        let mut attributes = Self::normalize(&live);
        trim_server_filled(&mut attributes, &desired, &SERVER_FILLED);
        Ok(Created { id, attributes })
    }

    async fn update(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
        prior: &StateResource,
        _changed_fields: &[String],
    ) -> Result<Attributes, KindError> {
        let desired = self.desired(context, config, Some(prior))?;
        let current = client
            .call(
                Method::GET,
                Service::Monitoring,
                &format!("v1/{}", prior.id),
                &[],
                None,
            )
            .await?;
        let mut body = Self::body(context, config, &desired);
        body["name"] = json!(prior.id);
        body["etag"] = current["etag"].clone();
        let live = client
            .call(
                Method::PATCH,
                Service::Monitoring,
                &format!("v1/{}", prior.id),
                &[],
                Some(&body),
            )
            .await?;
        let mut attributes = Self::normalize(&live);
        trim_server_filled(&mut attributes, &desired, &SERVER_FILLED);
        Ok(attributes)
    }

    async fn delete(&self, client: &GcpClient, prior: &StateResource) -> Result<(), KindError> {
        delete_if_exists(
            client,
            Service::Monitoring,
            &format!("v1/{}", prior.id),
            &[],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_at_zero_compare_equal_to_tiles_google_left_positionless() {
        let configured = strip_envelope(json!({"mosaicLayout": {"columns": 12, "tiles": [
            {"xPos": 0, "yPos": 0, "width": 6, "height": 4},
            {"xPos": 6, "yPos": 0, "width": 6, "height": 4}
        ]}}));
        let answered = strip_envelope(
            json!({"name": "projects/p/dashboards/d", "mosaicLayout": {"columns": 12, "tiles": [
                {"width": 6, "height": 4},
                {"xPos": 6, "width": 6, "height": 4}
            ]}}),
        );
        assert_eq!(configured, answered);
        let moved = strip_envelope(json!({"mosaicLayout": {"columns": 12, "tiles": [
            {"xPos": 1, "width": 6, "height": 4}, {"xPos": 6, "width": 6, "height": 4}
        ]}}));
        assert_ne!(moved, answered);
    }

    /// terraform-provider-google #7242: Google answers a chart with `targetAxis`,
    /// `minAlignmentPeriod`, `plotType`, `chartOptions.mode`, `yAxis.scale` and
    /// `timeshiftDuration` filled in; only a configured key that changes is a change.
    #[test]
    fn chart_fields_google_fills_are_no_change_but_a_dropped_configured_one_is() {
        let context = KindContext {
            address: "module.monitoring.monitoring_dashboard.api".into(),
            project: "p".into(),
            region: "r".into(),
            env_name: "staging".into(),
            lineage: "lineage".into(),
            fingerprint_key: None,
            legacy_salt: None,
        };
        let config = |data_set: Json| {
            Attributes::from([
                ("display_name".into(), Value::string("API")),
                (
                    "dashboard_json".into(),
                    Value::from_json(&json!({"mosaicLayout": {"columns": 48, "tiles": [
                        {"width": 24, "height": 16, "widget": {"title": "Requests", "xyChart": {"dataSets": [data_set]}}}
                    ]}})),
                ),
            ])
        };
        let query = json!({"timeSeriesQuery": {"prometheusQuery": "sum(rate(x[5m]))"}});
        let mut with_axis = query.clone();
        with_axis["targetAxis"] = json!("Y2");
        let desired = MonitoringDashboardKind
            .desired(&context, &config(with_axis.clone()), None)
            .expect("desired");
        let mut answer =
            MonitoringDashboardKind::body(&context, &config(with_axis.clone()), &desired);
        // The chart as Google answers it (the shape of #7242's).
        answer["etag"] = json!("e1");
        answer["mosaicLayout"]["tiles"][0]["widget"]["xyChart"] = json!({
            "chartOptions": {"mode": "COLOR"},
            "dataSets": [{
                "minAlignmentPeriod": "60s", "plotType": "LINE", "targetAxis": "Y2",
                "timeSeriesQuery": {"prometheusQuery": "sum(rate(x[5m]))"}
            }],
            "timeshiftDuration": "0s",
            "yAxis": {"scale": "LINEAR"}
        });
        let mut recorded = MonitoringDashboardKind::normalize(&answer);
        trim_server_filled(&mut recorded, &desired, &SERVER_FILLED);
        let mut read = MonitoringDashboardKind::normalize(&answer);
        trim_server_filled(&mut read, &recorded, &SERVER_FILLED);
        assert!(
            crate::plan::diff::changed_paths(&desired, &read).is_empty(),
            "{read:?}"
        );
        // Without the trim, every filled field is a change.
        assert!(
            !crate::plan::diff::changed_paths(
                &desired,
                &MonitoringDashboardKind::normalize(&answer)
            )
            .is_empty()
        );
        let dropped = MonitoringDashboardKind
            .desired(&context, &config(query), None)
            .expect("desired");
        assert_eq!(
            crate::plan::diff::changed_paths(&dropped, &read),
            vec![
                "dashboard.mosaicLayout.tiles[0].widget.xyChart.dataSets[0].targetAxis".to_string()
            ]
        );
    }
}
