//! Cloud Run Admin v2 through `google-cloud-run-v2`.
//! Reference: <https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.services>.

use crate::client;
use crate::support::{Emulator, code};
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::paginator::{ItemPaginator, Paginator};
use google_cloud_lro::Poller;
use google_cloud_run_v2::client::{Revisions, Services};
use google_cloud_run_v2::model::{
    Container, IngressTraffic, RevisionTemplate, Service, TrafficTarget,
    TrafficTargetAllocationType,
};

const PARENT: &str = "projects/conformance/locations/europe-west1";

fn service(image: &str) -> Service {
    Service::new()
        .set_template(RevisionTemplate::new().set_containers([Container::new().set_image(image)]))
}

async fn create(client: &Services, id: &str, service: Service) -> Service {
    client
        .create_service()
        .set_parent(PARENT)
        .set_service_id(id)
        .set_service(service)
        .poller()
        .until_done()
        .await
        .expect("create service")
}

/// CreateService, UpdateService and DeleteService are long-running operations whose
/// `response_type` is `Service` for all three (google/cloud/run/v2/service.proto).
#[tokio::test]
async fn create_update_delete_resolve_to_the_service() {
    let emulator = Emulator::start();
    let client = client!(Services, emulator);
    let created = create(&client, "web", service("us-docker.pkg.dev/p/r/web:1")).await;
    assert!(created.name.ends_with("/services/web"), "{}", created.name);
    assert_eq!(created.ingress, IngressTraffic::All, "server default");
    assert!(!created.uri.is_empty());
    assert!(!created.latest_ready_revision.is_empty());
    // Service.urls: "All URLs serving traffic for this Service", the deterministic
    // https://SERVICE-PROJECT_NUMBER.REGION.run.app among them
    // (<https://cloud.google.com/run/docs/triggering/https-request#deterministic>).
    let number = created.name.split('/').nth(1).unwrap_or_default();
    assert!(
        created
            .urls
            .contains(&format!("https://web-{number}.europe-west1.run.app")),
        "{:?}",
        created.urls
    );
    assert!(created.urls.contains(&created.uri));

    let updated = client
        .update_service()
        .set_service(
            created.clone().set_template(
                RevisionTemplate::new()
                    .set_containers([Container::new().set_image("us-docker.pkg.dev/p/r/web:2")]),
            ),
        )
        .poller()
        .until_done()
        .await
        .expect("update");
    assert_eq!(
        updated.template.expect("template").containers[0].image,
        "us-docker.pkg.dev/p/r/web:2"
    );
    assert_ne!(updated.latest_ready_revision, created.latest_ready_revision);

    let deleted = client
        .delete_service()
        .set_name(&created.name)
        .poller()
        .until_done()
        .await
        .expect("delete resolves to the Service, not Empty");
    assert_eq!(deleted.name, created.name);
    assert!(
        deleted.delete_time.is_some(),
        "deleteTime is set in a Delete's response"
    );
    let error = client
        .get_service()
        .set_name(&created.name)
        .send()
        .await
        .expect_err("gone");
    assert_eq!(code(&error), Code::NotFound);
}

/// ListServices pages with pageSize / nextPageToken.
#[tokio::test]
async fn services_list_across_pages() {
    let emulator = Emulator::start();
    let client = client!(Services, emulator);
    for id in ["a", "b", "c"] {
        create(&client, id, service("us-docker.pkg.dev/p/r/x:1")).await;
    }
    let mut pages = client
        .list_services()
        .set_parent(PARENT)
        .set_page_size(2)
        .by_page();
    let mut sizes = Vec::new();
    while let Some(page) = pages.next().await {
        sizes.push(page.expect("page").services.len());
    }
    assert_eq!(sizes, vec![2, 1]);
}

/// `validateOnly`: "Indicates that the request should be validated and default values
/// populated, without persisting the request or creating any resources."
#[tokio::test]
async fn validate_only_creates_nothing() {
    let emulator = Emulator::start();
    let client = client!(Services, emulator);
    // The official poller ends a done operation with its result ("If `done` == `true`, exactly
    // one of `error` or `response` can be set"): the validated Service, defaults populated.
    let validated = client
        .create_service()
        .set_parent(PARENT)
        .set_service_id("dry")
        .set_validate_only(true)
        .set_service(service("us-docker.pkg.dev/p/r/x:1"))
        .poller()
        .until_done()
        .await
        .expect("validated");
    assert!(
        validated.name.ends_with("/services/dry"),
        "{}",
        validated.name
    );
    assert_eq!(validated.ingress, IngressTraffic::All, "defaults populated");
    let error = client
        .get_service()
        .set_name(format!("{PARENT}/services/dry"))
        .send()
        .await
        .expect_err("nothing persisted");
    assert_eq!(code(&error), Code::NotFound);
}

