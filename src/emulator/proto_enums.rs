//! The proto numbers of the enums the served APIs carry, per API: an enum arrives or leaves as
//! its number when the client asks `$alt=json;enum-encoding=int`, and the number is the one of
//! the `.proto` definition (read into `discovery/enum-numbers.json` from Google's official
//! clients, keyed by proto package and enum name), not the position in the discovery list.
//! Discovery names an enum's values but not its proto type, so an enum is matched to the
//! proto enums of the API's own package first and then of the packages every API shares
//! (`google.api`, `google.type`, `google.iam.v1`, …): enums of one name differ between packages
//! (google.type's `CalendarPeriod` numbers QUARTER 5, Billing Budgets' numbers it 2).

use super::discovery::Api;
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

/// One proto enum's values and numbers.
type Numbering = BTreeMap<String, i64>;

/// Proto package → enum name (`Filter.CreditTypesTreatment`) → its numbering.
type Packages = BTreeMap<String, BTreeMap<String, Numbering>>;

/// Packages whose types appear in every API's messages (IAM policies, launch stages, status
/// codes, calendar periods, operations).
const SHARED_PACKAGES: [&str; 5] = [
    "google.api",
    "google.type",
    "google.rpc",
    "google.longrunning",
    "google.iam.v1",
];

/// Returns the proto packages an API's own messages live in.
fn own_packages(api: Api) -> &'static [&'static str] {
    match api {
        Api::SecretManager => &["google.cloud.secretmanager.v1"],
        Api::Iam => &["google.iam.admin.v1"],
        Api::ResourceManager => &["google.cloud.resourcemanager.v3"],
        Api::Run => &["google.cloud.run.v2"],
        Api::MonitoringV1 => &["google.monitoring.dashboard.v1"],
        Api::MonitoringV3 => &["google.monitoring.v3"],
        Api::BillingBudgets => &["google.cloud.billing.budgets.v1"],
        // Cloud Storage's JSON API is not defined by protos: its enums are names only.
        Api::Storage => &[],
    }
}

fn packages() -> &'static Packages {
    static TABLE: OnceLock<Packages> = OnceLock::new();
    TABLE.get_or_init(|| {
        serde_json::from_str(include_str!("discovery/enum-numbers.json")).unwrap_or_default()
    })
}

/// Where a discovery enum's numbering came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A proto enum (`package`, `name`) holding exactly the discovery values.
    Exact { package: String, name: String },
    /// The smallest proto enum holding every discovery value and more (a value Google removed
    /// from the API's description but not from its proto).
    Wider { package: String, name: String },
    /// No official client carries the enum (or not yet its newest values): numbered by
    /// position, as protos number new enums, from 0.
    Positions,
}

/// How one discovery enum is numbered, and the other proto enums that matched as well as the
/// chosen one (in the same tier): a collision when their numbers disagree.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub numbering: Numbering,
    pub source: Source,
    pub rivals: Vec<(String, String, Numbering)>,
}

/// Returns how `api` numbers the enum whose discovery values are `names`.
pub fn resolve(api: Api, names: &[Json]) -> Resolution {
    let wanted: Vec<&str> = names.iter().filter_map(Json::as_str).collect();
    let table = packages();
    let candidates = |package_names: &[&str], exact: bool| -> Vec<(String, String, Numbering)> {
        let mut found: Vec<(String, String, Numbering)> = package_names
            .iter()
            .filter_map(|package| table.get(*package).map(|enums| (*package, enums)))
            .flat_map(|(package, enums)| {
                enums
                    .iter()
                    .filter(|(_, numbering)| {
                        wanted.iter().all(|name| numbering.contains_key(*name))
                            && (!exact || numbering.len() == wanted.len())
                    })
                    .map(move |(name, numbering)| {
                        (package.to_string(), name.clone(), numbering.clone())
                    })
            })
            .collect();
        found.sort_by_key(|(_, _, numbering)| numbering.len());
        found
    };
    let own = own_packages(api);
    let tiers = [
        (candidates(own, true), true),
        (candidates(&SHARED_PACKAGES, true), true),
        (candidates(own, false), false),
        (candidates(&SHARED_PACKAGES, false), false),
    ];
    for (mut found, exact) in tiers {
        if found.is_empty() {
            continue;
        }
        let (package, name, numbering) = found.remove(0);
        let smallest = numbering.len();
        found.retain(|(_, _, other)| other.len() == smallest);
        let source = if exact {
            Source::Exact { package, name }
        } else {
            Source::Wider { package, name }
        };
        return Resolution {
            numbering,
            source,
            rivals: found,
        };
    }
    Resolution {
        numbering: wanted
            .iter()
            .enumerate()
            .map(|(position, name)| (name.to_string(), position as i64))
            .collect(),
        source: Source::Positions,
        rivals: Vec::new(),
    }
}

