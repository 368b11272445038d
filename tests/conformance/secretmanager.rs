//! Secret Manager v1 through `google-cloud-secretmanager-v1`.
//! Reference: <https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets>.

use crate::client;
use crate::support::{Emulator, code, http_status};
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::paginator::{ItemPaginator, Paginator};
use google_cloud_secretmanager_v1::client::SecretManagerService;
use google_cloud_secretmanager_v1::model::{
    Replication, Secret, SecretPayload, replication::Automatic, secret_version::State,
};

fn automatic() -> Secret {
    Secret::new().set_replication(Replication::new().set_automatic(Automatic::new()))
}

/// Reads until `done` holds of the answer (or 10 s have passed), as a client must read what
/// Secret Manager serves eventually consistently: "accessing that secret version by version
/// number is a strongly consistent operation … This doesn't apply when you access a secret
/// version using aliases or `latest`"; other operations, lists included, are eventually
/// consistent (cloud.google.com/secret-manager/docs/reference/consistency).
async fn eventually<T, Read, Answer>(mut read: Read, done: impl Fn(&T) -> bool) -> T
where
    Read: FnMut() -> Answer,
    Answer: std::future::Future<Output = T>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = read().await;
        if done(&answer) || std::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn create(client: &SecretManagerService, id: &str) -> Secret {
    client
        .create_secret()
        .set_parent("projects/conformance")
        .set_secret_id(id)
        .set_secret(automatic().set_labels([("team", "a")]))
        .send()
        .await
        .expect("create secret")
}

#[tokio::test]
async fn secrets_crud_and_list_across_pages() {
    let emulator = Emulator::start();
    let client = client!(SecretManagerService, emulator);
    for id in ["s1", "s2", "s3", "s4", "s5"] {
        let secret = create(&client, id).await;
        assert!(
            secret.name.ends_with(&format!("/secrets/{id}")),
            "{}",
            secret.name
        );
        assert!(
            secret.create_time.is_some(),
            "createTime is output only and set"
        );
        assert!(!secret.etag.is_empty(), "every Secret carries an etag");
    }
    // Lists lag a create: wait, as a client of Google must, until this one shows them.
    emulator
        .wait_listed("v1/projects/conformance/secrets", "secrets", 5)
        .await;
    // pageSize: "the maximum number of results to be returned in a single page" — so a page
    // of 2 over 5 secrets takes 3 pages, and nextPageToken is empty on the last.
    let mut pages = client
        .list_secrets()
        .set_parent("projects/conformance")
        .set_page_size(2)
        .by_page();
    let mut sizes = Vec::new();
    while let Some(page) = pages.next().await {
        sizes.push(page.expect("page").secrets.len());
    }
    assert_eq!(sizes, vec![2, 2, 1]);
    let mut items = client
        .list_secrets()
        .set_parent("projects/conformance")
        .set_page_size(2)
        .by_item();
    let mut names = Vec::new();
    while let Some(secret) = items.next().await {
        names.push(secret.expect("item").name);
    }
    names.sort();
    names.dedup();
    assert_eq!(
        names.len(),
        5,
        "every secret exactly once across pages: {names:?}"
    );

    let name = create(&client, "patched").await.name;
    let updated = client
        .update_secret()
        .set_secret(Secret::new().set_name(&name).set_labels([("team", "b")]))
        .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["labels"]))
        .send()
        .await
        .expect("update labels");
    assert_eq!(updated.labels.get("team").map(String::as_str), Some("b"));
    client
        .delete_secret()
        .set_name(&name)
        .send()
        .await
        .expect("delete");
    let error = client
        .get_secret()
        .set_name(&name)
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(code(&error), Code::NotFound);
}