/// Named revisions (RevisionTemplate.revision) and traffic tags, which get their own URL.
#[tokio::test]
async fn named_revisions_tags_and_revision_methods() {
    let emulator = Emulator::start();
    let services = client!(Services, emulator);
    let revisions = client!(Revisions, emulator);
    let created = create(
        &services,
        "named",
        Service::new().set_template(
            RevisionTemplate::new()
                .set_revision("named-first")
                .set_containers([Container::new().set_image("us-docker.pkg.dev/p/r/x:1")]),
        ),
    )
    .await;
    assert!(
        created
            .latest_ready_revision
            .ends_with("/revisions/named-first"),
        "{}",
        created.latest_ready_revision
    );
    let updated = services
        .update_service()
        .set_service(
            created
                .clone()
                .set_template(
                    RevisionTemplate::new()
                        .set_revision("named-second")
                        .set_containers([Container::new().set_image("us-docker.pkg.dev/p/r/x:2")]),
                )
                .set_traffic([
                    TrafficTarget::new()
                        .set_type(TrafficTargetAllocationType::Latest)
                        .set_percent(100),
                    TrafficTarget::new()
                        .set_type(TrafficTargetAllocationType::Revision)
                        .set_revision("named-first")
                        .set_tag("old"),
                ]),
        )
        .poller()
        .until_done()
        .await
        .expect("update");
    let tagged = updated
        .traffic_statuses
        .iter()
        .find(|status| status.tag == "old")
        .expect("tagged status");
    assert!(tagged.uri.starts_with("https://old---"), "{}", tagged.uri);

    let mut listed = Vec::new();
    let mut items = revisions
        .list_revisions()
        .set_parent(&created.name)
        .set_page_size(1)
        .by_item();
    while let Some(revision) = items.next().await {
        listed.push(revision.expect("revision").name);
    }
    assert_eq!(listed.len(), 2, "{listed:?}");
    let first = revisions
        .get_revision()
        .set_name(format!("{}/revisions/named-first", created.name))
        .send()
        .await
        .expect("get revision");
    assert_eq!(first.containers[0].image, "us-docker.pkg.dev/p/r/x:1");
    // The latest revision cannot be deleted.
    let error = revisions
        .delete_revision()
        .set_name(format!("{}/revisions/named-second", created.name))
        .send()
        .await
        .expect_err("latest revision");
    assert_eq!(code(&error), Code::FailedPrecondition);
}

/// The Operations mixin of run.v2: get, list, wait, delete.
#[tokio::test]
async fn operations_get_list_wait_delete() {
    let emulator = Emulator::start();
    let client = client!(Services, emulator);
    let operation = client
        .create_service()
        .set_parent(PARENT)
        .set_service_id("ops")
        .set_service(service("us-docker.pkg.dev/p/r/x:1"))
        .send()
        .await
        .expect("started");
    let waited = client
        .wait_operation()
        .set_name(&operation.name)
        .set_timeout(google_cloud_wkt::Duration::clamp(10, 0))
        .send()
        .await
        .expect("wait");
    assert!(waited.done, "wait returns once the operation is done");
    let listed = client
        .list_operations()
        // Operation names carry the project number, as Google's do.
        .set_name(PARENT.replace(
            "conformance",
            operation.name.split('/').nth(1).unwrap_or_default(),
        ))
        .send()
        .await
        .expect("list");
    assert!(
        listed
            .operations
            .iter()
            .any(|listed| listed.name == operation.name)
    );
    client
        .delete_operation()
        .set_name(&operation.name)
        .send()
        .await
        .expect("delete");
    let error = client
        .get_operation()
        .set_name(&operation.name)
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(code(&error), Code::NotFound);
}

/// UpdateServiceRequest.allow_missing: "If set to true, and if the Service does not exist, it
/// will create a new one."
#[tokio::test]
async fn update_with_allow_missing_creates() {
    let emulator = Emulator::start();
    let client = client!(Services, emulator);
    let created = client
        .update_service()
        .set_allow_missing(true)
        .set_service(
            service("us-docker.pkg.dev/p/r/x:1").set_name(format!("{PARENT}/services/upserted")),
        )
        .poller()
        .until_done()
        .await
        .expect("created by update");
    assert!(
        created.name.ends_with("/services/upserted"),
        "{}",
        created.name
    );
}

