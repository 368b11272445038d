//! Cloud Monitoring through `google-cloud-monitoring-dashboard-v1` and
//! `google-cloud-monitoring-v3`. References:
//! <https://cloud.google.com/monitoring/api/ref_v3/rest/v1/projects.dashboards>,
//! <https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.alertPolicies>,
//! <https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.notificationChannels>.

use crate::client;
use crate::support::{Emulator, code};
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::paginator::Paginator;
use google_cloud_monitoring_dashboard_v1::client::DashboardsService;
use google_cloud_monitoring_dashboard_v1::model::{Dashboard, MosaicLayout};
use google_cloud_monitoring_v3::client::{AlertPolicyService, NotificationChannelService};
use google_cloud_monitoring_v3::model::{
    AlertPolicy, ComparisonType, NotificationChannel, alert_policy::Condition,
    alert_policy::ConditionCombinerType, alert_policy::condition::MetricThreshold,
    notification_channel::VerificationStatus,
};

#[tokio::test]
async fn dashboards_crud_list_across_pages_and_stale_etag() {
    let emulator = Emulator::start();
    let client = client!(DashboardsService, emulator);
    let mut created = Vec::new();
    for title in ["one", "two", "three"] {
        created.push(
            client
                .create_dashboard()
                .set_parent("projects/conformance")
                .set_dashboard(
                    Dashboard::new()
                        .set_display_name(title)
                        .set_mosaic_layout(MosaicLayout::new().set_columns(48)),
                )
                .send()
                .await
                .expect("create"),
        );
    }
    // Lists lag a create: wait, as a client of Google must, until this one shows them.
    emulator
        .wait_listed("v1/projects/conformance/dashboards", "dashboards", 3)
        .await;
    let mut pages = client
        .list_dashboards()
        .set_parent("projects/conformance")
        .set_page_size(2)
        .by_page();
    let mut sizes = Vec::new();
    while let Some(page) = pages.next().await {
        sizes.push(page.expect("page").dashboards.len());
    }
    assert_eq!(sizes, vec![2, 1]);
    let first = created[0].clone();
    let updated = client
        .update_dashboard()
        .set_dashboard(first.clone().set_display_name("renamed"))
        .send()
        .await
        .expect("update with the current etag");
    assert_ne!(updated.etag, first.etag, "an update changes the etag");
    // UpdateDashboard: "If this field [etag] is set, ... an etag mismatch ... the update
    // fails" — with ABORTED (409).
    let error = client
        .update_dashboard()
        .set_dashboard(first.set_display_name("stale"))
        .send()
        .await
        .expect_err("stale etag");
    assert_eq!(code(&error), Code::Aborted);
    client
        .delete_dashboard()
        .set_name(&updated.name)
        .send()
        .await
        .expect("delete");
}

fn policy(name: &str) -> AlertPolicy {
    AlertPolicy::new()
        .set_display_name(name)
        .set_combiner(ConditionCombinerType::Or)
        .set_conditions([Condition::new().set_display_name("cpu").set_condition_threshold(
            MetricThreshold::new()
                .set_filter("metric.type=\"compute.googleapis.com/instance/cpu/utilization\" AND resource.type=\"gce_instance\"")
                .set_comparison(ComparisonType::ComparisonGt)
                .set_threshold_value(0.9)
                .set_duration(google_cloud_wkt::Duration::clamp(60, 0)),
        )])
}