#[tokio::test]
async fn versions_add_access_and_change_state() {
    let emulator = Emulator::start();
    let client = client!(SecretManagerService, emulator);
    let secret = create(&client, "v").await;
    for data in ["one", "two", "three"] {
        client
            .add_secret_version()
            .set_parent(&secret.name)
            .set_payload(SecretPayload::new().set_data(bytes::Bytes::from(data)))
            .send()
            .await
            .expect("add version");
    }
    // "projects/*/secrets/*/versions/latest is an alias to the most recently created version",
    // once the adds have propagated.
    let latest = eventually(
        || {
            client
                .access_secret_version()
                .set_name(format!("{}/versions/latest", secret.name))
                .send()
        },
        |answer| {
            answer
                .as_ref()
                .is_ok_and(|latest| latest.name.ends_with("/versions/3"))
        },
    )
    .await
    .expect("access latest");
    assert_eq!(
        latest.payload.expect("payload").data,
        bytes::Bytes::from("three")
    );
    assert!(latest.name.ends_with("/versions/3"), "{}", latest.name);

    let version = format!("{}/versions/1", secret.name);
    let disabled = client
        .disable_secret_version()
        .set_name(&version)
        .send()
        .await
        .expect("disable");
    assert_eq!(disabled.state, State::Disabled);
    // Accessing a disabled version is refused with FAILED_PRECONDITION.
    let error = client
        .access_secret_version()
        .set_name(&version)
        .send()
        .await
        .expect_err("disabled");
    assert_eq!(code(&error), Code::FailedPrecondition);
    let enabled = client
        .enable_secret_version()
        .set_name(&version)
        .send()
        .await
        .expect("enable");
    assert_eq!(enabled.state, State::Enabled);
    let destroyed = client
        .destroy_secret_version()
        .set_name(&version)
        .send()
        .await
        .expect("destroy");
    assert_eq!(destroyed.state, State::Destroyed);
    assert!(destroyed.destroy_time.is_some());

    let mut pages = client
        .list_secret_versions()
        .set_parent(&secret.name)
        .set_page_size(1)
        .by_page();
    let mut count = 0;
    while let Some(page) = pages.next().await {
        let page = page.expect("page");
        assert!(page.versions.len() <= 1);
        count += page.versions.len();
    }
    assert_eq!(count, 3);
}

/// <https://cloud.google.com/secret-manager/docs/etags>: "If an ETag is provided and matches the
/// current resource ETag, the request succeeds; otherwise, it fails with a FAILED_PRECONDITION
/// error and an HTTP status code 400."
#[tokio::test]
async fn stale_etags_fail_with_failed_precondition_400() {
    let emulator = Emulator::start();
    let client = client!(SecretManagerService, emulator);
    let secret = create(&client, "e").await;
    let error = client
        .update_secret()
        .set_secret(
            Secret::new()
                .set_name(&secret.name)
                .set_etag("\"stale\"")
                .set_labels([("team", "c")]),
        )
        .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["labels"]))
        .send()
        .await
        .expect_err("stale etag");
    assert_eq!(
        (code(&error), http_status(&error)),
        (Code::FailedPrecondition, 400)
    );
    let error = client
        .delete_secret()
        .set_name(&secret.name)
        .set_etag("\"stale\"")
        .send()
        .await
        .expect_err("stale etag");
    assert_eq!(
        (code(&error), http_status(&error)),
        (Code::FailedPrecondition, 400)
    );
    client
        .delete_secret()
        .set_name(&secret.name)
        .set_etag(&secret.etag)
        .send()
        .await
        .expect("the current etag is accepted");
}

/// IAM policies: a stale etag in setIamPolicy answers 409 ABORTED
/// (<https://cloud.google.com/iam/docs/policies#etag>: "If the etag … does not match, … the
/// request fails with a 409 ABORTED"), and policy version 3 conditions round-trip.
#[tokio::test]
async fn iam_policy_etags_abort_and_conditions_round_trip() {
    use google_cloud_iam_v1::model::{Binding, Policy};
    let emulator = Emulator::start();
    let client = client!(SecretManagerService, emulator);
    let secret = create(&client, "p").await;
    let current = client
        .get_iam_policy()
        .set_resource(&secret.name)
        .send()
        .await
        .expect("get policy");
    let written = client
        .set_iam_policy()
        .set_resource(&secret.name)
        .set_policy(
            Policy::new()
                .set_version(3)
                .set_etag(current.etag.clone())
                .set_bindings([Binding::new()
                    .set_role("roles/secretmanager.secretAccessor")
                    .set_members(["user:a@example.com"])
                    .set_condition(
                        google_cloud_type::model::Expr::new()
                            .set_title("soon")
                            .set_expression("request.time < timestamp('2030-01-01T00:00:00Z')"),
                    )]),
        )
        .send()
        .await
        .expect("set policy");
    assert_eq!(written.version, 3);
    assert_eq!(written.bindings.len(), 1);
    assert!(written.bindings[0].condition.is_some());
    let error = client
        .set_iam_policy()
        .set_resource(&secret.name)
        .set_policy(Policy::new().set_etag(current.etag))
        .send()
        .await
        .expect_err("stale");
    assert_eq!((code(&error), http_status(&error)), (Code::Aborted, 409));
}

