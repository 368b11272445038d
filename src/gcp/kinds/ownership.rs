//! Which objects are this environment's and state's: the ownership labels every labelled kind
//! adds (`managed-by`, `infra-env`, `infra-lineage`, and `infra-key` for server-named kinds),
//! the check a create makes before adopting an object it meets, and the create-or-adopt path of
//! kinds whose ids Google assigns, with the placeholder id their intent records carry and the
//! wait for a lagging list after an interrupted create. Kinds without labels (service accounts,
//! budgets) are not here.

use super::{KindContext, KindError};
use crate::gcp::GcpClient;
use crate::value::{Attributes, Value};

/// The user label that names which resource of which environment an object with a
/// server-assigned id belongs to, so an interrupted create finds it again.
pub const INFRA_KEY_LABEL: &str = "infra-key";

/// Returns the value of `INFRA_KEY_LABEL` for a resource: a digest of environment and address.
pub(crate) fn infra_key(context: &KindContext) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(format!("{}/{}", context.env_name, context.address))[..12])
}

/// What the id of an intent record of a server-named object starts with: it names no object, so
/// no read finds one.
const PENDING_PREFIX: &str = "pending-create/";

/// Returns the id an intent record names before the create of an object whose name Google
/// assigns in `collection` (`projects/p/alertPolicies`): a placeholder naming the collection,
/// this resource's `infra-key` and the state's lineage, so that even a delete finds what the
/// create may have made.
pub(crate) fn pending_id(collection: &str, context: &KindContext) -> String {
    format!(
        "{PENDING_PREFIX}{collection}#{}#{}",
        infra_key(context),
        label_value(&context.lineage)
    )
}

/// Returns the collection, `infra-key` and lineage label value a `pending_id` names.
pub(crate) fn parse_pending_id(id: &str) -> Option<(&str, &str, &str)> {
    let (rest, lineage) = id.strip_prefix(PENDING_PREFIX)?.rsplit_once('#')?;
    let (collection, key) = rest.rsplit_once('#')?;
    Some((collection, key, lineage))
}

/// Deletes what the interrupted create a pending intent record (`id`) stands for may have made
/// in a labelled collection (`version`/collection, items in `items_field`): the object with
/// its `infra-key` and this state's lineage, watched for in the lagging list over
/// `GcpClient::list_lag`. Nothing found is nothing to delete.
pub(crate) async fn delete_pending(
    client: &GcpClient,
    service: crate::gcp::Service,
    version: &str,
    items_field: &str,
    id: &str,
) -> Result<(), KindError> {
    let Some((collection, key, lineage)) = parse_pending_id(id) else {
        return Ok(());
    };
    let path = format!("{version}/{collection}");
    let find = || async {
        Ok(
            find_by_label(client, service, &path, items_field, "userLabels", key)
                .await?
                .into_iter()
                .find(|found| {
                    found.pointer(&format!("/userLabels/{LINEAGE_LABEL}"))
                        == Some(&serde_json::Value::String(lineage.to_string()))
                }),
        )
    };
    match super::find_within(client.list_lag(), &find).await? {
        Some(found) => {
            let name = found["name"].as_str().unwrap_or_default();
            tracing::info!("deleting {name}, made by an interrupted create");
            super::delete_if_exists(client, service, &format!("{version}/{name}"), &[]).await
        }
        None => Ok(()),
    }
}

/// Returns true for an id `pending_id` made: the create it stands for may have made an object
/// that only a list can find.
pub fn is_pending_id(id: &str) -> bool {
    id.starts_with(PENDING_PREFIX)
}

/// Returns a kind's user labels with the ownership labels and this resource's `infra-key`.
pub(crate) fn keyed_user_labels(
    context: &KindContext,
    config: &Attributes,
) -> std::collections::BTreeMap<String, Value> {
    let mut labels = managed_labels(context, config, "user_labels");
    labels.insert(INFRA_KEY_LABEL.into(), Value::string(infra_key(context)));
    labels
}

