//! Google's published per-project request quotas of the APIs infra calls, as data: which
//! bucket (service, quota metric, limit) a request counts against, and the bucket's default
//! per-minute value with its source. The emulator enforces them; a quota-aware scheduler can
//! pace requests by the same table. Cloud Storage is not here: its limits are per bucket and
//! per object (one write per second to an object name), not per-project request quotas.

/// One quota bucket: a per-minute request limit of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSpec {
    /// The API's service name (`secretmanager.googleapis.com`).
    pub service: &'static str,
    /// How Google titles the API in its messages ("Secret Manager API").
    pub service_title: &'static str,
    /// The quota metric (`secretmanager.googleapis.com/write_requests`).
    pub metric: &'static str,
    /// The metric as Google's messages name it ("Write requests").
    pub metric_title: &'static str,
    /// The limit's name in `ErrorInfo.metadata.quota_limit`.
    pub limit_name: &'static str,
    /// The limit as Google's messages name it ("Write requests per minute").
    pub limit_title: &'static str,
    /// Google's default value, per minute.
    pub per_minute: u64,
    /// Counted per region (Cloud Run) rather than per project alone.
    pub per_region: bool,
    /// Where Google publishes the value.
    pub source: &'static str,
}

/// What one request counts against: a bucket, for a project (and region).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaUse {
    pub spec: &'static QuotaSpec,
    /// The project named in the path (id or number); `None` where the path names none
    /// (Billing Budgets: the consumer is the credentials' quota project).
    pub project: Option<String>,
    /// The region, for per-region buckets.
    pub location: Option<String>,
}

const SECRET_MANAGER: &str = "https://cloud.google.com/secret-manager/quotas";
const IAM: &str = "https://cloud.google.com/iam/quotas";
const RESOURCE_MANAGER: &str = "https://cloud.google.com/resource-manager/docs/limits";
const RUN: &str = "https://cloud.google.com/run/quotas";
const MONITORING: &str = "https://cloud.google.com/monitoring/quotas";
const BUDGETS: &str = "https://cloud.google.com/billing/quotas";

/// Every bucket, in the order the docs list them.
pub const QUOTAS: &[QuotaSpec] = &[
    QuotaSpec {
        service: "secretmanager.googleapis.com",
        service_title: "Secret Manager API",
        metric: "secretmanager.googleapis.com/access_requests",
        metric_title: "Access requests",
        limit_name: "AccessRequestsPerMinutePerProject",
        limit_title: "Access requests per minute",
        per_minute: 90_000,
        per_region: false,
        source: SECRET_MANAGER,
    },
    QuotaSpec {
        service: "secretmanager.googleapis.com",
        service_title: "Secret Manager API",
        metric: "secretmanager.googleapis.com/read_requests",
        metric_title: "Read requests",
        limit_name: "ReadRequestsPerMinutePerProject",
        limit_title: "Read requests per minute",
        per_minute: 600,
        per_region: false,
        source: SECRET_MANAGER,
    },
    QuotaSpec {
        service: "secretmanager.googleapis.com",
        service_title: "Secret Manager API",
        metric: "secretmanager.googleapis.com/write_requests",
        metric_title: "Write requests",
        limit_name: "WriteRequestsPerMinutePerProject",
        limit_title: "Write requests per minute",
        per_minute: 600,
        per_region: false,
        source: SECRET_MANAGER,
    },
    QuotaSpec {
        service: "iam.googleapis.com",
        service_title: "Identity and Access Management (IAM) API",
        metric: "iam.googleapis.com/read_requests",
        metric_title: "Read requests",
        limit_name: "ReadRequestsPerMinutePerProject",
        limit_title: "Read requests per minute",
        per_minute: 6_000,
        per_region: false,
        source: IAM,
    },
    QuotaSpec {
        service: "iam.googleapis.com",
        service_title: "Identity and Access Management (IAM) API",
        metric: "iam.googleapis.com/write_requests",
        metric_title: "Write requests",
        limit_name: "WriteRequestsPerMinutePerProject",
        limit_title: "Write requests per minute",
        per_minute: 600,
        per_region: false,
        source: IAM,
    },
    QuotaSpec {
        service: "cloudresourcemanager.googleapis.com",
        service_title: "Cloud Resource Manager API",
        metric: "cloudresourcemanager.googleapis.com/project_v3_read_requests",
        metric_title: "Project V3 read requests",
        limit_name: "ProjectV3ReadRequestsPerMinutePerProject",
        limit_title: "Project V3 read requests per minute",
        // "Up to 4 reads per second".
        per_minute: 240,
        per_region: false,
        source: RESOURCE_MANAGER,
    },
    QuotaSpec {
        service: "cloudresourcemanager.googleapis.com",
        service_title: "Cloud Resource Manager API",
        metric: "cloudresourcemanager.googleapis.com/project_v3_write_requests",
        metric_title: "Project V3 write requests",
        limit_name: "ProjectV3WriteRequestsPerMinutePerProject",
        limit_title: "Project V3 write requests per minute",
        // "Up to 10 writes per second".
        per_minute: 600,
        per_region: false,
        source: RESOURCE_MANAGER,
    },
    QuotaSpec {
        service: "run.googleapis.com",
        service_title: "Cloud Run Admin API",
        metric: "run.googleapis.com/read_requests",
        metric_title: "Read requests",
        limit_name: "ReadRequestsPerMinutePerProjectPerRegion",
        limit_title: "Read requests per minute per region",
        per_minute: 1_000,
        per_region: true,
        source: RUN,
    },
    QuotaSpec {
        service: "run.googleapis.com",
        service_title: "Cloud Run Admin API",
        metric: "run.googleapis.com/write_requests",
        metric_title: "Write requests",
        limit_name: "WriteRequestsPerMinutePerProjectPerRegion",
        limit_title: "Write requests per minute per region",
        per_minute: 180,
        per_region: true,
        source: RUN,
    },
    QuotaSpec {
        service: "monitoring.googleapis.com",
        service_title: "Cloud Monitoring API",
        metric: "monitoring.googleapis.com/default_requests",
        metric_title: "Requests",
        limit_name: "DefaultRequestsPerMinutePerProject",
        limit_title: "Requests per minute",
        per_minute: 6_000,
        per_region: false,
        source: MONITORING,
    },
    QuotaSpec {
        service: "billingbudgets.googleapis.com",
        service_title: "Cloud Billing Budget API",
        metric: "billingbudgets.googleapis.com/read_requests",
        metric_title: "Read requests",
        limit_name: "ReadRequestsPerMinutePerProject",
        limit_title: "Read requests per minute",
        per_minute: 800,
        per_region: false,
        source: BUDGETS,
    },
    QuotaSpec {
        service: "billingbudgets.googleapis.com",
        service_title: "Cloud Billing Budget API",
        metric: "billingbudgets.googleapis.com/write_requests",
        metric_title: "Write requests",
        limit_name: "WriteRequestsPerMinutePerProject",
        limit_title: "Write requests per minute",
        per_minute: 100,
        per_region: false,
        source: BUDGETS,
    },
];

