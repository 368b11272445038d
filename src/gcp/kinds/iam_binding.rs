//! The `iam_binding` kind: the complete member list of one role in a resource's IAM policy,
//! authoritative for that role (members added elsewhere are removed) and blind to other roles.

use super::iam_member::check_binding_parts;
use super::iam_policy::{
    binding_members, modify_policy, read_policy, read_policy_settled, set_binding_members,
};
use super::{Created, FieldSpec, FieldType, Kind, KindContext, KindError, string_attribute};
use crate::gcp::GcpClient;
use crate::state::StateResource;
use crate::value::{Attributes, Value};
use async_trait::async_trait;

/// Authoritative IAM binding of one role.
pub struct IamBindingKind;

static FIELDS: [FieldSpec; 3] = [
    FieldSpec::optional("parent", FieldType::String)
        .required()
        .force_new(),
    FieldSpec::optional("role", FieldType::String)
        .required()
        .force_new(),
    FieldSpec::optional("members", FieldType::StringList).required(),
];

impl IamBindingKind {
    fn members(config: &Attributes) -> Vec<String> {
        let mut members: Vec<String> = match config.get("members") {
            Some(Value::List(items)) => items
                .iter()
                .filter_map(|item| item.as_str().map(super::iam_policy::member_key))
                .collect(),
            _ => Vec::new(),
        };
        members.sort();
        members.dedup();
        members
    }

    fn parse_id(id: &str) -> Result<(String, String), KindError> {
        match id.split(' ').collect::<Vec<_>>()[..] {
            [parent, role] => Ok((parent.into(), role.into())),
            _ => Err(KindError::Invalid(format!(
                "`{id}` is not an iam_binding id (`PARENT ROLE`)"
            ))),
        }
    }

    async fn write(client: &GcpClient, config: &Attributes) -> Result<(), KindError> {
        let parent = string_attribute(config, "parent")
            .unwrap_or_default()
            .to_string();
        let role = string_attribute(config, "role")
            .unwrap_or_default()
            .to_string();
        let members = Self::members(config);
        modify_policy(client, &parent, false, move |policy| {
            set_binding_members(policy, &role, &members)
        })
        .await
    }
}

#[async_trait]
impl Kind for IamBindingKind {
    fn name(&self) -> &'static str {
        "iam_binding"
    }

    fn fields(&self) -> &'static [FieldSpec] {
        &FIELDS
    }

    fn check(&self, config: &Attributes) -> Vec<String> {
        let members: Vec<&Value> = match config.get("members") {
            Some(Value::List(items)) => items.iter().collect(),
            _ => Vec::new(),
        };
        let mut problems = check_binding_parts(config.get("parent"), config.get("role"), &members);
        if matches!(config.get("members"), Some(Value::List(items)) if items.is_empty()) {
            problems.push("members is empty: Google refuses bindings without members; delete the resource instead".into());
        }
        problems
    }

    fn resource_id(&self, _context: &KindContext, config: &Attributes) -> Option<String> {
        let parent = string_attribute(config, "parent")?;
        let role = string_attribute(config, "role")?;
        Some(format!("{parent} {role}"))
    }

    fn desired(
        &self,
        _context: &KindContext,
        config: &Attributes,
        _prior: Option<&StateResource>,
    ) -> Result<Attributes, KindError> {
        let members = Value::List(
            Self::members(config)
                .into_iter()
                .map(Value::String)
                .collect(),
        );
        Ok(Attributes::from([
            (
                "parent".into(),
                config.get("parent").cloned().unwrap_or_default(),
            ),
            (
                "role".into(),
                config.get("role").cloned().unwrap_or_default(),
            ),
            (
                "members".into(),
                if config.get("members").is_some_and(Value::contains_unknown) {
                    Value::unknown()
                } else {
                    members
                },
            ),
        ]))
    }

    fn exported(
        &self,
        context: &KindContext,
        config: &Attributes,
        prior: Option<&StateResource>,
        _changing: bool,
    ) -> Attributes {
        let mut exported = self.desired(context, config, prior).unwrap_or_default();
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
        let parent = string_attribute(config, "parent").unwrap_or_default();
        let role = string_attribute(config, "role").unwrap_or_default();
        vec![(format!("role {role} on {parent}"), true)]
    }

    fn update_mask(&self, _changed_fields: &[String]) -> Vec<String> {
        vec!["bindings".into()]
    }

    async fn read(
        &self,
        client: &GcpClient,
        id: &str,
        prior: Option<&StateResource>,
    ) -> Result<Option<Attributes>, KindError> {
        let (parent, role) = Self::parse_id(id)?;
        // A read right after infra's own write may answer the policy before it: one that
        // disagrees with the members state recorded is believed only once reads settle on it.
        let recorded = prior.and_then(|prior| match prior.attributes.get("members") {
            Some(Value::List(items)) => Some(
                items
                    .iter()
                    .filter_map(|item| item.as_str().map(super::iam_policy::member_key))
                    .collect::<std::collections::BTreeSet<_>>(),
            ),
            _ => None,
        });
        let policy = match &recorded {
            Some(recorded) => {
                read_policy_settled(client, &parent, |policy| {
                    binding_members(policy, &role)
                        .into_iter()
                        .collect::<std::collections::BTreeSet<_>>()
                        == *recorded
                })
                .await?
            }
            None => read_policy(client, &parent).await?,
        };
        let Some(policy) = policy else {
            return Ok(None);
        };
        let members = binding_members(&policy, &role);
        if members.is_empty() {
            return Ok(None);
        }
        Ok(Some(Attributes::from([
            ("parent".into(), Value::string(parent)),
            ("role".into(), Value::string(role)),
            (
                "members".into(),
                Value::List(members.into_iter().map(Value::String).collect()),
            ),
        ])))
    }

    async fn create(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
    ) -> Result<Created, KindError> {
        Self::write(client, config).await?;
        let id = self
            .resource_id(context, config)
            .ok_or_else(|| KindError::Invalid("parent and role are required".into()))?;
        Ok(Created {
            id,
            attributes: self.desired(context, config, None)?,
        })
    }

    async fn update(
        &self,
        client: &GcpClient,
        context: &KindContext,
        config: &Attributes,
        prior: &StateResource,
        _changed_fields: &[String],
    ) -> Result<Attributes, KindError> {
        Self::write(client, config).await?;
        self.desired(context, config, Some(prior))
    }

    async fn delete(&self, client: &GcpClient, prior: &StateResource) -> Result<(), KindError> {
        let (parent, role) = Self::parse_id(&prior.id)?;
        modify_policy(client, &parent, true, move |policy| {
            set_binding_members(policy, &role, &[])
        })
        .await
    }
}
