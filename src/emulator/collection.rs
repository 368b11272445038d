//! The collection engine: how an emulated API is described and served. An API lists its
//! methods by their discovery id (`secretmanager.projects.secrets.get`) with a handler each;
//! the server finds the discovery method a request designates, takes the path variables from
//! its template (`projectsId`, `secretsId`), and calls the handler, or answers 501 naming the
//! method when the API serves no handler for it. No API writes a router. The engine's shared
//! semantics follow, so every API pages, masks and tags the same way Google's do:
//! `pageSize`/`pageToken` (opaque tokens, each API's documented default and maximum page size),
//! `updateMask` paths (camelCase or snake_case, nested, `*`) and etags.

use super::error::ApiError;
use super::http::{Request, Response};
use super::store::Store;
use base64::Engine;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a method's handler is given.
pub struct Call<'a> {
    pub store: &'a mut Store,
    pub request: &'a Request,
    /// The variables of the discovery path template, by name (`projectsId` → `p`).
    pub path: BTreeMap<String, String>,
    /// How long long-running operations take (`--operation-delay-ms`).
    pub operation_delay: Duration,
}

impl Call<'_> {
    /// Returns a path variable (empty when the template has none of that name).
    pub fn var(&self, name: &str) -> &str {
        self.path.get(name).map_or("", String::as_str)
    }
}