/// Returns the bucket of `metric`.
pub fn quota_by_metric(metric: &str) -> Option<&'static QuotaSpec> {
    QUOTAS.iter().find(|spec| spec.metric == metric)
}

/// Returns the APIs a resource kind calls (an IAM kind calls the API of its parent too,
/// which that parent's own kind lists). The fingerprint key of a secret lives in Secret
/// Manager, so a secret needs nothing more.
pub fn services_for_kind(kind: &str) -> &'static [&'static str] {
    match kind {
        "secret" => &["secretmanager.googleapis.com"],
        "service_account" => &["iam.googleapis.com"],
        "iam_member" | "iam_binding" | "iam_policy" => {
            &["cloudresourcemanager.googleapis.com", "iam.googleapis.com"]
        }
        "cloud_run_service" => &["run.googleapis.com"],
        "monitoring_dashboard" | "alert_policy" | "notification_channel" => {
            &["monitoring.googleapis.com"]
        }
        "budget" => &["billingbudgets.googleapis.com"],
        _ => &[],
    }
}

/// Returns the bucket a request (`GET`, `v1/projects/p/secrets/s:access`) counts against;
/// `None` for paths outside the table.
pub fn classify(method: &str, path: &str) -> Option<QuotaUse> {
    let path = path.trim_start_matches('/');
    let (version, rest) = path.split_once('/')?;
    // A custom verb (`:access`, `:getIamPolicy`) ends the last segment.
    let verb = rest
        .rsplit('/')
        .next()
        .and_then(|last| last.split_once(':'))
        .map(|(_, verb)| verb)
        .unwrap_or_default();
    let reads =
        method.eq_ignore_ascii_case("GET") || matches!(verb, "getIamPolicy" | "testIamPermissions");
    let pick = |read: &str, write: &str| {
        let metric = if reads { read } else { write };
        quota_by_metric(metric)
    };
    let segments: Vec<&str> = rest.split('/').collect();
    if let ["billingAccounts", _, ..] = segments[..] {
        let spec = pick(
            "billingbudgets.googleapis.com/read_requests",
            "billingbudgets.googleapis.com/write_requests",
        )?;
        return Some(QuotaUse {
            spec,
            project: None,
            location: None,
        });
    }
    let ["projects", project, ref collection @ ..] = segments[..] else {
        return None;
    };
    // `projects/p:getIamPolicy`: the verb sits on the project segment itself.
    let (project, verb_on_project) = match project.split_once(':') {
        Some((project, _)) => (project, true),
        None => (project, false),
    };
    let first = collection
        .first()
        .map(|segment| segment.split(':').next().unwrap_or(segment));
    let mut location = None;
    let spec = match (version, first) {
        ("v3", None) if verb_on_project || collection.is_empty() => pick(
            "cloudresourcemanager.googleapis.com/project_v3_read_requests",
            "cloudresourcemanager.googleapis.com/project_v3_write_requests",
        )?,
        ("v3", Some(_)) | ("v1", Some("dashboards")) => {
            quota_by_metric("monitoring.googleapis.com/default_requests")?
        }
        ("v1", Some("serviceAccounts")) => pick(
            "iam.googleapis.com/read_requests",
            "iam.googleapis.com/write_requests",
        )?,
        ("v1", Some("secrets" | "locations")) => {
            if verb == "access" {
                quota_by_metric("secretmanager.googleapis.com/access_requests")?
            } else {
                pick(
                    "secretmanager.googleapis.com/read_requests",
                    "secretmanager.googleapis.com/write_requests",
                )?
            }
        }
        ("v2", Some("locations")) => {
            location = collection.get(1).map(|region| region.to_string());
            pick(
                "run.googleapis.com/read_requests",
                "run.googleapis.com/write_requests",
            )?
        }
        _ => return None,
    };
    Some(QuotaUse {
        spec,
        project: Some(project.to_string()),
        location: location.filter(|_| spec.per_region),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(method: &str, path: &str) -> Option<&'static str> {
        classify(method, path).map(|found| found.spec.metric)
    }

    #[test]
    fn requests_count_against_the_bucket_google_publishes() {
        assert_eq!(
            metric("GET", "v1/projects/p/secrets/s/versions/3:access"),
            Some("secretmanager.googleapis.com/access_requests")
        );
        assert_eq!(
            metric("GET", "v1/projects/p/secrets"),
            Some("secretmanager.googleapis.com/read_requests")
        );
        assert_eq!(
            metric("POST", "v1/projects/p/secrets/s:getIamPolicy"),
            Some("secretmanager.googleapis.com/read_requests")
        );
        assert_eq!(
            metric("POST", "v1/projects/p/secrets/s:addVersion"),
            Some("secretmanager.googleapis.com/write_requests")
        );
        assert_eq!(
            metric("POST", "v1/projects/p/serviceAccounts"),
            Some("iam.googleapis.com/write_requests")
        );
        assert_eq!(
            metric("POST", "v3/projects/p:setIamPolicy"),
            Some("cloudresourcemanager.googleapis.com/project_v3_write_requests")
        );
        assert_eq!(
            metric("GET", "v3/projects/p"),
            Some("cloudresourcemanager.googleapis.com/project_v3_read_requests")
        );
        assert_eq!(
            metric("POST", "v3/projects/p/alertPolicies"),
            Some("monitoring.googleapis.com/default_requests")
        );
        assert_eq!(
            metric("GET", "v1/projects/p/dashboards/d"),
            Some("monitoring.googleapis.com/default_requests")
        );
        assert_eq!(
            metric("PATCH", "v1/billingAccounts/A/budgets/b"),
            Some("billingbudgets.googleapis.com/write_requests")
        );
        assert_eq!(metric("GET", "storage/v1/b/x/o"), None);
    }

    #[test]
    fn cloud_run_counts_per_region() {
        let found =
            classify("PATCH", "v2/projects/p/locations/us-central1/services/s").expect("run");
        assert_eq!(found.spec.metric, "run.googleapis.com/write_requests");
        assert_eq!(found.project.as_deref(), Some("p"));
        assert_eq!(found.location.as_deref(), Some("us-central1"));
        let secrets = classify("GET", "v1/projects/p/secrets").expect("secrets");
        assert_eq!(secrets.location, None);
    }

    #[test]
    fn every_kind_names_the_apis_it_calls() {
        for kind in crate::gcp::kinds::registry() {
            assert!(
                !services_for_kind(kind.name()).is_empty(),
                "{} names no API",
                kind.name()
            );
        }
    }

    #[test]
    fn every_metric_is_listed_once() {
        let mut metrics: Vec<_> = QUOTAS.iter().map(|spec| spec.metric).collect();
        metrics.sort();
        metrics.dedup();
        assert_eq!(metrics.len(), QUOTAS.len());
    }
}
