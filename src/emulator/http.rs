//! The emulator's request and answer types, shared by the server and every emulated API (so the
//! APIs never import the server), and Google's system parameters: the query parameters every
//! Google API accepts on every method (`$alt`, `fields`, `$.xgafv`, …), which are taken off a
//! request before its method sees it.

use super::error::ApiError;
use axum::body::Bytes;
use axum::http::Method;
use serde_json::Value as Json;

/// System parameters, each accepted bare or `$`-prefixed (Google's REST clients send `$alt`).
/// See <https://cloud.google.com/apis/docs/system-parameters>.
const SYSTEM_PARAMETERS: [&str; 11] = [
    "alt",
    "fields",
    "prettyPrint",
    "quotaUser",
    "key",
    "$.xgafv",
    "access_token",
    "callback",
    "userIp",
    "upload_protocol",
    "uploadType",
];

/// What the system parameters asked of the answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerFormat {
    /// `alt=json;enum-encoding=int`: enums as their proto numbers instead of names.
    pub int_enums: bool,
    /// `fields`: the partial response asked for, if any.
    pub fields: Option<String>,
}

/// Takes the system parameters off `query`, returning how the answer is to be written.
/// `alt` accepts `json` with an optional `;enum-encoding=int` (the official REST transports send
/// that on every call); `media` is Cloud Storage's and `proto` is not served over this transport.
pub fn take_system_parameters(query: &mut Vec<(String, String)>) -> Result<AnswerFormat, ApiError> {
    let mut format = AnswerFormat::default();
    let mut kept = Vec::with_capacity(query.len());
    for (key, value) in query.drain(..) {
        let bare = key.strip_prefix('$').unwrap_or(&key);
        let bare = if key == "$.xgafv" { key.as_str() } else { bare };
        if !SYSTEM_PARAMETERS.contains(&bare) {
            kept.push((key, value));
            continue;
        }
        if bare == "alt" {
            let mut parts = value.split(';').map(str::trim);
            match parts.next() {
                Some("json" | "media" | "") => {}
                Some(other) => {
                    return Err(ApiError::invalid_argument(format!(
                        "Invalid value for alt: {other:?} (this server answers json)"
                    )));
                }
                None => {}
            }
            for option in parts {
                match option.split_once('=') {
                    Some(("enum-encoding", "int")) => format.int_enums = true,
                    Some(("enum-encoding", "string" | "name")) => format.int_enums = false,
                    _ => {
                        return Err(ApiError::invalid_argument(format!(
                            "Invalid value for alt: unknown option {option:?}"
                        )));
                    }
                }
            }
        }
        if bare == "fields" && !value.trim().is_empty() {
            if !selection_is_balanced(&value) {
                return Err(ApiError::invalid_argument(format!(
                    "Invalid field selection {value:?}: unbalanced parentheses."
                )));
            }
            format.fields = Some(value.clone());
        }
        if bare == "$.xgafv" && !matches!(value.as_str(), "1" | "2") {
            return Err(ApiError::invalid_argument(format!(
                "Invalid value for $.xgafv: {value:?} (1 or 2)"
            )));
        }
        if bare == "prettyPrint" && parse_bool(&value).is_none() {
            return Err(ApiError::invalid_argument(format!(
                "Invalid value for prettyPrint: {value:?}"
            )));
        }
    }
    *query = kept;
    Ok(format)
}

fn selection_is_balanced(selection: &str) -> bool {
    let mut depth = 0i32;
    for character in selection.chars() {
        match character {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    depth == 0
}

/// Splits a selection at its top-level commas.
fn top_level(selection: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (index, character) in selection.char_indices() {
        match character {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(selection[start..index].trim());
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(selection[start..].trim());
    parts.into_iter().filter(|part| !part.is_empty()).collect()
}

/// Applies a `fields` selection (partial response): `a,b/c,items(name,size)`, with `.` accepted
/// for `/` as in field masks. A list is filtered element by element. See
/// <https://cloud.google.com/apis/docs/system-parameters>.
pub fn select_fields(value: &Json, selection: &str) -> Json {
    match value {
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|item| select_fields(item, selection))
                .collect(),
        ),
        Json::Object(fields) => {
            let mut kept = serde_json::Map::new();
            for part in top_level(selection) {
                let (path, inner) = match part.find('(') {
                    Some(open) if part.ends_with(')') => {
                        (&part[..open], Some(&part[open + 1..part.len() - 1]))
                    }
                    _ => (part, None),
                };
                let (head, rest) = match path.find(['/', '.']) {
                    Some(split) => (&path[..split], Some(&path[split + 1..])),
                    None => (path, None),
                };
                let Some(child) = fields.get(head) else {
                    continue;
                };
                let nested = match (rest, inner) {
                    (Some(rest), Some(inner)) => Some(format!("{rest}({inner})")),
                    (Some(rest), None) => Some(rest.to_string()),
                    (None, Some(inner)) => Some(inner.to_string()),
                    (None, None) => None,
                };
                let selected = match nested {
                    Some(nested) => select_fields(child, &nested),
                    None => child.clone(),
                };
                match (kept.get_mut(head), selected) {
                    (Some(Json::Object(existing)), Json::Object(more)) => existing.extend(more),
                    (_, selected) => {
                        kept.insert(head.to_string(), selected);
                    }
                }
            }
            Json::Object(kept)
        }
        other => other.clone(),
    }
}

/// Parses a query boolean as Google does: `true`/`false` in any case, and `1`/`0`.
pub fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") || text == "1" {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") || text == "0" {
        Some(false)
    } else {
        None
    }
}

