//! Cloud Billing Budgets v1 (`billingAccounts/{id}/budgets`): server-assigned ids, the billing
//! account's currency filled in (and enforced), Google's filter defaults, `updateMask`, etags,
//! and a delete that succeeds when the budget is already gone.

use super::collection::{self, Call, Method, PageSizes};
use super::discovery::{self, Api};
use super::error::ApiError;
use super::http::{Request, Response};
use super::store::{Store, project_number};
use serde_json::{Map, Value as Json, json};

/// The currency of a billing account not given one (`--billing-account-currency`).
const DEFAULT_ACCOUNT_CURRENCY: &str = "USD";

/// Returns the currency a billing account bills in.
fn account_currency(store: &Store, account: &str) -> String {
    store
        .billing_currencies
        .get(account)
        .cloned()
        .unwrap_or_else(|| DEFAULT_ACCOUNT_CURRENCY.to_string())
}

/// Billing Budgets' methods, by discovery id.
pub const METHODS: &[Method] = &[
    Method {
        id: "billingbudgets.billingAccounts.budgets.create",
        handler: |call| {
            let account = call.var("billingAccountsId").to_string();
            create(call.store, call.request, &account)
        },
    },
    Method {
        id: "billingbudgets.billingAccounts.budgets.list",
        handler: |call| {
            call.request
                .allow_query(&["pageSize", "pageToken", "scope"])?;
            let prefix = format!("billingAccounts/{}/budgets/", call.var("billingAccountsId"));
            let scope = scope_project(call.request)?;
            let budgets: Vec<Json> = call
                .store
                .documents
                .iter()
                .filter(|(name, _)| name.starts_with(&prefix))
                .filter(|(_, budget)| {
                    scope.as_ref().is_none_or(|project| {
                        budget["budgetFilter"]["projects"]
                            .as_array()
                            .is_some_and(|projects| projects.iter().any(|named| named == project))
                    })
                })
                .map(|(_, budget)| budget.clone())
                .collect();
            // "The default and maximum value are 100."
            let (budgets, next) =
                collection::page(budgets, call.request, "pageSize", PageSizes::new(100, 100))?;
            Ok(Response::read(collection::list_answer(
                "budgets", budgets, next,
            )))
        },
    },
    Method {
        id: "billingbudgets.billingAccounts.budgets.get",
        handler: |call| {
            call.request.allow_query(&[])?;
            let name = budget_of(call);
            call.store
                .documents
                .get(&name)
                .cloned()
                .map(Response::read)
                .ok_or_else(|| ApiError::not_found(format!("Budget {name} not found.")))
        },
    },
    Method {
        id: "billingbudgets.billingAccounts.budgets.patch",
        handler: |call| {
            let name = budget_of(call);
            patch(call.store, call.request, &name)
        },
    },
    Method {
        id: "billingbudgets.billingAccounts.budgets.delete",
        handler: |call| {
            call.request.allow_query(&[])?;
            // "Returns successfully if already deleted."
            let name = budget_of(call);
            call.store.documents.remove(&name);
            call.store.revision += 1;
            Ok(Response::changed(json!({})))
        },
    },
];

/// The project a budgets `list` is scoped to, as budgets name it (`projects/{number}`): "Only
/// project scope (in the format of \"projects/project-id\" or \"projects/123\") is supported in
/// this field. When this field is set to a project's resource name, the budgets returned are
/// tracking the costs for that project" (`billingAccounts.budgets.list`, `scope`).
fn scope_project(request: &Request) -> Result<Option<Json>, ApiError> {
    let Some(scope) = request.query("scope").filter(|scope| !scope.is_empty()) else {
        return Ok(None);
    };
    match scope.strip_prefix("projects/") {
        Some(project) if !project.is_empty() && !project.contains('/') => Ok(Some(Json::String(
            format!("projects/{}", project_number(project)),
        ))),
        _ => Err(ApiError::invalid_argument(format!(
            "Invalid scope {scope:?}: only a project scope (projects/{{id or number}}) is supported."
        ))),
    }
}