/// testIamPermissions "returns permissions that a caller has on the specified resource"; the
/// emulator's anonymous caller holds every one, and wildcards are refused.
#[tokio::test]
async fn test_iam_permissions_answers_the_held_subset() {
    let emulator = Emulator::start();
    let client = client!(SecretManagerService, emulator);
    let secret = create(&client, "t").await;
    let answer = client
        .test_iam_permissions()
        .set_resource(&secret.name)
        .set_permissions(["secretmanager.versions.access"])
        .send()
        .await
        .expect("test permissions");
    assert_eq!(
        answer.permissions,
        vec!["secretmanager.versions.access".to_string()]
    );
    let error = client
        .test_iam_permissions()
        .set_resource(&secret.name)
        .set_permissions(["secretmanager.*"])
        .send()
        .await
        .expect_err("wildcard");
    assert_eq!(code(&error), Code::InvalidArgument);
    // Permissions are `service.resource.verb`
    // (<https://cloud.google.com/iam/docs/permissions-reference>).
    let error = client
        .test_iam_permissions()
        .set_resource(&secret.name)
        .set_permissions(["access"])
        .send()
        .await
        .expect_err("no permission at all");
    assert_eq!(code(&error), Code::InvalidArgument);
}

/// Regional secrets (`projects/*/locations/*/secrets/*`): the same methods, no replication
/// (<https://cloud.google.com/secret-manager/regional-secrets/create-regional-secret>).
#[tokio::test]
async fn regional_secrets_are_served_beside_global_ones() {
    let emulator = Emulator::start();
    let client = client!(SecretManagerService, emulator);
    let parent = "projects/conformance/locations/europe-west1";
    let secret = client
        .create_secret()
        .set_parent(parent)
        .set_secret_id("regional")
        .set_secret(Secret::new())
        .send()
        .await
        .expect("create regional");
    assert!(
        secret
            .name
            .contains("/locations/europe-west1/secrets/regional"),
        "{}",
        secret.name
    );
    client
        .add_secret_version()
        .set_parent(&secret.name)
        .set_payload(SecretPayload::new().set_data(bytes::Bytes::from("r")))
        .send()
        .await
        .expect("add version");
    let accessed = eventually(
        || {
            client
                .access_secret_version()
                .set_name(format!("{}/versions/latest", secret.name))
                .send()
        },
        |answer| answer.is_ok(),
    )
    .await
    .expect("access");
    assert_eq!(
        accessed.payload.expect("payload").data,
        bytes::Bytes::from("r")
    );
    let listed = client
        .list_secrets()
        .set_parent(parent)
        .send()
        .await
        .expect("list");
    assert_eq!(listed.secrets.len(), 1);
    let global = client
        .list_secrets()
        .set_parent("projects/conformance")
        .send()
        .await
        .expect("list global");
    assert!(
        global.secrets.is_empty(),
        "regional secrets are not global ones"
    );
}

/// UpdateSecret's mask: "The fields to update", in either case, `*` for every mutable field.
#[tokio::test]
async fn update_masks_take_snake_case_and_star() {
    let emulator = Emulator::start();
    let client = client!(SecretManagerService, emulator);
    let secret = create(&client, "m").await;
    let updated = client
        .update_secret()
        .set_secret(
            Secret::new()
                .set_name(&secret.name)
                .set_annotations([("a", "1")]),
        )
        .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["*"]))
        .send()
        .await
        .expect("star mask");
    assert_eq!(updated.annotations.get("a").map(String::as_str), Some("1"));
    assert!(updated.labels.is_empty(), "`*` replaced the labels too");
    let error = client
        .update_secret()
        .set_secret(Secret::new().set_name(&secret.name))
        .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["replication"]))
        .send()
        .await
        .expect_err("immutable");
    assert_eq!(code(&error), Code::InvalidArgument);
}