#[tokio::test]
async fn alert_policies_crud_paging_and_int_enums() {
    let emulator = Emulator::start();
    let client = client!(AlertPolicyService, emulator);
    for name in ["a", "b", "c"] {
        let created = client
            .create_alert_policy()
            .set_name("projects/conformance")
            .set_alert_policy(policy(name))
            .send()
            .await
            .expect("create");
        // The client sends and receives enums as numbers (`$alt=json;enum-encoding=int`);
        // COMPARISON_GT is 1 in alert.proto, and OR is 2.
        assert_eq!(created.combiner, ConditionCombinerType::Or);
        assert_eq!(
            created.conditions[0]
                .condition_threshold()
                .expect("threshold")
                .comparison,
            ComparisonType::ComparisonGt
        );
    }
    // Lists lag a create: wait, as a client of Google must, until this one shows them.
    emulator
        .wait_listed("v3/projects/conformance/alertPolicies", "alertPolicies", 3)
        .await;
    let mut pages = client
        .list_alert_policies()
        .set_name("projects/conformance")
        .set_page_size(2)
        .by_page();
    let mut sizes = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.expect("page");
        assert_eq!(page.total_size, 3, "totalSize counts all pages");
        sizes.push(page.alert_policies.len());
    }
    assert_eq!(sizes, vec![2, 1]);

    // UpdateAlertPolicy with a mask changes the masked fields only.
    let first = client
        .list_alert_policies()
        .set_name("projects/conformance")
        .send()
        .await
        .expect("list")
        .alert_policies
        .remove(0);
    let updated = client
        .update_alert_policy()
        .set_alert_policy(
            AlertPolicy::new()
                .set_name(&first.name)
                .set_display_name("renamed"),
        )
        .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["display_name"]))
        .send()
        .await
        .expect("masked update");
    assert_eq!(updated.display_name, "renamed");
    assert_eq!(
        updated.conditions.len(),
        1,
        "conditions outside the mask are kept"
    );
    client
        .delete_alert_policy()
        .set_name(&first.name)
        .send()
        .await
        .expect("delete");
}

#[tokio::test]
async fn notification_channels_descriptors_and_verification() {
    let emulator = Emulator::start();
    let client = client!(NotificationChannelService, emulator);
    let descriptor = client
        .get_notification_channel_descriptor()
        .set_name("projects/conformance/notificationChannelDescriptors/email")
        .send()
        .await
        .expect("descriptor");
    assert!(
        descriptor
            .labels
            .iter()
            .any(|label| label.key == "email_address")
    );
    let mut pages = client
        .list_notification_channel_descriptors()
        .set_name("projects/conformance")
        .set_page_size(2)
        .by_page();
    let mut total = 0;
    while let Some(page) = pages.next().await {
        let page = page.expect("page");
        assert!(page.channel_descriptors.len() <= 2);
        total += page.channel_descriptors.len();
    }
    assert!(total >= 2, "descriptors span pages");

    for name in ["extra-1", "extra-2"] {
        client
            .create_notification_channel()
            .set_name("projects/conformance")
            .set_notification_channel(
                NotificationChannel::new()
                    .set_type("email")
                    .set_display_name(name)
                    .set_labels([("email_address", "x@example.com")]),
            )
            .send()
            .await
            .expect("create");
    }
    // Lists lag a create: wait, as a client of Google must, until this one shows them.
    emulator
        .wait_listed(
            "v3/projects/conformance/notificationChannels",
            "notificationChannels",
            2,
        )
        .await;
    let mut pages = client
        .list_notification_channels()
        .set_name("projects/conformance")
        .set_page_size(1)
        .by_page();
    let mut sizes = Vec::new();
    while let Some(page) = pages.next().await {
        sizes.push(page.expect("page").notification_channels.len());
    }
    assert_eq!(sizes, vec![1, 1]);
    // "filter: If provided, this field specifies the criteria that must be met by
    // notification channels to be included in the response."
    let filtered = client
        .list_notification_channels()
        .set_name("projects/conformance")
        .set_filter("type = \"email\" AND display_name = \"extra-1\"")
        .send()
        .await
        .expect("filtered list");
    assert_eq!(filtered.notification_channels.len(), 1);
    assert_eq!(filtered.notification_channels[0].display_name, "extra-1");

    let channel = client
        .create_notification_channel()
        .set_name("projects/conformance")
        .set_notification_channel(
            NotificationChannel::new()
                .set_type("email")
                .set_display_name("ops")
                .set_labels([("email_address", "ops@example.com")]),
        )
        .send()
        .await
        .expect("create");
    client
        .send_notification_channel_verification_code()
        .set_name(&channel.name)
        .send()
        .await
        .expect("send code");
    let code_answer = client
        .get_notification_channel_verification_code()
        .set_name(&channel.name)
        .send()
        .await
        .expect("get code");
    let verified = client
        .verify_notification_channel()
        .set_name(&channel.name)
        .set_code(code_answer.code)
        .send()
        .await
        .expect("verify");
    assert_eq!(verified.verification_status, VerificationStatus::Verified);
    client
        .delete_notification_channel()
        .set_name(&channel.name)
        .send()
        .await
        .expect("delete");
    let error = client
        .get_notification_channel()
        .set_name(&channel.name)
        .send()
        .await
        .expect_err("gone");
    assert_eq!(code(&error), Code::NotFound);
}

