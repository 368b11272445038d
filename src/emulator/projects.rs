//! Resource Manager v3 projects as far as `infra` uses them (per
//! `discovery/cloudresourcemanager.v3.json`): `get`, and the project IAM policy through POST
//! `getIamPolicy` (version in the body) and `setIamPolicy`, which refuses public members.

use super::discovery::Api;
use super::error::ApiError;
use super::http::{Request, Response};
use super::iam;
use super::store::{Store, project_number};
use serde_json::json;

/// Routes a `v3/projects/…` request; `None` when the path is not Resource Manager's.
pub fn route(store: &mut Store, request: &Request) -> Option<Result<Response, ApiError>> {
    let (resource, verb) = match request.path.split_once(':') {
        Some((resource, verb)) => (resource, Some(verb)),
        None => (request.path.as_str(), None),
    };
    let ["projects", project] = resource.split('/').collect::<Vec<_>>()[..] else {
        return None;
    };
    let canonical = format!("projects/{}", project_number(project));
    let outcome = match (request.method.as_str(), verb) {
        ("GET", None) => request.allow_query(&[]).map(|()| {
            let project_id = if project.chars().all(|c| c.is_ascii_digit()) { format!("project-{project}") } else { project.to_string() };
            Response::read(json!({"name": canonical, "projectId": project_id, "state": "ACTIVE", "displayName": project_id}))
        }),
        ("POST", Some("getIamPolicy")) => {
            let body = request.json();
            body.and_then(|body| super::discovery::validate(Api::ResourceManager, "GetIamPolicyRequest", "get_iam_policy_request", &body))
                .and_then(|()| iam::get_policy(store, request, &canonical))
        }
        ("POST", Some("setIamPolicy")) => iam::set_policy(store, request, &canonical, Api::ResourceManager, false),
        ("POST", Some("testIamPermissions")) => iam::test_permissions(request),
        _ => return None,
    };
    Some(outcome)
}
