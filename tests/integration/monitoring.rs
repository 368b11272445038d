//! Dashboards, alert policies, notification channels and budgets: structural plans, update
//! masks, credentials that never reach state, and the emulator's refusals.

use crate::support::TestEnv;
use serde_json::{Value as Json, json};

const DASHBOARD: &str = r#"{
  "mosaicLayout": {
    "columns": 48,
    "tiles": [
      {"xPos": 0, "yPos": 0, "width": 24, "height": 16, "widget": {"title": "Requests", "xyChart": {"dataSets": [{"timeSeriesQuery": {"prometheusQuery": "sum(rate(beta_api_requests_total[5m]))"}, "plotType": "LINE"}]}}},
      {"xPos": 24, "yPos": 0, "width": 24, "height": 16, "widget": {"title": "Errors", "xyChart": {"dataSets": [{"timeSeriesQuery": {"prometheusQuery": "sum(rate(beta_api_errors_total[5m]))"}, "plotType": "LINE"}]}}}
    ]
  },
  "dashboardFilters": [{"filterType": "METRIC_LABEL", "labelKey": "env", "templateVariable": "env"}]
}"#;

fn env_file(threshold: f64, amount: i64) -> String {
    format!(
        r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[resource.monitoring_dashboard.overview]
display_name = "Overview"
dashboard_json = "${{file('dashboard.json')}}"

[resource.notification_channel.finance]
type = "email"
display_name = "Finance"
labels = {{ email_address = "finance@example.com" }}

[resource.alert_policy.errors]
display_name = "Error rate"
combiner = "OR"
severity = "CRITICAL"
notification_channels = ["${{notification_channel.finance.name}}"]
conditions = [{{ displayName = "5xx > threshold", conditionThreshold = {{ filter = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\"", comparison = "COMPARISON_GT", thresholdValue = {threshold}, duration = "300s", aggregations = [{{ alignmentPeriod = "60s", perSeriesAligner = "ALIGN_RATE" }}] }} }}]
documentation = {{ content = "Look at the backend's logs." }}

[resource.budget.monthly]
billing_account = "012345-6789AB-CDEF01"
display_name = "Test monthly"
amount = {amount}
projects = ["projects/123456789012"]
threshold_rules = [{{ percent = 0.5 }}, {{ percent = 0.75 }}, {{ percent = 0.9, basis = "forecasted" }}]
notification_channels = ["${{notification_channel.finance.name}}"]
"#
    )
}

fn applied() -> TestEnv {
    let env = TestEnv::with_emulator();
    env.write("envs/test/dashboard.json", DASHBOARD);
    env.write("envs/test/env.toml", &env_file(0.02, 500));
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
    env
}