fn budget_of(call: &Call<'_>) -> String {
    format!(
        "billingAccounts/{}/budgets/{}",
        call.var("billingAccountsId"),
        call.var("budgetsId")
    )
}

/// The budget's period and what depends on it (`Filter`, `BudgetAmount`, `ThresholdRule`):
/// `calendarPeriod` and `customPeriod` are alternatives; a custom period's "start date is
/// required" and "must be after January 1, 2017"; `lastPeriodAmount` and `FORECASTED_SPEND`
/// "cannot be set in combination with Filter.custom_period"; `labels` is "a single `\"key\":
/// value` pair".
fn check_period(body: &Json) -> Result<(), ApiError> {
    let filter = &body["budgetFilter"];
    let custom = filter
        .get("customPeriod")
        .filter(|period| !period.is_null());
    if custom.is_some()
        && filter
            .get("calendarPeriod")
            .is_some_and(|period| !period.is_null())
    {
        return Err(ApiError::invalid_argument(
            "budgetFilter: set calendarPeriod or customPeriod, not both.",
        ));
    }
    if let Some(custom) = custom {
        let start = &custom["startDate"];
        let date = (
            start["year"].as_i64().unwrap_or(0),
            start["month"].as_i64().unwrap_or(0),
            start["day"].as_i64().unwrap_or(0),
        );
        if date.0 == 0 {
            return Err(ApiError::invalid_argument(
                "budgetFilter.customPeriod.startDate is required.",
            ));
        }
        if date <= (2017, 1, 1) {
            return Err(ApiError::invalid_argument(
                "budgetFilter.customPeriod.startDate must be after January 1, 2017.",
            ));
        }
        if body.pointer("/amount/lastPeriodAmount").is_some() {
            return Err(ApiError::invalid_argument(
                "amount.lastPeriodAmount cannot be set with budgetFilter.customPeriod.",
            ));
        }
        if body["thresholdRules"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|rule| rule["spendBasis"] == "FORECASTED_SPEND")
        {
            return Err(ApiError::invalid_argument(
                "thresholdRules.spendBasis FORECASTED_SPEND cannot be set with budgetFilter.customPeriod.",
            ));
        }
    }
    if filter["labels"]
        .as_object()
        .is_some_and(|labels| labels.len() > 1)
    {
        return Err(ApiError::invalid_argument(
            "budgetFilter.labels holds a single label and value pair.",
        ));
    }
    Ok(())
}