/// Creates an object in a collection whose ids Google assigns — unless an interrupted create
/// of this state already made it: the object carrying this resource's `infra-key` and this
/// environment's and state's ownership labels is adopted instead, by a PATCH of `body` with
/// `adopt_query` (an update mask, where the API needs one). One carrying the key but owned by
/// another state is an error: it is never taken over silently. One look at the list suffices
/// when nothing was sent before; after an interrupted run, `Kind::create_after_interruption`
/// first waits for the list (`wait_until_listed`).
pub(crate) async fn create_or_adopt(
    client: &GcpClient,
    service: crate::gcp::Service,
    collection_path: &str,
    items_field: &str,
    context: &KindContext,
    body: &serde_json::Value,
    adopt_query: &[(&str, String)],
) -> Result<serde_json::Value, KindError> {
    let key = infra_key(context);
    let find_ours = || async {
        let candidates =
            find_by_infra_key(client, service, collection_path, items_field, &key).await?;
        let ours = candidates
            .iter()
            .find(|found| check_owner(context, "", found.get("userLabels")).is_ok())
            .cloned();
        if ours.is_none()
            && let Some(foreign) = candidates.first()
        {
            // Carrying this resource's key but owned by another state: refuse, naming the owner.
            let name = foreign["name"].as_str().unwrap_or_default();
            check_owner(context, name, foreign.get("userLabels"))?;
        }
        Ok::<_, KindError>(ours)
    };
    let found = match find_ours().await? {
        Some(found) => found,
        None => {
            // Found only by listing, and lists lag a create: see `Lookup::Lags`.
            return super::create_checked(
                client,
                service,
                collection_path,
                &[],
                body,
                super::Lookup::Lags,
                find_ours,
            )
            .await;
        }
    };
    let name = found["name"].as_str().unwrap_or_default().to_string();
    tracing::info!("adopting {name}, created by an interrupted run");
    let answer = client
        .call(
            reqwest::Method::PATCH,
            service,
            &format!("v3/{name}"),
            adopt_query,
            Some(body),
        )
        .await?;
    Ok(answer)
}

/// Waits until the object an interrupted run may have made for this resource (its
/// `labels_field` carrying this resource's `infra-key`) shows in the collection's list, or
/// `GcpClient::list_lag` has passed: what that run made may be too new to be listed, and a
/// create must not take an empty list for proof that it made nothing.
pub(crate) async fn wait_until_listed(
    client: &GcpClient,
    service: crate::gcp::Service,
    collection_path: &str,
    items_field: &str,
    labels_field: &str,
    context: &KindContext,
) -> Result<(), KindError> {
    let key = infra_key(context);
    let find = || async {
        Ok(find_by_label(
            client,
            service,
            collection_path,
            items_field,
            labels_field,
            &key,
        )
        .await?
        .into_iter()
        .next())
    };
    super::wait_for_interrupted_create(client, context, &find).await
}

/// Finds, in a collection whose ids Google assigns, the objects carrying this resource's
/// `infra-key` user label: what an interrupted create left behind. Pages through the list.
async fn find_by_infra_key(
    client: &GcpClient,
    service: crate::gcp::Service,
    collection_path: &str,
    items_field: &str,
    key: &str,
) -> Result<Vec<serde_json::Value>, KindError> {
    find_by_label(
        client,
        service,
        collection_path,
        items_field,
        "userLabels",
        key,
    )
    .await
}

