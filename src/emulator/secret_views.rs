//! What Secret Manager's eventually consistent reads see of a secret's versions: "adding a
//! secret version and then immediately accessing that secret version by version number is a
//! strongly consistent operation … This doesn't apply when you access a secret version using
//! aliases or `latest`. Other operations within Secret Manager are eventually consistent"
//! (<https://cloud.google.com/secret-manager/docs/reference/consistency>). So `latest`, aliases
//! and the versions list answer from the view a secret had `lag` ago, while reads by number
//! answer from the store. This file keeps those past views; it knows nothing of HTTP.

use super::store::SecretRecord;
use std::collections::{BTreeMap, VecDeque};

/// The part of a secret that eventually consistent reads resolve through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretView {
    /// Each version's state (`ENABLED`, `DISABLED`, `DESTROYED`) by number.
    pub versions: BTreeMap<u64, String>,
    /// Version aliases and the numbers they name.
    pub aliases: BTreeMap<String, u64>,
}

impl SecretView {
    /// Returns the view a secret's current record gives.
    pub fn of(record: &SecretRecord) -> Self {
        let aliases = record
            .body
            .get("versionAliases")
            .and_then(|aliases| aliases.as_object())
            .into_iter()
            .flatten()
            .filter_map(|(alias, number)| {
                let number = number
                    .as_str()
                    .and_then(|text| text.parse::<u64>().ok())
                    .or_else(|| number.as_u64())?;
                Some((alias.clone(), number))
            })
            .collect();
        Self {
            versions: record
                .versions
                .iter()
                .map(|(number, version)| (*number, version.state.clone()))
                .collect(),
            aliases,
        }
    }

    /// Returns the number `latest` or an alias names in this view; `None` when it names none
    /// (no version yet, or an unknown alias). Numbers are not resolved here: they never lag.
    pub fn resolve(&self, version: &str) -> Option<u64> {
        if version == "latest" {
            return self.versions.keys().next_back().copied();
        }
        self.aliases
            .get(version)
            .copied()
            .filter(|number| self.versions.contains_key(number))
    }
}

/// The views one secret had before its recent changes.
#[derive(Debug, Clone, Default)]
pub struct ViewHistory {
    /// Each past view with the moment (milliseconds since the epoch) a change replaced it,
    /// oldest first.
    replaced: VecDeque<(i64, SecretView)>,
}

impl ViewHistory {
    /// Notes that a change at `now` replaced `before`, forgetting views no read can see any
    /// more (those replaced `lag` or longer ago).
    pub fn record(&mut self, before: SecretView, now: i64, lag: i64) {
        self.forget(now, lag);
        self.replaced.push_back((now, before));
    }

    /// Returns the view that was current at `now - lag`; `None` when that is the current one.
    pub fn visible(&self, now: i64, lag: i64) -> Option<&SecretView> {
        self.replaced
            .iter()
            .find(|(replaced_at, _)| *replaced_at > now - lag)
            .map(|(_, view)| view)
    }

    /// Returns whether no past view is visible any more at `now`.
    pub fn is_settled(&self, now: i64, lag: i64) -> bool {
        self.visible(now, lag).is_none()
    }

    fn forget(&mut self, now: i64, lag: i64) {
        while self
            .replaced
            .front()
            .is_some_and(|(replaced_at, _)| *replaced_at <= now - lag)
        {
            self.replaced.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(versions: &[(u64, &str)], aliases: &[(&str, u64)]) -> SecretView {
        SecretView {
            versions: versions
                .iter()
                .map(|(number, state)| (*number, state.to_string()))
                .collect(),
            aliases: aliases
                .iter()
                .map(|(alias, number)| (alias.to_string(), *number))
                .collect(),
        }
    }

    #[test]
    fn latest_and_aliases_resolve_within_the_view_only() {
        let seen = view(
            &[(1, "DISABLED"), (2, "ENABLED")],
            &[("prod", 1), ("gone", 9)],
        );
        assert_eq!(seen.resolve("latest"), Some(2));
        assert_eq!(seen.resolve("prod"), Some(1));
        assert_eq!(
            seen.resolve("gone"),
            None,
            "an alias of a version not seen yet"
        );
        assert_eq!(seen.resolve("unknown"), None);
        assert_eq!(SecretView::default().resolve("latest"), None);
    }

    #[test]
    fn a_read_sees_the_view_current_lag_ago() {
        let lag = 100;
        let mut history = ViewHistory::default();
        let empty = view(&[], &[]);
        let one = view(&[(1, "ENABLED")], &[]);
        history.record(empty.clone(), 1_000, lag);
        history.record(one.clone(), 1_050, lag);
        // At 1,080 the view of 980 (before either change) is what reads see.
        assert_eq!(history.visible(1_080, lag), Some(&empty));
        // At 1,120: the first change is visible, the second not yet.
        assert_eq!(history.visible(1_120, lag), Some(&one));
        // At 1,150 and later: the current record.
        assert_eq!(history.visible(1_150, lag), None);
        assert!(history.is_settled(1_150, lag));
    }

    #[test]
    fn views_no_read_can_see_are_forgotten() {
        let lag = 100;
        let mut history = ViewHistory::default();
        for moment in 0..50 {
            history.record(
                view(&[(moment, "ENABLED")], &[]),
                moment as i64 * 1_000,
                lag,
            );
        }
        assert_eq!(history.replaced.len(), 1);
    }
}
