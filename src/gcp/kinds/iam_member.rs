//! The `iam_member` kind: one member in one role of a resource's IAM policy, managed additively
//! (other members and roles are left alone). Writes are read-modify-write with the policy etag,
//! serialized per parent within a run and retried when another writer got there first.

use super::{Created, FieldSpec, FieldType, Kind, KindContext, KindError, string_attribute};
use crate::gcp::{GcpClient, GcpError, Service};
use crate::state::StateResource;
use crate::value::{Attributes, Value};
use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value as Json, json};

/// Additive IAM membership on a secret (more parents arrive with their kinds).
pub struct IamMemberKind;

static FIELDS: [FieldSpec; 3] = [
    FieldSpec::optional("parent", FieldType::String)
        .required()
        .force_new(),
    FieldSpec::optional("role", FieldType::String)
        .required()
        .force_new(),
    FieldSpec::optional("member", FieldType::String)
        .required()
        .force_new(),
];

const MEMBER_PREFIXES: [&str; 9] = [
    "user:",
    "serviceAccount:",
    "group:",
    "domain:",
    "principal://",
    "principalSet://",
    "deleted:",
    "allUsers",
    "allAuthenticatedUsers",
];

/// The resource whose policy an `iam_member` edits, and how its API reads and writes policies.
enum PolicyParent {
    Secret(String),
}

impl PolicyParent {
    fn parse(parent: &str) -> Option<Self> {
        match parent.split('/').collect::<Vec<_>>()[..] {
            ["projects", project, "secrets", secret]
                if !project.is_empty() && !secret.is_empty() =>
            {
                Some(PolicyParent::Secret(parent.to_string()))
            }
            _ => None,
        }
    }

    async fn get_policy(&self, client: &GcpClient) -> Result<Json, GcpError> {
        match self {
            PolicyParent::Secret(name) => {
                client
                    .call(
                        Method::GET,
                        Service::SecretManager,
                        &format!("v1/{name}:getIamPolicy"),
                        &[("options.requestedPolicyVersion", "3".into())],
                        None,
                    )
                    .await
            }
        }
    }

    async fn set_policy(&self, client: &GcpClient, policy: Json) -> Result<Json, GcpError> {
        match self {
            PolicyParent::Secret(name) => {
                let body = json!({"policy": policy});
                client
                    .call(
                        Method::POST,
                        Service::SecretManager,
                        &format!("v1/{name}:setIamPolicy"),
                        &[],
                        Some(&body),
                    )
                    .await
            }
        }
    }
}