/// Finds the objects of a collection whose `labels_field` map carries `INFRA_KEY_LABEL = key`,
/// paging through the list.
pub(crate) async fn find_by_label(
    client: &GcpClient,
    service: crate::gcp::Service,
    collection_path: &str,
    items_field: &str,
    labels_field: &str,
    key: &str,
) -> Result<Vec<serde_json::Value>, KindError> {
    let mut found = Vec::new();
    let mut page_token = String::new();
    loop {
        let mut query = vec![("pageSize", "1000".to_string())];
        if !page_token.is_empty() {
            query.push(("pageToken", page_token.clone()));
        }
        let page = client
            .call(reqwest::Method::GET, service, collection_path, &query, None)
            .await?;
        found.extend(
            page[items_field]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|item| {
                    item.pointer(&format!("/{labels_field}/{INFRA_KEY_LABEL}"))
                        .and_then(|value| value.as_str())
                        == Some(key)
                })
                .cloned(),
        );
        match page["nextPageToken"]
            .as_str()
            .filter(|token| !token.is_empty())
        {
            Some(token) => page_token = token.to_string(),
            None => return Ok(found),
        }
    }
}

/// Returns a configured label map with the ownership labels added: `managed-by=infra`, the
/// environment and the state lineage.
pub(crate) fn managed_labels(
    context: &KindContext,
    config: &Attributes,
    field: &str,
) -> std::collections::BTreeMap<String, Value> {
    let mut labels = config
        .get(field)
        .and_then(Value::as_map)
        .cloned()
        .unwrap_or_default();
    labels.insert(MANAGED_BY_LABEL.0.into(), Value::string(MANAGED_BY_LABEL.1));
    labels.insert(
        ENV_LABEL.into(),
        Value::string(label_value(&context.env_name)),
    );
    labels.insert(
        LINEAGE_LABEL.into(),
        Value::string(label_value(&context.lineage)),
    );
    labels
}

/// Returns the label every object created by `infra` carries.
pub const MANAGED_BY_LABEL: (&str, &str) = ("managed-by", "infra");

/// The label naming the environment that created an object.
pub const ENV_LABEL: &str = "infra-env";

/// The label naming the state lineage that created an object.
pub const LINEAGE_LABEL: &str = "infra-lineage";

/// The label (and value) marking infra's own fingerprint key secret (`gcp::fingerprint_key`).
pub const KEY_ROLE_LABEL: (&str, &str) = ("infra-role", "fingerprint-key");

/// Returns `text` as a valid label value: lowercase letters, digits, `-` and `_`, at most 63
/// characters (Google's rule for label values); anything else becomes `-`.
pub fn label_value(text: &str) -> String {
    text.chars()
        .map(|character| {
            let lower = character.to_ascii_lowercase();
            if lower.is_ascii_lowercase() || lower.is_ascii_digit() || lower == '-' || lower == '_'
            {
                lower
            } else {
                '-'
            }
        })
        .take(63)
        .collect()
}

