//! IAM v1 service accounts through `google-cloud-iam-admin-v1`.
//! Reference: <https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts>.

use crate::client;
use crate::support::{Emulator, code};
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::paginator::Paginator;
use google_cloud_iam_admin_v1::client::Iam;
use google_cloud_iam_admin_v1::model::ServiceAccount;

/// Polls a new account until IAM lets it be read: "When you read data from the IAM API, each
/// read is eventually consistent … your application can retry the request with truncated
/// exponential backoff" (IAM v1 overview); until then a GET answers 403 PERMISSION_DENIED (or
/// 404), which the Terraform provider retries the same way.
async fn wait_until_readable(client: &Iam, name: &str) -> ServiceAccount {
    let mut delay = std::time::Duration::from_millis(100);
    for _ in 0..12 {
        match client.get_service_account().set_name(name).send().await {
            Ok(account) => return account,
            Err(error) if matches!(code(&error), Code::PermissionDenied | Code::NotFound) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(2));
            }
            Err(error) => panic!("get {name}: {error}"),
        }
    }
    panic!("{name} never became readable");
}

/// A GET right after the create answers 403 PERMISSION_DENIED ("Permission
/// 'iam.serviceAccounts.get' denied on resource (or it may not exist)"), then the account.
#[tokio::test]
async fn a_new_account_answers_403_until_iam_knows_it() {
    let emulator = Emulator::start_with(&["--service-account-read-lag-ms", "1500"]);
    let client = client!(Iam, emulator);
    let account = client
        .create_service_account()
        .set_name("projects/conformance")
        .set_account_id("sa-fresh")
        .send()
        .await
        .expect("create");
    let error = client
        .get_service_account()
        .set_name(&account.name)
        .send()
        .await
        .expect_err("too new to read");
    assert_eq!(code(&error), Code::PermissionDenied);
    assert!(
        error.to_string().contains("iam.serviceAccounts.get"),
        "{error}"
    );
    assert_eq!(
        wait_until_readable(&client, &account.name).await.email,
        account.email
    );
}

#[tokio::test]
async fn service_accounts_crud_disable_enable_and_paging() {
    let emulator = Emulator::start();
    let client = client!(Iam, emulator);
    for id in ["sa-one", "sa-two", "sa-three"] {
        let account = client
            .create_service_account()
            .set_name("projects/conformance")
            .set_account_id(id)
            .set_service_account(ServiceAccount::new().set_display_name(id))
            .send()
            .await
            .expect("create");
        assert_eq!(
            account.email,
            format!("{id}@conformance.iam.gserviceaccount.com")
        );
        assert!(!account.unique_id.is_empty());
        assert!(!account.disabled, "new accounts are enabled");
    }
    // Lists lag a create: wait, as a client of Google must, until this one shows them.
    emulator
        .wait_listed("v1/projects/conformance/serviceAccounts", "accounts", 3)
        .await;
    // pageSize: "The default is 20, and the maximum is 100."
    let mut pages = client
        .list_service_accounts()
        .set_name("projects/conformance")
        .set_page_size(2)
        .by_page();
    let mut sizes = Vec::new();
    while let Some(page) = pages.next().await {
        sizes.push(page.expect("page").accounts.len());
    }
    assert_eq!(sizes, vec![2, 1]);

    let name = "projects/conformance/serviceAccounts/sa-one@conformance.iam.gserviceaccount.com";
    wait_until_readable(&client, name).await;
    // patch: the update mask travels in the body, next to the account.
    let patched = client
        .patch_service_account()
        .set_service_account(
            ServiceAccount::new()
                .set_name(name)
                .set_description("patched"),
        )
        .set_update_mask(google_cloud_wkt::FieldMask::default().set_paths(["description"]))
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.description, "patched");
    assert_eq!(
        patched.display_name, "sa-one",
        "fields outside the mask are kept"
    );

    client
        .disable_service_account()
        .set_name(name)
        .send()
        .await
        .expect("disable");
    let account = client
        .get_service_account()
        .set_name(name)
        .send()
        .await
        .expect("get");
    assert!(account.disabled);
    client
        .enable_service_account()
        .set_name(name)
        .send()
        .await
        .expect("enable");
    let account = client
        .get_service_account()
        .set_name(name)
        .send()
        .await
        .expect("get");
    assert!(!account.disabled);

    // A service account is itself a resource with an IAM policy.
    let policy = client
        .get_iam_policy()
        .set_resource(name)
        .send()
        .await
        .expect("account policy");
    assert!(policy.bindings.is_empty());
    assert!(
        !policy.etag.is_empty(),
        "an empty policy still carries an etag"
    );

    let unique_id = account.unique_id.clone();
    client
        .delete_service_account()
        .set_name(name)
        .send()
        .await
        .expect("delete");
    let error = client
        .get_service_account()
        .set_name(name)
        .send()
        .await
        .expect_err("gone");
    assert_eq!(code(&error), Code::NotFound);
    // undelete "Restores a deleted ServiceAccount", named by its unique id.
    let restored = client
        .undelete_service_account()
        .set_name(format!("projects/-/serviceAccounts/{unique_id}"))
        .send()
        .await
        .expect("undelete");
    assert_eq!(
        restored.restored_account.expect("restored").unique_id,
        unique_id
    );
    client
        .get_service_account()
        .set_name(name)
        .send()
        .await
        .expect("restored account");
}

/// serviceAccounts.update (PUT): "Updates a ServiceAccount. You can update only the
/// `display_name` field" (<https://cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts/update>).
#[tokio::test]
async fn update_changes_only_the_display_name() {
    let emulator = Emulator::start();
    let client = client!(Iam, emulator);
    let created = client
        .create_service_account()
        .set_name("projects/conformance")
        .set_account_id("sa-update")
        .set_service_account(
            ServiceAccount::new()
                .set_display_name("before")
                .set_description("kept"),
        )
        .send()
        .await
        .expect("create");
    wait_until_readable(&client, &created.name).await;
    let updated = client
        .update_service_account()
        .set_name(&created.name)
        .set_display_name("after")
        .set_description("ignored by update")
        .send()
        .await
        .expect("update");
    assert_eq!(updated.display_name, "after");
    assert_eq!(
        updated.description, "kept",
        "update changes only display_name"
    );
    let read = client
        .get_service_account()
        .set_name(&created.name)
        .send()
        .await
        .expect("get");
    assert_eq!(read.display_name, "after");
}