/// Returns true when the policy grants `role` to `member` without a condition.
fn policy_has(policy: &Json, role: &str, member: &str) -> bool {
    policy["bindings"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|binding| {
            binding["role"] == role
                && binding.get("condition").is_none_or(Json::is_null)
                && binding["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|candidate| candidate == member)
        })
}

/// Adds or removes one member of one unconditional role binding; returns false when nothing changes.
fn edit_policy(policy: &mut Json, role: &str, member: &str, present: bool) -> bool {
    if policy_has(policy, role, member) == present {
        return false;
    }
    if !policy["bindings"].is_array() {
        policy["bindings"] = json!([]);
    }
    let Some(bindings) = policy["bindings"].as_array_mut() else {
        return false;
    };
    let unconditional = |binding: &Json| {
        binding["role"] == role && binding.get("condition").is_none_or(Json::is_null)
    };
    if present {
        match bindings.iter_mut().find(|binding| unconditional(binding)) {
            Some(binding) => {
                if let Some(members) = binding["members"].as_array_mut() {
                    members.push(json!(member));
                }
            }
            None => bindings.push(json!({"role": role, "members": [member]})),
        }
    } else {
        for binding in bindings.iter_mut().filter(|binding| unconditional(binding)) {
            if let Some(members) = binding["members"].as_array_mut() {
                members.retain(|candidate| candidate != member);
            }
        }
        // Google refuses bindings without members.
        bindings.retain(|binding| {
            binding["members"]
                .as_array()
                .is_some_and(|members| !members.is_empty())
        });
    }
    // Conditional bindings need version 3; writing it is harmless otherwise.
    policy["version"] = json!(3);
    true
}

impl IamMemberKind {
    fn parts(config: &Attributes) -> (String, String, String) {
        let get = |name: &str| {
            string_attribute(config, name)
                .unwrap_or_default()
                .to_string()
        };
        (get("parent"), get("role"), get("member"))
    }

    fn parse_id(id: &str) -> Result<(String, String, String), KindError> {
        match id.split(' ').collect::<Vec<_>>()[..] {
            [parent, role, member] => Ok((parent.into(), role.into(), member.into())),
            _ => Err(KindError::Invalid(format!(
                "`{id}` is not an iam_member id (`PARENT ROLE MEMBER`)"
            ))),
        }
    }

    /// Runs one read-modify-write cycle, again from the read whenever the write loses a race.
    async fn modify(
        client: &GcpClient,
        parent: &str,
        role: &str,
        member: &str,
        present: bool,
    ) -> Result<(), KindError> {
        let policy_parent = PolicyParent::parse(parent).ok_or_else(|| {
            KindError::Invalid(format!(
                "parent `{parent}`: not a supported resource (projects/P/secrets/S)"
            ))
        })?;
        let lock = client.parent_lock(parent);
        let _serialized = lock.lock().await;
        let retry = client.retry_policy().clone();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut policy = match policy_parent.get_policy(client).await {
                Ok(policy) => policy,
                Err(error) if error.is_not_found() && !present => return Ok(()),
                Err(error) => return Err(error.into()),
            };
            if !edit_policy(&mut policy, role, member, present) {
                return Ok(());
            }
            match policy_parent.set_policy(client, policy).await {
                Ok(_) => return Ok(()),
                Err(error) if error.is_concurrency_conflict() && attempt < retry.max_attempts => {
                    tracing::debug!(
                        parent,
                        attempt,
                        "policy changed under us, reading it again: {error}"
                    );
                    tokio::time::sleep(retry.delay(attempt)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}

#[async_trait]
impl Kind for IamMemberKind {
    fn name(&self) -> &'static str {
        "iam_member"
    }

    fn fields(&self) -> &'static [FieldSpec] {
        &FIELDS
    }

    fn check(&self, config: &Attributes) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(Value::String(member)) = config.get("member") {
            let known = MEMBER_PREFIXES
                .iter()
                .any(|prefix| member.starts_with(prefix));
            let bare = member.ends_with(':') || member.contains(' ');
            if !known || bare {
                problems.push(format!("member {member:?}: use user:EMAIL, serviceAccount:EMAIL, group:EMAIL, domain:DOMAIN, allUsers or allAuthenticatedUsers"));
            }
        }
        if let Some(Value::String(role)) = config.get("role")
            && !(role.starts_with("roles/") || role.contains("/roles/"))
        {
            problems.push(format!(
                "role {role:?}: roles look like roles/secretmanager.secretAccessor"
            ));
        }
        if let Some(Value::String(parent)) = config.get("parent")
            && PolicyParent::parse(parent).is_none()
        {
            problems.push(format!(
                "parent {parent:?}: not a supported resource (projects/P/secrets/S)"
            ));
        }
        problems
    }

    fn resource_id(&self, _context: &KindContext, config: &Attributes) -> Option<String> {
        let (parent, role, member) = Self::parts(config);
        (!parent.is_empty() && !role.is_empty() && !member.is_empty())
            .then(|| format!("{parent} {role} {member}"))
    }

    fn desired(
        &self,
        _context: &KindContext,
        config: &Attributes,
        _prior: Option<&StateResource>,
    ) -> Result<Attributes, KindError> {
        Ok(["parent", "role", "member"]
            .into_iter()
            .map(|field| {
                (
                    field.to_string(),
                    config.get(field).cloned().unwrap_or_default(),
                )
            })
            .collect())
    }

    fn exported(
        &self,
        context: &KindContext,
        config: &Attributes,
        _prior: Option<&StateResource>,
        _changing: bool,
    ) -> Attributes {
        let mut exported = self.desired(context, config, None).unwrap_or_default();
        exported.insert(
            "id".into(),
            self.resource_id(context, config)
                .map_or_else(Value::unknown, Value::String),
        );
        exported
    }

    fn container(&self, config: &Attributes) -> Option<String> {
        string_attribute(config, "parent").map(String::from)
    }

    fn update_mask(&self, _changed_fields: &[String]) -> Vec<String> {
        Vec::new()
    }

    async fn read(
        &self,
        client: &GcpClient,
        id: &str,
        _prior: Option<&StateResource>,
    ) -> Result<Option<Attributes>, KindError> {
        let (parent, role, member) = Self::parse_id(id)?;
        let policy_parent = PolicyParent::parse(&parent).ok_or_else(|| {
            KindError::Invalid(format!("parent `{parent}`: not a supported resource"))
        })?;
        let policy = match policy_parent.get_policy(client).await {
            Ok(policy) => policy,
            Err(error) if error.is_not_found() => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        if !policy_has(&policy, &role, &member) {
            return Ok(None);
        }
        Ok(Some(Attributes::from([
            ("parent".into(), Value::string(parent)),
            ("role".into(), Value::string(role)),
            ("member".into(), Value::string(member)),
        ])))
    }

    async fn create(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
    ) -> Result<Created, KindError> {
        let (parent, role, member) = Self::parts(config);
        Self::modify(client, &parent, &role, &member, true).await?;
        Ok(Created {
            id: format!("{parent} {role} {member}"),
            attributes: self.desired(context, config, None)?,
        })
    }

    async fn update(
        &self,
        _client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
        _prior: &StateResource,
        _changed_fields: &[String],
    ) -> Result<Attributes, KindError> {
        // Every field forces replacement, so there is nothing to update in place.
        self.desired(context, config, None)
    }

    async fn delete(&self, client: &GcpClient, prior: &StateResource) -> Result<(), KindError> {
        let (parent, role, member) = Self::parse_id(&prior.id)?;
        Self::modify(client, &parent, &role, &member, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_a_member_joins_the_existing_binding() {
        let mut policy = json!({"etag": "BwE=", "bindings": [{"role": "roles/viewer", "members": ["user:a@x.com"]}]});
        assert!(edit_policy(
            &mut policy,
            "roles/viewer",
            "user:b@x.com",
            true
        ));
        assert_eq!(
            policy["bindings"][0]["members"],
            json!(["user:a@x.com", "user:b@x.com"])
        );
        assert!(
            !edit_policy(&mut policy, "roles/viewer", "user:b@x.com", true),
            "second add is a no-op"
        );
        assert_eq!(policy["etag"], "BwE=", "the etag is sent back untouched");
    }

    #[test]
    fn removing_the_last_member_drops_the_binding() {
        let mut policy =
            json!({"bindings": [{"role": "roles/viewer", "members": ["user:a@x.com"]}]});
        assert!(edit_policy(
            &mut policy,
            "roles/viewer",
            "user:a@x.com",
            false
        ));
        assert_eq!(policy["bindings"], json!([]));
    }

    #[test]
    fn conditional_bindings_are_not_ours() {
        let policy = json!({"bindings": [{"role": "r", "members": ["user:a@x.com"], "condition": {"expression": "true"}}]});
        assert!(!policy_has(&policy, "r", "user:a@x.com"));
    }

    #[test]
    fn member_format_is_checked() {
        let config = Attributes::from([
            ("member".into(), Value::string("serviceAccount:")),
            ("role".into(), Value::string("viewer")),
        ]);
        assert_eq!(IamMemberKind.check(&config).len(), 2);
    }
}
