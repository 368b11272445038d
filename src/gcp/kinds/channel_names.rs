//! Notification channel names as the configuration spells them. Google answers a channel name
//! in either project form — alert policies come back with the project number, a budget's
//! `notificationsRule.monitoringNotificationChannels` may too — while configurations and
//! state name the project by id. A channel is the same channel whichever form names its
//! project, so comparisons see the configured spelling; this file owns that rule for every
//! kind that names channels (alert policies, budgets).

use crate::value::Value;

/// The path segment before a channel id.
const CHANNELS: &str = "/notificationChannels/";

/// Returns the channel id of a full channel name (`projects/P/notificationChannels/ID`).
fn channel_id(name: &str) -> Option<&str> {
    let (project, id) = name.strip_prefix("projects/")?.split_once(CHANNELS)?;
    (!project.is_empty() && !project.contains('/') && !id.is_empty() && !id.contains('/'))
        .then_some(id)
}

/// Returns `live` (a list of channel names as Google answered them) spelled as `known` spells
/// the same channels (the configuration's or state's names: a live name takes the known name
/// with the same channel id), else in `project` when one is given (the project the object
/// lives in, as its configuration names it), else as answered. Anything that is not a list of
/// channel names is returned as it is.
pub(crate) fn spelled_as_configured(live: &Value, known: &[Value], project: Option<&str>) -> Value {
    let Value::List(names) = live else {
        return live.clone();
    };
    let spelled = names
        .iter()
        .map(|name| {
            let Some(id) = name.as_str().and_then(channel_id) else {
                return name.clone();
            };
            let configured = known
                .iter()
                .find(|known| known.as_str().and_then(channel_id) == Some(id));
            match (configured, project) {
                (Some(configured), _) => configured.clone(),
                (None, Some(project)) => Value::string(format!("projects/{project}{CHANNELS}{id}")),
                (None, None) => name.clone(),
            }
        })
        .collect();
    Value::List(spelled)
}

/// Returns the channel names a list value holds (empty for anything else): the known
/// spellings `spelled_as_configured` takes.
pub(crate) fn known_names(value: Option<&Value>) -> Vec<Value> {
    match value {
        Some(Value::List(names)) => names.clone(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(items: &[&str]) -> Value {
        Value::List(items.iter().map(|item| Value::string(*item)).collect())
    }

    #[test]
    fn a_number_form_answer_takes_the_configured_project_id_form() {
        let live = names(&[
            "projects/123456789012/notificationChannels/42",
            "projects/123456789012/notificationChannels/7",
        ]);
        let known = [Value::string("projects/proj-ops/notificationChannels/42")];
        assert_eq!(
            spelled_as_configured(&live, &known, None),
            names(&[
                "projects/proj-ops/notificationChannels/42",
                "projects/123456789012/notificationChannels/7",
            ])
        );
        assert_eq!(
            spelled_as_configured(&live, &known, Some("proj-app")),
            names(&[
                "projects/proj-ops/notificationChannels/42",
                "projects/proj-app/notificationChannels/7",
            ])
        );
    }

    #[test]
    fn another_channel_or_a_malformed_name_is_not_taken_for_a_configured_one() {
        let known = [Value::string("projects/p/notificationChannels/42")];
        let live = names(&[
            "projects/1/notificationChannels/420",
            "notificationChannels/42",
            "projects/1/alertPolicies/42",
        ]);
        assert_eq!(spelled_as_configured(&live, &known, None), live);
        assert_eq!(
            spelled_as_configured(&Value::Null, &known, Some("p")),
            Value::Null
        );
    }
}
