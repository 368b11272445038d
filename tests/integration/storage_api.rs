//! The emulator's Cloud Storage: preconditions answer 412 (or 304) exactly where Google does,
//! versioning keeps noncurrent generations, errors have Storage's own shape, object names
//! must be percent-encoded in paths, and one object name takes one write per second.

use crate::support::TestEnv;
use serde_json::{Value as Json, json};

fn setup() -> TestEnv {
    let env = TestEnv::with_emulator();
    let (status, bucket) = env.api(
        "POST",
        "storage/v1/b?project=proj-test",
        Some(json!({"name": "bucket-a", "versioning": {"enabled": true}})),
    );
    assert_eq!(status, 200, "{bucket}");
    assert_eq!(bucket["versioning"]["enabled"], true);
    env
}

fn upload(env: &TestEnv, name: &str, data: &str, query: &str) -> (u16, Json) {
    let endpoint = env.endpoint.clone().expect("endpoint");
    let url = format!(
        "{endpoint}upload/storage/v1/b/bucket-a/o?uploadType=media&name={}{query}",
        name.replace('/', "%2F")
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(data.to_string())
            .send()
            .await
            .expect("answer");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Json::Null))
    })
}

const OBJECT: &str = "storage/v1/b/bucket-a/o/infra%2Ftest.state.json";

/// Sends a write again while Cloud Storage refuses it for the object's write rate (one per
/// second per name), backing off as Google asks: what any client writing one object twice in
/// a second must do.
fn until_admitted(mut send: impl FnMut() -> (u16, Json)) -> (u16, Json) {
    let mut delay = std::time::Duration::from_millis(250);
    for _ in 0..8 {
        let answer = send();
        if answer.0 != 429 {
            return answer;
        }
        std::thread::sleep(delay);
        delay *= 2;
    }
    send()
}

#[test]
fn every_failed_precondition_is_a_412() {
    let env = setup();
    let (status, created) = upload(&env, "infra/test.state.json", "{}", "&ifGenerationMatch=0");
    assert_eq!(status, 200, "{created}");
    let generation = created["generation"]
        .as_str()
        .expect("generation")
        .to_string();
    assert!(
        created["mediaLink"]
            .as_str()
            .is_some_and(|link| link.starts_with(env.endpoint.as_deref().unwrap_or_default())),
        "links point back at the emulator: {created}"
    );

    let failures = [
        (
            "insert: create-only over a live object",
            upload(&env, "infra/test.state.json", "{}", "&ifGenerationMatch=0"),
        ),
        (
            "insert: stale generation",
            upload(&env, "infra/test.state.json", "{}", "&ifGenerationMatch=1"),
        ),
        (
            "insert: metageneration",
            upload(
                &env,
                "infra/test.state.json",
                "{}",
                "&ifMetagenerationMatch=7",
            ),
        ),
        (
            "insert: NotMatch matching",
            upload(
                &env,
                "infra/test.state.json",
                "{}",
                &format!("&ifGenerationNotMatch={generation}"),
            ),
        ),
        (
            "insert: NotMatch with no live object",
            upload(&env, "infra/other.json", "{}", "&ifGenerationNotMatch=5"),
        ),
    ];
    for (case, (status, body)) in failures {
        assert_eq!(status, 412, "{case}: {body}");
        assert_eq!(
            body["error"]["errors"][0]["reason"], "conditionNotMet",
            "{case}: {body}"
        );
        assert!(
            body["error"].get("status").is_none(),
            "Storage's older error shape: {body}"
        );
    }
    for (case, query) in [
        ("get: stale generation", "?ifGenerationMatch=1"),
        ("get: metageneration", "?ifMetagenerationMatch=9"),
    ] {
        assert_eq!(
            env.api("GET", &format!("{OBJECT}{query}"), None).0,
            412,
            "{case}"
        );
    }
    assert_eq!(
        env.api(
            "GET",
            &format!("{OBJECT}?ifGenerationNotMatch={generation}"),
            None
        )
        .0,
        304,
        "a read whose NotMatch matches is Not Modified"
    );
    assert_eq!(
        env.api("GET", &format!("{OBJECT}?ifMetagenerationNotMatch=1"), None)
            .0,
        304
    );
    assert_eq!(
        env.api("DELETE", &format!("{OBJECT}?ifGenerationMatch=1"), None)
            .0,
        412,
        "delete: stale generation"
    );
    assert_eq!(
        env.api("DELETE", &format!("{OBJECT}?ifMetagenerationMatch=3"), None)
            .0,
        412,
        "delete: metageneration"
    );
    assert_eq!(
        env.api(
            "GET",
            &format!("{OBJECT}?ifGenerationMatch={generation}"),
            None
        )
        .0,
        200,
        "a matching precondition passes"
    );
    // The upload above was this name's last write: the delete may come within its second.
    assert_eq!(
        until_admitted(|| env.api(
            "DELETE",
            &format!("{OBJECT}?ifGenerationMatch={generation}"),
            None
        ))
        .0,
        204
    );
    assert_eq!(env.api("GET", OBJECT, None).0, 404);
}