/// DeleteRevision is a long-running operation whose `response_type` is `Revision`
/// (google/cloud/run/v2/revision.proto).
#[tokio::test]
async fn deleting_an_old_revision_resolves_to_the_revision() {
    let emulator = Emulator::start();
    let services = client!(Services, emulator);
    let revisions = client!(Revisions, emulator);
    let created = create(&services, "prune", service("us-docker.pkg.dev/p/r/x:1")).await;
    let first = created.latest_ready_revision.clone();
    services
        .update_service()
        .set_service(
            created.set_template(
                RevisionTemplate::new()
                    .set_containers([Container::new().set_image("us-docker.pkg.dev/p/r/x:2")]),
            ),
        )
        .poller()
        .until_done()
        .await
        .expect("update");
    let deleted = revisions
        .delete_revision()
        .set_name(&first)
        .poller()
        .until_done()
        .await
        .expect("delete the old revision");
    assert_eq!(deleted.name, first);
    let error = revisions
        .get_revision()
        .set_name(&first)
        .send()
        .await
        .expect_err("gone");
    assert_eq!(code(&error), Code::NotFound);
}

/// UpdateServiceRequest.update_mask: a path must name a field of Service; a nested path that
/// does not exist is refused with 400 INVALID_ARGUMENT (<https://google.aip.dev/161>, "the
/// service must error with INVALID_ARGUMENT if a field mask path is invalid" — AIP-134).
#[tokio::test]
async fn an_unknown_nested_mask_path_is_refused() {
    let emulator = Emulator::start();
    let client = client!(Services, emulator);
    let created = client
        .create_service()
        .set_parent(PARENT)
        .set_service_id("masked")
        .set_service(service("us-docker.pkg.dev/p/r/x:1"))
        .poller()
        .until_done()
        .await
        .expect("create");
    let error = client
        .update_service()
        .set_service(created.clone().set_labels([("team", "a")]))
        .set_update_mask(
            google_cloud_wkt::FieldMask::default().set_paths(["template.no_such_field"]),
        )
        .send()
        .await
        .expect_err("an unknown nested path");
    assert_eq!(code(&error), Code::InvalidArgument);
    let updated = client
        .update_service()
        .set_service(created.set_labels([("team", "a")]))
        .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["labels.team"]))
        .poller()
        .until_done()
        .await
        .expect("a map key path");
    assert_eq!(updated.labels.get("team").map(String::as_str), Some("a"));
}

/// revisions.list parent: "To list all Revisions across Services, use \"-\" instead of Service
/// name"; "Results are sorted by creation time, descending". services.list parent: "Location
/// must be a valid Google Cloud region, and cannot be the \"-\" wildcard."
#[tokio::test]
async fn revisions_across_services_and_no_wildcard_location() {
    let emulator = Emulator::start();
    let services = client!(Services, emulator);
    let revisions = client!(Revisions, emulator);
    for id in ["across-a", "across-b"] {
        services
            .create_service()
            .set_parent(PARENT)
            .set_service_id(id)
            .set_service(service("us-docker.pkg.dev/p/r/x:1"))
            .poller()
            .until_done()
            .await
            .expect("create");
    }
    let mut items = revisions
        .list_revisions()
        .set_parent(format!("{PARENT}/services/-"))
        .set_page_size(1)
        .by_item();
    let mut listed = Vec::new();
    while let Some(revision) = items.next().await {
        listed.push(revision.expect("revision").service);
    }
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed[0].ends_with("/across-b"), "newest first: {listed:?}");
    let error = services
        .list_services()
        .set_parent(
            PARENT
                .rsplit_once('/')
                .map(|(head, _)| format!("{head}/-"))
                .expect("parent"),
        )
        .send()
        .await
        .expect_err("no wildcard location");
    assert_eq!(code(&error), Code::InvalidArgument);
}

