//! Which SMS template a wrap-up code selects, when rules name codes the way people know them.
//!
//! `.acw` events carry a wrap-up code's **id**: a UUID for codes the organization defined, the
//! literal id for the dialer's system codes (`ININ-OUTBOUND-*`, `ININ-WRAP-UP-TIMEOUT`). Rules may
//! key a template by id or by name; names are resolved to ids through Genesys
//! (`GET /api/v2/routing/wrapupcodes`, permission `routing:wrapupCode:view`) once per container,
//! and a name Genesys does not know stops the function at init. When an id nobody resolved
//! arrives (a code deleted and created again under the same name), the names are resolved once
//! more, at most once per `REFRESH_MIN_INTERVAL`.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::outbound::genesys::{GenesysClient, WrapupCode};
use crate::rules::SmsOnWrapup;

/// Least time between two resolutions prompted by unknown ids, so a stream of codes nobody
/// configured costs Genesys at most one round of lookups per interval and container.
pub(crate) const REFRESH_MIN_INTERVAL: Duration = Duration::from_secs(300);

/// Whether a template key is a code's id (a UUID, or a dialer system code's literal id) rather
/// than its name.
pub(crate) fn is_code_id(key: &str) -> bool {
    key.starts_with("ININ-") || is_uuid(key)
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Names compare without regard to case or surrounding blanks, as people type them.
fn folded(name: &str) -> String {
    name.trim().to_lowercase()
}

/// The rule's template keys, by the wrap-up code ids (and names) that select them.
#[derive(Debug)]
pub struct WrapupTemplates {
    /// Folded name → template key, for keys that are names.
    names: BTreeMap<String, String>,
    /// Code id → template key: ids given in the rules and ids names resolved to.
    ids: RwLock<HashMap<String, String>>,
    /// When unknown ids last made the names be resolved again.
    last_refresh: Mutex<Option<Instant>>,
}

impl WrapupTemplates {
    /// The keys of `rule`, sorted into ids and names; nothing is resolved yet.
    pub fn new(rule: &SmsOnWrapup) -> Self {
        let mut names = BTreeMap::new();
        let mut ids = HashMap::new();
        for key in rule.templates.keys() {
            if is_code_id(key) {
                ids.insert(key.clone(), key.clone());
            } else {
                names.insert(folded(key), key.clone());
            }
        }
        Self {
            names,
            ids: RwLock::new(ids),
            last_refresh: Mutex::new(None),
        }
    }

    /// Whether any key is a name, so Genesys must be asked for ids.
    pub(crate) fn has_names(&self) -> bool {
        !self.names.is_empty()
    }

    /// Resolves every name to its code's id. A name Genesys does not know (or knows twice) is a
    /// permanent error naming it: at init it stops the function before any event is misread.
    pub async fn resolve(&self, genesys: &GenesysClient) -> Result<()> {
        let mut resolved = Vec::new();
        let mut unknown = Vec::new();
        for (name, key) in &self.names {
            let listed = genesys.wrapup_codes(Some(key.trim())).await?;
            match exact_matches(&listed, name).as_slice() {
                [code] => resolved.push((code.id.clone(), key.clone())),
                [] => unknown.push(format!("{key:?}")),
                several => {
                    return Err(Error::permanent(format!(
                        "smsOnWrapup.templates: wrap-up code name {key:?} matches {} codes in \
                         Genesys; key the template by id instead",
                        several.len()
                    )))
                }
            }
        }
        if !unknown.is_empty() {
            return Err(Error::permanent(format!(
                "smsOnWrapup.templates names wrap-up codes Genesys does not know: {}; check the \
                 names (relay genesys wrapup-codes lists them) or key the templates by id",
                unknown.join(", ")
            )));
        }
        let mut ids = self.ids.write().unwrap_or_else(|p| p.into_inner());
        for (id, key) in resolved {
            if let Some(previous) = ids.insert(id.clone(), key.clone()) {
                if previous != key {
                    tracing::warn!(code_id = %id, template = %key, replaced = %previous, "two templates name one wrap-up code; the name wins");
                }
            }
        }
        Ok(())
    }

    /// Every code id known to select a template, with that template's key, sorted by id: what the
    /// EventBridge rule's wrap-up code filter (`SmsWrapupCodes`) must let through.
    pub fn ids(&self) -> Vec<(String, String)> {
        let ids = self.ids.read().unwrap_or_else(|p| p.into_inner());
        let mut pairs: Vec<(String, String)> = ids
            .iter()
            .map(|(id, key)| (id.clone(), key.clone()))
            .collect();
        pairs.sort();
        pairs
    }

    /// The template key a code selects, from what is known now: its id, or (for webhooks that
    /// carry names) its name.
    pub fn known(&self, code: &str) -> Option<String> {
        let ids = self.ids.read().unwrap_or_else(|p| p.into_inner());
        ids.get(code)
            .or_else(|| self.names.get(&folded(code)))
            .cloned()
    }

    /// The template key a code arriving in an event selects. An unknown UUID, while names are
    /// configured, makes the names be resolved again (at most once per
    /// `REFRESH_MIN_INTERVAL` from `now`); when that lookup fails the error is retryable, so
    /// the event waits rather than being taken for one nobody configured.
    pub async fn select(
        &self,
        code: &str,
        genesys: &GenesysClient,
        now: Instant,
    ) -> Result<Option<String>> {
        if let Some(key) = self.known(code) {
            return Ok(Some(key));
        }
        if !self.has_names() || !is_uuid(code) {
            return Ok(None);
        }
        {
            let mut last = self.last_refresh.lock().await;
            if last.is_some_and(|at| now.saturating_duration_since(at) < REFRESH_MIN_INTERVAL) {
                return Ok(None);
            }
            // Another caller may have resolved the names while this one waited for the lock.
            if let Some(key) = self.known(code) {
                return Ok(Some(key));
            }
            tracing::info!(code_id = %code, "unknown wrap-up code id; resolving the configured names again");
            self.resolve(genesys).await.map_err(|e| match e {
                Error::Permanent { message } => Error::retryable(message),
                other => other,
            })?;
            *last = Some(now);
        }
        Ok(self.known(code))
    }
}

/// The listed codes whose name is `name` (folded): Genesys' `name` filter may match more.
fn exact_matches<'a>(listed: &'a [WrapupCode], name: &str) -> Vec<&'a WrapupCode> {
    let mut matches: Vec<&WrapupCode> = listed.iter().filter(|c| folded(&c.name) == name).collect();
    matches.dedup_by(|a, b| a.id == b.id);
    matches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Rules;

    fn rule(keys: &[&str]) -> SmsOnWrapup {
        let templates: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .map(|k| ((*k).to_owned(), "hi".into()))
            .collect();
        Rules::parse(
            &serde_json::json!({"smsOnWrapup": {"templates": templates, "from": "+15005550006"}})
                .to_string(),
        )
        .unwrap()
        .sms_on_wrapup
        .unwrap()
    }

    #[test]
    fn ids_are_uuids_or_dialer_codes_and_everything_else_is_a_name() {
        assert!(is_code_id("ININ-OUTBOUND-NO-ANSWER"));
        assert!(is_code_id("ININ-WRAP-UP-TIMEOUT"));
        assert!(is_code_id("7fb334b0-0e9e-11e4-9191-0800200c9a66"));
        assert!(is_code_id("7FB334B0-0E9E-11E4-9191-0800200C9A66"));
        for name in [
            "Callback Requested",
            "Sale",
            "7fb334b0-0e9e-11e4-9191",
            "7fb334b0x0e9e-11e4-9191-0800200c9a66",
            "",
        ] {
            assert!(!is_code_id(name), "{name:?}");
        }
    }

    #[test]
    fn ids_select_at_once_and_names_match_webhooks_that_carry_names() {
        let templates =
            WrapupTemplates::new(&rule(&["ININ-OUTBOUND-NO-ANSWER", "Callback Requested"]));
        assert!(templates.has_names());
        assert_eq!(
            templates.known("ININ-OUTBOUND-NO-ANSWER").as_deref(),
            Some("ININ-OUTBOUND-NO-ANSWER")
        );
        assert_eq!(
            templates.known(" callback requested ").as_deref(),
            Some("Callback Requested")
        );
        assert_eq!(templates.known("ININ-OUTBOUND-BUSY"), None);
        assert!(!WrapupTemplates::new(&rule(&["ININ-OUTBOUND-BUSY"])).has_names());
    }

    #[test]
    fn only_exact_names_match_what_the_filter_returns() {
        let listed = [
            WrapupCode {
                id: "a".into(),
                name: "Callback Requested - Spanish".into(),
            },
            WrapupCode {
                id: "b".into(),
                name: "Callback requested".into(),
            },
        ];
        let found = exact_matches(&listed, &folded("Callback Requested"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, "b");
    }
}