/// Secret.ttl is "Input only": the secret answers with the `expireTime` it implies.
#[tokio::test]
async fn a_ttl_becomes_an_expire_time() {
    let emulator = Emulator::start();
    let client = client!(SecretManagerService, emulator);
    let secret = client
        .create_secret()
        .set_parent("projects/conformance")
        .set_secret_id("ttl")
        .set_secret(automatic().set_ttl(google_cloud_wkt::Duration::clamp(3600, 0)))
        .send()
        .await
        .expect("create with ttl");
    assert!(secret.ttl().is_none(), "ttl is input only");
    let expire = secret.expire_time().expect("expireTime");
    let now = google_cloud_wkt::Timestamp::try_from(std::time::SystemTime::now()).expect("now");
    let ahead = expire.seconds() - now.seconds();
    assert!((3590..=3610).contains(&ahead), "expires in {ahead}s");
}

/// ListSecrets' `filter` (<https://cloud.google.com/secret-manager/docs/filtering>): labels,
/// names and negation select the secrets listed; ListSecretVersions filters on state.
#[tokio::test]
async fn list_filters_select_secrets_and_versions() {
    let emulator = Emulator::start();
    let client = client!(SecretManagerService, emulator);
    let prod = create(&client, "prod-db").await;
    client
        .update_secret()
        .set_secret(
            Secret::new()
                .set_name(&prod.name)
                .set_labels([("env", "prod")]),
        )
        .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["labels"]))
        .send()
        .await
        .expect("label");
    create(&client, "dev-db").await;
    // Lists lag a create: wait, as a client of Google must, until this one shows them.
    emulator
        .wait_listed("v1/projects/conformance/secrets", "secrets", 2)
        .await;
    let names = |response: google_cloud_secretmanager_v1::model::ListSecretsResponse| {
        response
            .secrets
            .into_iter()
            .map(|secret| {
                secret
                    .name
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    let listed = client
        .list_secrets()
        .set_parent("projects/conformance")
        .set_filter("labels.env=prod")
        .send()
        .await
        .expect("filter");
    assert_eq!(names(listed), vec!["prod-db"]);
    let listed = client
        .list_secrets()
        .set_parent("projects/conformance")
        .set_filter("name:db AND NOT labels.env=prod")
        .send()
        .await
        .expect("filter");
    assert_eq!(names(listed), vec!["dev-db"]);
    for data in ["1", "2"] {
        client
            .add_secret_version()
            .set_parent(&prod.name)
            .set_payload(SecretPayload::new().set_data(bytes::Bytes::from(data)))
            .send()
            .await
            .expect("add");
    }
    client
        .disable_secret_version()
        .set_name(format!("{}/versions/1", prod.name))
        .send()
        .await
        .expect("disable");
    let enabled = eventually(
        || {
            client
                .list_secret_versions()
                .set_parent(&prod.name)
                .set_filter("state:ENABLED")
                .send()
        },
        |answer| {
            answer.as_ref().is_ok_and(|listed| {
                listed.versions.len() == 1 && listed.versions[0].name.ends_with("/versions/2")
            })
        },
    )
    .await
    .expect("versions");
    assert_eq!(enabled.versions.len(), 1);
    assert!(enabled.versions[0].name.ends_with("/versions/2"));
}

/// Secret.version_destroy_ttl: "version destruction doesn't happen immediately on calling
/// destroy instead the version goes to a disabled state and destruction happens after the TTL
/// expires."
#[tokio::test]
async fn delayed_destruction_disables_first_and_destroys_after_the_ttl() {
    let emulator = Emulator::start();
    let client = client!(SecretManagerService, emulator);
    let secret = client
        .create_secret()
        .set_parent("projects/conformance")
        .set_secret_id("delayed")
        .set_secret(automatic().set_version_destroy_ttl(google_cloud_wkt::Duration::clamp(1, 0)))
        .send()
        .await
        .expect("create");
    let version = client
        .add_secret_version()
        .set_parent(&secret.name)
        .set_payload(SecretPayload::new().set_data(bytes::Bytes::from("x")))
        .send()
        .await
        .expect("add");
    let pending = client
        .destroy_secret_version()
        .set_name(&version.name)
        .send()
        .await
        .expect("destroy");
    assert_eq!(pending.state, State::Disabled);
    assert!(pending.scheduled_destroy_time.is_some());
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let destroyed = client
        .get_secret_version()
        .set_name(&version.name)
        .send()
        .await
        .expect("get");
    assert_eq!(destroyed.state, State::Destroyed);
}

/// Rotation: "Secret.topics must be set to configure rotation"; rotation_period "Must be in
/// seconds and at least 3600s (1h) ... If rotation_period is set, next_rotation_time must be
/// set"; next_rotation_time "Cannot be set to less than 300s (5 min) in the future"
/// (<https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets#rotation>).
#[tokio::test]
async fn rotation_needs_topics_a_next_time_and_an_hour() {
    use google_cloud_secretmanager_v1::model::{Rotation, Topic};
    let emulator = Emulator::start();
    let client = client!(SecretManagerService, emulator);
    let next = google_cloud_wkt::Timestamp::clamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64
            + 86_400,
        0,
    );
    let daily = Rotation::new()
        .set_next_rotation_time(next)
        .set_rotation_period(google_cloud_wkt::Duration::clamp(86_400, 0));
    let topic = Topic::new().set_name("projects/conformance/topics/rotations");
    let refused = [
        ("no topics", automatic().set_rotation(daily.clone())),
        (
            "a period without a next time",
            automatic().set_topics([topic.clone()]).set_rotation(
                Rotation::new().set_rotation_period(google_cloud_wkt::Duration::clamp(86_400, 0)),
            ),
        ),
        (
            "a period under an hour",
            automatic().set_topics([topic.clone()]).set_rotation(
                daily
                    .clone()
                    .set_rotation_period(google_cloud_wkt::Duration::clamp(60, 0)),
            ),
        ),
        (
            "a next time in the past",
            automatic().set_topics([topic.clone()]).set_rotation(
                Rotation::new().set_next_rotation_time(google_cloud_wkt::Timestamp::clamp(1, 0)),
            ),
        ),
    ];
    for (index, (why, secret)) in refused.into_iter().enumerate() {
        let error = client
            .create_secret()
            .set_parent("projects/conformance")
            .set_secret_id(format!("refused-{index}"))
            .set_secret(secret)
            .send()
            .await
            .expect_err(why);
        assert_eq!(
            (code(&error), http_status(&error)),
            (Code::InvalidArgument, 400),
            "{why}"
        );
    }
    let created = client
        .create_secret()
        .set_parent("projects/conformance")
        .set_secret_id("rotating")
        .set_secret(automatic().set_topics([topic]).set_rotation(daily))
        .send()
        .await
        .expect("a complete rotation policy");
    assert!(
        created
            .rotation
            .as_ref()
            .is_some_and(|rotation| rotation.next_rotation_time.is_some())
    );
}

/// Secret fields as documented: annotation keys "between 1 and 63 characters long … begin and
/// end with an alphanumeric character"; a version alias "must start with a letter and cannot be
/// the string 'latest' or 'NEW'"; `expire_time` and `ttl` are one `expiration`
/// (<https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets#Secret>).
#[tokio::test]
async fn annotations_aliases_and_expiration_follow_the_documented_rules() {
    let emulator = Emulator::start();
    let client = client!(SecretManagerService, emulator);
    let refused = [
        (
            "an annotation key ending in a dash",
            automatic().set_annotations([("key-", "v")]),
        ),
        (
            "the alias latest",
            automatic().set_version_aliases([("latest", 1_i64)]),
        ),
        (
            "an alias starting with a digit",
            automatic().set_version_aliases([("1st", 1_i64)]),
        ),
    ];
    for (index, (why, secret)) in refused.into_iter().enumerate() {
        let error = client
            .create_secret()
            .set_parent("projects/conformance")
            .set_secret_id(format!("refused-{index}"))
            .set_secret(secret)
            .send()
            .await
            .expect_err(why);
        assert_eq!(code(&error), Code::InvalidArgument, "{why}");
    }
    client
        .create_secret()
        .set_parent("projects/conformance")
        .set_secret_id("annotated")
        .set_secret(
            automatic()
                .set_annotations([("owner.tool_a", "team-a")])
                .set_version_aliases([("current", 1_i64)]),
        )
        .send()
        .await
        .expect("valid annotations and aliases");
    // The official client holds `expiration` as a oneof and cannot send both; over REST:
    let (status, body) = emulator
        .rest(
            reqwest::Method::POST,
            "v1/projects/conformance/secrets?secretId=both",
            Some(serde_json::json!({
                "replication": {"automatic": {}},
                "ttl": "3600s",
                "expireTime": "2096-10-02T07:06:40Z",
            })),
        )
        .await;
    assert_eq!(status, 400, "expire_time and ttl together: {body}");
}
