//! Google's wire rules, checked on the raw REST surface: system parameters
//! (<https://cloud.google.com/apis/docs/system-parameters>), proto3 JSON
//! (<https://protobuf.dev/programming-guides/json/>), enum encodings, and the error envelope
//! (<https://cloud.google.com/apis/design/errors#http_mapping>).

use crate::support::Emulator;
use reqwest::Method;
use serde_json::json;

const SERVICES: &str = "v2/projects/wire/locations/europe-west1/services";

fn minimal() -> serde_json::Value {
    json!({"template": {"containers": [{"image": "us-docker.pkg.dev/p/r/x:1"}]}})
}

#[tokio::test]
async fn system_parameters_are_accepted_on_every_method() {
    let emulator = Emulator::start();
    for query in [
        "$alt=json;enum-encoding=int",
        "alt=json",
        "$fields=secrets",
        "fields=secrets",
        "$prettyPrint=false",
        "prettyPrint=true",
        "$.xgafv=2",
        "$callback=cb",
        "quotaUser=someone",
        "key=api-key",
    ] {
        let (status, body) = emulator
            .rest(
                Method::GET,
                &format!("v1/projects/wire/secrets?{query}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{query}: {body}");
    }
}

/// Creates a service and waits for its create operation (`operations.wait`), as a client does
/// before it reads the service back: until a revision is active, Service.ingress reads back
/// INGRESS_TRAFFIC_UNSPECIFIED ("if no revision is active"), which proto3 leaves out.
async fn create_and_wait(emulator: &Emulator, id: &str, body: serde_json::Value) {
    let (status, operation) = emulator
        .rest(
            Method::POST,
            &format!("{SERVICES}?serviceId={id}"),
            Some(body),
        )
        .await;
    assert_eq!(status, 200, "{operation}");
    let name = operation["name"].as_str().expect("operation name");
    let (status, done) = emulator
        .rest(
            Method::POST,
            &format!("v2/{name}:wait"),
            Some(json!({"timeout": "30s"})),
        )
        .await;
    assert_eq!((status, &done["done"]), (200, &json!(true)), "{done}");
}

#[tokio::test]
async fn enums_are_names_by_default_and_numbers_when_asked() {
    let emulator = Emulator::start();
    create_and_wait(&emulator, "e", minimal()).await;
    let name = format!("{SERVICES}/e");
    let (_, named) = emulator.rest(Method::GET, &name, None).await;
    assert_eq!(named["ingress"], "INGRESS_TRAFFIC_ALL");
    assert_eq!(named["launchStage"], "GA");
    let (_, numbered) = emulator
        .rest(
            Method::GET,
            &format!("{name}?$alt=json;enum-encoding=int"),
            None,
        )
        .await;
    // google/cloud/run/v2/vendor_settings.proto: INGRESS_TRAFFIC_ALL = 1;
    // google/api/launch_stage.proto: GA = 4 (the discovery list has it sixth).
    assert_eq!(numbered["ingress"], 1);
    assert_eq!(numbered["launchStage"], 4);
}

#[tokio::test]
async fn requests_may_carry_enum_numbers_by_proto_number() {
    let emulator = Emulator::start();
    let mut body = minimal();
    // INGRESS_TRAFFIC_INTERNAL_ONLY = 2; EARLY_ACCESS = 1 (position 3 in the discovery list).
    body["ingress"] = json!(2);
    body["launchStage"] = json!(1);
    create_and_wait(&emulator, "n", body).await;
    let (_, service) = emulator
        .rest(Method::GET, &format!("{SERVICES}/n"), None)
        .await;
    assert_eq!(service["ingress"], "INGRESS_TRAFFIC_INTERNAL_ONLY");
    assert_eq!(service["launchStage"], "EARLY_ACCESS");
    let mut body = minimal();
    body["ingress"] = json!(77);
    let (status, refused) = emulator
        .rest(
            Method::POST,
            &format!("{SERVICES}?serviceId=bad"),
            Some(body),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
}

#[tokio::test]
async fn answers_are_proto3_json() {
    let emulator = Emulator::start();
    emulator
        .rest(
            Method::POST,
            &format!("{SERVICES}?serviceId=p"),
            Some(minimal()),
        )
        .await;
    let (_, service) = emulator
        .rest(Method::GET, &format!("{SERVICES}/p"), None)
        .await;
    // int64 fields are strings.
    assert!(service["generation"].is_string(), "{service}");
    // Default values are left out: no `false`, `0`, `""` or `[]` anywhere.
    fn has_default(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::Object(fields) => fields.values().any(|field| {
                matches!(field, serde_json::Value::Bool(false))
                    || field.as_str() == Some("")
                    || field.as_f64() == Some(0.0)
                    || field.as_array().is_some_and(Vec::is_empty)
                    || has_default(field)
            }),
            serde_json::Value::Array(items) => items.iter().any(has_default),
            _ => false,
        }
    }
    assert!(!has_default(&service), "{service}");
    // An empty list answer is `{}`.
    let (_, empty) = emulator
        .rest(Method::GET, "v1/projects/nothing/secrets", None)
        .await;
    assert_eq!(empty, json!({}));
}

#[tokio::test]
async fn query_booleans_are_read_in_any_case() {
    let emulator = Emulator::start();
    let (status, body) = emulator
        .rest(
            Method::POST,
            &format!("{SERVICES}?serviceId=dry&validateOnly=True"),
            Some(minimal()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = emulator
        .rest(Method::GET, &format!("{SERVICES}/dry"), None)
        .await;
    assert_eq!(status, 404, "validateOnly=True persisted nothing");
}

#[tokio::test]
async fn every_error_has_googles_envelope() {
    let emulator = Emulator::start();
    let envelope = |status: u16, body: &serde_json::Value| {
        assert_eq!(body["error"]["code"], status, "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
        assert!(body["error"]["status"].is_string(), "{body}");
    };
    // An unknown route.
    let (status, body) = emulator.rest(Method::GET, "v9/nowhere", None).await;
    assert_eq!(status, 404);
    envelope(status, &body);
    // A method Google serves and the emulator does not: 501 naming the method, never a 404.
    let (status, body) = emulator
        .rest(Method::GET, "v1/projects/wire/roles", None)
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (501, Some("UNIMPLEMENTED")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("iam.projects.roles.list")),
        "{body}"
    );
    // 405 on the emulator's own endpoints.
    let (status, body) = emulator
        .rest(Method::DELETE, "_emulator/requests", None)
        .await;
    assert_eq!(status, 405);
    envelope(status, &body);
    // 413: a body beyond the server's limit.
    let big = json!({"labels": {"a": "x".repeat(3 * 1024 * 1024)}});
    let (status, body) = emulator
        .rest(
            Method::POST,
            "v1/projects/wire/secrets?secretId=big",
            Some(big),
        )
        .await;
    assert_eq!(status, 413);
    envelope(status, &body);
}

/// `fields` selects a partial response ("Selector specifying which fields to include in a
/// partial response").
#[tokio::test]
async fn fields_select_a_partial_response() {
    let emulator = Emulator::start();
    for id in ["f1", "f2"] {
        let (status, _) = emulator
            .rest(
                Method::POST,
                &format!("v1/projects/wire/secrets?secretId={id}"),
                Some(json!({"replication": {"automatic": {}}, "labels": {"a": "b"}})),
            )
            .await;
        assert_eq!(status, 200);
    }
    // Lists lag a create: wait, as a client of Google must, until this one shows them.
    emulator
        .wait_listed("v1/projects/wire/secrets", "secrets", 2)
        .await;
    let (status, partial) = emulator
        .rest(
            Method::GET,
            "v1/projects/wire/secrets?fields=secrets(name)",
            None,
        )
        .await;
    assert_eq!(status, 200, "{partial}");
    let secrets = partial["secrets"].as_array().cloned().unwrap_or_default();
    assert_eq!(secrets.len(), 2);
    for secret in &secrets {
        let keys: Vec<&String> = secret
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, vec!["name"], "{secret}");
    }
    assert!(partial.get("totalSize").is_none(), "{partial}");
}

/// Proto3 JSON: "Parsers accept both the lowerCamelCase name (or the one specified by the
/// json_name option) and the original proto field name"
/// (<https://protobuf.dev/programming-guides/json/>) — in bodies and, through HTTP
/// transcoding, in query parameters; map keys (`labels`) are data and stay as sent.
#[tokio::test]
async fn proto_field_names_are_accepted_beside_json_names() {
    let emulator = Emulator::start();
    let (status, created) = emulator
        .rest(
            Method::POST,
            "v1/projects/wire/secrets?secret_id=snake",
            Some(json!({
                "replication": {"user_managed": {"replicas": [{"location": "us-east1"}]}},
                "labels": {"my_key": "v"},
            })),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert!(
        created["replication"]["userManaged"].is_object(),
        "{created}"
    );
    assert_eq!(created["labels"], json!({"my_key": "v"}));
    for id in ["second", "third"] {
        emulator
            .rest(
                Method::POST,
                &format!("v1/projects/wire/secrets?secretId={id}"),
                Some(json!({"replication": {"automatic": {}}})),
            )
            .await;
    }
    // Lists lag a create: wait, as a client of Google must, until this one shows them.
    emulator
        .wait_listed("v1/projects/wire/secrets", "secrets", 3)
        .await;
    let (status, page) = emulator
        .rest(Method::GET, "v1/projects/wire/secrets?page_size=1", None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["secrets"].as_array().map(Vec::len), Some(1), "{page}");
    let (status, _) = emulator
        .rest(
            Method::POST,
            "v1/projects/wire/dashboards",
            Some(json!({"display_name": "a", "displayName": "b"})),
        )
        .await;
    assert_eq!(status, 400, "one field named twice");
}
