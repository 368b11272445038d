//! Billing Budgets v1 over REST, as `discovery/billingbudgets.v1.json` describes it: no official
//! Rust REST client exists for this API (the suite does not install Python clients).
//! Reference: <https://cloud.google.com/billing/docs/reference/budget/rest/v1/billingAccounts.budgets>.

use crate::support::Emulator;
use reqwest::Method;
use serde_json::json;

const BUDGETS: &str = "v1/billingAccounts/000000-AAAAAA-BBBBBB/budgets";

fn budget(name: &str) -> serde_json::Value {
    json!({"displayName": name, "amount": {"specifiedAmount": {"units": "100"}}})
}

/// pageSize: "The maximum number of budgets to return per page. The default and maximum value
/// are 100."
#[tokio::test]
async fn budgets_crud_and_list_across_pages() {
    let emulator = Emulator::start();
    let mut names = Vec::new();
    for title in ["a", "b", "c"] {
        let (status, created) = emulator
            .rest(Method::POST, BUDGETS, Some(budget(title)))
            .await;
        assert_eq!(status, 200, "{created}");
        // Server defaults: the account's currency, INCLUDE_ALL_CREDITS, MONTH.
        assert_eq!(created["amount"]["specifiedAmount"]["currencyCode"], "USD");
        assert_eq!(created["budgetFilter"]["calendarPeriod"], "MONTH");
        names.push(created["name"].as_str().expect("name").to_string());
    }
    // Lists lag a create: wait, as a client of Google must, until this one shows them.
    emulator.wait_listed(BUDGETS, "budgets", 3).await;
    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let (status, page) = emulator
            .rest(
                Method::GET,
                &format!("{BUDGETS}?pageSize=2&pageToken={token}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let items = page["budgets"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .filter_map(|item| item["name"].as_str().map(String::from)),
        );
        match page["nextPageToken"].as_str() {
            Some(next) => token = next.to_string(),
            None => break,
        }
    }
    seen.sort();
    names.sort();
    assert_eq!(seen, names);

    let (status, patched) = emulator
        .rest(
            Method::PATCH,
            &format!("v1/{}?updateMask=displayName", names[0]),
            Some(json!({"displayName": "renamed"})),
        )
        .await;
    assert_eq!(
        (status, patched["displayName"].as_str()),
        (200, Some("renamed")),
        "{patched}"
    );
    let (status, stale) = emulator
        .rest(
            Method::PATCH,
            &format!("v1/{}?updateMask=displayName", names[0]),
            Some(json!({"displayName": "again", "etag": "stale"})),
        )
        .await;
    assert_eq!(
        (status, stale["error"]["status"].as_str()),
        (409, Some("ABORTED")),
        "{stale}"
    );
    let (status, _) = emulator
        .rest(Method::DELETE, &format!("v1/{}", names[0]), None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = emulator
        .rest(Method::GET, &format!("v1/{}", names[0]), None)
        .await;
    assert_eq!(status, 404);
}

/// budgetFilter.projects: "A set of projects of the form `projects/{project}`" — an id is
/// accepted.
#[tokio::test]
async fn budget_filters_accept_project_ids() {
    let emulator = Emulator::start();
    let mut body = budget("by-id");
    body["budgetFilter"] = json!({"projects": ["projects/my-project-id"]});
    let (status, created) = emulator.rest(Method::POST, BUDGETS, Some(body)).await;
    assert_eq!(status, 200, "{created}");
}

/// budgets.list `scope`: "Only project scope (in the format of \"projects/project-id\" or
/// \"projects/123\") is supported in this field. When this field is set to a project's resource
/// name, the budgets returned are tracking the costs for that project."
#[tokio::test]
async fn list_scope_keeps_the_budgets_of_one_project() {
    let emulator = Emulator::start();
    for (title, project) in [
        ("alpha", "projects/scope-alpha"),
        ("beta", "projects/scope-beta"),
    ] {
        let mut body = budget(title);
        body["budgetFilter"] = json!({"projects": [project]});
        let (status, created) = emulator.rest(Method::POST, BUDGETS, Some(body)).await;
        assert_eq!(status, 200, "{created}");
    }
    // Lists lag a create: wait, as a client of Google must, until this one shows them.
    emulator.wait_listed(BUDGETS, "budgets", 2).await;
    let (status, alpha) = emulator
        .rest(
            Method::GET,
            &format!("{BUDGETS}?scope=projects/scope-alpha"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{alpha}");
    let titles: Vec<&str> = alpha["budgets"]
        .as_array()
        .expect("budgets")
        .iter()
        .filter_map(|budget| budget["displayName"].as_str())
        .collect();
    assert_eq!(titles, ["alpha"]);
    let (_, none) = emulator
        .rest(
            Method::GET,
            &format!("{BUDGETS}?scope=projects/scope-nobody"),
            None,
        )
        .await;
    assert!(none.get("budgets").is_none(), "{none}");
    let (status, folder) = emulator
        .rest(Method::GET, &format!("{BUDGETS}?scope=folders/123"), None)
        .await;
    assert_eq!(status, 400, "{folder}");
    assert_eq!(folder["error"]["status"], "INVALID_ARGUMENT");
}

/// Budget.name is "Output only": sent on a create it is ignored, as output-only fields are
/// (<https://google.aip.dev/203#output-only>), and the server names the budget. A patch without
/// a mask: "only fields with non-default values from the request are updated".
#[tokio::test]
async fn output_only_name_is_ignored_and_unmasked_patches_skip_defaults() {
    let emulator = Emulator::start();
    let mut body = budget("copied");
    body["name"] = json!(format!("{BUDGETS}/chosen-by-client").trim_start_matches("v1/"));
    let (status, created) = emulator.rest(Method::POST, BUDGETS, Some(body)).await;
    assert_eq!(status, 200, "{created}");
    let name = created["name"].as_str().expect("a name");
    assert!(!name.ends_with("/chosen-by-client"), "{name}");
    let (status, patched) = emulator
        .rest(
            Method::PATCH,
            &format!("v1/{name}"),
            Some(json!({"displayName": "", "thresholdRules": [{"thresholdPercent": 0.9}]})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        patched["displayName"], "copied",
        "an empty string is a default"
    );
    assert_eq!(patched["thresholdRules"][0]["thresholdPercent"], 0.9);
}

/// A nested `updateMask` path changes that field only ("Indicates which fields in the provided
/// budget to update"), and a path that names no field is 400.
#[tokio::test]
async fn nested_mask_paths_change_one_field() {
    let emulator = Emulator::start();
    let mut body = budget("nested");
    body["budgetFilter"] =
        json!({"projects": ["projects/nested-a"], "creditTypesTreatment": "EXCLUDE_ALL_CREDITS"});
    let (_, created) = emulator.rest(Method::POST, BUDGETS, Some(body)).await;
    let name = created["name"].as_str().expect("name");
    let (status, patched) = emulator
        .rest(
            Method::PATCH,
            &format!("v1/{name}?updateMask=budgetFilter.projects"),
            Some(json!({"budgetFilter": {"projects": ["projects/nested-b"]}})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        patched["budgetFilter"]["creditTypesTreatment"], "EXCLUDE_ALL_CREDITS",
        "outside the path: {patched}"
    );
    assert_eq!(
        patched["budgetFilter"]["projects"].as_array().map(Vec::len),
        Some(1)
    );
    assert_ne!(
        patched["budgetFilter"]["projects"],
        created["budgetFilter"]["projects"]
    );
    let (status, _) = emulator
        .rest(
            Method::PATCH,
            &format!("v1/{name}?updateMask=budgetFilter.nothing"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 400);
}

/// A budget's period: `lastPeriodAmount` and a `FORECASTED_SPEND` threshold "cannot be set in
/// combination with Filter.custom_period"; a custom period's start date "must be after January
/// 1, 2017"; calendar and custom periods are alternatives.
#[tokio::test]
async fn custom_periods_exclude_last_period_amounts_and_forecasts() {
    let emulator = Emulator::start();
    let custom = json!({"customPeriod": {"startDate": {"year": 2026, "month": 1, "day": 1}}});
    let refused = [
        json!({"amount": {"lastPeriodAmount": {}}, "budgetFilter": custom}),
        json!({
            "amount": {"specifiedAmount": {"units": "10"}},
            "thresholdRules": [{"thresholdPercent": 0.5, "spendBasis": "FORECASTED_SPEND"}],
            "budgetFilter": custom,
        }),
        json!({
            "amount": {"specifiedAmount": {"units": "10"}},
            "budgetFilter": {"customPeriod": {"startDate": {"year": 2016, "month": 5, "day": 1}}},
        }),
        json!({
            "amount": {"specifiedAmount": {"units": "10"}},
            "budgetFilter": {"calendarPeriod": "MONTH", "customPeriod": custom["customPeriod"]},
        }),
    ];
    for body in refused {
        let (status, answer) = emulator
            .rest(Method::POST, BUDGETS, Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    let (status, answer) = emulator
        .rest(
            Method::POST,
            BUDGETS,
            Some(json!({"amount": {"specifiedAmount": {"units": "10"}}, "budgetFilter": custom})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["budgetFilter"].get("calendarPeriod").is_none(),
        "a custom period is not given a calendar one: {answer}"
    );
}

/// `calendarPeriod` and `customPeriod` are alternatives (one `usage_period`): a masked patch
/// that sets a custom period replaces the default calendar period.
#[tokio::test]
async fn a_custom_period_replaces_the_calendar_period() {
    let emulator = Emulator::start();
    let (_, created) = emulator
        .rest(Method::POST, BUDGETS, Some(budget("period")))
        .await;
    assert_eq!(created["budgetFilter"]["calendarPeriod"], "MONTH");
    let name = created["name"].as_str().expect("name");
    let (status, patched) = emulator
        .rest(
            Method::PATCH,
            &format!("v1/{name}?updateMask=budgetFilter.customPeriod"),
            Some(json!({"budgetFilter": {"customPeriod": {"startDate": {"year": 2026, "month": 2, "day": 1}}}})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert!(
        patched["budgetFilter"].get("calendarPeriod").is_none(),
        "{patched}"
    );
    assert_eq!(
        patched["budgetFilter"]["customPeriod"]["startDate"]["month"],
        2
    );
}

/// BudgetAmount.specifiedAmount: "`currency_code` is optional. If specified when creating a
/// budget, it must match the currency of the billing account. If specified when updating a
/// budget, it must match the currency_code of the existing budget. The `currency_code` is
/// provided on output."
#[tokio::test]
async fn the_currency_is_the_billing_accounts() {
    let emulator =
        Emulator::start_with(&["--billing-account-currency", "000000-AAAAAA-BBBBBB=EUR"]);
    let (status, created) = emulator
        .rest(Method::POST, BUDGETS, Some(budget("euros")))
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["amount"]["specifiedAmount"]["currencyCode"], "EUR");
    let mut dollars = budget("dollars");
    dollars["amount"]["specifiedAmount"]["currencyCode"] = json!("USD");
    let (status, refused) = emulator.rest(Method::POST, BUDGETS, Some(dollars)).await;
    assert_eq!(
        (status, refused["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT")),
        "{refused}"
    );
    let name = created["name"].as_str().expect("name");
    let patch = |currency: Option<&str>| {
        let mut money = json!({"units": "200"});
        if let Some(currency) = currency {
            money["currencyCode"] = json!(currency);
        }
        json!({"amount": {"specifiedAmount": money}})
    };
    let path = format!("v1/{name}?updateMask=amount");
    let (status, refused) = emulator
        .rest(Method::PATCH, &path, Some(patch(Some("USD"))))
        .await;
    assert_eq!(status, 400, "{refused}");
    let (status, patched) = emulator.rest(Method::PATCH, &path, Some(patch(None))).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        patched["amount"]["specifiedAmount"],
        json!({"units": "200", "currencyCode": "EUR"})
    );
}

/// The official REST clients send `$alt=json;enum-encoding=int`, with enums as the numbers of
/// `google/cloud/billing/budgets/v1/budget_model.proto`: CalendarPeriod QUARTER = 2,
/// CreditTypesTreatment EXCLUDE_ALL_CREDITS = 2, ThresholdRule.Basis FORECASTED_SPEND = 2.
/// google.type's CalendarPeriod numbers WEEK 2, which Budgets does not even allow.
#[tokio::test]
async fn integer_enums_are_budgets_own_numbers() {
    let emulator = Emulator::start();
    let numbered = format!("{BUDGETS}?$alt=json;enum-encoding=int");
    let mut body = budget("quarterly");
    body["budgetFilter"] = json!({"calendarPeriod": 2, "creditTypesTreatment": 2});
    body["thresholdRules"] = json!([{"thresholdPercent": 0.9, "spendBasis": 2}]);
    let (status, created) = emulator.rest(Method::POST, &numbered, Some(body)).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["budgetFilter"]["calendarPeriod"], 2, "{created}");
    assert_eq!(created["budgetFilter"]["creditTypesTreatment"], 2);
    assert_eq!(created["thresholdRules"][0]["spendBasis"], 2);
    let name = created["name"].as_str().expect("name");
    let (_, named) = emulator
        .rest(Method::GET, &format!("v1/{name}"), None)
        .await;
    assert_eq!(
        named["budgetFilter"]["calendarPeriod"], "QUARTER",
        "{named}"
    );
    assert_eq!(
        named["budgetFilter"]["creditTypesTreatment"],
        "EXCLUDE_ALL_CREDITS"
    );
    assert_eq!(named["thresholdRules"][0]["spendBasis"], "FORECASTED_SPEND");
    // YEAR = 3 in Budgets' numbering; 5 (google.type's QUARTER) is no Budgets value.
    let mut body = budget("yearly");
    body["budgetFilter"] = json!({"calendarPeriod": 3});
    let (status, yearly) = emulator.rest(Method::POST, &numbered, Some(body)).await;
    assert_eq!(status, 200, "{yearly}");
    let mut body = budget("bad");
    body["budgetFilter"] = json!({"calendarPeriod": 5});
    let (status, refused) = emulator.rest(Method::POST, &numbered, Some(body)).await;
    assert_eq!(
        (status, refused["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT")),
        "{refused}"
    );
}
