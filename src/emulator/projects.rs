//! Resource Manager v3 projects as far as `infra` uses them (per
//! `discovery/cloudresourcemanager.v3.json`): `get`, and the project IAM policy through POST
//! `getIamPolicy` (version in the body) and `setIamPolicy`, which refuses public members.

use super::collection::{Call, Method};
use super::discovery::{self, Api};
use super::http::Response;
use super::iam;
use super::store::project_number;
use serde_json::json;

/// Resource Manager's project methods, by discovery id.
pub const METHODS: &[Method] = &[
    Method {
        id: "cloudresourcemanager.projects.get",
        handler: |call| {
            call.request.allow_query(&[])?;
            let project = call.var("projectsId");
            // By number: the id it was seen under, or one made up for a project never named.
            let project_id = if project.chars().all(|c| c.is_ascii_digit()) {
                call.store
                    .project_ids
                    .get(project)
                    .cloned()
                    .unwrap_or_else(|| format!("project-{project}"))
            } else {
                project.to_string()
            };
            let name = canonical(call);
            // Output-only fields every project has; the emulator's projects have always
            // existed, so their creation time is a fixed moment derived from the number.
            let number = project_number(call.var("projectsId"));
            let seconds = number.parse::<i64>().unwrap_or_default() % 100_000_000;
            let created = chrono::DateTime::from_timestamp(1_577_836_800 + seconds, 0)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            Ok(Response::read(json!({
                "name": name,
                "projectId": project_id,
                "state": "ACTIVE",
                "displayName": project_id,
                "createTime": created,
                "updateTime": created,
                "etag": format!("W/\"{number}\""),
            })))
        },
    },
    Method {
        id: "cloudresourcemanager.projects.getIamPolicy",
        handler: |call| {
            let body = call.request.json()?;
            discovery::validate(
                Api::ResourceManager,
                "GetIamPolicyRequest",
                "get_iam_policy_request",
                &body,
            )?;
            let resource = canonical(call);
            iam::get_policy(call.store, call.request, &resource)
        },
    },
    Method {
        id: "cloudresourcemanager.projects.setIamPolicy",
        handler: |call| {
            let resource = canonical(call);
            iam::set_policy(
                call.store,
                call.request,
                &resource,
                Api::ResourceManager,
                false,
            )
        },
    },
    Method {
        id: "cloudresourcemanager.projects.testIamPermissions",
        handler: |call| iam::test_permissions(call.request),
    },
];

/// Every project exists, named by its number.
fn canonical(call: &Call<'_>) -> String {
    format!("projects/{}", project_number(call.var("projectsId")))
}