/// Checks a budget as Google does before storing it; `currency` is its billing account's.
fn check(body: &Json, currency: &str) -> Result<(), ApiError> {
    discovery::validate(
        Api::BillingBudgets,
        "GoogleCloudBillingBudgetsV1Budget",
        "budget",
        body,
    )?;
    if body["displayName"]
        .as_str()
        .is_some_and(|name| name.chars().count() > 60)
    {
        return Err(ApiError::invalid_argument(
            "displayName must be at most 60 characters.",
        ));
    }
    let amount = &body["amount"];
    match (
        amount.get("specifiedAmount"),
        amount.get("lastPeriodAmount"),
    ) {
        (Some(money), None) => {
            // "`currency_code` is optional. If specified when creating a budget, it must match
            // the currency of the billing account" (BudgetAmount.specifiedAmount).
            if let Some(given) = money["currencyCode"].as_str()
                && !given.is_empty()
                && given != currency
            {
                return Err(ApiError::invalid_argument(format!(
                    "Budget currency code {given} does not match the billing account currency code {currency}."
                )));
            }
            let units = money["units"]
                .as_str()
                .and_then(|units| units.parse::<i64>().ok())
                .or_else(|| money["units"].as_i64())
                .unwrap_or(0);
            let nanos = money["nanos"].as_i64().unwrap_or(0);
            if (units > 0 && nanos < 0) || (units < 0 && nanos > 0) {
                return Err(ApiError::invalid_argument(
                    "Money units and nanos must have the same sign.",
                ));
            }
        }
        (None, Some(_)) => {}
        _ => {
            return Err(ApiError::invalid_argument(
                "amount must set exactly one of specifiedAmount or lastPeriodAmount.",
            ));
        }
    }
    check_period(body)?;
    for project in body
        .pointer("/budgetFilter/projects")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        // "A set of projects of the form `projects/{project}`": an id or a number.
        let project_part = project
            .as_str()
            .and_then(|name| name.strip_prefix("projects/"))
            .unwrap_or_default();
        if project_part.is_empty() || project_part.contains('/') {
            return Err(ApiError::invalid_argument(format!(
                "budgetFilter.projects: {project} must be projects/{{project}}."
            )));
        }
    }
    for (index, rule) in body["thresholdRules"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if rule["thresholdPercent"].as_f64().is_none() {
            return Err(ApiError::invalid_argument(format!(
                "thresholdRules[{index}].thresholdPercent is required."
            )));
        }
    }
    if body
        .pointer("/notificationsRule/monitoringNotificationChannels")
        .and_then(Json::as_array)
        .is_some_and(|channels| channels.len() > 5)
    {
        return Err(ApiError::invalid_argument(
            "At most 5 monitoring notification channels.",
        ));
    }
    if body.pointer("/notificationsRule/pubsubTopic").is_some()
        && body
            .pointer("/notificationsRule/schemaVersion")
            .and_then(Json::as_str)
            != Some("1.0")
    {
        return Err(ApiError::invalid_argument(
            "notificationsRule.schemaVersion must be \"1.0\" with a pubsubTopic.",
        ));
    }
    Ok(())
}

/// Fills in what Google fills in: the currency ("provided on output": the billing account's),
/// the filter's credit treatment and period.
fn apply_defaults(budget: &mut Json, currency: &str) {
    if budget.pointer("/amount/specifiedAmount").is_some()
        && budget
            .pointer("/amount/specifiedAmount/currencyCode")
            .and_then(Json::as_str)
            .is_none_or(str::is_empty)
    {
        budget["amount"]["specifiedAmount"]["currencyCode"] = json!(currency);
    }
    if !budget["budgetFilter"].is_object() {
        budget["budgetFilter"] = json!({});
    }
    let filter = &mut budget["budgetFilter"];
    // Google answers with the project number whichever form the request named the project in.
    if let Some(projects) = filter.get_mut("projects").and_then(Json::as_array_mut) {
        for project in projects {
            if let Some(part) = project
                .as_str()
                .and_then(|name| name.strip_prefix("projects/"))
            {
                *project = json!(format!("projects/{}", super::store::project_number(part)));
            }
        }
    }
    if filter.get("creditTypesTreatment").is_none() {
        filter["creditTypesTreatment"] = json!("INCLUDE_ALL_CREDITS");
    }
    if filter.get("calendarPeriod").is_none() && filter.get("customPeriod").is_none() {
        filter["calendarPeriod"] = json!("MONTH");
    }
}

fn create(store: &mut Store, request: &Request, account: &str) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let mut body = request.json()?;
    let currency = account_currency(store, account);
    check(&body, &currency)?;
    // `name` is "Output only" and the etag means nothing on a create: an output-only field
    // sent in a request is ignored, not refused (<https://google.aip.dev/203#output-only>), so a
    // budget read back and sent again creates a new one.
    if let Some(fields) = body.as_object_mut() {
        fields.remove("name");
        fields.remove("etag");
    }
    apply_defaults(&mut body, &currency);
    let name = format!("billingAccounts/{account}/budgets/{}", uuid::Uuid::new_v4());
    body["name"] = json!(name);
    body["etag"] = json!(store.next_etag());
    store.documents.insert(name, body.clone());
    Ok(Response::changed(body))
}