/// Returns how `api` numbers the enum of `names`, resolved once per API and enum: every enum
/// value of every request and answer is looked up here.
fn numbering(api: Api, names: &[Json]) -> Arc<Numbering> {
    static RESOLVED: OnceLock<Mutex<HashMap<String, Arc<Numbering>>>> = OnceLock::new();
    let mut key = format!("{api:?}");
    for name in names.iter().filter_map(Json::as_str) {
        key.push(' ');
        key.push_str(name);
    }
    let resolved = RESOLVED.get_or_init(Mutex::default);
    if let Some(found) = resolved
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(&key)
    {
        return found.clone();
    }
    let found = Arc::new(resolve(api, names).numbering);
    resolved
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(key, found.clone());
    found
}

/// Returns the proto number of enum value `name` in `api`.
pub fn number(api: Api, names: &[Json], name: &str) -> Option<i64> {
    numbering(api, names).get(name).copied()
}

/// Returns the enum value name of proto number `number` in `api`.
pub fn name(api: Api, names: &[Json], number: i64) -> Option<String> {
    numbering(api, names)
        .iter()
        .find(|(_, value)| **value == number)
        .map(|(name, _)| name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::discovery;

    fn values(names: &[&str]) -> Vec<Json> {
        names.iter().map(|name| Json::from(*name)).collect()
    }

    /// Every enum of a schema property, its items or its map values: (path, values).
    fn enums_of(api: Api) -> Vec<(String, Vec<Json>)> {
        fn walk(property: &Json, path: String, found: &mut Vec<(String, Vec<Json>)>) {
            if let Some(names) = property["enum"].as_array() {
                found.push((path.clone(), names.clone()));
            }
            if property["type"] == "array" {
                walk(&property["items"], format!("{path}[]"), found);
            }
            if property["additionalProperties"].is_object() {
                walk(
                    &property["additionalProperties"],
                    format!("{path}{{}}"),
                    found,
                );
            }
        }
        let mut found = Vec::new();
        for (schema, definition) in discovery::schemas(api) {
            for (field, property) in definition["properties"].as_object().into_iter().flatten() {
                walk(property, format!("{schema}.{field}"), &mut found);
            }
        }
        found
    }

    #[test]
    fn a_budget_quarter_is_budgets_two_not_google_type_week() {
        let periods = values(&["CALENDAR_PERIOD_UNSPECIFIED", "MONTH", "QUARTER", "YEAR"]);
        assert_eq!(number(Api::BillingBudgets, &periods, "QUARTER"), Some(2));
        assert_eq!(
            name(Api::BillingBudgets, &periods, 2).as_deref(),
            Some("QUARTER")
        );
        // Cloud Monitoring's service-level objectives use google.type's, with WEEK at 2.
        let type_periods = values(&[
            "CALENDAR_PERIOD_UNSPECIFIED",
            "DAY",
            "WEEK",
            "FORTNIGHT",
            "MONTH",
            "QUARTER",
            "HALF",
            "YEAR",
        ]);
        assert_eq!(number(Api::MonitoringV3, &type_periods, "QUARTER"), Some(5));
        assert_eq!(
            name(Api::MonitoringV3, &type_periods, 2).as_deref(),
            Some("WEEK")
        );
    }

    #[test]
    fn an_api_own_package_wins_over_a_shared_enum_of_the_same_values() {
        let resolution = resolve(
            Api::BillingBudgets,
            &values(&["CALENDAR_PERIOD_UNSPECIFIED", "MONTH", "QUARTER", "YEAR"]),
        );
        assert_eq!(
            resolution.source,
            Source::Exact {
                package: "google.cloud.billing.budgets.v1".into(),
                name: "CalendarPeriod".into()
            }
        );
    }

    /// Walks every enum of every served API: none may match two proto enums that number its
    /// values differently, a numbering by position must agree with every older version of the
    /// enum an official client carries (a proto enum whose values are all among the discovery
    /// ones), and the enums `infra` sends resolve to their own API's protos.
    #[test]
    fn no_enum_of_a_served_api_collides_with_another_enum_of_its_values() {
        let mut problems = Vec::new();
        let mut checked = 0;
        for api in Api::ALL {
            for (path, names) in enums_of(api) {
                checked += 1;
                let resolution = resolve(api, &names);
                let wanted: Vec<&str> = names.iter().filter_map(Json::as_str).collect();
                for (package, name, numbering) in &resolution.rivals {
                    if wanted
                        .iter()
                        .any(|value| numbering.get(*value) != resolution.numbering.get(*value))
                    {
                        problems.push(format!(
                            "{api:?} {path}: {:?} and {package}.{name} number it differently",
                            resolution.source
                        ));
                    }
                }
                if resolution.source == Source::Positions {
                    let own = own_packages(api).iter().chain(SHARED_PACKAGES.iter());
                    for package in own {
                        for (name, numbering) in packages().get(*package).into_iter().flatten() {
                            let older = numbering.len() >= 2
                                && numbering
                                    .keys()
                                    .all(|value| wanted.contains(&value.as_str()));
                            if older
                                && numbering
                                    .iter()
                                    .any(|(value, number)| resolution.numbering[value] != *number)
                            {
                                problems.push(format!(
                                    "{api:?} {path}: numbered by position against {package}.{name}"
                                ));
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 150, "walked only {checked} enums");
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        for (api, schema, field, package) in [
            (
                Api::BillingBudgets,
                "GoogleCloudBillingBudgetsV1Filter",
                "calendarPeriod",
                "google.cloud.billing.budgets.v1",
            ),
            (
                Api::BillingBudgets,
                "GoogleCloudBillingBudgetsV1Filter",
                "creditTypesTreatment",
                "google.cloud.billing.budgets.v1",
            ),
            (
                Api::BillingBudgets,
                "GoogleCloudBillingBudgetsV1ThresholdRule",
                "spendBasis",
                "google.cloud.billing.budgets.v1",
            ),
            (
                Api::MonitoringV3,
                "AlertPolicy",
                "combiner",
                "google.monitoring.v3",
            ),
            (
                Api::MonitoringV3,
                "Aggregation",
                "perSeriesAligner",
                "google.monitoring.v3",
            ),
            (
                Api::Run,
                "GoogleCloudRunV2Service",
                "ingress",
                "google.cloud.run.v2",
            ),
            (
                Api::MonitoringV1,
                "DataSet",
                "plotType",
                "google.monitoring.dashboard.v1",
            ),
        ] {
            let names = discovery::schema_properties(api, schema)
                .and_then(|properties| properties.get(field))
                .and_then(|property| property["enum"].as_array())
                .cloned()
                .unwrap_or_else(|| panic!("{schema}.{field} has no enum"));
            match resolve(api, &names).source {
                Source::Exact { package: found, .. } => {
                    assert_eq!(found, package, "{schema}.{field}")
                }
                other => panic!("{schema}.{field} resolved from {other:?}"),
            }
        }
    }
}