/// Documented limits and defaults of a service's template: Container.ports "Only a single port
/// can be specified", and with sidecars exactly one (ingress) container exposes a port
/// (<https://cloud.google.com/run/docs/deploying#sidecars>); Service.description "currently has a
/// 512-character limit"; request timeouts go up to 3600s
/// (<https://cloud.google.com/run/docs/configuring/request-timeout>); concurrency "defaults to
/// 80 when requested `CPU >= 1` and defaults to 1 when requested `CPU < 1`".
#[tokio::test]
async fn template_limits_and_concurrency_default() {
    use google_cloud_run_v2::model::{ContainerPort, ResourceRequirements};
    let emulator = Emulator::start();
    let client = client!(Services, emulator);
    let port = |number: i32| ContainerPort::new().set_container_port(number);
    let refused = [
        (
            "two ports on one container",
            Service::new().set_template(
                RevisionTemplate::new().set_containers([Container::new()
                    .set_image("i")
                    .set_ports([port(8080), port(9090)])]),
            ),
        ),
        (
            "two ingress containers",
            Service::new().set_template(
                RevisionTemplate::new().set_containers([
                    Container::new()
                        .set_name("a")
                        .set_image("i")
                        .set_ports([port(8080)]),
                    Container::new()
                        .set_name("b")
                        .set_image("j")
                        .set_ports([port(9090)]),
                ]),
            ),
        ),
        (
            "a long description",
            service("i").set_description("d".repeat(513)),
        ),
        (
            "a two-hour timeout",
            Service::new().set_template(
                RevisionTemplate::new()
                    .set_containers([Container::new().set_image("i")])
                    .set_timeout(google_cloud_wkt::Duration::clamp(7200, 0)),
            ),
        ),
    ];
    for (index, (why, service)) in refused.into_iter().enumerate() {
        let error = client
            .create_service()
            .set_parent(PARENT)
            .set_service_id(format!("refused-{index}"))
            .set_service(service)
            .send()
            .await
            .expect_err(why);
        assert_eq!(code(&error), Code::InvalidArgument, "{why}");
    }
    let sidecar = create(
        &client,
        "sidecar",
        Service::new().set_template(
            RevisionTemplate::new().set_containers([
                Container::new()
                    .set_name("app")
                    .set_image("i")
                    .set_ports([port(8080)]),
                Container::new().set_name("proxy").set_image("j"),
            ]),
        ),
    )
    .await;
    let containers = &sidecar.template.as_ref().expect("template").containers;
    assert!(containers[1].ports.is_empty(), "a sidecar gets no port");
    let small = create(
        &client,
        "small",
        Service::new().set_template(RevisionTemplate::new().set_containers([
            Container::new().set_image("i").set_resources(
                ResourceRequirements::new().set_limits([("cpu", "500m"), ("memory", "512Mi")]),
            ),
        ])),
    )
    .await;
    assert_eq!(
        small
            .template
            .as_ref()
            .expect("template")
            .max_instance_request_concurrency,
        1
    );
}

/// operations.list `filter`: "To query for only completed operations: done:true To query for
/// only ongoing operations: done:false Must be empty to query for all of the latest
/// operations"; a `-` location reads across the project's locations.
#[tokio::test]
async fn operations_list_filters_by_done() {
    let emulator = Emulator::start_with(&["--operation-delay-ms", "60000"]);
    let client = client!(Services, emulator);
    let operation = client
        .create_service()
        .set_parent(PARENT)
        .set_service_id("slow")
        .set_service(service("us-docker.pkg.dev/p/r/x:1"))
        .send()
        .await
        .expect("started");
    let number = operation
        .name
        .split('/')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let parent = format!("projects/{number}/locations/europe-west1");
    let names = |listed: google_cloud_longrunning::model::ListOperationsResponse| -> Vec<String> {
        listed
            .operations
            .into_iter()
            .map(|operation| operation.name)
            .collect()
    };
    let ongoing = client
        .list_operations()
        .set_name(&parent)
        .set_filter("done:false")
        .send()
        .await
        .expect("ongoing");
    assert_eq!(names(ongoing), std::slice::from_ref(&operation.name));
    let done = client
        .list_operations()
        .set_name(&parent)
        .set_filter("done:true")
        .send()
        .await
        .expect("done");
    assert!(names(done).is_empty());
    let across = client
        .list_operations()
        .set_name(format!("projects/{number}/locations/-"))
        .send()
        .await
        .expect("across locations");
    assert_eq!(names(across), std::slice::from_ref(&operation.name));
    let error = client
        .list_operations()
        .set_name(&parent)
        .set_filter("name:slow")
        .send()
        .await
        .expect_err("an unsupported filter");
    assert_eq!(code(&error), Code::InvalidArgument);
}

/// TrafficTarget.tag: "Indicates a string to be part of the URI to exclusively reference this
/// target" — so it is a DNS label and names one target only
/// (<https://cloud.google.com/run/docs/rollouts-rollbacks-traffic-migration#tags>).
#[tokio::test]
async fn traffic_tags_are_labels_and_unique() {
    let emulator = Emulator::start();
    let client = client!(Services, emulator);
    let latest = |tag: &str| {
        TrafficTarget::new()
            .set_type(TrafficTargetAllocationType::Latest)
            .set_tag(tag)
    };
    for (index, traffic) in [
        vec![latest("same").set_percent(100), latest("same")],
        vec![latest("Not_A_Label").set_percent(100)],
    ]
    .into_iter()
    .enumerate()
    {
        let error = client
            .create_service()
            .set_parent(PARENT)
            .set_service_id(format!("tags-{index}"))
            .set_service(service("us-docker.pkg.dev/p/r/x:1").set_traffic(traffic))
            .send()
            .await
            .expect_err("a bad tag");
        assert_eq!(code(&error), Code::InvalidArgument);
    }
}