fn patch(store: &mut Store, request: &Request, name: &str) -> Result<Response, ApiError> {
    request.allow_query(&["updateMask"])?;
    let body = request.json()?;
    // The body need only carry the masked fields; the budget they make is what is checked.
    discovery::validate(
        Api::BillingBudgets,
        "GoogleCloudBillingBudgetsV1Budget",
        "budget",
        &body,
    )?;
    let current = store
        .documents
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("Budget {name} not found.")))?;
    if let Some(given) = body["etag"].as_str().filter(|etag| !etag.is_empty())
        && Some(given) != current["etag"].as_str()
    {
        return Err(ApiError::aborted(format!(
            "The etag of budget {name} does not match: it was changed since it was read."
        )));
    }
    let mut merged: Map<String, Json> = current.as_object().cloned().unwrap_or_default();
    match request
        .query("updateMask")
        .filter(|mask| !mask.trim().is_empty())
    {
        Some(mask) => {
            let paths = super::collection::mask_paths(Some(&mask)).unwrap_or_default();
            for path in &paths {
                let top = path.split('.').next().unwrap_or_default();
                if !discovery::mask_path_exists(
                    Api::BillingBudgets,
                    "GoogleCloudBillingBudgetsV1Budget",
                    path,
                ) || top == "name"
                    || top == "etag"
                {
                    return Err(ApiError::invalid_argument(format!(
                        "Invalid update_mask path: {path}"
                    )));
                }
            }
            // Nested paths (`budgetFilter.projects`) change only that field of the message.
            let incoming = body.as_object().cloned().unwrap_or_default();
            super::collection::apply_mask(&mut merged, &incoming, &paths);
        }
        // Without a mask "only fields with non-default values from the request are updated"
        // (proto3 defaults: null, "", 0, false, empty lists; a message sent is set).
        None => {
            let is_default = |value: &Json| match value {
                Json::Null => true,
                Json::String(text) => text.is_empty(),
                Json::Number(number) => number.as_f64() == Some(0.0),
                Json::Bool(flag) => !flag,
                Json::Array(items) => items.is_empty(),
                Json::Object(_) => false,
            };
            for (field, value) in body.as_object().into_iter().flatten() {
                if field != "name" && field != "etag" && !is_default(value) {
                    merged.insert(field.clone(), value.clone());
                }
            }
        }
    }
    // calendarPeriod and customPeriod are one field (a oneof): writing one clears the other.
    for (given, other) in [
        ("customPeriod", "calendarPeriod"),
        ("calendarPeriod", "customPeriod"),
    ] {
        if body["budgetFilter"]
            .get(given)
            .is_some_and(|period| !period.is_null())
            && let Some(filter) = merged.get_mut("budgetFilter").and_then(Json::as_object_mut)
            && filter.get(given).is_some_and(|period| !period.is_null())
        {
            filter.remove(other);
        }
    }
    let mut updated = Json::Object(merged);
    // "If specified when updating a budget, it must match the currency_code of the existing
    // budget"; left out, the existing budget's stays.
    let existing_currency = current
        .pointer("/amount/specifiedAmount/currencyCode")
        .and_then(Json::as_str)
        .map(String::from)
        .unwrap_or_else(|| account_currency(store, name.split('/').nth(1).unwrap_or_default()));
    if let Some(new) = updated
        .pointer("/amount/specifiedAmount/currencyCode")
        .and_then(Json::as_str)
        .filter(|new| !new.is_empty())
        && new != existing_currency
    {
        return Err(ApiError::invalid_argument(format!(
            "Budget currency code {new} does not match the existing budget's currency code {existing_currency}."
        )));
    }
    check(&updated, &existing_currency)?;
    apply_defaults(&mut updated, &existing_currency);
    updated["etag"] = json!(store.next_etag());
    store.documents.insert(name.to_string(), updated.clone());
    Ok(Response::changed(updated))
}
