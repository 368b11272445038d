//! The environment's fingerprint key, kept in Secret Manager of the environment's own project
//! (`infra-fingerprint-key-<env>`): read once per run, created with 256 random bits by the first
//! apply that writes a secret. It is infra's bookkeeping, not a resource: it is in neither the
//! graph nor the state, so it never shows as drift and `destroy` never deletes it. Computing
//! fingerprints is `sensitive.rs`'s business; this file only fetches and creates the key.

use super::kinds::{ENV_LABEL, KEY_ROLE_LABEL, MANAGED_BY_LABEL, label_value};
use super::{GcpClient, GcpError, Service};
use crate::sensitive::FingerprintKey;
use base64::Engine;
use reqwest::Method;
use serde_json::json;
use std::collections::BTreeSet;

/// Why the fingerprint key could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum FingerprintKeyError {
    #[error(transparent)]
    Gcp(#[from] GcpError),
    #[error("{name}: {message}\n  hint: {hint}")]
    Unusable {
        name: String,
        message: String,
        hint: String,
    },
}

/// Returns the full name of the environment's key secret.
pub fn key_secret_name(project: &str, env_name: &str) -> String {
    let env_id: String = env_name
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() || character == '-' || character == '_' {
                character
            } else {
                '-'
            }
        })
        .collect();
    format!("projects/{project}/secrets/infra-fingerprint-key-{env_id}")
}