/// NotificationChannelDescriptor.name: "The full REST resource name for this descriptor. The
/// format is: projects/[PROJECT_ID_OR_NUMBER]/notificationChannelDescriptors/[TYPE]" — so every
/// listed name can be handed back to `get`
/// (<https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.notificationChannelDescriptors>).
#[tokio::test]
async fn listed_channel_descriptors_are_named_for_get() {
    let emulator = Emulator::start();
    let client = client!(NotificationChannelService, emulator);
    let listed = client
        .list_notification_channel_descriptors()
        .set_name("projects/conformance")
        .send()
        .await
        .expect("list");
    assert!(!listed.channel_descriptors.is_empty());
    for descriptor in listed.channel_descriptors {
        let (parent, kind) = descriptor
            .name
            .rsplit_once("/notificationChannelDescriptors/")
            .unwrap_or_else(|| panic!("{} is no descriptor name", descriptor.name));
        assert!(parent.starts_with("projects/"), "{}", descriptor.name);
        assert_eq!(
            kind, descriptor.r#type,
            "[TYPE] is the value of the type field"
        );
        let fetched = client
            .get_notification_channel_descriptor()
            .set_name(&descriptor.name)
            .send()
            .await
            .expect("get by the listed name");
        assert_eq!(fetched.r#type, descriptor.r#type);
    }
}

/// ListAlertPolicies / ListNotificationChannels `orderBy`: "A comma-separated list of fields by
/// which to sort the result ... Entries can be prefixed with a minus sign to sort by the field
/// in descending order"
/// (<https://cloud.google.com/monitoring/api/v3/sorting-and-filtering#sort-order>).
#[tokio::test]
async fn lists_are_sorted_by_order_by() {
    let emulator = Emulator::start();
    let policies = client!(AlertPolicyService, emulator);
    for name in ["b", "c", "a"] {
        policies
            .create_alert_policy()
            .set_name("projects/conformance")
            .set_alert_policy(policy(name))
            .send()
            .await
            .expect("create policy");
    }
    // Lists lag a create: wait, as a client of Google must, until this one shows them.
    emulator
        .wait_listed("v3/projects/conformance/alertPolicies", "alertPolicies", 3)
        .await;
    for (order, expected) in [
        ("display_name", ["a", "b", "c"]),
        ("-display_name", ["c", "b", "a"]),
    ] {
        let listed = policies
            .list_alert_policies()
            .set_name("projects/conformance")
            .set_order_by(order)
            .send()
            .await
            .expect("list policies");
        let names: Vec<&str> = listed
            .alert_policies
            .iter()
            .map(|policy| policy.display_name.as_str())
            .collect();
        assert_eq!(names, expected, "orderBy={order}");
    }
    let channels = client!(NotificationChannelService, emulator);
    for name in ["y", "z", "x"] {
        channels
            .create_notification_channel()
            .set_name("projects/conformance")
            .set_notification_channel(
                NotificationChannel::new()
                    .set_type("email")
                    .set_display_name(name)
                    .set_labels([("email_address", "x@example.com")]),
            )
            .send()
            .await
            .expect("create channel");
    }
    // Lists lag a create: wait, as a client of Google must, until this one shows them.
    emulator
        .wait_listed(
            "v3/projects/conformance/notificationChannels",
            "notificationChannels",
            3,
        )
        .await;
    let listed = channels
        .list_notification_channels()
        .set_name("projects/conformance")
        .set_order_by("-display_name")
        .set_page_size(2)
        .send()
        .await
        .expect("list channels");
    let names: Vec<&str> = listed
        .notification_channels
        .iter()
        .map(|channel| channel.display_name.as_str())
        .collect();
    assert_eq!(names, ["z", "y"], "the order holds across pages");
}

/// NotificationChannel.verification_status "cannot be modified using a standard
/// UpdateNotificationChannel operation. To change the value of this field, you must call
/// VerifyNotificationChannel" — a create that claims VERIFIED does not make the channel so.
#[tokio::test]
async fn a_channel_is_verified_only_by_verify() {
    let emulator = Emulator::start();
    let client = client!(NotificationChannelService, emulator);
    let created = client
        .create_notification_channel()
        .set_name("projects/conformance")
        .set_notification_channel(
            NotificationChannel::new()
                .set_type("email")
                .set_display_name("claims")
                .set_labels([("email_address", "claims@example.com")])
                .set_verification_status(VerificationStatus::Verified),
        )
        .send()
        .await
        .expect("create");
    assert_ne!(created.verification_status, VerificationStatus::Verified);
    let read = client
        .get_notification_channel()
        .set_name(&created.name)
        .send()
        .await
        .expect("get");
    assert_ne!(read.verification_status, VerificationStatus::Verified);
    // displayName "is limited to 512 Unicode characters"; description "may not exceed 1024".
    for channel in [
        NotificationChannel::new().set_display_name("n".repeat(513)),
        NotificationChannel::new().set_description("d".repeat(1025)),
    ] {
        let error = client
            .create_notification_channel()
            .set_name("projects/conformance")
            .set_notification_channel(
                channel
                    .set_type("email")
                    .set_labels([("email_address", "limits@example.com")]),
            )
            .send()
            .await
            .expect_err("over the limit");
        assert_eq!(code(&error), Code::InvalidArgument);
    }
}

/// AlertPolicy limits as documented: conditionAbsent.duration "minimum value … is 120 seconds";
/// "If condition_monitoring_query_language is present, it must be the only condition";
/// documentation content "may not exceed 8,192 Unicode characters", links "up to 3 entries";
/// the display name "is limited to 512 Unicode characters"
/// (<https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.alertPolicies>).
#[tokio::test]
async fn alert_policy_limits() {
    use google_cloud_monitoring_v3::model::alert_policy::condition::{
        MetricAbsence, MonitoringQueryLanguageCondition,
    };
    use google_cloud_monitoring_v3::model::alert_policy::{Documentation, documentation::Link};
    let emulator = Emulator::start();
    let client = client!(AlertPolicyService, emulator);
    let absent = |seconds: i64| {
        Condition::new().set_display_name("absent").set_condition_absent(
            MetricAbsence::new()
                .set_filter("metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\"")
                .set_duration(google_cloud_wkt::Duration::clamp(seconds, 0)),
        )
    };
    let mql = Condition::new()
        .set_display_name("mql")
        .set_condition_monitoring_query_language(
            MonitoringQueryLanguageCondition::new()
                .set_query("fetch cloud_run_revision | metric 'run.googleapis.com/request_count'")
                .set_duration(google_cloud_wkt::Duration::clamp(60, 0)),
        );
    let refused = [
        (
            "an absence under 120s",
            policy("a").set_conditions([absent(60)]),
        ),
        (
            "an MQL condition beside another",
            policy("b").set_conditions([mql, absent(120)]),
        ),
        (
            "long documentation",
            policy("c").set_documentation(Documentation::new().set_content("x".repeat(8193))),
        ),
        (
            "four links",
            policy("d").set_documentation(Documentation::new().set_content("runbook").set_links(
                (0..4).map(|n| {
                    Link::new()
                        .set_display_name(format!("l{n}"))
                        .set_url("https://example.com")
                }),
            )),
        ),
        ("a long name", policy(&"n".repeat(513))),
    ];
    for (why, alert_policy) in refused {
        let error = client
            .create_alert_policy()
            .set_name("projects/conformance")
            .set_alert_policy(alert_policy)
            .send()
            .await
            .expect_err(why);
        assert_eq!(code(&error), Code::InvalidArgument, "{why}");
    }
    client
        .create_alert_policy()
        .set_name("projects/conformance")
        .set_alert_policy(policy("absent").set_conditions([absent(180)]))
        .send()
        .await
        .expect("a three-minute absence");
}

/// CollapsibleGroup: "All widgets that are within the area spanned by the grouping widget are
/// considered member widgets" — so lying inside it is no overlap. And Google answers a chart
/// with the fields its server fills in (terraform-provider-google #7242): `targetAxis` Y1,
/// `plotType` LINE, `minAlignmentPeriod` 60s, `chartOptions.mode` COLOR, `yAxis.scale` LINEAR.
#[tokio::test]
async fn group_members_lie_inside_the_group_and_charts_come_back_filled() {
    use google_cloud_monitoring_dashboard_v1::model::{
        CollapsibleGroup, TimeSeriesQuery, Widget, XyChart,
        chart_options::Mode,
        mosaic_layout::Tile,
        xy_chart::DataSet,
        xy_chart::axis::Scale,
        xy_chart::data_set::{PlotType, TargetAxis},
    };
    let emulator = Emulator::start();
    let client = client!(DashboardsService, emulator);
    let chart_widget = |title: &str| {
        Widget::new().set_title(title).set_xy_chart(
            XyChart::new().set_data_sets([DataSet::new().set_time_series_query(
                TimeSeriesQuery::new()
                    .set_prometheus_query("sum(rate(run_googleapis_com:request_count[5m]))"),
            )]),
        )
    };
    let tiles = [
        Tile::new().set_width(48).set_height(16).set_widget(
            Widget::new()
                .set_title("Traffic")
                .set_collapsible_group(CollapsibleGroup::new()),
        ),
        Tile::new()
            .set_width(24)
            .set_height(8)
            .set_widget(chart_widget("Requests")),
        Tile::new()
            .set_x_pos(24)
            .set_width(24)
            .set_height(8)
            .set_widget(chart_widget("Errors")),
    ];
    let created = client
        .create_dashboard()
        .set_parent("projects/conformance")
        .set_dashboard(
            Dashboard::new()
                .set_display_name("grouped")
                .set_mosaic_layout(MosaicLayout::new().set_columns(48).set_tiles(tiles)),
        )
        .send()
        .await
        .expect("members inside a group are no overlap");
    let layout = created.mosaic_layout().expect("mosaic");
    let chart = layout.tiles[1]
        .widget
        .as_ref()
        .and_then(|widget| widget.xy_chart())
        .expect("chart");
    assert_eq!(chart.data_sets[0].target_axis, TargetAxis::Y1);
    assert_eq!(chart.data_sets[0].plot_type, PlotType::Line);
    assert_eq!(
        chart.data_sets[0]
            .min_alignment_period
            .as_ref()
            .map(|period| period.seconds()),
        Some(60)
    );
    assert_eq!(
        chart
            .chart_options
            .as_ref()
            .map(|options| options.mode.clone()),
        Some(Mode::Color)
    );
    assert_eq!(
        chart.y_axis.as_ref().map(|axis| axis.scale.clone()),
        Some(Scale::Linear)
    );
    // A member reaching past the group's area is no member: it overlaps the group.
    let error = client
        .create_dashboard()
        .set_parent("projects/conformance")
        .set_dashboard(
            Dashboard::new()
                .set_display_name("spilling")
                .set_mosaic_layout(
                    MosaicLayout::new().set_columns(48).set_tiles([
                        Tile::new().set_width(48).set_height(8).set_widget(
                            Widget::new()
                                .set_title("Traffic")
                                .set_collapsible_group(CollapsibleGroup::new()),
                        ),
                        Tile::new()
                            .set_y_pos(4)
                            .set_width(24)
                            .set_height(8)
                            .set_widget(chart_widget("Requests")),
                    ]),
                ),
        )
        .send()
        .await
        .expect_err("a tile half inside a group overlaps it");
    assert_eq!(code(&error), Code::InvalidArgument);
}