#[test]
fn a_moved_tile_and_a_changed_threshold_are_exactly_their_json_paths() {
    let env = applied();
    env.write(
        "envs/test/dashboard.json",
        &DASHBOARD.replace(r#""xPos": 24, "yPos": 0"#, r#""xPos": 0, "yPos": 16"#),
    );
    env.write("envs/test/env.toml", &env_file(0.05, 500));
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"alertPolicies/[0-9a-f]{20}", "alertPolicies/[ID]");
    settings.add_filter(r"dashboards/infra-[0-9a-f]{20}", "dashboards/[ID]");
    settings.bind(|| insta::assert_snapshot!(plan.stdout));
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn a_key_removed_from_the_dashboard_is_a_real_change() {
    let env = applied();
    env.write(
        "envs/test/dashboard.json",
        &DASHBOARD.replace(
            r#", "plotType": "LINE"}]}}}
    ]"#,
            r#"}]}}}
    ]"#,
        ),
    );
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout
            .contains(r#"- mosaicLayout.tiles[1].widget.xyChart.dataSets[0].plotType = "LINE""#),
        "{}",
        plan.stdout
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn a_budget_amount_change_sends_the_amount_mask_alone() {
    let env = applied();
    env.write("envs/test/env.toml", &env_file(0.02, 1500));
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout.contains(r#"~ amount = "500" -> "1500""#),
        "{}",
        plan.stdout
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (_, log) = env.api("GET", "_emulator/requests", None);
    let patches: Vec<&Json> = log["requests"]
        .as_array()
        .expect("log")
        .iter()
        .filter(|request| {
            request["method"] == "PATCH"
                && request["path"]
                    .as_str()
                    .is_some_and(|path| path.contains("/budgets/"))
        })
        .collect();
    assert_eq!(patches.len(), 1, "{log}");
    assert_eq!(patches[0]["query"]["updateMask"], "amount");
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn channel_credentials_never_reach_state_plans_or_output() {
    const FROM_ENV: &str = "sentinel-slack-token-9f8e7d";
    const IN_SECRET: &str = "sentinel-pagerduty-key-1a2b3c";
    let mut env = TestEnv::with_emulator();
    env.extra_env
        .push(("SLACK_TOKEN_FOR_TEST".into(), FROM_ENV.into()));
    env.extra_env.push(("INFRA_LOG".into(), "trace".into()));
    env.write(
        "envs/test/env.toml",
        r##"[env]
name = "test"
project = "proj-test"
region = "us-central1"

[resource.secret.pagerduty]
secret_id = "PAGERDUTY_KEY"
value_from_env = "PAGERDUTY_FOR_TEST"

[resource.notification_channel.slack]
type = "slack"
display_name = "Slack"
labels = { channel_name = "#ops" }
sensitive_labels = { auth_token = { value_from_env = "SLACK_TOKEN_FOR_TEST" } }

[resource.notification_channel.pagerduty]
type = "pagerduty"
display_name = "PagerDuty"
sensitive_labels = { service_key = { secret = "${secret.pagerduty.version}" } }
"##,
    );
    env.extra_env
        .push(("PAGERDUTY_FOR_TEST".into(), IN_SECRET.into()));
    let mut transcript = String::new();
    for arguments in [
        &["plan", "--env", "test", "--out", "channels.plan"][..],
        &["apply", "--env", "test", "channels.plan"][..],
        &["plan", "--env", "test", "--detailed-exitcode", "--json"][..],
        &["show", "--env", "test"][..],
        &["output", "--env", "test", "--json"][..],
    ] {
        let run = env.infra(arguments);
        assert!(run.code == 0, "{}", run.all());
        transcript.push_str(&run.all());
    }
    // Google holds the credentials (obfuscated on read); the next plan has nothing to change.
    let (_, channels) = env.api("GET", "v3/projects/proj-test/notificationChannels", None);
    let slack = channels["notificationChannels"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|channel| channel["type"] == "slack")
        .expect("slack");
    assert!(
        slack["labels"]["auth_token"]
            .as_str()
            .is_some_and(|token| token.starts_with("****") && token.ends_with("7d")),
        "{slack}"
    );
    for (name, text) in [
        ("state", env.read("state/test.state.json")),
        ("plan file", env.read("channels.plan")),
        ("transcript", transcript),
    ] {
        for sentinel in [FROM_ENV, IN_SECRET] {
            assert!(!text.contains(sentinel), "{name} contains {sentinel}");
        }
    }
    env.extra_env
        .retain(|(key, _)| key != "SLACK_TOKEN_FOR_TEST");
    env.extra_env
        .push(("SLACK_TOKEN_FOR_TEST".into(), "rotated-token".into()));
    let rotated = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    rotated.expect_code(2);
    assert!(
        rotated
            .stdout
            .contains("notification_channel.slack will be updated in-place"),
        "{}",
        rotated.all()
    );
    assert!(
        rotated
            .stdout
            .contains(r#""auth_token" = (sensitive value) -> (sensitive value)"#),
        "{}",
        rotated.all()
    );
}

#[test]
fn the_monitoring_and_budget_apis_refuse_what_google_refuses() {
    let env = TestEnv::with_emulator();
    let dashboard: Json = serde_json::from_str(DASHBOARD).expect("json");
    let mut body = dashboard.clone();
    body["displayName"] = json!("D");
    body["name"] = json!("projects/proj-test/dashboards/d1");
    let (status, created) = env.api(
        "POST",
        "v1/projects/proj-test/dashboards",
        Some(body.clone()),
    );
    assert_eq!(status, 200, "{created}");
    let (status, duplicate) = env.api(
        "POST",
        "v1/projects/proj-test/dashboards",
        Some(body.clone()),
    );
    assert_eq!(
        (status, duplicate["error"]["status"].as_str()),
        (409, Some("ALREADY_EXISTS"))
    );
    let mut stale = body.clone();
    stale["etag"] = json!("stale");
    let (status, refused) = env.api("PATCH", "v1/projects/proj-test/dashboards/d1", Some(stale));
    assert_eq!(
        (status, refused["error"]["status"].as_str()),
        (409, Some("ABORTED")),
        "{refused}"
    );
    let mut outside = body.clone();
    outside["name"] = json!("projects/proj-test/dashboards/d2");
    outside["mosaicLayout"]["tiles"][1]["xPos"] = json!(40);
    let (status, _) = env.api("POST", "v1/projects/proj-test/dashboards", Some(outside));
    assert_eq!(status, 400, "a tile must fit the column grid");
    let mut unknown = body.clone();
    unknown["name"] = json!("projects/proj-test/dashboards/d3");
    unknown["mosaicLayout"]["tiles"][0]["widget"]["xyChart"]["colour"] = json!("red");
    let (status, refused) = env.api("POST", "v1/projects/proj-test/dashboards", Some(unknown));
    assert_eq!(status, 400, "{refused}");
    let (status, _) = env.api("GET", "v1/projects/proj-test/dashboards/nope", None);
    assert_eq!(status, 404);

    let (status, channel) = env.api(
        "POST",
        "v3/projects/proj-test/notificationChannels",
        Some(json!({"type": "slack", "labels": {"channel_name": "#ops"}})),
    );
    assert_eq!(status, 400, "slack needs its token: {channel}");
    let (status, channel) = env.api(
        "POST",
        "v3/projects/proj-test/notificationChannels",
        Some(json!({"type": "email", "labels": {"email_address": "a@example.com"}})),
    );
    assert_eq!(status, 200);
    assert!(
        channel["creationRecord"]["mutateTime"].is_string() && channel["enabled"] == true,
        "{channel}"
    );
    let channel_name = channel["name"].as_str().expect("name").to_string();
    let policy = json!({"displayName": "p", "conditions": [{"displayName": "c", "conditionThreshold": {"filter": "metric.type=\"x\"", "comparison": "COMPARISON_GT", "duration": "90s"}}]});
    let (status, _) = env.api(
        "POST",
        "v3/projects/proj-test/alertPolicies",
        Some(policy.clone()),
    );
    assert_eq!(status, 400, "durations are whole minutes");
    let mut policy = policy;
    policy["conditions"][0]["conditionThreshold"]["duration"] = json!("120s");
    policy["notificationChannels"] = json!([channel_name]);
    let (status, created) = env.api("POST", "v3/projects/proj-test/alertPolicies", Some(policy));
    assert_eq!(status, 200, "{created}");
    assert!(
        created["conditions"][0]["name"]
            .as_str()
            .is_some_and(|name| name.contains("/conditions/")),
        "{created}"
    );
    let (status, in_use) = env.api("DELETE", &format!("v3/{channel_name}"), None);
    assert_eq!(
        (status, in_use["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION")),
        "{in_use}"
    );

    // budgetFilter.projects: "A set of projects of the form projects/{project}" — an id is
    // accepted and answered as the project number.
    let budget = json!({"displayName": "b", "amount": {"specifiedAmount": {"units": "500"}}, "budgetFilter": {"projects": ["projects/proj-test"]}});
    let (status, accepted) = env.api(
        "POST",
        "v1/billingAccounts/012345-6789AB-CDEF01/budgets",
        Some(budget),
    );
    assert_eq!(status, 200, "projects by id: {accepted}");
    let number = accepted["budgetFilter"]["projects"][0]
        .as_str()
        .unwrap_or_default();
    assert!(
        number
            .strip_prefix("projects/")
            .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit())),
        "{accepted}"
    );
    let budget = json!({"displayName": "b", "amount": {"specifiedAmount": {"units": "500"}}});
    let (_, created) = env.api(
        "POST",
        "v1/billingAccounts/012345-6789AB-CDEF01/budgets",
        Some(budget),
    );
    assert_eq!(
        created["amount"]["specifiedAmount"]["currencyCode"], "USD",
        "the account's currency is filled in"
    );
    assert_eq!(created["budgetFilter"]["calendarPeriod"], "MONTH");
    let name = created["name"].as_str().expect("name").to_string();
    let (status, refused) = env.api(
        "PATCH",
        &format!("v1/{name}?updateMask=amount"),
        Some(json!({"amount": {"specifiedAmount": {"units": "600", "currencyCode": "EUR"}}})),
    );
    assert_eq!(status, 400, "{refused}");
    let (status, refused) = env.api(
        "PATCH",
        &format!("v1/{name}?updateMask=amount"),
        Some(json!({"etag": "stale", "amount": {"specifiedAmount": {"units": "600"}}})),
    );
    assert_eq!(
        (status, refused["error"]["status"].as_str()),
        (409, Some("ABORTED"))
    );
    assert_eq!(env.api("DELETE", &format!("v1/{name}"), None).0, 200);
    assert_eq!(
        env.api("DELETE", &format!("v1/{name}"), None).0,
        200,
        "deleting a deleted budget succeeds"
    );
}

#[test]
fn an_interrupted_create_of_a_server_named_object_is_adopted() {
    let env = applied();
    // What a run that died after its creates but before recording them left behind: objects
    // carrying this environment's and state's labels, absent from the state.
    for address in ["notification_channel.finance", "alert_policy.errors"] {
        env.infra(&["state", "rm", "--env", "test", address])
            .expect_code(0);
    }
    // The run that follows an interrupted one finds its objects by listing them, once the
    // lists show them (they lag a create; a run within the lag is not what this test is).
    env.wait_until_listed(
        "v3/projects/proj-test/notificationChannels",
        "notificationChannels",
        1,
    );
    env.wait_until_listed("v3/projects/proj-test/alertPolicies", "alertPolicies", 1);
    let (_, channels) = env.api("GET", "v3/projects/proj-test/notificationChannels", None);
    let name = channels["notificationChannels"][0]["name"]
        .as_str()
        .expect("channel")
        .to_string();
    let (status, _) = env.api(
        "PATCH",
        &format!("v3/{name}?updateMask=labels"),
        Some(json!({"labels": {"email_address": "old@example.com"}})),
    );
    assert_eq!(status, 200);
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (_, channels) = env.api("GET", "v3/projects/proj-test/notificationChannels", None);
    let channels = channels["notificationChannels"]
        .as_array()
        .expect("channels")
        .clone();
    assert_eq!(channels.len(), 1, "adopted, not duplicated: {channels:?}");
    assert_eq!(
        channels[0]["labels"]["email_address"], "finance@example.com",
        "and brought in line"
    );
    let (_, policies) = env.api("GET", "v3/projects/proj-test/alertPolicies", None);
    assert_eq!(
        policies["alertPolicies"].as_array().map(Vec::len),
        Some(1),
        "{policies}"
    );
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

#[test]
fn server_named_objects_of_another_state_are_not_adopted() {
    let env = applied();
    let state: Json = serde_json::from_str(&env.read("state/test.state.json")).expect("state");
    let first_lineage = state["lineage"].as_str().expect("lineage").to_string();
    let (_, before) = env.api("GET", "v3/projects/proj-test/notificationChannels", None);
    // A new state for the same environment: same resource addresses, another lineage.
    std::fs::remove_file(env.root.path().join("state/test.state.json")).expect("remove state");
    // Listed by then (lists lag a create): the other state's objects are found, not missed.
    env.wait_until_listed(
        "v3/projects/proj-test/notificationChannels",
        "notificationChannels",
        1,
    );
    env.wait_until_listed("v3/projects/proj-test/alertPolicies", "alertPolicies", 1);
    let apply = env.infra(&["apply", "--env", "test", "--auto-approve"]);
    apply.expect_code(1);
    let channel = before["notificationChannels"][0]["name"]
        .as_str()
        .expect("channel");
    assert!(
        apply.stderr.contains(&format!(
            "notification_channel.finance: {channel} already exists and is owned by environment `test`, state lineage {first_lineage}: not adopted"
        )),
        "{}",
        apply.all()
    );
    assert!(
        apply.stderr.contains(&format!(
            "hint: if this environment should manage it: `infra import --env test 'notification_channel.finance' {channel}`"
        )),
        "{}",
        apply.all()
    );
    let (_, after) = env.api("GET", "v3/projects/proj-test/notificationChannels", None);
    assert_eq!(before, after, "neither adopted nor duplicated");
}

const ENV_HEADER: &str = r#"[env]
name = "test"
project = "proj-test"
region = "us-central1"
"#;

/// A dashboard whose one chart sets `extra` (JSON members after its query) in its data set.
fn chart_dashboard(extra: &str) -> String {
    format!(
        r#"{{"mosaicLayout": {{"columns": 48, "tiles": [{{"width": 24, "height": 16, "widget": {{"title": "Requests", "xyChart": {{"dataSets": [{{"timeSeriesQuery": {{"prometheusQuery": "sum(rate(run_googleapis_com:request_count[5m]))"}}{extra}}}]}}}}}}]}}}}"#
    )
}

/// Google answers a chart with the fields its server fills in (terraform-provider-google
/// #7242, #16173): they are no change, while a configured key the configuration drops is one.
#[test]
fn chart_fields_google_fills_are_no_change_but_a_dropped_configured_key_is() {
    let env = TestEnv::with_emulator();
    env.write(
        "envs/test/env.toml",
        &format!(
            "{ENV_HEADER}\n[resource.monitoring_dashboard.overview]\ndisplay_name = \"Overview\"\ndashboard_json = \"${{file('dashboard.json')}}\"\n"
        ),
    );
    env.write(
        "envs/test/dashboard.json",
        &chart_dashboard(r#", "targetAxis": "Y2""#),
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (status, listed) = env.api("GET", "v1/projects/proj-test/dashboards", None);
    assert_eq!(status, 200, "{listed}");
    let chart = &listed["dashboards"][0]["mosaicLayout"]["tiles"][0]["widget"]["xyChart"];
    assert_eq!(chart["dataSets"][0]["minAlignmentPeriod"], "60s", "{chart}");
    assert_eq!(chart["dataSets"][0]["targetAxis"], "Y2", "{chart}");
    assert_eq!(chart["chartOptions"]["mode"], "COLOR", "{chart}");
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);

    env.write("envs/test/dashboard.json", &chart_dashboard(""));
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout
            .contains(r#"- mosaicLayout.tiles[0].widget.xyChart.dataSets[0].targetAxis = "Y2""#),
        "{}",
        plan.stdout
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    // Google fills the axis back in (Y1): not configured, so no change.
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

/// A condition key the configuration never set, added on the server's side (as Google adds
/// the defaults it fills, here PromQL's `evaluationInterval` of 30 s), is no change; a
/// configured key the configuration drops is one. The query names Cloud Run's own metric in
/// Cloud Monitoring's PromQL naming, which always exists: no `disableMetricValidation`.
#[test]
fn condition_keys_the_server_added_are_no_change_but_a_dropped_configured_key_is() {
    let env = TestEnv::with_emulator();
    let env_file = |duration: &str| {
        format!(
            "{ENV_HEADER}\n[resource.alert_policy.errors]\ndisplay_name = \"Errors\"\nconditions = [{{ displayName = \"5xx\", conditionPrometheusQueryLanguage = {{ query = \"sum(rate(run_googleapis_com:request_count{{response_code_class=\\\"5xx\\\"}}[5m])) > 1\"{duration} }} }}]\n"
        )
    };
    env.write("envs/test/env.toml", &env_file(r#", duration = "60s""#));
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    let (_, listed) = env.api("GET", "v3/projects/proj-test/alertPolicies", None);
    let mut policy = listed["alertPolicies"][0].clone();
    let name = policy["name"].as_str().expect("name").to_string();
    policy["conditions"][0]["conditionPrometheusQueryLanguage"]["evaluationInterval"] =
        json!("30s");
    let (status, patched) = env.api(
        "PATCH",
        &format!("v3/{name}?updateMask=conditions"),
        Some(json!({"conditions": policy["conditions"]})),
    );
    assert_eq!(status, 200, "{patched}");
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);

    env.write("envs/test/env.toml", &env_file(""));
    let plan = env.infra(&["plan", "--env", "test", "--detailed-exitcode"]);
    plan.expect_code(2);
    assert!(
        plan.stdout
            .contains(r#"- [0].conditionPrometheusQueryLanguage.duration = "60s""#),
        "{}",
        plan.stdout
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}

/// System metrics always exist; a user metric exists once written through `timeSeries.create`
/// (<https://cloud.google.com/monitoring/promql/promql-mapping>,
/// <https://cloud.google.com/monitoring/custom-metrics/creating-metrics>).
#[test]
fn promql_over_google_metrics_is_accepted_and_over_user_metrics_once_written() {
    let env = TestEnv::with_emulator();
    let policy = |query: &str| {
        json!({
            "displayName": "p",
            "combiner": "OR",
            "conditions": [{"displayName": "c", "conditionPrometheusQueryLanguage": {"query": query, "duration": "60s"}}],
        })
    };
    let policies = "v3/projects/proj-test/alertPolicies";
    let (status, created) = env.api(
        "POST",
        policies,
        Some(policy(
            "sum(rate(run_googleapis_com:request_count{response_code_class=\"5xx\"}[5m])) > 1",
        )),
    );
    assert_eq!(status, 200, "{created}");
    let custom = policy("sum(custom_googleapis_com:jobs_failed) > 0");
    let (status, refused) = env.api("POST", policies, Some(custom.clone()));
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused
            .to_string()
            .contains("custom.googleapis.com/jobs_failed"),
        "{refused}"
    );
    let series = |metric_type: &str| {
        json!({"timeSeries": [{
            "metric": {"type": metric_type},
            "resource": {"type": "global", "labels": {"project_id": "proj-test"}},
            "points": [{"interval": {"endTime": "2026-12-07T00:00:00Z"}, "value": {"int64Value": "3"}}],
        }]})
    };
    let (status, written) = env.api(
        "POST",
        "v3/projects/proj-test/timeSeries",
        Some(series("custom.googleapis.com/jobs/failed")),
    );
    assert_eq!((status, &written), (200, &json!({})), "{written}");
    let (status, created) = env.api("POST", policies, Some(custom));
    assert_eq!(status, 200, "{created}");
    // Google's own metrics are written by Google alone.
    let (status, refused) = env.api(
        "POST",
        "v3/projects/proj-test/timeSeries",
        Some(series("run.googleapis.com/request_count")),
    );
    assert_eq!(status, 400, "{refused}");
}

/// CollapsibleGroup: "All widgets that are within the area spanned by the grouping widget are
/// considered member widgets": a dashboard with a group and its members applies and converges.
#[test]
fn a_collapsible_group_and_its_member_tiles_apply_and_converge() {
    let env = TestEnv::with_emulator();
    env.write(
        "envs/test/env.toml",
        &format!(
            "{ENV_HEADER}\n[resource.monitoring_dashboard.grouped]\ndisplay_name = \"Grouped\"\ndashboard_json = \"${{file('dashboard.json')}}\"\n"
        ),
    );
    env.write(
        "envs/test/dashboard.json",
        r#"{"mosaicLayout": {"columns": 48, "tiles": [
  {"width": 48, "height": 16, "widget": {"title": "Traffic", "collapsibleGroup": {"collapsed": false}}},
  {"width": 24, "height": 16, "widget": {"title": "Requests", "xyChart": {"dataSets": [{"timeSeriesQuery": {"prometheusQuery": "sum(rate(run_googleapis_com:request_count[5m]))"}}]}}},
  {"xPos": 24, "width": 24, "height": 16, "widget": {"title": "Latency", "xyChart": {"dataSets": [{"timeSeriesQuery": {"prometheusQuery": "histogram_quantile(0.95, sum by (le) (rate(run_googleapis_com:request_latencies_bucket[5m])))"}}]}}}
]}}"#,
    );
    env.infra(&["apply", "--env", "test", "--auto-approve"])
        .expect_code(0);
    env.infra(&["plan", "--env", "test", "--detailed-exitcode"])
        .expect_code(0);
}
