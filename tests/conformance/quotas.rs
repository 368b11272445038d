//! Google's front-end refusals read by the official client (`google-cloud-secretmanager-v1`):
//! a disabled API's 403 and a spent quota's 429 carry `google.rpc` details the client decodes
//! into typed `ErrorInfo`, `Help` and `LocalizedMessage` values.
//! References: <https://cloud.google.com/service-usage/docs/troubleshooting>,
//! <https://cloud.google.com/apis/design/errors#error_info>.

use crate::client;
use crate::support::{Emulator, code, http_status};
use google_cloud_gax::error::rpc::{Code, StatusDetails};
use google_cloud_secretmanager_v1::client::SecretManagerService;

/// Returns the `ErrorInfo` of a client error: (reason, domain, metadata).
fn error_info(
    error: &google_cloud_gax::error::Error,
) -> (String, String, std::collections::HashMap<String, String>) {
    let status = error.status().expect("a service error");
    status
        .details
        .iter()
        .find_map(|detail| match detail {
            StatusDetails::ErrorInfo(info) => Some((
                info.reason.clone(),
                info.domain.clone(),
                info.metadata.clone().into_iter().collect(),
            )),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no ErrorInfo in {:?}", status.details))
}

#[tokio::test]
async fn a_disabled_api_answers_service_disabled_with_typed_details() {
    let emulator = Emulator::start_with(&[
        "--disable-service",
        "conformance:secretmanager.googleapis.com",
    ]);
    let client = client!(SecretManagerService, emulator);
    let error = client
        .list_secrets()
        .set_parent("projects/conformance")
        .send()
        .await
        .expect_err("the API is disabled");
    assert_eq!(http_status(&error), 403);
    assert_eq!(code(&error), Code::PermissionDenied);
    let (reason, domain, metadata) = error_info(&error);
    assert_eq!(reason, "SERVICE_DISABLED");
    assert_eq!(domain, "googleapis.com");
    assert_eq!(
        metadata.get("service").map(String::as_str),
        Some("secretmanager.googleapis.com")
    );
    assert!(
        metadata
            .get("activationUrl")
            .is_some_and(|url| url.contains("secretmanager.googleapis.com")),
        "{metadata:?}"
    );
    let details = &error.status().expect("status").details;
    assert!(
        details
            .iter()
            .any(|detail| matches!(detail, StatusDetails::Help(help) if !help.links.is_empty())),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|detail| matches!(detail, StatusDetails::LocalizedMessage(_))),
        "{details:?}"
    );
}

#[tokio::test]
async fn a_spent_quota_answers_rate_limit_exceeded_with_typed_details() {
    let emulator = Emulator::start_with(&[
        "--quota-window-ms",
        "60000",
        "--quota-override",
        "conformance:secretmanager.googleapis.com/read_requests=1",
    ]);
    let client = client!(SecretManagerService, emulator);
    client
        .list_secrets()
        .set_parent("projects/conformance")
        .send()
        .await
        .expect("the first read is admitted");
    let error = client
        .list_secrets()
        .set_parent("projects/conformance")
        .send()
        .await
        .expect_err("the quota is spent");
    assert_eq!(http_status(&error), 429);
    assert_eq!(code(&error), Code::ResourceExhausted);
    let (reason, domain, metadata) = error_info(&error);
    assert_eq!(reason, "RATE_LIMIT_EXCEEDED");
    assert_eq!(domain, "googleapis.com");
    assert_eq!(
        metadata.get("quota_metric").map(String::as_str),
        Some("secretmanager.googleapis.com/read_requests")
    );
    assert_eq!(
        metadata.get("quota_limit_value").map(String::as_str),
        Some("1")
    );
}