#[test]
fn versioning_keeps_noncurrent_generations() {
    let env = setup();
    let (_, first) = upload(&env, "infra/test.state.json", r#"{"v": 1}"#, "");
    let (_, second) = until_admitted(|| {
        upload(
            &env,
            "infra/test.state.json",
            r#"{"v": 2}"#,
            &format!(
                "&ifGenerationMatch={}",
                first["generation"].as_str().unwrap_or_default()
            ),
        )
    });
    assert!(
        second["generation"].as_str() > first["generation"].as_str(),
        "generations grow"
    );
    let (_, listed) = env.api(
        "GET",
        "storage/v1/b/bucket-a/o?prefix=infra/&versions=true",
        None,
    );
    let items = listed["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{listed}");
    assert!(
        items.iter().any(|item| item.get("timeDeleted").is_some()),
        "the older one is noncurrent: {listed}"
    );
    let (_, current) = env.api("GET", "storage/v1/b/bucket-a/o?prefix=infra/", None);
    assert_eq!(current["items"].as_array().map(Vec::len), Some(1));
    let (status, old) = env.api(
        "GET",
        &format!(
            "{OBJECT}?alt=media&generation={}",
            first["generation"].as_str().unwrap_or_default()
        ),
        None,
    );
    assert_eq!((status, old), (200, json!({"v": 1})));
    assert_eq!(
        env.api("GET", &format!("{OBJECT}?alt=media"), None).1,
        json!({"v": 2})
    );
}

#[test]
fn names_must_be_encoded_and_buckets_must_exist() {
    let env = setup();
    upload(&env, "infra/test.state.json", "{}", "");
    assert_eq!(
        env.api("GET", "storage/v1/b/bucket-a/o/infra/test.state.json", None)
            .0,
        404,
        "an unencoded `/` is another path"
    );
    let (status, body) = env.api("GET", "storage/v1/b/nope/o/x", None);
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["errors"][0]["reason"], "notFound");
    let (status, _) = env.api(
        "POST",
        "storage/v1/b?project=proj-test",
        Some(json!({"name": "bucket-a"})),
    );
    assert_eq!(status, 409, "bucket names are global");
    let (status, _) = env.api("POST", "storage/v1/b", Some(json!({"name": "bucket-b"})));
    assert_eq!(status, 400, "insert needs ?project=");
}

/// "One write per second" to the same object name (cloud.google.com/storage/quotas): a second
/// create, update or delete of a name within the second is refused 429 in Storage's shape,
/// changing nothing; another name is not held up, reads never are, and after the second the
/// write goes through.
#[test]
fn writes_of_one_object_name_above_one_a_second_are_refused_429() {
    let env = setup();
    let (status, first) = upload(&env, "infra/test.state.json", r#"{"v": 1}"#, "");
    assert_eq!(status, 200, "{first}");
    let (status, refused) = upload(&env, "infra/test.state.json", r#"{"v": 2}"#, "");
    assert_eq!(status, 429, "{refused}");
    let error = &refused["error"];
    assert_eq!(error["code"], 429);
    assert_eq!(error["errors"][0]["domain"], "usageLimits", "{refused}");
    assert_eq!(
        error["errors"][0]["reason"], "rateLimitExceeded",
        "{refused}"
    );
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|message| message.contains("bucket-a/infra/test.state.json exceeded the rate limit for object mutation operations")),
        "Google's words: {refused}"
    );
    let (status, patched) = env.api("PATCH", OBJECT, Some(json!({"metadata": {"k": "v"}})));
    assert_eq!(status, 429, "a metadata update is a write too: {patched}");
    assert_eq!(env.api("DELETE", OBJECT, None).0, 429, "so is a delete");
    assert_eq!(
        env.api("GET", &format!("{OBJECT}?alt=media"), None).1,
        json!({"v": 1}),
        "the refused writes changed nothing"
    );
    assert_eq!(
        upload(&env, "infra/test.lock", "{}", "").0,
        200,
        "another name"
    );
    let (status, second) =
        until_admitted(|| upload(&env, "infra/test.state.json", r#"{"v": 2}"#, ""));
    assert_eq!(status, 200, "{second}");
}