/// Checks that an existing object met on create (`name`, with its `labels`) belongs to this
/// environment and state: only then may it be adopted as what an interrupted create left.
/// Anything else is a conflict naming its owner, with the import command as the way to take it
/// over on purpose.
pub(crate) fn check_owner(
    context: &KindContext,
    name: &str,
    labels: Option<&serde_json::Value>,
) -> Result<(), KindError> {
    let label = |key: &str| {
        labels
            .and_then(|labels| labels.get(key))
            .and_then(serde_json::Value::as_str)
    };
    let env = label(ENV_LABEL);
    let lineage = label(LINEAGE_LABEL);
    let managed = label(MANAGED_BY_LABEL.0) == Some(MANAGED_BY_LABEL.1);
    if managed
        && env == Some(label_value(&context.env_name).as_str())
        && lineage == Some(label_value(&context.lineage).as_str())
    {
        return Ok(());
    }
    if label(KEY_ROLE_LABEL.0) == Some(KEY_ROLE_LABEL.1) {
        return Err(KindError::Conflict {
            message: format!(
                "{name} is infra's own fingerprint key of environment `{}`: not adopted",
                env.unwrap_or("?")
            ),
            hint: "give this resource another name: that one is reserved (docs/state.md)".into(),
        });
    }
    let owner = match (managed, env, lineage) {
        (false, ..) => "not created by infra".to_string(),
        (true, Some(env), Some(lineage)) => {
            format!("owned by environment `{env}`, state lineage {lineage}")
        }
        (true, env, lineage) => format!(
            "created by infra for environment `{}`, state lineage {} (labels incomplete: an older build, or edited)",
            env.unwrap_or("?"),
            lineage.unwrap_or("?")
        ),
    };
    Err(KindError::Conflict {
        message: format!("{name} already exists and is {owner}: not adopted"),
        hint: format!(
            "if this environment should manage it: `infra import --env {} '{}' {name}`; otherwise give this resource another name",
            context.env_name, context.address
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> KindContext {
        KindContext {
            address: "secret.a".into(),
            project: "p".into(),
            region: "r".into(),
            env_name: "Staging.EU".into(),
            lineage: "0b9c-LINEAGE".into(),
            fingerprint_key: None,
            legacy_salt: None,
        }
    }

    #[test]
    fn a_pending_id_names_its_collection_key_and_lineage_and_no_object() {
        let context = context();
        let id = pending_id("projects/p/alertPolicies", &context);
        assert!(is_pending_id(&id));
        assert_eq!(
            parse_pending_id(&id),
            Some((
                "projects/p/alertPolicies",
                infra_key(&context).as_str(),
                "0b9c-lineage"
            ))
        );
        assert!(!is_pending_id("projects/p/alertPolicies/123"));
        assert_eq!(parse_pending_id("projects/p/alertPolicies/123"), None);
    }

    #[test]
    fn the_fingerprint_key_is_never_adopted() {
        let labels = json!({"managed-by": "infra", "infra-env": "staging-eu", "infra-role": "fingerprint-key"});
        let error = check_owner(&context(), "projects/p/secrets/K", Some(&labels))
            .expect_err("refused")
            .to_string();
        assert!(
            error.contains("is infra's own fingerprint key of environment `staging-eu`")
                && error.contains("hint: give this resource another name"),
            "{error}"
        );
    }

    #[test]
    fn label_values_are_lowercase_and_at_most_63_characters() {
        assert_eq!(label_value("Staging.EU"), "staging-eu");
        assert_eq!(label_value("a_b-c9"), "a_b-c9");
        assert_eq!(label_value(&"x".repeat(80)).len(), 63);
    }

    #[test]
    fn created_objects_carry_the_environment_and_the_lineage() {
        let labels = managed_labels(&context(), &Attributes::new(), "labels");
        assert_eq!(labels["managed-by"], Value::string("infra"));
        assert_eq!(labels[ENV_LABEL], Value::string("staging-eu"));
        assert_eq!(labels[LINEAGE_LABEL], Value::string("0b9c-lineage"));
    }

    #[test]
    fn only_an_object_of_this_environment_and_state_may_be_adopted() {
        let context = context();
        let ours = json!({"managed-by": "infra", "infra-env": "staging-eu", "infra-lineage": "0b9c-lineage"});
        assert!(check_owner(&context, "projects/p/secrets/A", Some(&ours)).is_ok());
        let cases = [
            (json!({}), "is not created by infra"),
            (
                json!({"managed-by": "infra", "infra-env": "prod", "infra-lineage": "0b9c-lineage"}),
                "is owned by environment `prod`, state lineage 0b9c-lineage",
            ),
            (
                json!({"managed-by": "infra", "infra-env": "staging-eu", "infra-lineage": "other"}),
                "is owned by environment `staging-eu`, state lineage other",
            ),
            (
                json!({"managed-by": "infra"}),
                "created by infra for environment `?`, state lineage ? (labels incomplete",
            ),
        ];
        for (labels, owner) in cases {
            let error = check_owner(&context, "projects/p/secrets/A", Some(&labels))
                .expect_err("refused")
                .to_string();
            assert!(
                error.starts_with("projects/p/secrets/A already exists and ")
                    && error.contains(owner),
                "{error}"
            );
            assert!(
                error.contains("hint: if this environment should manage it: `infra import --env Staging.EU 'secret.a' projects/p/secrets/A`"),
                "{error}"
            );
        }
    }
}