/// Reads the environment's key (its newest version), with the `previous` versions that state's
/// fingerprints still name (after a rotation) so those keep verifying; `None` when the key does
/// not exist yet. A previous version that is gone or disabled is skipped: what it fingerprinted
/// shows as an update, and is written again under the newest.
pub async fn read_key(
    client: &GcpClient,
    project: &str,
    env_name: &str,
    previous: &BTreeSet<String>,
) -> Result<Option<FingerprintKey>, FingerprintKeyError> {
    let name = key_secret_name(project, env_name);
    let floor = previous
        .iter()
        .filter_map(|version| version.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    let latest = match newest_key_version(client, &name, floor).await? {
        None => return Ok(None),
        Some((_, KeyVersion::Usable(key))) => key,
        Some((number, KeyVersion::NotEnabled(error))) => {
            return Err(unusable(
                &name,
                format!("version {number} cannot be read ({error})"),
            ));
        }
        Some((_, KeyVersion::Missing)) => return Ok(None),
    };
    let mut older = Vec::new();
    for version in previous.iter().filter(|version| *version != latest.id()) {
        match read_version(client, &name, version).await {
            Ok(KeyVersion::Usable(key)) => older.push(key),
            Ok(KeyVersion::Missing) => {
                tracing::warn!("{name}: version {version}, named in state, is gone")
            }
            Ok(KeyVersion::NotEnabled(error)) => {
                tracing::warn!("{name}: version {version} cannot be read: {error}")
            }
            Err(error) => tracing::warn!("{name}: version {version} cannot be read: {error}"),
        }
    }
    Ok(Some(latest.with_previous(older)))
}

/// One version of the key secret, as an access answered.
enum KeyVersion {
    /// It (or the secret) does not exist.
    Missing,
    /// It exists but is disabled or destroyed (400 FAILED_PRECONDITION).
    NotEnabled(GcpError),
    Usable(FingerprintKey),
}

/// Returns the key secret's newest version and its number; `None` when it has none.
///
/// `latest` lags an add ("This doesn't apply when you access a secret version using aliases or
/// `latest`", <https://cloud.google.com/secret-manager/docs/reference/consistency>): right
/// after the first apply made the key it may answer 404, after a rotation the version before.
/// So `latest` and `floor` (the newest version state's fingerprints name) only give a number to
/// start from, and versions are then accessed by number — strongly consistent — upward until
/// one does not exist. Only `secretmanager.versions.access` is needed, as for `latest`.
async fn newest_key_version(
    client: &GcpClient,
    name: &str,
    floor: u64,
) -> Result<Option<(u64, KeyVersion)>, FingerprintKeyError> {
    let mut newest = match read_version(client, name, "latest").await? {
        KeyVersion::Usable(key) => key
            .id()
            .parse::<u64>()
            .ok()
            .map(|number| (number, KeyVersion::Usable(key))),
        // Missing, perhaps only not visible yet; or not enabled, under a number not given.
        _ => None,
    };
    let mut number = newest.as_ref().map_or(0, |(number, _)| *number);
    if floor > number {
        match read_version(client, name, &floor.to_string()).await? {
            // Recorded by a state of a key secret deleted since: counted from below.
            KeyVersion::Missing => {}
            found => {
                newest = Some((floor, found));
                number = floor;
            }
        }
    }
    loop {
        number += 1;
        match read_version(client, name, &number.to_string()).await? {
            KeyVersion::Missing => return Ok(newest),
            found => newest = Some((number, found)),
        }
    }
}

/// Accesses one version (a number or `latest`) of the key secret `name`.
async fn read_version(
    client: &GcpClient,
    name: &str,
    version: &str,
) -> Result<KeyVersion, FingerprintKeyError> {
    let accessed = match client
        .call(
            Method::GET,
            Service::SecretManager,
            &format!("v1/{name}/versions/{version}:access"),
            &[],
            None,
        )
        .await
    {
        Ok(accessed) => accessed,
        Err(error) if error.is_not_found() => return Ok(KeyVersion::Missing),
        Err(error) if error.code() == Some(400) => return Ok(KeyVersion::NotEnabled(error)),
        Err(error) => return Err(error.into()),
    };
    let number = accessed
        .get("name")
        .and_then(|name| name.as_str())
        .and_then(|name| name.rsplit('/').next())
        .filter(|number| !number.is_empty())
        .ok_or_else(|| unusable(name, "the accessed version has no name".into()))?
        .to_string();
    let material = accessed
        .pointer("/payload/data")
        .and_then(|data| data.as_str())
        .and_then(|data| base64::engine::general_purpose::STANDARD.decode(data).ok())
        .unwrap_or_default();
    FingerprintKey::new(&number, &material)
        .map(KeyVersion::Usable)
        .map_err(|error| unusable(name, format!("version {number}: {error}")))
}

/// Returns the environment's key, creating its secret and a first version when missing.
/// Only `apply` (and `import`) call this, under the state lock.
pub async fn ensure_key(
    client: &GcpClient,
    project: &str,
    env_name: &str,
) -> Result<FingerprintKey, FingerprintKeyError> {
    if let Some(key) = read_key(client, project, env_name, &BTreeSet::new()).await? {
        return Ok(key);
    }
    create_key(client, project, env_name).await
}

/// Creates the environment's key, which a read under the same state lock found missing (its
/// secret, or a usable version): `ensure_key` without reading first. A secret found existing
/// after all is read again, and a key there is used as it is, never replaced by a new version.
pub async fn create_key(
    client: &GcpClient,
    project: &str,
    env_name: &str,
) -> Result<FingerprintKey, FingerprintKeyError> {
    let name = key_secret_name(project, env_name);
    let secret_id = name.rsplit('/').next().unwrap_or_default().to_string();
    let secret_body = json!({
        "replication": {"automatic": {}},
        "labels": {
            MANAGED_BY_LABEL.0: MANAGED_BY_LABEL.1,
            ENV_LABEL: label_value(env_name),
            KEY_ROLE_LABEL.0: KEY_ROLE_LABEL.1,
        },
    });
    let collection = format!("v1/projects/{project}/secrets");
    let query = [("secretId", secret_id)];
    let create_secret = || {
        client.call(
            Method::POST,
            Service::SecretManager,
            &collection,
            &query,
            Some(&secret_body),
        )
    };
    let mut created = create_secret().await;
    if let Err(error) = &created
        && error.is_outcome_unknown()
    {
        // The create may have committed: sent again, it meets its own secret as a 409, which
        // the label check below recognises.
        tracing::info!("{error}: sending the key's create again to learn its outcome");
        created = create_secret().await;
    }
    match created {
        Ok(_) => {}
        // The secret exists without a version (a run died between the two calls), or is not ours,
        // or (made since the read that found it missing) already holds a key.
        Err(error) if error.code() == Some(409) => {
            if let Some(key) = read_key(client, project, env_name, &BTreeSet::new()).await? {
                return Ok(key);
            }
            let existing = client
                .call(
                    Method::GET,
                    Service::SecretManager,
                    &format!("v1/{name}"),
                    &[],
                    None,
                )
                .await?;
            if existing.pointer(&format!("/labels/{}", KEY_ROLE_LABEL.0))
                != Some(&json!(KEY_ROLE_LABEL.1))
            {
                return Err(unusable(
                    &name,
                    "exists, has no version, and is not labelled as infra's fingerprint key".into(),
                ));
            }
        }
        Err(error) => return Err(error.into()),
    }
    let material = FingerprintKey::generate_material();
    let body = json!({
        "payload": {
            "data": base64::engine::general_purpose::STANDARD.encode(&material),
            "dataCrc32c": crc32c::crc32c(&material).to_string(),
        }
    });
    let version = match client
        .call(
            Method::POST,
            Service::SecretManager,
            &format!("v1/{name}:addVersion"),
            &[],
            Some(&body),
        )
        .await
    {
        Ok(version) => version,
        Err(error) if error.is_outcome_unknown() => {
            // Under the state lock nobody else writes this key: a version there now is the one
            // just sent. Only when none landed is the add sent again.
            if let Some(key) = read_key(client, project, env_name, &BTreeSet::new()).await? {
                return Ok(key);
            }
            client
                .call(
                    Method::POST,
                    Service::SecretManager,
                    &format!("v1/{name}:addVersion"),
                    &[],
                    Some(&body),
                )
                .await?
        }
        Err(error) => return Err(error.into()),
    };
    let version = version
        .get("name")
        .and_then(|name| name.as_str())
        .and_then(|name| name.rsplit('/').next())
        .filter(|version| !version.is_empty())
        .ok_or_else(|| unusable(&name, "the new version has no name".into()))?
        .to_string();
    tracing::info!("created the fingerprint key {name} (version {version})");
    FingerprintKey::new(&version, &material)
        .map_err(|error| unusable(&name, format!("version {version}: {error}")))
}

fn unusable(name: &str, message: String) -> FingerprintKeyError {
    FingerprintKeyError::Unusable {
        name: name.to_string(),
        message,
        hint: format!(
            "enable its latest version, or add a new one with 32 random bytes (`head -c 32 /dev/urandom | gcloud secrets versions add {} --data-file=-`); secrets are then re-fingerprinted (docs/state.md)",
            name.rsplit('/').next().unwrap_or(name)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_secret_is_named_after_the_environment() {
        assert_eq!(
            key_secret_name("p", "Prod_EU.1"),
            "projects/p/secrets/infra-fingerprint-key-Prod_EU-1"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_made_since_it_was_found_missing_is_used_not_replaced() {
        let (_emulator, client) = crate::gcp::client::emulator_and_client().await;
        let first = create_key(&client, "p", "t").await.expect("created");
        let again = create_key(&client, "p", "t").await.expect("found");
        assert_eq!(again.id(), first.id(), "the same version, none added");
        // Counted by number: the versions list, like `latest`, lags the add.
        let secret = key_secret_name("p", "t");
        let first = crate::gcp::secret_versions::get_version(&client, &secret, 1).await;
        assert!(first.expect("read").is_some());
        let second = crate::gcp::secret_versions::get_version(&client, &secret, 2).await;
        assert!(second.expect("read").is_none(), "no second version");
    }
}
