//! Cloud Storage JSON API v1: object reads and writes through Google's official Rust client
//! (`google-cloud-storage`, whose data plane is the JSON API), and the rest over REST as
//! `discovery/storage.v1.json` describes it (the official client's bucket and metadata
//! operations, `StorageControl`, are gRPC only).
//! References: <https://cloud.google.com/storage/docs/json_api/v1/buckets>,
//! <https://cloud.google.com/storage/docs/json_api/v1/objects>,
//! <https://cloud.google.com/storage/docs/request-preconditions>.

use crate::support::Emulator;
use reqwest::Method;
use serde_json::json;

/// Starts an emulator without Cloud Storage's one write per second per object name, for cases
/// that write one object several times within a second on purpose (its preconditions,
/// metadata, holds), which Google would throttle with 429; the rate has its own case.
fn emulator_writing_freely() -> Emulator {
    Emulator::start_with(&["--gcs-object-write-interval-ms", "0"])
}

async fn bucket(emulator: &Emulator, name: &str) {
    let (status, body) = emulator
        .rest(
            Method::POST,
            "storage/v1/b?project=conformance",
            Some(json!({"name": name, "versioning": {"enabled": true}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn put_object(
    emulator: &Emulator,
    bucket: &str,
    name: &str,
    data: &str,
) -> serde_json::Value {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}",
            emulator.endpoint
        ))
        .header("content-type", "text/plain")
        .body(data.to_string())
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.expect("object")
}

/// buckets.list: "maxResults … The service will use this parameter or 1,000 items, whichever is
/// smaller"; patch bumps the metageneration; delete refuses a non-empty bucket (409).
#[tokio::test]
async fn buckets_insert_list_patch_delete() {
    let emulator = Emulator::start();
    for name in ["conf-a", "conf-b", "conf-c"] {
        bucket(&emulator, name).await;
    }
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let (status, page) = emulator
            .rest(
                Method::GET,
                &format!("storage/v1/b?project=conformance&maxResults=2&pageToken={token}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= 2);
        names.extend(
            items
                .iter()
                .filter_map(|item| item["name"].as_str().map(String::from)),
        );
        match page["nextPageToken"].as_str() {
            Some(next) => token = next.to_string(),
            None => break,
        }
    }
    assert_eq!(names, vec!["conf-a", "conf-b", "conf-c"]);
    let (status, patched) = emulator
        .rest(
            Method::PATCH,
            "storage/v1/b/conf-a?ifMetagenerationMatch=1",
            Some(json!({"labels": {"team": "x"}})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["metageneration"], "2");
    assert_eq!(patched["labels"]["team"], "x");
    let (status, _) = emulator
        .rest(
            Method::PATCH,
            "storage/v1/b/conf-a?ifMetagenerationMatch=1",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 412, "a stale metageneration precondition");
    put_object(&emulator, "conf-b", "x", "data").await;
    let (status, _) = emulator
        .rest(Method::DELETE, "storage/v1/b/conf-b", None)
        .await;
    assert_eq!(status, 409, "a bucket with objects is not deleted");
    let (status, _) = emulator
        .rest(Method::DELETE, "storage/v1/b/conf-c", None)
        .await;
    assert_eq!(status, 204);
}

/// objects.list with prefix, delimiter (`prefixes`), versions and maxResults paging.
#[tokio::test]
async fn objects_list_with_prefix_delimiter_versions_and_pages() {
    let emulator = emulator_writing_freely();
    bucket(&emulator, "conf-list").await;
    for name in ["a/1", "a/2", "b/1", "top"] {
        put_object(&emulator, "conf-list", name, "v1").await;
    }
    put_object(&emulator, "conf-list", "top", "v2").await;
    let (_, folded) = emulator
        .rest(Method::GET, "storage/v1/b/conf-list/o?delimiter=/", None)
        .await;
    assert_eq!(folded["prefixes"], json!(["a/", "b/"]), "{folded}");
    assert_eq!(
        folded["items"].as_array().map(Vec::len),
        Some(1),
        "{folded}"
    );
    let (_, under) = emulator
        .rest(Method::GET, "storage/v1/b/conf-list/o?prefix=a/", None)
        .await;
    assert_eq!(under["items"].as_array().map(Vec::len), Some(2));
    let (_, versions) = emulator
        .rest(
            Method::GET,
            "storage/v1/b/conf-list/o?prefix=top&versions=True",
            None,
        )
        .await;
    assert_eq!(
        versions["items"].as_array().map(Vec::len),
        Some(2),
        "every generation"
    );
    let (_, first) = emulator
        .rest(Method::GET, "storage/v1/b/conf-list/o?maxResults=3", None)
        .await;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(3));
    let token = first["nextPageToken"].as_str().expect("a next page");
    let (_, second) = emulator
        .rest(
            Method::GET,
            &format!("storage/v1/b/conf-list/o?maxResults=3&pageToken={token}"),
            None,
        )
        .await;
    assert_eq!(second["items"].as_array().map(Vec::len), Some(1));
    assert!(second.get("nextPageToken").is_none());
}

/// objects.patch changes metadata (a new metageneration, the same generation), guarded by
/// ifMetagenerationMatch and ifGenerationMatch; a read with a matching ifGenerationNotMatch is
/// 304 Not Modified.
#[tokio::test]
async fn objects_patch_preconditions_and_not_modified() {
    let emulator = emulator_writing_freely();
    bucket(&emulator, "conf-patch").await;
    let object = put_object(&emulator, "conf-patch", "o", "data").await;
    // Objects carry their MD5 and CRC32C, base64 (https://cloud.google.com/storage/docs/hashes-etags).
    assert_eq!(object["md5Hash"], "jXd/OF09/siBXSD3SWAm3A==");
    assert_eq!(object["crc32c"], "rth90Q==");
    let generation = object["generation"]
        .as_str()
        .expect("generation")
        .to_string();
    let (status, patched) = emulator
        .rest(
            Method::PATCH,
            &format!(
                "storage/v1/b/conf-patch/o/o?ifGenerationMatch={generation}&ifMetagenerationMatch=1"
            ),
            Some(json!({"metadata": {"k": "v"}})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (
            patched["metageneration"].as_str(),
            patched["generation"].as_str()
        ),
        (Some("2"), Some(generation.as_str()))
    );
    assert_eq!(patched["metadata"]["k"], "v");
    let (status, _) = emulator
        .rest(
            Method::PATCH,
            "storage/v1/b/conf-patch/o/o?ifMetagenerationMatch=1",
            Some(json!({"metadata": {"k": "w"}})),
        )
        .await;
    assert_eq!(status, 412);
    let (status, _) = emulator
        .rest(
            Method::PATCH,
            "storage/v1/b/conf-patch/o/o?ifGenerationMatch=1",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 412);
    let (status, _) = emulator
        .rest(
            Method::GET,
            &format!("storage/v1/b/conf-patch/o/o?ifGenerationNotMatch={generation}"),
            None,
        )
        .await;
    assert_eq!(status, 304);
}

/// Resumable uploads: the session URI comes back in `Location`; chunks answer 308 with the
/// persisted `Range`; the last chunk creates the object.
#[tokio::test]
async fn resumable_uploads_in_chunks() {
    let emulator = Emulator::start();
    bucket(&emulator, "conf-resume").await;
    let client = reqwest::Client::new();
    let started = client
        .post(format!(
            "{}/upload/storage/v1/b/conf-resume/o?uploadType=resumable",
            emulator.endpoint
        ))
        .header("x-upload-content-type", "text/plain")
        .json(&json!({"name": "big.txt"}))
        .send()
        .await
        .expect("start");
    assert_eq!(started.status().as_u16(), 200);
    let session = started
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .expect("Location")
        .to_string();
    let first = client
        .put(&session)
        .header("content-range", "bytes 0-4/*")
        .body("hello")
        .send()
        .await
        .expect("chunk");
    assert_eq!(first.status().as_u16(), 308);
    assert_eq!(
        first.headers().get("range").and_then(|v| v.to_str().ok()),
        Some("bytes=0-4")
    );
    let last = client
        .put(&session)
        .header("content-range", "bytes 5-10/11")
        .body(" world")
        .send()
        .await
        .expect("last chunk");
    assert_eq!(last.status().as_u16(), 200);
    let object: serde_json::Value = last.json().await.expect("object");
    assert_eq!(
        (object["name"].as_str(), object["size"].as_str()),
        (Some("big.txt"), Some("11"))
    );
    let media = client
        .get(format!(
            "{}/storage/v1/b/conf-resume/o/big.txt?alt=media",
            emulator.endpoint
        ))
        .send()
        .await
        .expect("read");
    assert_eq!(media.text().await.expect("text"), "hello world");
}

/// objects.copy answers the new object; objects.rewrite answers a RewriteResponse, here done in
/// one call; `ifSourceGenerationMatch` guards the source, `ifGenerationMatch=0` the
/// destination ("the object must not exist").
#[tokio::test]
async fn objects_copy_and_rewrite_with_source_and_destination_preconditions() {
    let emulator = Emulator::start();
    bucket(&emulator, "conf-copy").await;
    let source = put_object(&emulator, "conf-copy", "src", "payload").await;
    let generation = source["generation"].as_str().expect("generation");
    let (status, copied) = emulator
        .rest(
            Method::POST,
            &format!("storage/v1/b/conf-copy/o/src/copyTo/b/conf-copy/o/dst?ifSourceGenerationMatch={generation}&ifGenerationMatch=0"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{copied}");
    assert_eq!(
        (copied["name"].as_str(), copied["size"].as_str()),
        (Some("dst"), Some("7"))
    );
    let (status, _) = emulator
        .rest(
            Method::POST,
            "storage/v1/b/conf-copy/o/src/copyTo/b/conf-copy/o/dst?ifGenerationMatch=0",
            None,
        )
        .await;
    assert_eq!(status, 412, "the destination exists now");
    let (status, _) = emulator
        .rest(
            Method::POST,
            "storage/v1/b/conf-copy/o/src/copyTo/b/conf-copy/o/other?ifSourceGenerationMatch=1",
            None,
        )
        .await;
    assert_eq!(status, 412, "a stale source generation");
    let (status, rewritten) = emulator
        .rest(
            Method::POST,
            "storage/v1/b/conf-copy/o/src/rewriteTo/b/conf-copy/o/again",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{rewritten}");
    assert_eq!(rewritten["kind"], "storage#rewriteResponse");
    assert_eq!(rewritten["done"], true);
    assert_eq!(rewritten["resource"]["name"], "again");
}

/// Methods the emulator does not serve answer 501, never a silent 404.
#[tokio::test]
async fn unserved_object_methods_are_501() {
    let emulator = Emulator::start();
    bucket(&emulator, "conf-unserved").await;
    let (status, body) = emulator
        .rest(
            Method::POST,
            "storage/v1/b/conf-unserved/o/o/restore?generation=1",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 501, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("storage.objects.restore")),
        "{body}"
    );
    // The discovery document's `batchPath` (batch/storage/v1) is not served either: 501.
    let (status, body) = emulator
        .rest(Method::POST, "batch/storage/v1", Some(json!({})))
        .await;
    assert_eq!(status, 501, "{body}");
}

/// Google's official Rust client (`google-cloud-storage`) writes and reads objects through the
/// JSON API: a buffered upload, a full read whose `x-goog-*` headers describe the object, a
/// ranged read, and a write guarded by `ifGenerationMatch=0` refused with 412 once the object
/// exists (<https://cloud.google.com/storage/docs/request-preconditions>).
#[tokio::test]
async fn the_official_client_writes_and_reads_objects() {
    use google_cloud_storage::client::Storage;
    use google_cloud_storage::model_ext::ReadRange;
    let emulator = Emulator::start();
    bucket(&emulator, "conf-official").await;
    let client = crate::client!(Storage, emulator);
    let bucket_name = "projects/_/buckets/conf-official";
    let written = client
        .write_object(bucket_name, "dir/file.txt", "hello world")
        .send_buffered()
        .await
        .expect("write");
    assert_eq!((written.name.as_str(), written.size), ("dir/file.txt", 11));
    let read_all = |mut reader: google_cloud_storage::read_object::ReadObjectResponse| async move {
        let mut contents = Vec::new();
        while let Some(chunk) = reader.next().await {
            contents.extend_from_slice(&chunk.expect("chunk"));
        }
        String::from_utf8(contents).expect("utf-8")
    };
    let reader = client
        .read_object(bucket_name, "dir/file.txt")
        .send()
        .await
        .expect("read");
    assert_eq!(reader.object().generation, written.generation);
    assert_eq!(read_all(reader).await, "hello world");
    let ranged = client
        .read_object(bucket_name, "dir/file.txt")
        .set_read_range(ReadRange::segment(6, 5))
        .send()
        .await
        .expect("ranged read");
    assert_eq!(read_all(ranged).await, "world");
    let error = client
        .write_object(bucket_name, "dir/file.txt", "again")
        .set_if_generation_match(0)
        .send_buffered()
        .await
        .expect_err("the object exists");
    assert_eq!(crate::support::http_status(&error), 412);
}

/// "One write per second" to the same object name
/// (<https://cloud.google.com/storage/quotas>): a second write within the second is refused
/// 429 `rateLimitExceeded`, which the official client takes for a transient error ("429 Too
/// Many Requests", <https://cloud.google.com/storage/docs/retry-strategy>) and retries with
/// backoff when the write is idempotent — here made so by `ifGenerationMatch`.
#[tokio::test]
async fn a_write_above_the_object_rate_is_429_and_the_official_client_retries_it() {
    use google_cloud_storage::client::Storage;
    let emulator = Emulator::start();
    bucket(&emulator, "conf-rate").await;
    let client = crate::client!(Storage, emulator);
    let bucket_name = "projects/_/buckets/conf-rate";
    let first = client
        .write_object(bucket_name, "state.json", "1")
        .send_buffered()
        .await
        .expect("write");
    let (status, refused) = emulator
        .rest(
            Method::PATCH,
            "storage/v1/b/conf-rate/o/state.json",
            Some(json!({"metadata": {"k": "v"}})),
        )
        .await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["error"]["errors"][0]["reason"], "rateLimitExceeded");
    let second = client
        .write_object(bucket_name, "state.json", "2")
        .set_if_generation_match(first.generation)
        .send_buffered()
        .await
        .expect("retried after the backoff, then written");
    assert!(second.generation > first.generation);
}

/// "If the checksums don't match, the upload is rejected"
/// (<https://cloud.google.com/storage/docs/data-validation>): a multipart upload whose metadata
/// carries a wrong md5Hash or crc32c is refused with 400.
#[tokio::test]
async fn uploads_with_wrong_checksums_are_refused() {
    let emulator = Emulator::start();
    bucket(&emulator, "conf-sums").await;
    for metadata in [
        json!({"name": "bad-md5", "md5Hash": "AAAAAAAAAAAAAAAAAAAAAA=="}),
        json!({"name": "bad-crc", "crc32c": "AAAAAA=="}),
    ] {
        let body = format!(
            "--b\r\nContent-Type: application/json\r\n\r\n{metadata}\r\n--b\r\nContent-Type: text/plain\r\n\r\ndata\r\n--b--\r\n"
        );
        let response = reqwest::Client::new()
            .post(format!(
                "{}/upload/storage/v1/b/conf-sums/o?uploadType=multipart",
                emulator.endpoint
            ))
            .header("content-type", "multipart/related; boundary=b")
            .body(body)
            .send()
            .await
            .expect("upload");
        assert_eq!(response.status().as_u16(), 400, "{metadata}");
    }
}

/// objects.list `startOffset` ("equal to or after"), `endOffset` ("before"), `matchGlob`
/// ("objects and prefixes that match this glob pattern", where `*` does not cross `/`),
/// `includeTrailingDelimiter` ("objects that end in exactly one instance of delimiter will
/// have their metadata included in items in addition to prefixes") and `softDeleted` ("only
/// soft-deleted object versions": none, as nothing here was soft-deleted)
/// (<https://cloud.google.com/storage/docs/json_api/v1/objects/list>).
#[tokio::test]
async fn objects_list_offsets_glob_trailing_delimiter_and_soft_deleted() {
    let emulator = Emulator::start();
    bucket(&emulator, "conf-filters").await;
    for name in ["a/", "a/b.txt", "a/c.js", "b.txt", "c/d/e.txt"] {
        put_object(&emulator, "conf-filters", name, "x").await;
    }
    let names = |body: &serde_json::Value| -> Vec<String> {
        body["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let list = async |query: &str| {
        let (status, body) = emulator
            .rest(
                Method::GET,
                &format!("storage/v1/b/conf-filters/o?{query}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{query}: {body}");
        body
    };
    assert_eq!(
        names(&list("startOffset=a/c&endOffset=c").await),
        ["a/c.js", "b.txt"]
    );
    assert_eq!(names(&list("matchGlob=*.txt").await), ["b.txt"]);
    assert_eq!(
        names(&list("matchGlob=a/*.%7Btxt,js%7D").await),
        ["a/b.txt", "a/c.js"]
    );
    let plain = list("delimiter=/").await;
    assert_eq!(names(&plain), ["b.txt"]);
    assert_eq!(plain["prefixes"], json!(["a/", "c/"]));
    let trailing = list("delimiter=/&includeTrailingDelimiter=true").await;
    assert_eq!(names(&trailing), ["a/", "b.txt"]);
    assert_eq!(trailing["prefixes"], json!(["a/", "c/"]));
    assert!(names(&list("softDeleted=true").await).is_empty());
    let (status, body) = emulator
        .rest(
            Method::GET,
            "storage/v1/b/conf-filters/o?matchGlob=%5B",
            None,
        )
        .await;
    assert_eq!(status, 400, "an unclosed class is no glob: {body}");
}

/// The Object and Bucket resources' writable fields are kept as written (objects: "cacheControl",
/// "contentDisposition", "contentLanguage", … — served back as the media's headers; buckets:
/// "storageClass", "lifecycle", …); patch changes what it names (a `null` label is removed),
/// and `update` (PUT) replaces the whole writable metadata
/// (<https://cloud.google.com/storage/docs/json_api/v1/objects/update>,
/// <https://cloud.google.com/storage/docs/json_api/v1/buckets/update>).
#[tokio::test]
async fn writable_fields_patch_and_update() {
    let emulator = emulator_writing_freely();
    let (status, created) = emulator
        .rest(
            Method::POST,
            "storage/v1/b?project=conformance",
            Some(json!({
                "name": "conf-fields",
                "storageClass": "NEARLINE",
                "lifecycle": {"rule": [{"action": {"type": "Delete"}, "condition": {"age": 30}}]},
                "labels": {"keep": "1", "drop": "2"},
            })),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["storageClass"], "NEARLINE");
    assert_eq!(created["lifecycle"]["rule"][0]["condition"]["age"], 30);
    let (_, patched) = emulator
        .rest(
            Method::PATCH,
            "storage/v1/b/conf-fields",
            Some(json!({"labels": {"drop": null}})),
        )
        .await;
    assert_eq!(patched["labels"], json!({"keep": "1"}), "{patched}");
    assert_eq!(
        patched["storageClass"], "NEARLINE",
        "untouched by the patch"
    );
    // Server-filled: "locationType: The type of the bucket location" (US is a multi-region),
    // and a multi-region's "rpo" is DEFAULT.
    assert_eq!(patched["locationType"], "multi-region");
    assert_eq!(patched["rpo"], "DEFAULT");
    // A patch merges messages field by field.
    let (_, website) = emulator
        .rest(
            Method::PATCH,
            "storage/v1/b/conf-fields",
            Some(json!({"website": {"mainPageSuffix": "index.html"}})),
        )
        .await;
    assert_eq!(website["website"]["mainPageSuffix"], "index.html");
    let (_, website) = emulator
        .rest(
            Method::PATCH,
            "storage/v1/b/conf-fields",
            Some(json!({"website": {"notFoundPage": "404.html"}, "iamConfiguration": {"publicAccessPrevention": "enforced"}})),
        )
        .await;
    assert_eq!(
        website["website"],
        json!({"mainPageSuffix": "index.html", "notFoundPage": "404.html"})
    );
    assert_eq!(
        website["iamConfiguration"]["publicAccessPrevention"],
        "enforced"
    );
    assert_eq!(
        website["iamConfiguration"]["uniformBucketLevelAccess"]["enabled"], true,
        "{website}"
    );
    let (status, replaced) = emulator
        .rest(
            Method::PUT,
            "storage/v1/b/conf-fields?ifMetagenerationMatch=4",
            Some(json!({"storageClass": "STANDARD"})),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["metageneration"], "5");
    assert!(
        replaced.get("labels").is_none(),
        "update clears what it leaves out"
    );
    assert!(replaced.get("lifecycle").is_none(), "{replaced}");

    put_object(&emulator, "conf-fields", "page", "hello").await;
    let (_, object) = emulator
        .rest(
            Method::PATCH,
            "storage/v1/b/conf-fields/o/page",
            Some(json!({"cacheControl": "no-store", "contentDisposition": "attachment", "metadata": {"k": "v"}})),
        )
        .await;
    assert_eq!(object["cacheControl"], "no-store", "{object}");
    let media = reqwest::Client::new()
        .get(format!(
            "{}/storage/v1/b/conf-fields/o/page?alt=media",
            emulator.endpoint
        ))
        .send()
        .await
        .expect("media");
    assert_eq!(media.headers()["cache-control"], "no-store");
    assert_eq!(media.headers()["content-disposition"], "attachment");
    let (status, updated) = emulator
        .rest(
            Method::PUT,
            "storage/v1/b/conf-fields/o/page?ifMetagenerationMatch=2",
            Some(json!({"contentLanguage": "en"})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["contentLanguage"], "en");
    assert!(updated.get("cacheControl").is_none(), "{updated}");
    assert!(updated.get("metadata").is_none(), "{updated}");
    let (status, _) = emulator
        .rest(
            Method::PUT,
            "storage/v1/b/conf-fields/o/page?ifMetagenerationMatch=2",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 412, "a stale metageneration");
}

/// objects.compose: "Concatenates a list of existing objects into a new object in the same
/// bucket" — 1 to 32 sources, each optionally pinned by `objectPreconditions.ifGenerationMatch`;
/// the result has a `componentCount` and, being composite, a CRC32C but no MD5
/// (<https://cloud.google.com/storage/docs/json_api/v1/objects/compose>,
/// <https://cloud.google.com/storage/docs/composite-objects>).
#[tokio::test]
async fn objects_compose() {
    let emulator = Emulator::start();
    bucket(&emulator, "conf-compose").await;
    let first = put_object(&emulator, "conf-compose", "first", "ab").await;
    put_object(&emulator, "conf-compose", "second", "cd").await;
    let (status, composed) = emulator
        .rest(
            Method::POST,
            "storage/v1/b/conf-compose/o/both/compose",
            Some(json!({
                "sourceObjects": [
                    {"name": "first", "objectPreconditions": {"ifGenerationMatch": first["generation"]}},
                    {"name": "second"},
                ],
                "destination": {"contentType": "text/plain"},
            })),
        )
        .await;
    assert_eq!(status, 200, "{composed}");
    assert_eq!(composed["size"], "4");
    assert_eq!(composed["componentCount"], 2);
    assert_eq!(composed["contentType"], "text/plain");
    assert!(composed.get("md5Hash").is_none(), "{composed}");
    let expected = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        crc32c::crc32c(b"abcd").to_be_bytes(),
    );
    assert_eq!(composed["crc32c"], expected);
    let (_, nested) = emulator
        .rest(
            Method::POST,
            "storage/v1/b/conf-compose/o/three/compose",
            Some(json!({"sourceObjects": [{"name": "both"}, {"name": "first"}]})),
        )
        .await;
    assert_eq!(nested["componentCount"], 3, "components add up: {nested}");
    let (status, _) = emulator
        .rest(
            Method::POST,
            "storage/v1/b/conf-compose/o/stale/compose",
            Some(json!({"sourceObjects": [{"name": "first", "objectPreconditions": {"ifGenerationMatch": "1"}}]})),
        )
        .await;
    assert_eq!(status, 412);
    let (status, _) = emulator
        .rest(
            Method::POST,
            "storage/v1/b/conf-compose/o/none/compose",
            Some(json!({"sourceObjects": []})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = emulator
        .rest(
            Method::POST,
            "storage/v1/b/conf-compose/o/missing/compose",
            Some(json!({"sourceObjects": [{"name": "nope"}]})),
        )
        .await;
    assert_eq!(status, 404);
}

async fn start_session(emulator: &Emulator, bucket: &str, name: &str) -> String {
    let started = reqwest::Client::new()
        .post(format!(
            "{}/upload/storage/v1/b/{bucket}/o?uploadType=resumable",
            emulator.endpoint
        ))
        .json(&json!({"name": name}))
        .send()
        .await
        .expect("start");
    assert_eq!(started.status().as_u16(), 200);
    started
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .expect("Location")
        .to_string()
}

/// A resumable session outlives its upload: "If the upload has already completed, the response
/// [to a status check] is a 200 OK or 201 Created, along with the object's metadata" — how a
/// client whose last answer was lost learns that the object landed; and a DELETE on the session
/// URI cancels it: "If successful, the response contains a 499 status code"
/// (<https://cloud.google.com/storage/docs/performing-resumable-uploads>).
#[tokio::test]
async fn resumable_sessions_answer_after_completion_and_cancel_with_499() {
    let emulator = Emulator::start();
    bucket(&emulator, "conf-session").await;
    let client = reqwest::Client::new();
    let session = start_session(&emulator, "conf-session", "done.txt").await;
    let finished = client
        .put(&session)
        .header("content-range", "bytes 0-3/4")
        .body("data")
        .send()
        .await
        .expect("the only chunk");
    assert_eq!(finished.status().as_u16(), 200);
    let object: serde_json::Value = finished.json().await.expect("object");
    let status = client
        .put(&session)
        .header("content-range", "bytes */4")
        .send()
        .await
        .expect("status check");
    assert_eq!(status.status().as_u16(), 200);
    let again: serde_json::Value = status.json().await.expect("object again");
    assert_eq!(
        again["generation"], object["generation"],
        "the same object, not a new one"
    );

    let cancelled = start_session(&emulator, "conf-session", "never.txt").await;
    let answer = client.delete(&cancelled).send().await.expect("cancel");
    assert_eq!(answer.status().as_u16(), 499);
    let after = client
        .put(&cancelled)
        .header("content-range", "bytes 0-3/4")
        .body("data")
        .send()
        .await
        .expect("upload after cancel");
    assert!(after.status().is_client_error(), "{}", after.status());
    let (status, _) = emulator
        .rest(Method::GET, "storage/v1/b/conf-session/o/never.txt", None)
        .await;
    assert_eq!(status, 404);
}

/// objects.insert `contentEncoding`: "If set, sets the contentEncoding property of the final
/// object to this value"; objects.copy: the destination takes the source's metadata
/// (<https://cloud.google.com/storage/docs/json_api/v1/objects/copy>), the body's fields where
/// it names them.
#[tokio::test]
async fn insert_content_encoding_and_copied_metadata() {
    let emulator = emulator_writing_freely();
    bucket(&emulator, "conf-copy-meta").await;
    let uploaded = reqwest::Client::new()
        .post(format!(
            "{}/upload/storage/v1/b/conf-copy-meta/o?uploadType=media&name=source&contentEncoding=gzip",
            emulator.endpoint
        ))
        .body("not really gzip")
        .send()
        .await
        .expect("upload");
    let uploaded: serde_json::Value = uploaded.json().await.expect("object");
    assert_eq!(uploaded["contentEncoding"], "gzip", "{uploaded}");
    let (_, patched) = emulator
        .rest(
            Method::PATCH,
            "storage/v1/b/conf-copy-meta/o/source",
            Some(json!({"cacheControl": "no-cache", "contentLanguage": "de"})),
        )
        .await;
    assert_eq!(patched["cacheControl"], "no-cache");
    let (status, copied) = emulator
        .rest(
            Method::POST,
            "storage/v1/b/conf-copy-meta/o/source/copyTo/b/conf-copy-meta/o/copy",
            Some(json!({"contentLanguage": "fr"})),
        )
        .await;
    assert_eq!(status, 200, "{copied}");
    assert_eq!(copied["cacheControl"], "no-cache", "{copied}");
    assert_eq!(copied["contentEncoding"], "gzip");
    assert_eq!(copied["contentLanguage"], "fr", "the body's field wins");
}

/// objects.patch `generation`: "If present, selects a specific revision of this object (as
/// opposed to the latest version, the default)" — a noncurrent generation's metadata changes,
/// the live one's does not (<https://cloud.google.com/storage/docs/json_api/v1/objects/patch>).
#[tokio::test]
async fn patch_selects_the_named_generation() {
    let emulator = emulator_writing_freely();
    bucket(&emulator, "conf-patch-gen").await;
    let first = put_object(&emulator, "conf-patch-gen", "f", "one").await;
    let second = put_object(&emulator, "conf-patch-gen", "f", "two").await;
    let old = first["generation"].as_str().expect("generation");
    let (status, patched) = emulator
        .rest(
            Method::PATCH,
            &format!("storage/v1/b/conf-patch-gen/o/f?generation={old}"),
            Some(json!({"metadata": {"era": "old"}})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["generation"], first["generation"]);
    assert_eq!(patched["metadata"]["era"], "old");
    let (_, live) = emulator
        .rest(Method::GET, "storage/v1/b/conf-patch-gen/o/f", None)
        .await;
    assert_eq!(live["generation"], second["generation"]);
    assert!(
        live.get("metadata").is_none(),
        "the live generation is untouched: {live}"
    );
    let (status, _) = emulator
        .rest(
            Method::PATCH,
            "storage/v1/b/conf-patch-gen/o/f?generation=1",
            Some(json!({"metadata": {"era": "none"}})),
        )
        .await;
    assert_eq!(status, 404, "no such generation");
}

/// Object names: "1-1024 bytes when UTF-8 encoded", "cannot contain Carriage Return or Line Feed
/// characters", "cannot be named . or ..", "cannot start with .well-known/acme-challenge/"
/// (<https://cloud.google.com/storage/docs/objects#naming>).
#[tokio::test]
async fn invalid_object_names_are_refused() {
    let emulator = Emulator::start();
    bucket(&emulator, "conf-names").await;
    let long = "a".repeat(1025);
    for name in [
        ".",
        "..",
        "a%0Ab",
        "a%0Db",
        ".well-known/acme-challenge/token",
        long.as_str(),
    ] {
        let answer = reqwest::Client::new()
            .post(format!(
                "{}/upload/storage/v1/b/conf-names/o?uploadType=media&name={name}",
                emulator.endpoint
            ))
            .body("x")
            .send()
            .await
            .expect("upload");
        assert_eq!(answer.status().as_u16(), 400, "{name:.40}");
    }
    put_object(&emulator, "conf-names", "ok/.well-known", "x").await;
}

/// Decompressive transcoding (<https://cloud.google.com/storage/docs/transcoding>): an object
/// stored with `contentEncoding: gzip` is served compressed (`Content-Encoding: gzip`) to a
/// reader that sends `Accept-Encoding: gzip` — the official client's default — and
/// decompressed to one that does not (the client's `with_automatic_decompression(true)`).
#[tokio::test]
async fn gzip_objects_are_transcoded_unless_the_reader_accepts_gzip() {
    use google_cloud_storage::client::Storage;
    use std::io::Write;
    let emulator = Emulator::start();
    bucket(&emulator, "conf-gzip").await;
    let client = crate::client!(Storage, emulator);
    let bucket_name = "projects/_/buckets/conf-gzip";
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(b"plain text").expect("compress");
    let compressed = encoder.finish().expect("compressed");
    client
        .write_object(
            bucket_name,
            "page.txt",
            bytes::Bytes::from(compressed.clone()),
        )
        .set_content_encoding("gzip")
        .set_content_type("text/plain")
        .send_buffered()
        .await
        .expect("write");
    let read_all = |mut reader: google_cloud_storage::read_object::ReadObjectResponse| async move {
        let mut contents = Vec::new();
        while let Some(chunk) = reader.next().await {
            contents.extend_from_slice(&chunk.expect("chunk"));
        }
        contents
    };
    let stored = client
        .read_object(bucket_name, "page.txt")
        .send()
        .await
        .expect("read as stored");
    assert_eq!(stored.object().content_encoding, "gzip");
    assert_eq!(read_all(stored).await, compressed);
    let decompressed = client
        .read_object(bucket_name, "page.txt")
        .with_automatic_decompression(true)
        .send()
        .await
        .expect("read decompressed");
    assert_eq!(read_all(decompressed).await, b"plain text");
}

/// Object holds and retention: an object "under active Temporary hold" or Event-based hold, or
/// within its bucket's retention period, "cannot be deleted, overwritten or archived" — 403
/// (<https://cloud.google.com/storage/docs/object-holds>,
/// <https://cloud.google.com/storage/docs/bucket-lock>); a bucket's `defaultEventBasedHold`
/// puts new objects under an event-based hold.
#[tokio::test]
async fn holds_and_retention_keep_objects() {
    let emulator = emulator_writing_freely();
    bucket(&emulator, "conf-holds").await;
    put_object(&emulator, "conf-holds", "held", "x").await;
    let (_, held) = emulator
        .rest(
            Method::PATCH,
            "storage/v1/b/conf-holds/o/held",
            Some(json!({"temporaryHold": true})),
        )
        .await;
    assert_eq!(held["temporaryHold"], true);
    let (status, refused) = emulator
        .rest(Method::DELETE, "storage/v1/b/conf-holds/o/held", None)
        .await;
    assert_eq!(status, 403, "{refused}");
    let overwrite = reqwest::Client::new()
        .post(format!(
            "{}/upload/storage/v1/b/conf-holds/o?uploadType=media&name=held",
            emulator.endpoint
        ))
        .body("y")
        .send()
        .await
        .expect("overwrite");
    assert_eq!(overwrite.status().as_u16(), 403, "nor overwritten");
    emulator
        .rest(
            Method::PATCH,
            "storage/v1/b/conf-holds/o/held",
            Some(json!({"temporaryHold": false})),
        )
        .await;
    let (status, _) = emulator
        .rest(Method::DELETE, "storage/v1/b/conf-holds/o/held", None)
        .await;
    assert_eq!(status, 204, "released");

    let (status, _) = emulator
        .rest(
            Method::PATCH,
            "storage/v1/b/conf-holds",
            Some(json!({"defaultEventBasedHold": true, "retentionPolicy": {"retentionPeriod": "3600"}})),
        )
        .await;
    assert_eq!(status, 200);
    let fresh = put_object(&emulator, "conf-holds", "fresh", "x").await;
    assert_eq!(fresh["eventBasedHold"], true, "{fresh}");
    emulator
        .rest(
            Method::PATCH,
            "storage/v1/b/conf-holds/o/fresh",
            Some(json!({"eventBasedHold": false})),
        )
        .await;
    let (status, refused) = emulator
        .rest(Method::DELETE, "storage/v1/b/conf-holds/o/fresh", None)
        .await;
    assert_eq!(status, 403, "younger than the retention period: {refused}");
}

/// Injected faults keep Cloud Storage's own error shape (`errors[]` with a `reason`, no
/// `status`), as its JSON API answers them: 503 `backendError`, 429 `rateLimitExceeded`
/// (<https://cloud.google.com/storage/docs/json_api/v1/status-codes>).
#[tokio::test]
async fn injected_faults_answer_in_the_storage_error_shape() {
    for (flag, status, reason) in [
        ("--fail-rate", 503, "backendError"),
        ("--throttle-rate", 429, "rateLimitExceeded"),
    ] {
        let emulator = Emulator::start_with(&[flag, "1"]);
        let (code, body) = emulator
            .rest(Method::GET, "storage/v1/b?project=conformance", None)
            .await;
        assert_eq!(code, status, "{flag}: {body}");
        assert_eq!(
            body["error"]["errors"][0]["reason"], reason,
            "{flag}: {body}"
        );
    }
}

/// Storage classes: "If you don't specify a storage class for an object, it uses the bucket's
/// default storage class"; an unknown class is refused
/// (<https://cloud.google.com/storage/docs/storage-classes>).
#[tokio::test]
async fn objects_take_the_bucket_storage_class() {
    let emulator = Emulator::start();
    let (status, _) = emulator
        .rest(
            Method::POST,
            "storage/v1/b?project=conformance",
            Some(json!({"name": "conf-class", "storageClass": "NEARLINE"})),
        )
        .await;
    assert_eq!(status, 200);
    let inherited = put_object(&emulator, "conf-class", "inherited", "x").await;
    assert_eq!(inherited["storageClass"], "NEARLINE", "{inherited}");
    assert_eq!(
        inherited["timeStorageClassUpdated"], inherited["timeCreated"],
        "timeStorageClassUpdated is set from the start"
    );
    let media = reqwest::Client::new()
        .get(format!(
            "{}/storage/v1/b/conf-class/o/inherited?alt=media",
            emulator.endpoint
        ))
        .send()
        .await
        .expect("media");
    assert_eq!(media.headers()["x-goog-storage-class"], "NEARLINE");
    let (status, rewritten) = emulator
        .rest(
            Method::POST,
            "storage/v1/b/conf-class/o/inherited/rewriteTo/b/conf-class/o/cold",
            Some(json!({"storageClass": "COLDLINE"})),
        )
        .await;
    assert_eq!(status, 200, "{rewritten}");
    assert_eq!(rewritten["resource"]["storageClass"], "COLDLINE");
    let (status, _) = emulator
        .rest(
            Method::POST,
            "storage/v1/b?project=conformance",
            Some(json!({"name": "conf-class-bad", "storageClass": "LUKEWARM"})),
        )
        .await;
    assert_eq!(status, 400);
}

/// Bucket IAM (<https://cloud.google.com/storage/docs/json_api/v1/buckets/getIamPolicy>,
/// `setIamPolicy`, `testIamPermissions`): a `storage#policy` whose `resourceId` is
/// `projects/_/buckets/BUCKET`, starting with the legacy convenience bindings of a new bucket
/// (<https://cloud.google.com/storage/docs/access-control/iam#convenience-values>); a write with
/// a stale etag fails its precondition; conditions need version 3 and are read at version 3.
#[tokio::test]
async fn bucket_iam_policies() {
    let emulator = Emulator::start();
    bucket(&emulator, "conf-iam").await;
    let (status, initial) = emulator
        .rest(Method::GET, "storage/v1/b/conf-iam/iam", None)
        .await;
    assert_eq!(status, 200, "{initial}");
    assert_eq!(initial["kind"], "storage#policy");
    assert_eq!(initial["resourceId"], "projects/_/buckets/conf-iam");
    assert!(
        initial["bindings"]
            .as_array()
            .is_some_and(|bindings| bindings
                .iter()
                .any(|binding| binding["role"] == "roles/storage.legacyBucketOwner")),
        "{initial}"
    );
    let mut bindings = initial["bindings"].as_array().cloned().unwrap_or_default();
    bindings.push(json!({"role": "roles/storage.objectViewer", "members": ["allUsers"]}));
    let (status, written) = emulator
        .rest(
            Method::PUT,
            "storage/v1/b/conf-iam/iam",
            Some(json!({"bindings": bindings, "etag": initial["etag"]})),
        )
        .await;
    assert_eq!(status, 200, "{written}");
    assert_ne!(written["etag"], initial["etag"]);
    let (status, _) = emulator
        .rest(
            Method::PUT,
            "storage/v1/b/conf-iam/iam",
            Some(json!({"bindings": [], "etag": initial["etag"]})),
        )
        .await;
    assert_eq!(status, 412, "a stale etag");
    let conditional = json!({"role": "roles/storage.objectViewer", "members": ["user:a@example.com"],
        "condition": {"title": "t", "expression": "request.time < timestamp('2030-01-01T00:00:00Z')"}});
    let (status, _) = emulator
        .rest(
            Method::PUT,
            "storage/v1/b/conf-iam/iam",
            Some(json!({"bindings": [conditional.clone()]})),
        )
        .await;
    assert_eq!(status, 400, "conditions need version 3");
    let (status, _) = emulator
        .rest(
            Method::PUT,
            "storage/v1/b/conf-iam/iam",
            Some(json!({"version": 3, "bindings": [conditional]})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = emulator
        .rest(Method::GET, "storage/v1/b/conf-iam/iam", None)
        .await;
    assert_eq!(status, 400, "a conditional policy read below version 3");
    let (status, read) = emulator
        .rest(
            Method::GET,
            "storage/v1/b/conf-iam/iam?optionsRequestedPolicyVersion=3",
            None,
        )
        .await;
    assert_eq!((status, read["version"].as_i64()), (200, Some(3)), "{read}");
    let (status, tested) = emulator
        .rest(
            Method::GET,
            "storage/v1/b/conf-iam/iam/testPermissions?permissions=storage.buckets.get&permissions=storage.objects.list",
            None,
        )
        .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(
        tested["permissions"],
        json!(["storage.buckets.get", "storage.objects.list"])
    );
}

/// "When you enable uniform bucket-level access on a bucket, Access Control Lists (ACLs) are
/// disabled" — the emulator's buckets have it on unless created without it
/// (<https://cloud.google.com/storage/docs/uniform-bucket-level-access>): ACL methods and
/// predefined ACLs are refused with 400, not served or ignored.
#[tokio::test]
async fn uniform_bucket_level_access_refuses_acls() {
    let emulator = Emulator::start();
    bucket(&emulator, "conf-ubla").await;
    let (_, bucket_body) = emulator
        .rest(Method::GET, "storage/v1/b/conf-ubla", None)
        .await;
    assert_eq!(
        bucket_body["iamConfiguration"]["uniformBucketLevelAccess"]["enabled"],
        true
    );
    put_object(&emulator, "conf-ubla", "o", "x").await;
    for (method, path) in [
        (Method::GET, "storage/v1/b/conf-ubla/acl"),
        (Method::GET, "storage/v1/b/conf-ubla/defaultObjectAcl"),
        (Method::GET, "storage/v1/b/conf-ubla/o/o/acl"),
        (
            Method::PATCH,
            "storage/v1/b/conf-ubla/o/o?predefinedAcl=publicRead",
        ),
    ] {
        let (status, body) = emulator.rest(method.clone(), path, Some(json!({}))).await;
        assert_eq!(status, 400, "{method} {path}: {body}");
    }
    let (status, _) = emulator
        .rest(
            Method::POST,
            "storage/v1/b?project=conformance",
            Some(json!({
                "name": "conf-acl-bucket",
                "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": false}},
            })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = emulator
        .rest(Method::GET, "storage/v1/b/conf-acl-bucket/acl", None)
        .await;
    assert_eq!(status, 501, "ACLs themselves are not served: {body}");
}
