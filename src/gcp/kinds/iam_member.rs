//! The `iam_member` kind: one member in one role of a resource's IAM policy, managed additively
//! (other members and roles are left alone). The read-modify-write cycle is in `iam_policy.rs`.

use super::iam_policy::{
    PolicyParent, SUPPORTED_PARENTS, binding_members, modify_policy, read_policy,
    read_policy_settled, set_member,
};
use super::{Created, FieldSpec, FieldType, Kind, KindContext, KindError, string_attribute};
use crate::gcp::GcpClient;
use crate::state::StateResource;
use crate::value::{Attributes, Value};
use async_trait::async_trait;

/// Additive IAM membership on a project, a secret or a service account.
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

const MEMBER_PREFIXES: [&str; 7] = [
    "user:",
    "serviceAccount:",
    "group:",
    "domain:",
    "principal://",
    "principalSet://",
    "deleted:",
];

/// Returns the problems of a member, a role and a parent, for both IAM kinds.
pub(crate) fn check_binding_parts(
    parent: Option<&Value>,
    role: Option<&Value>,
    members: &[&Value],
) -> Vec<String> {
    let mut problems = Vec::new();
    let parsed_parent = match parent {
        Some(Value::String(parent)) => {
            let parsed = PolicyParent::parse(parent);
            if parsed.is_none() {
                problems.push(format!(
                    "parent {parent:?}: not a supported resource ({SUPPORTED_PARENTS})"
                ));
            }
            parsed
        }
        _ => None,
    };
    for member in members {
        let Value::String(member) = member else {
            continue;
        };
        let public = member == "allUsers" || member == "allAuthenticatedUsers";
        let prefixed = MEMBER_PREFIXES.iter().any(|prefix| {
            member
                .strip_prefix(prefix)
                .is_some_and(|rest| !rest.is_empty() && !rest.contains(' '))
        });
        if !public && !prefixed {
            problems.push(format!(
                "member {member:?}: use user:EMAIL, serviceAccount:EMAIL, group:EMAIL, domain:DOMAIN, allUsers or allAuthenticatedUsers"
            ));
        }
        if public
            && parsed_parent
                .as_ref()
                .is_some_and(|parent| !parent.allows_public_members())
        {
            problems.push(format!(
                "member {member:?}: this parent's policy does not accept public members"
            ));
        }
    }
    if let Some(Value::String(role)) = role
        && !(role.starts_with("roles/") || role.contains("/roles/"))
    {
        problems.push(format!(
            "role {role:?}: roles look like roles/secretmanager.secretAccessor"
        ));
    }
    problems
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
        let member: Vec<&Value> = config.get("member").into_iter().collect();
        check_binding_parts(config.get("parent"), config.get("role"), &member)
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

    fn claims(&self, config: &Attributes) -> Vec<(String, bool)> {
        let (parent, role, _) = Self::parts(config);
        vec![(format!("role {role} on {parent}"), false)]
    }

    fn update_mask(&self, _changed_fields: &[String]) -> Vec<String> {
        Vec::new()
    }

    async fn read(
        &self,
        client: &GcpClient,
        id: &str,
        prior: Option<&StateResource>,
    ) -> Result<Option<Attributes>, KindError> {
        let (parent, role, member) = Self::parse_id(id)?;
        let key = super::iam_policy::member_key(&member);
        let present = |policy: &serde_json::Value| binding_members(policy, &role).contains(&key);
        // State says the member was granted (or was being granted): a read without it may be
        // stale, so it is believed only once reads settle on it.
        let policy = match prior {
            Some(_) => read_policy_settled(client, &parent, present).await?,
            None => read_policy(client, &parent).await?,
        };
        let Some(policy) = policy else {
            return Ok(None);
        };
        if !present(&policy) {
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
        let (granted_role, granted) = (role.clone(), member.clone());
        modify_policy(client, &parent, false, move |policy| {
            set_member(policy, &granted_role, &granted, true)
        })
        .await?;
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
        modify_policy(client, &parent, true, move |policy| {
            set_member(policy, &role, &member, false)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_role_and_parent_formats_are_checked() {
        let config = Attributes::from([
            ("member".into(), Value::string("serviceAccount:")),
            ("role".into(), Value::string("viewer")),
            ("parent".into(), Value::string("buckets/b")),
        ]);
        assert_eq!(IamMemberKind.check(&config).len(), 3);
    }

    #[test]
    fn public_members_only_where_the_api_takes_them() {
        let on = |parent: &str| {
            IamMemberKind.check(&Attributes::from([
                ("member".into(), Value::string("allUsers")),
                ("role".into(), Value::string("roles/viewer")),
                ("parent".into(), Value::string(parent)),
            ]))
        };
        assert!(on("projects/p/secrets/s").is_empty());
        assert_eq!(on("projects/p").len(), 1);
    }
}