/// A method handler.
pub type Handler = fn(&mut Call<'_>) -> Result<Response, ApiError>;

/// One served method: its discovery id and its handler.
pub struct Method {
    pub id: &'static str,
    pub handler: Handler,
}

/// Finds the handler an API serves for discovery method `id`.
pub fn handler(apis: &[&'static [Method]], id: &str) -> Option<Handler> {
    apis.iter()
        .flat_map(|methods| methods.iter())
        .find(|method| method.id == id)
        .map(|method| method.handler)
}

/// An API's documented page sizes for one list method.
#[derive(Debug, Clone, Copy)]
pub struct PageSizes {
    /// Used when the client sends no page size, or 0.
    pub default: usize,
    /// Larger requests are capped to it (Google caps rather than refuses).
    pub maximum: usize,
}

impl PageSizes {
    pub const fn new(default: usize, maximum: usize) -> Self {
        Self { default, maximum }
    }
}

const TOKEN_PREFIX: &str = "emulator-page:";

fn encode_token(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{offset}"))
}

fn decode_token(token: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix(TOKEN_PREFIX)?
        .parse()
        .ok()
}

/// One page of `items` as the request asks for it (`size_parameter` is `pageSize`), and the
/// token of the next page when there is one.
pub fn page<T>(
    items: Vec<T>,
    request: &Request,
    size_parameter: &str,
    sizes: PageSizes,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    page_of(
        items,
        request.query(size_parameter).as_deref(),
        request.query("pageToken").as_deref(),
        size_parameter,
        sizes,
    )
    .map_err(ApiError::invalid_argument)
}

/// The paging rule itself, for APIs with their own request type (Cloud Storage's
/// `maxResults`): the error is the message of a 400.
pub fn page_of<T>(
    items: Vec<T>,
    size: Option<&str>,
    token: Option<&str>,
    size_parameter: &str,
    sizes: PageSizes,
) -> Result<(Vec<T>, Option<String>), String> {
    let size = match size {
        None => 0,
        Some(text) => text.trim().parse::<i64>().map_err(|_| {
            format!(
                "Invalid value at '{}' (TYPE_INT32), \"{text}\"",
                super::discovery::snake_case(size_parameter)
            )
        })?,
    };
    if size < 0 {
        return Err(format!("{size_parameter} must not be negative."));
    }
    let size = match size as usize {
        0 => sizes.default,
        requested => requested.min(sizes.maximum),
    };
    let start = match token.filter(|token| !token.is_empty()) {
        None => 0,
        Some(token) => {
            decode_token(token).ok_or_else(|| format!("Invalid page token: {token:?}."))?
        }
    };
    let total = items.len();
    let slice: Vec<T> = items.into_iter().skip(start).take(size).collect();
    let next = (start + size < total).then(|| encode_token(start + size));
    Ok((slice, next))
}

/// A list answer: `{field: items, nextPageToken}`, empty parts left out as proto3 JSON does.
pub fn list_answer(field: &str, items: Vec<Json>, next: Option<String>) -> Json {
    let mut body = Map::new();
    if !items.is_empty() {
        body.insert(field.to_string(), Json::Array(items));
    }
    if let Some(next) = next {
        body.insert("nextPageToken".into(), Json::String(next));
    }
    Json::Object(body)
}

/// Checks a list `filter` in the AIP-160 subset the emulator serves (<https://google.aip.dev/160>,
/// <https://cloud.google.com/secret-manager/docs/filtering>): terms `field OP value` with OP one
/// of `:` (has: substring, list member, map key), `=`, `!=`, `<`, `<=`, `>`, `>=`; fields dotted
/// and in either case (`labels.env`, `create_time`); terms joined by `AND` (or juxtaposed) and
/// `OR`, and negated by `NOT` or `-`. Parentheses are refused as unsupported.
pub fn filter_matches(item: &serde_json::Value, filter: &str) -> Result<bool, ApiError> {
    if filter.contains(['(', ')']) {
        return Err(ApiError::invalid_argument(format!(
            "Invalid filter {filter:?}: parentheses are not supported by the emulator."
        )));
    }
    // Monitoring writes `type = "email"`: operators may stand between spaces.
    let mut filter = filter.to_string();
    for operator in ["<=", ">=", "!=", "=", ":", "<", ">"] {
        while let Some(position) = filter.find(&format!(" {operator}")) {
            filter.replace_range(position..position + 1, "");
        }
        while let Some(position) = filter.find(&format!("{operator} ")) {
            let end = position + operator.len();
            filter.replace_range(end..end + 1, "");
        }
    }
    let mut any = false;
    for group in filter.split(" OR ") {
        let mut all = true;
        for term in tokens(group) {
            if term == "AND" {
                continue;
            }
            all &= term_matches(item, &term)?;
        }
        any |= all;
    }
    Ok(any)
}

/// Splits a filter group into terms, keeping quoted values whole and `NOT x` together.
fn tokens(group: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for character in group.chars() {
        match character {
            '"' => {
                quoted = !quoted;
                current.push(character);
            }
            ' ' if !quoted => {
                if !current.is_empty() {
                    terms.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(character),
        }
    }
    if !current.is_empty() {
        terms.push(current);
    }
    let mut joined = Vec::new();
    let mut negate = false;
    for term in terms {
        if term == "NOT" {
            negate = true;
            continue;
        }
        joined.push(if negate { format!("-{term}") } else { term });
        negate = false;
    }
    joined
}

fn term_matches(item: &serde_json::Value, term: &str) -> Result<bool, ApiError> {
    let (negated, term) = match term.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, term),
    };
    let operators = ["<=", ">=", "!=", ":", "=", "<", ">"];
    let Some((position, operator)) = operators
        .iter()
        .filter_map(|operator| term.find(operator).map(|position| (position, *operator)))
        .min_by_key(|(position, operator)| (*position, std::cmp::Reverse(operator.len())))
    else {
        return Err(ApiError::invalid_argument(format!(
            "Invalid filter term {term:?}: expected field, operator and value."
        )));
    };
    let field = camel_case(&term[..position]);
    let wanted = term[position + operator.len()..].trim_matches('"');
    let mut value = item;
    for part in field.split('.') {
        value = &value[part];
    }
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let matched = match operator {
        ":" => match value {
            serde_json::Value::Null => false,
            _ if wanted == "*" => true,
            serde_json::Value::Array(items) => items.iter().any(|item| text(item) == wanted),
            serde_json::Value::Object(map) => map.contains_key(wanted),
            other => text(other).contains(wanted),
        },
        "=" => text(value) == wanted,
        "!=" => text(value) != wanted,
        "<" => text(value).as_str() < wanted,
        "<=" => text(value).as_str() <= wanted,
        ">" => text(value).as_str() > wanted,
        _ => text(value).as_str() >= wanted,
    };
    Ok(matched != negated)
}

/// Sorts list `items` by an `orderBy`: comma-separated fields (dotted, either case), each
/// descending when prefixed with `-` (Monitoring,
/// <https://cloud.google.com/monitoring/api/v3/sorting-and-filtering#sort-order>) or followed
/// by ` desc` (<https://google.aip.dev/132#ordering>). Numbers compare as numbers, everything
/// else as text; a missing field sorts first. The sort is stable, so ties keep name order.
pub fn order_by(items: &mut [Json], order: &str) -> Result<(), ApiError> {
    let mut keys: Vec<(String, bool)> = Vec::new();
    for entry in order
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (entry, descending) = match entry.strip_prefix('-') {
            Some(rest) => (rest.trim(), true),
            None => match entry.split_once(char::is_whitespace) {
                Some((field, "desc")) => (field, true),
                Some((field, "asc")) => (field, false),
                Some(_) => {
                    return Err(ApiError::invalid_argument(format!(
                        "Invalid order_by {order:?}: use field, -field or \"field desc\"."
                    )));
                }
                None => (entry, false),
            },
        };
        if entry.is_empty()
            || !entry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._".contains(c))
        {
            return Err(ApiError::invalid_argument(format!(
                "Invalid order_by field {entry:?} in {order:?}."
            )));
        }
        keys.push((camel_case(entry), descending));
    }
    let field = |item: &Json, path: &str| -> Json {
        let mut value = item;
        for part in path.split('.') {
            value = &value[part];
        }
        value.clone()
    };
    items.sort_by(|left, right| {
        for (path, descending) in &keys {
            let ordering = compare_values(&field(left, path), &field(right, path));
            let ordering = if *descending {
                ordering.reverse()
            } else {
                ordering
            };
            if ordering.is_ne() {
                return ordering;
            }
        }
        std::cmp::Ordering::Equal
    });
    Ok(())
}

fn compare_values(left: &Json, right: &Json) -> std::cmp::Ordering {
    match (left, right) {
        (Json::Null, Json::Null) => std::cmp::Ordering::Equal,
        (Json::Null, _) => std::cmp::Ordering::Less,
        (_, Json::Null) => std::cmp::Ordering::Greater,
        (Json::Number(left), Json::Number(right)) => left
            .as_f64()
            .unwrap_or_default()
            .total_cmp(&right.as_f64().unwrap_or_default()),
        (Json::String(left), Json::String(right)) => left.cmp(right),
        (left, right) => left.to_string().cmp(&right.to_string()),
    }
}

/// Converts a field path to the camelCase the JSON bodies use (`display_name` → `displayName`).
pub fn camel_case(path: &str) -> String {
    path.split('.')
        .map(|part| {
            let mut out = String::with_capacity(part.len());
            let mut upper = false;
            for character in part.chars() {
                if character == '_' {
                    upper = true;
                } else if upper {
                    out.push(character.to_ascii_uppercase());
                    upper = false;
                } else {
                    out.push(character);
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Parses an `updateMask` (comma separated, camelCase or snake_case) into camelCase paths;
/// `None` when the mask is absent or empty.
pub fn mask_paths(mask: Option<&str>) -> Option<Vec<String>> {
    let mask = mask?.trim();
    if mask.is_empty() {
        return None;
    }
    Some(
        mask.split(',')
            .map(str::trim)
            .filter(|path| !path.is_empty())
            .map(camel_case)
            .collect(),
    )
}

/// Copies the masked `paths` from `incoming` into `current` (a path absent from `incoming`
/// clears the field, per AIP-134); nested paths (`template.scaling`) reach into messages.
pub fn apply_mask(current: &mut Map<String, Json>, incoming: &Map<String, Json>, paths: &[String]) {
    for path in paths {
        let parts: Vec<&str> = path.split('.').collect();
        apply_path(current, incoming, &parts);
    }
}

fn apply_path(current: &mut Map<String, Json>, incoming: &Map<String, Json>, parts: &[&str]) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    if rest.is_empty() {
        match incoming.get(*first) {
            Some(value) => {
                current.insert(first.to_string(), value.clone());
            }
            None => {
                current.remove(*first);
            }
        }
        return;
    }
    let empty = Map::new();
    let incoming_child = incoming
        .get(*first)
        .and_then(Json::as_object)
        .unwrap_or(&empty);
    let entry = current
        .entry(first.to_string())
        .or_insert_with(|| Json::Object(Map::new()));
    if !entry.is_object() {
        *entry = Json::Object(Map::new());
    }
    if let Some(child) = entry.as_object_mut() {
        apply_path(child, incoming_child, rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;
    use serde_json::json;

    fn request(query: &[(&str, &str)]) -> Request {
        Request {
            method: Method::GET,
            version: "v1".into(),
            path: "x".into(),
            query: query
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
            body: Default::default(),
        }
    }

    #[test]
    fn pages_follow_tokens_to_the_end() {
        let items: Vec<u32> = (0..5).collect();
        let sizes = PageSizes::new(100, 1000);
        let (first, token) = page(
            items.clone(),
            &request(&[("pageSize", "2")]),
            "pageSize",
            sizes,
        )
        .expect("1");
        assert_eq!(first, vec![0, 1]);
        let token = token.expect("more");
        let (second, token) = page(
            items.clone(),
            &request(&[("pageSize", "2"), ("pageToken", &token)]),
            "pageSize",
            sizes,
        )
        .expect("2");
        assert_eq!(second, vec![2, 3]);
        let (last, token) = page(
            items.clone(),
            &request(&[("pageSize", "2"), ("pageToken", &token.expect("more"))]),
            "pageSize",
            sizes,
        )
        .expect("3");
        assert_eq!((last, token), (vec![4], None));
    }

    #[test]
    fn default_and_maximum_sizes_apply_and_bad_tokens_are_refused() {
        let items: Vec<u32> = (0..30).collect();
        let sizes = PageSizes::new(20, 25);
        let (page_items, _) = page(items.clone(), &request(&[]), "pageSize", sizes).expect("d");
        assert_eq!(page_items.len(), 20);
        let (page_items, _) = page(
            items.clone(),
            &request(&[("pageSize", "500")]),
            "pageSize",
            sizes,
        )
        .expect("m");
        assert_eq!(page_items.len(), 25);
        let error =
            page(items, &request(&[("pageToken", "nope")]), "pageSize", sizes).expect_err("token");
        assert_eq!(error.status, "INVALID_ARGUMENT");
    }

    #[test]
    fn filters_match_fields_labels_and_negations() {
        let item = json!({"name": "projects/1/secrets/prod-db", "labels": {"env": "prod"}, "createTime": "2026-01-02T00:00:00Z"});
        assert!(filter_matches(&item, "name:prod").expect("has"));
        assert!(filter_matches(&item, "labels.env=prod AND name:db").expect("and"));
        assert!(!filter_matches(&item, "labels.env=dev").expect("equal"));
        assert!(filter_matches(&item, "labels.env=dev OR labels:env").expect("or"));
        assert!(filter_matches(&item, "NOT labels.env=dev").expect("not"));
        assert!(filter_matches(&item, "create_time>2026-01-01T00:00:00Z").expect("after"));
        assert!(filter_matches(&item, "(a=b)").is_err());
        assert!(filter_matches(&item, "labels.env = \"prod\"").expect("spaced"));
    }

    #[test]
    fn order_by_sorts_ascending_descending_and_by_several_fields() {
        let mut items = vec![
            json!({"displayName": "b", "enabled": true}),
            json!({"displayName": "a", "enabled": false}),
            json!({"displayName": "c", "enabled": true}),
        ];
        order_by(&mut items, "display_name").expect("ascending");
        assert_eq!(items[0]["displayName"], "a");
        order_by(&mut items, "-display_name").expect("descending");
        assert_eq!(items[0]["displayName"], "c");
        order_by(&mut items, "enabled desc, displayName").expect("two keys");
        let names: Vec<&str> = items
            .iter()
            .filter_map(|item| item["displayName"].as_str())
            .collect();
        assert_eq!(names, ["b", "c", "a"]);
        assert!(order_by(&mut items, "name sideways").is_err());
        assert!(order_by(&mut items, "starts_with(name)").is_err());
    }

    #[test]
    fn masks_reach_nested_fields_and_clear_absent_ones() {
        let mut current = json!({"a": {"b": 1, "c": 2}, "d": 3})
            .as_object()
            .cloned()
            .expect("object");
        let incoming = json!({"a": {"b": 9}}).as_object().cloned().expect("object");
        let paths = mask_paths(Some("a.b, d")).expect("paths");
        apply_mask(&mut current, &incoming, &paths);
        assert_eq!(Json::Object(current), json!({"a": {"b": 9, "c": 2}}));
        assert_eq!(
            mask_paths(Some("display_name")),
            Some(vec!["displayName".into()])
        );
        assert_eq!(mask_paths(Some(" ")), None);
    }
}