/// A parsed request.
pub struct Request {
    pub method: Method,
    /// The API version segment (`v1`, `v3`).
    pub version: String,
    /// The path after the version.
    pub path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl Request {
    /// Returns a query parameter's value.
    pub fn query(&self, name: &str) -> Option<String> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    }

    /// Returns a boolean query parameter (`validateOnly=True` included); a value that is not a
    /// boolean is refused as Google does.
    pub fn query_bool(&self, name: &str) -> Result<bool, ApiError> {
        match self.query(name) {
            None => Ok(false),
            Some(text) => parse_bool(&text).ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "Invalid value at '{name}' (TYPE_BOOL), \"{text}\""
                ))
            }),
        }
    }

    /// Refuses query parameters the method does not define, as Google does.
    pub fn allow_query(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for (key, _) in &self.query {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::invalid_argument(format!(
                    "Invalid JSON payload received. Unknown name \"{key}\": Cannot bind query parameter. Field '{key}' could not be found in request message."
                )));
            }
        }
        Ok(())
    }

    /// Parses the JSON body, treating an empty one as `{}`.
    pub fn json(&self) -> Result<Json, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Json::Object(Default::default()));
        }
        let parsed: Json = serde_json::from_slice(&self.body).map_err(|error| {
            ApiError::invalid_argument(format!("Invalid JSON payload received. {error}"))
        })?;
        if !parsed.is_object() {
            return Err(ApiError::invalid_argument(
                "Invalid JSON payload received. Expected an object.",
            ));
        }
        Ok(parsed)
    }
}

/// A successful answer, and whether it changed the store (so it must be persisted).
pub struct Response {
    pub body: Json,
    pub changed: bool,
}

impl Response {
    /// An answer that changed the store.
    pub fn changed(body: Json) -> Self {
        Self {
            body,
            changed: true,
        }
    }

    /// An answer that only read.
    pub fn read(body: Json) -> Self {
        Self {
            body,
            changed: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn official_clients_system_parameters_are_taken_off() {
        let mut pairs = query(&[
            ("$alt", "json;enum-encoding=int"),
            ("pageSize", "2"),
            ("$prettyPrint", "false"),
            ("$.xgafv", "2"),
            ("quotaUser", "me"),
            ("$fields", "name"),
        ]);
        let format = take_system_parameters(&mut pairs).expect("accepted");
        assert!(format.int_enums);
        assert_eq!(pairs, query(&[("pageSize", "2")]));
    }

    #[test]
    fn plain_alt_json_keeps_enum_names_and_bad_alt_is_refused() {
        let mut pairs = query(&[("alt", "json")]);
        assert!(!take_system_parameters(&mut pairs).expect("json").int_enums);
        let mut pairs = query(&[("alt", "xml")]);
        assert_eq!(
            take_system_parameters(&mut pairs).expect_err("xml").status,
            "INVALID_ARGUMENT"
        );
    }

    #[test]
    fn partial_responses_keep_only_the_selected_fields() {
        let body = serde_json::json!({
            "secrets": [{"name": "a", "labels": {"x": "1"}}, {"name": "b"}],
            "nextPageToken": "t",
            "totalSize": 2,
        });
        assert_eq!(
            select_fields(&body, "secrets(name),nextPageToken"),
            serde_json::json!({"secrets": [{"name": "a"}, {"name": "b"}], "nextPageToken": "t"})
        );
        assert_eq!(
            select_fields(&body, "secrets/labels/x"),
            serde_json::json!({"secrets": [{"labels": {"x": "1"}}, {}]})
        );
        let mut pairs = query(&[("fields", "a(b")]);
        assert!(take_system_parameters(&mut pairs).is_err());
    }

    #[test]
    fn query_booleans_are_read_in_any_case() {
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool("FALSE"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }
}
