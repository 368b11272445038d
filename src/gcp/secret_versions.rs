//! Reading Secret Manager versions the way Google guarantees: by number. "Adding a secret
//! version and then immediately accessing that secret version by version number is a strongly
//! consistent operation", while `latest`, aliases and every other operation (lists included)
//! are eventually consistent
//! (<https://cloud.google.com/secret-manager/docs/reference/consistency>). So nothing here
//! resolves `latest` or trusts a list to prove that a version does not exist: a list gives at
//! most a floor, and versions are read by number above it. What a version holds is compared
//! by its callers; this file never keeps a payload beyond returning it redacted.

use super::{GcpClient, GcpError, Service};
use crate::sensitive::Redacted;
use base64::Engine;
use reqwest::Method;
use serde_json::Value as Json;

/// Returns the number a version name (`…/versions/3`) or id (`3`) ends with.
pub fn version_number(version: &str) -> Option<u64> {
    version.rsplit('/').next()?.parse().ok()
}

/// Splits a version name (`projects/P/secrets/S/versions/3`) into the secret's name and the
/// version id; `None` for anything else (a secret name, a bare id).
pub fn split_version_name(name: &str) -> Option<(&str, &str)> {
    let (secret, version) = name.rsplit_once("/versions/")?;
    let valid = matches!(secret.split('/').collect::<Vec<_>>()[..], ["projects", project, "secrets", id] if !project.is_empty() && !id.is_empty())
        && !version.is_empty()
        && !version.contains('/');
    valid.then_some((secret, version))
}

/// Reads version `number` of `secret` (metadata only); `None` when it does not exist.
pub async fn get_version(
    client: &GcpClient,
    secret: &str,
    number: u64,
) -> Result<Option<Json>, GcpError> {
    match client
        .call(
            Method::GET,
            Service::SecretManager,
            &format!("v1/{secret}/versions/{number}"),
            &[],
            None,
        )
        .await
    {
        Ok(version) => Ok(Some(version)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

/// Returns the payload of version `number` of `secret`; `None` when it does not exist or is
/// not enabled (Google answers 400 FAILED_PRECONDITION for a disabled or destroyed version).
pub async fn access_version(
    client: &GcpClient,
    secret: &str,
    number: u64,
) -> Result<Option<Redacted<Vec<u8>>>, GcpError> {
    let accessed = match client
        .call(
            Method::GET,
            Service::SecretManager,
            &format!("v1/{secret}/versions/{number}:access"),
            &[],
            None,
        )
        .await
    {
        Ok(accessed) => accessed,
        Err(error) if error.is_not_found() || error.code() == Some(400) => return Ok(None),
        Err(error) => return Err(error),
    };
    let data = accessed
        .pointer("/payload/data")
        .and_then(Json::as_str)
        .unwrap_or_default();
    Ok(base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()
        .map(Redacted::new))
}

/// Returns the newest version of `secret` (its number and metadata), `None` when it has none
/// or does not exist. `floor` is a number known to exist (from state; 0 when none is known).
///
/// Version numbers grow by one per added version and versions are never deleted (only
/// destroyed), so the newest is the last number that exists: the versions list — newest
/// first, but eventually consistent, so possibly missing the newest — only raises the floor,
/// and versions are then read by number upward until one is missing. A version that was
/// added is found by number, so the first missing number ends the search for certain.
pub async fn newest_version(
    client: &GcpClient,
    secret: &str,
    floor: u64,
) -> Result<Option<(u64, Json)>, GcpError> {
    let listed = match client
        .call(
            Method::GET,
            Service::SecretManager,
            &format!("v1/{secret}/versions"),
            &[("pageSize", "1".into())],
            None,
        )
        .await
    {
        Ok(listed) => listed,
        Err(error) if error.is_not_found() => return Ok(None),
        Err(error) => return Err(error),
    };
    let listed_newest = listed["versions"]
        .as_array()
        .and_then(|versions| versions.first())
        .and_then(|version| version["name"].as_str())
        .and_then(version_number)
        .unwrap_or(0);
    let mut start = floor.max(listed_newest);
    let mut newest = None;
    if start > 0 {
        match get_version(client, secret, start).await? {
            Some(version) => newest = Some((start, version)),
            // A floor from another secret of the same name (deleted and made again since):
            // count from the first version.
            None => start = 0,
        }
    }
    let mut number = start;
    loop {
        number += 1;
        match get_version(client, secret, number).await? {
            Some(version) => newest = Some((number, version)),
            None => return Ok(newest),
        }
    }
}

/// Returns whether `version` (metadata) is enabled.
pub fn is_enabled(version: &Json) -> bool {
    version["state"] == "ENABLED"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_numbers_are_read_from_names_and_ids() {
        assert_eq!(version_number("projects/p/secrets/s/versions/12"), Some(12));
        assert_eq!(version_number("3"), Some(3));
        assert_eq!(version_number("projects/p/secrets/s/versions/latest"), None);
        assert_eq!(version_number(""), None);
    }

    #[test]
    fn version_names_split_into_secret_and_version() {
        assert_eq!(
            split_version_name("projects/p/secrets/S/versions/3"),
            Some(("projects/p/secrets/S", "3"))
        );
        assert_eq!(split_version_name("projects/p/secrets/S"), None);
        assert_eq!(split_version_name("S/versions/3"), None);
        assert_eq!(split_version_name("projects/p/secrets/S/versions/"), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_newest_version_is_found_while_latest_and_the_list_lag() {
        let (_emulator, client) = crate::gcp::client::emulator_and_client().await;
        let secret = "projects/p/secrets/lagging";
        client
            .call(
                Method::POST,
                Service::SecretManager,
                "v1/projects/p/secrets",
                &[("secretId", "lagging".into())],
                Some(&serde_json::json!({"replication": {"automatic": {}}})),
            )
            .await
            .expect("secret");
        assert!(
            newest_version(&client, secret, 0)
                .await
                .expect("read")
                .is_none()
        );
        for data in ["b25l", "dHdv"] {
            client
                .call(
                    Method::POST,
                    Service::SecretManager,
                    &format!("v1/{secret}:addVersion"),
                    &[],
                    Some(&serde_json::json!({"payload": {"data": data}})),
                )
                .await
                .expect("add");
        }
        // The default realism lags `latest` and lists by seconds: neither shows version 2 yet.
        let latest = client
            .call(
                Method::GET,
                Service::SecretManager,
                &format!("v1/{secret}/versions/latest"),
                &[],
                None,
            )
            .await;
        assert!(latest.is_err(), "latest lags: {latest:?}");
        let (number, version) = newest_version(&client, secret, 0)
            .await
            .expect("read")
            .expect("found");
        assert_eq!(number, 2);
        assert!(is_enabled(&version));
        let payload = access_version(&client, secret, 2)
            .await
            .expect("access")
            .expect("enabled");
        assert_eq!(payload.expose().as_slice(), b"two");
        assert!(
            access_version(&client, secret, 3)
                .await
                .expect("access")
                .is_none()
        );
    }
}
