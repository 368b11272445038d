//! Resource Manager v3 projects through `google-cloud-resourcemanager-v3`.
//! Reference: <https://cloud.google.com/resource-manager/reference/rest/v3/projects>.

use crate::client;
use crate::support::{Emulator, code, http_status};
use google_cloud_gax::error::rpc::Code;
use google_cloud_iam_v1::model::{Binding, GetPolicyOptions, Policy};
use google_cloud_resourcemanager_v3::client::Projects;

/// projects.get: "The name of the project (for example, `projects/415104041262`)" — the
/// answer names the project by number and carries its id.
#[tokio::test]
async fn get_answers_the_project_by_number_with_its_id() {
    let emulator = Emulator::start();
    let client = client!(Projects, emulator);
    let project = client
        .get_project()
        .set_name("projects/conformance")
        .send()
        .await
        .expect("get");
    assert_eq!(project.project_id, "conformance");
    // Project: createTime and etag are output only, and always set.
    assert!(project.create_time.is_some(), "{project:?}");
    assert!(!project.etag.is_empty(), "{project:?}");
    let number = project.name.strip_prefix("projects/").expect("projects/");
    assert!(
        number.chars().all(|c| c.is_ascii_digit()),
        "{}",
        project.name
    );
    let by_number = client
        .get_project()
        .set_name(&project.name)
        .send()
        .await
        .expect("by number");
    assert_eq!(by_number.name, project.name);
    assert_eq!(
        by_number.project_id, "conformance",
        "the number names the same project"
    );
}

/// Reads the project's policy at `version` until it is the one written (its etag): IAM reads
/// are eventually consistent ("the read operation might return an older version of the data
/// … your application can retry the request with truncated exponential backoff").
async fn read_written(client: &Projects, version: Option<i32>, etag: &[u8]) -> Policy {
    let mut delay = std::time::Duration::from_millis(100);
    for _ in 0..12 {
        let mut request = client.get_iam_policy().set_resource("projects/conformance");
        if let Some(version) = version {
            request =
                request.set_options(GetPolicyOptions::new().set_requested_policy_version(version));
        }
        let policy = request.send().await.expect("get policy");
        if policy.etag.as_ref() == etag {
            return policy;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(2));
    }
    panic!("the policy written (etag {etag:?}) never showed in reads");
}

/// Policy version 3 with conditions, and a stale etag refused with 409 ABORTED.
#[tokio::test]
async fn iam_policy_version_three_and_stale_etag() {
    let emulator = Emulator::start();
    let client = client!(Projects, emulator);
    let current = client
        .get_iam_policy()
        .set_resource("projects/conformance")
        .set_options(GetPolicyOptions::new().set_requested_policy_version(3))
        .send()
        .await
        .expect("get policy");
    let written = client
        .set_iam_policy()
        .set_resource("projects/conformance")
        .set_policy(
            Policy::new()
                .set_version(3)
                .set_etag(current.etag.clone())
                .set_bindings([Binding::new()
                    .set_role("roles/viewer")
                    .set_members(["user:a@example.com"])
                    .set_condition(
                        google_cloud_type::model::Expr::new()
                            .set_title("t")
                            .set_expression("request.time < timestamp('2030-01-01T00:00:00Z')"),
                    )]),
        )
        .send()
        .await
        .expect("set");
    assert_eq!(written.version, 3);
    // GetPolicyOptions: "Requests for policies with any conditional role bindings must specify
    // version 3"; read at version 1 the role carries `_withcond_<hash>` and no condition
    // (https://cloud.google.com/iam/docs/troubleshooting-withcond).
    let version_one = read_written(&client, None, &written.etag).await;
    assert_eq!(version_one.version, 1);
    assert!(
        version_one.bindings[0]
            .role
            .starts_with("roles/viewer_withcond_"),
        "{version_one:?}"
    );
    assert!(version_one.bindings[0].condition.is_none());
    let version_three = read_written(&client, Some(3), &written.etag).await;
    assert_eq!(version_three.bindings[0].role, "roles/viewer");
    assert!(version_three.bindings[0].condition.is_some());
    let error = client
        .set_iam_policy()
        .set_resource("projects/conformance")
        .set_policy(Policy::new().set_etag(current.etag))
        .send()
        .await
        .expect_err("stale");
    assert_eq!((code(&error), http_status(&error)), (Code::Aborted, 409));
}

/// SetIamPolicyRequest.update_mask: "Only the fields in the mask will be modified. If no mask
/// is provided, the following default mask is used: `paths: "bindings, etag"`"
/// (<https://cloud.google.com/resource-manager/reference/rest/v3/projects/setIamPolicy>); audit
/// configs are written only when masked, and a path that is no field of Policy is refused.
#[tokio::test]
async fn set_iam_policy_writes_only_the_masked_fields() {
    use google_cloud_iam_v1::model::{AuditConfig, AuditLogConfig, audit_log_config::LogType};
    let emulator = Emulator::start();
    let client = client!(Projects, emulator);
    let audit = AuditConfig::new()
        .set_service("allServices")
        .set_audit_log_configs([AuditLogConfig::new().set_log_type(LogType::DataRead)]);
    let viewer = Binding::new()
        .set_role("roles/viewer")
        .set_members(["user:a@example.com"]);
    let written = client
        .set_iam_policy()
        .set_resource("projects/conformance")
        .set_policy(
            Policy::new()
                .set_bindings([viewer.clone()])
                .set_audit_configs([audit.clone()]),
        )
        .send()
        .await
        .expect("set without a mask");
    assert_eq!(written.bindings, std::slice::from_ref(&viewer));
    assert!(
        written.audit_configs.is_empty(),
        "the default mask leaves audit configs alone: {written:?}"
    );
    let audited = client
        .set_iam_policy()
        .set_resource("projects/conformance")
        .set_policy(Policy::new().set_audit_configs([audit.clone()]))
        .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["audit_configs"]))
        .send()
        .await
        .expect("set audit configs only");
    assert_eq!(audited.audit_configs, std::slice::from_ref(&audit));
    assert_eq!(audited.bindings, [viewer], "bindings are outside the mask");
    let read = read_written(&client, None, &audited.etag).await;
    assert_eq!(read.audit_configs, [audit]);
    let error = client
        .set_iam_policy()
        .set_resource("projects/conformance")
        .set_policy(Policy::new())
        .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["no_such_field"]))
        .send()
        .await
        .expect_err("unknown path");
    assert_eq!(
        (code(&error), http_status(&error)),
        (Code::InvalidArgument, 400)
    );
}
