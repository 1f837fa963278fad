//! Which events trigger which actions: wrap-up codes with their message templates, where the
//! customer's number is, and how delivery status is written back.
//!
//! Rules are JSON, from `RULES` (inline) or `RULES_FILE` (a path), checked at init: an unknown
//! field, a template with an unknown placeholder or a sender that is not exactly one of `from` /
//! `messagingServiceSid` stops the function with a message naming it.
//!
//! ```json
//! {"smsOnWrapup": {
//!     "templates": {"ININ-OUTBOUND-NO-ANSWER": "Sorry we missed you, {{contact.firstName}}. Reply to this text to talk."},
//!     "messagingServiceSid": "MG0123456789abcdef0123456789abcdef"},
//!  "deliveryStatus": {"attributePrefix": "sms."}}
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::outbound::twilio::Sender;

/// Where the customer's number is looked for, in order, unless `numberPointers` says otherwise:
/// the `.outbound` event's `addressTo` / `dnis` (EventBridge shape or flat), then a plain field.
pub(crate) const DEFAULT_NUMBER_POINTERS: &[&str] = &[
    "/eventBody/addressTo",
    "/eventBody/dnis",
    "/addressTo",
    "/dnis",
    "/customerNumber",
    "/contact/phone",
];

/// What is wrong with the rules: each says where, and never echoes a secret.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// Not JSON of the rules' shape (an unknown field, a wrong type, a bad sender or URL).
    #[error("rules are not valid: {0}")]
    Shape(#[from] serde_json::Error),
    /// `smsOnWrapup.templates` is empty.
    #[error("smsOnWrapup.templates lists no wrap-up code")]
    NoTemplates,
    /// A template is blank.
    #[error("smsOnWrapup.templates[{0:?}] is empty")]
    EmptyTemplate(String),
    /// A template uses a placeholder that nothing fills.
    #[error(
        "smsOnWrapup.templates[{code:?}] uses {{{{{name}}}}}; known: {known}, contact.<column>"
    )]
    UnknownPlaceholder {
        /// The template's wrap-up code.
        code: String,
        /// The placeholder.
        name: String,
        /// The placeholders there are.
        known: String,
    },
    /// A number pointer is not a JSON pointer.
    #[error("smsOnWrapup.numberPointers holds {0:?}, which is not a JSON pointer")]
    NotAPointer(String),
    /// An endpoint name that cannot key records.
    #[error("forward endpoint name {0:?} must be 1-64 letters, digits, - or _")]
    EndpointName(String),
    /// An endpoint URL that is not http(s) with a host.
    #[error("forward endpoint {0}: url must be http(s) with a host")]
    EndpointUrl(String),
    /// An endpoint that wants no event.
    #[error("forward endpoint {0}: eventTypes is empty")]
    NoEventTypes(String),
    /// An endpoint's timeout or concurrency out of range.
    #[error("forward endpoint {0}: timeoutSecs must be 1-300 and concurrency 1-100")]
    EndpointLimits(String),
    /// Two endpoints with one name.
    #[error("forward endpoint name {0:?} is used twice")]
    DuplicateEndpoint(String),
    /// `forward.maxAttempts` out of range.
    #[error("forward.maxAttempts must be 1-50")]
    MaxAttempts,
}

/// Placeholders a template may use.
pub(crate) const PLACEHOLDERS: &[&str] = &["wrapupCode", "conversationId", "campaignId"];

/// All rules.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rules {
    /// Text the customer when a call wraps up with a listed code; absent means never.
    #[serde(default)]
    pub sms_on_wrapup: Option<SmsOnWrapup>,
    /// How delivery status is written onto the conversation.
    #[serde(default)]
    pub delivery_status: DeliveryStatus,
    /// Downstream HTTP services that receive events; absent means none.
    #[serde(default)]
    pub forward: Option<Forward>,
}

/// The forwarding rule: endpoints and how long to keep trying.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Forward {
    /// Where events go.
    pub endpoints: Vec<Endpoint>,
    /// Attempts per delivery before it is dead-lettered.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

impl Forward {
    /// Whether any endpoint receives events of `event_type`: whether such an event is worth
    /// queuing for forwarding at all.
    pub fn wants(&self, event_type: &str) -> bool {
        self.endpoints.iter().any(|e| e.wants(event_type))
    }
}

fn default_max_attempts() -> u32 {
    8
}

/// One downstream service.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    /// Unique name: letters, digits, `-` and `_` (it keys idempotency, circuit state and audit).
    pub name: String,
    /// Where to POST: an absolute `http(s)` URL with a host.
    #[serde(deserialize_with = "absolute_url")]
    pub url: reqwest::Url,
    /// Event types it receives: Genesys topic patterns (`v2.detail.events.conversation.{id}.acw`),
    /// `genesys.webhook`, `twilio.message-status`; `{id}` or `*` match one dot-separated segment
    /// and a lone `*` matches everything.
    #[serde(default = "match_all")]
    pub event_types: Vec<String>,
    /// Credentials sent with each delivery.
    #[serde(default)]
    pub auth: EndpointAuth,
    /// Standard Webhooks signing secret(s): a secret holding `whsec_...` or `{"secrets": [...]}`.
    #[serde(default)]
    pub signing_secret_arn: Option<String>,
    /// AES-256-GCM key secret (`{"keyId", "key"}`); set to encrypt deliveries.
    #[serde(default)]
    pub encryption_key_arn: Option<String>,
    /// Request timeout.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Deliveries in flight to this endpoint at once, per function instance.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

/// An absolute URL, parsed as the rules are read.
fn absolute_url<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<reqwest::Url, D::Error> {
    let text = String::deserialize(deserializer)?;
    reqwest::Url::parse(&text)
        .map_err(|e| serde::de::Error::custom(format!("url is not valid: {e}")))
}

fn match_all() -> Vec<String> {
    vec!["*".to_owned()]
}

fn default_timeout_secs() -> u64 {
    10
}

fn default_concurrency() -> usize {
    4
}

/// Credentials a delivery carries; values come from Secrets Manager.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum EndpointAuth {
    /// Nothing beyond the signature.
    #[default]
    None,
    /// `Authorization: Basic`; the secret holds `user:password`.
    #[serde(rename_all = "camelCase")]
    Basic {
        /// The secret's ARN.
        secret_arn: String,
    },
    /// `Authorization: Bearer`; the secret holds the token.
    #[serde(rename_all = "camelCase")]
    Bearer {
        /// The secret's ARN.
        secret_arn: String,
    },
}

impl Endpoint {
    /// Whether this endpoint receives events of `event_type`.
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types
            .iter()
            .any(|pattern| type_matches(pattern, event_type))
    }

    fn check(&self) -> Result<(), RulesError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(RulesError::EndpointName(self.name.clone()));
        }
        if !matches!(self.url.scheme(), "https" | "http") || self.url.host_str().is_none() {
            return Err(RulesError::EndpointUrl(self.name.clone()));
        }
        if self.event_types.is_empty() {
            return Err(RulesError::NoEventTypes(self.name.clone()));
        }
        if !(1..=300).contains(&self.timeout_secs) || !(1..=100).contains(&self.concurrency) {
            return Err(RulesError::EndpointLimits(self.name.clone()));
        }
        Ok(())
    }
}

/// Matches an event type against a pattern: segment by segment, `{id}` and `*` match any one
/// segment, and a lone `*` matches everything.
pub fn type_matches(pattern: &str, event_type: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let (mut p, mut t) = (pattern.split('.'), event_type.split('.'));
    loop {
        match (p.next(), t.next()) {
            (None, None) => return true,
            (Some(a), Some(b))
                if a == b || a == "*" || (a.starts_with('{') && a.ends_with('}')) => {}
            _ => return false,
        }
    }
}

/// The SMS-on-wrap-up rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "SmsOnWrapupFields")]
pub struct SmsOnWrapup {
    /// Wrap-up code (dialer `ININ-OUTBOUND-*` or org-defined, as the event carries it) → template.
    pub templates: BTreeMap<String, String>,
    /// JSON pointers tried in order for the customer's number.
    pub number_pointers: Vec<String>,
    /// Who the SMS comes from: the rule's `from` number or its `messagingServiceSid`.
    pub sender: Sender,
}

/// The rule as written: exactly one of `from` and `messagingServiceSid` names the sender.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SmsOnWrapupFields {
    templates: BTreeMap<String, String>,
    #[serde(default = "default_number_pointers")]
    number_pointers: Vec<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    messaging_service_sid: Option<String>,
}

impl TryFrom<SmsOnWrapupFields> for SmsOnWrapup {
    type Error = String;

    fn try_from(fields: SmsOnWrapupFields) -> Result<Self, String> {
        let sender = match (fields.from, fields.messaging_service_sid) {
            (Some(from), None) => Sender::From(from),
            (None, Some(service)) => Sender::MessagingService(service),
            _ => {
                return Err("smsOnWrapup needs exactly one of from and messagingServiceSid".into())
            }
        };
        if let Some(problem) = sender.problem() {
            return Err(format!("smsOnWrapup: {problem}"));
        }
        Ok(Self {
            templates: fields.templates,
            number_pointers: fields.number_pointers,
            sender,
        })
    }
}

/// The delivery-status rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveryStatus {
    /// Prefix of the participant attributes written (`sms.` gives `sms.status`, ...).
    #[serde(default = "default_prefix")]
    pub attribute_prefix: String,
}

impl Default for DeliveryStatus {
    fn default() -> Self {
        Self {
            attribute_prefix: default_prefix(),
        }
    }
}

fn default_prefix() -> String {
    "sms.".to_owned()
}

fn default_number_pointers() -> Vec<String> {
    DEFAULT_NUMBER_POINTERS
        .iter()
        .map(|p| (*p).to_owned())
        .collect()
}

impl Rules {
    /// Parses and checks rules; the error says what is wrong and where, never a value.
    pub fn parse(json: &str) -> Result<Self, RulesError> {
        let rules: Rules = serde_json::from_str(json)?;
        if let Some(sms) = &rules.sms_on_wrapup {
            sms.check()?;
        }
        if let Some(forward) = &rules.forward {
            let mut names = std::collections::BTreeSet::new();
            for endpoint in &forward.endpoints {
                endpoint.check()?;
                if !names.insert(endpoint.name.as_str()) {
                    return Err(RulesError::DuplicateEndpoint(endpoint.name.clone()));
                }
            }
            if !(1..=50).contains(&forward.max_attempts) {
                return Err(RulesError::MaxAttempts);
            }
        }
        Ok(rules)
    }
}

impl SmsOnWrapup {
    fn check(&self) -> Result<(), RulesError> {
        if self.templates.is_empty() {
            return Err(RulesError::NoTemplates);
        }
        for (code, template) in &self.templates {
            if template.trim().is_empty() {
                return Err(RulesError::EmptyTemplate(code.clone()));
            }
            for placeholder in placeholders(template) {
                let name = placeholder.name;
                let known = PLACEHOLDERS.contains(&name)
                    || name.strip_prefix("contact.").is_some_and(|f| !f.is_empty());
                if !known {
                    return Err(RulesError::UnknownPlaceholder {
                        code: code.clone(),
                        name: name.to_owned(),
                        known: PLACEHOLDERS.join(", "),
                    });
                }
            }
        }
        match self.number_pointers.iter().find(|p| !p.starts_with('/')) {
            Some(bad) => Err(RulesError::NotAPointer(bad.clone())),
            None => Ok(()),
        }
    }

    /// The template under a key of `templates` (a wrap-up code's id or name, as the rules give it;
    /// [`crate::actions::wrapup_codes::WrapupTemplates`] says which key an event's code selects).
    pub fn template(&self, key: &str) -> Option<&str> {
        self.templates.get(key).map(String::as_str)
    }

    /// The customer's number in a body: the first pointer that holds one (a `tel:` prefix removed).
    pub fn customer_number(&self, body: &Value) -> Option<String> {
        self.number_pointers.iter().find_map(|p| {
            let raw = body.pointer(p)?.as_str()?.trim();
            let number = raw.strip_prefix("tel:").unwrap_or(raw).trim();
            (!number.is_empty()).then(|| number.to_owned())
        })
    }
}

/// What a template is filled with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplateValues<'a> {
    /// The wrap-up code.
    pub wrapup_code: &'a str,
    /// The conversation id.
    pub conversation_id: &'a str,
    /// The outbound campaign id, when known.
    pub campaign_id: Option<&'a str>,
    /// Contact-list columns, when known.
    pub contact: Option<&'a Map<String, Value>>,
}

/// A template whose placeholders were not all filled: no SMS may go out half-written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the template needs {} but the event gives no value and the template no fallback (write {{{{name|fallback}}}})", .missing.iter().map(|m| format!("{{{{{m}}}}}")).collect::<Vec<_>>().join(", "))]
pub struct MissingValues {
    /// The placeholders left without a value.
    pub missing: Vec<String>,
}

/// Fills a template's `{{placeholder}}`s, or `{{placeholder|fallback}}`s: a value that is absent
/// or blank takes the fallback, and without one the whole template fails, naming what is missing.
pub fn render(template: &str, values: &TemplateValues<'_>) -> Result<String, MissingValues> {
    let mut out = String::with_capacity(template.len());
    let mut missing = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let placeholder = Placeholder::parse(&after[..end]);
        match (value_of(placeholder.name, values), placeholder.fallback) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(fallback)) => out.push_str(fallback),
            (None, None) => missing.push(placeholder.name.to_owned()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(MissingValues { missing })
    }
}

/// Whether a template reads contact-list columns, so they are fetched only when needed.
pub(crate) fn needs_contact(template: &str) -> bool {
    placeholders(template)
        .iter()
        .any(|p| p.name.starts_with("contact."))
}

/// A value worth putting in a text: present and not blank.
fn value_of(name: &str, values: &TemplateValues<'_>) -> Option<String> {
    let value = match name {
        "wrapupCode" => Some(values.wrapup_code.to_owned()),
        "conversationId" => Some(values.conversation_id.to_owned()),
        "campaignId" => values.campaign_id.map(str::to_owned),
        other => other
            .strip_prefix("contact.")
            .and_then(|field| values.contact?.get(field))
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Null | Value::Array(_) | Value::Object(_) => None,
            }),
    };
    value.filter(|v| !v.trim().is_empty())
}

/// One `{{name}}` or `{{name|fallback}}`, blanks around either part ignored.
struct Placeholder<'a> {
    name: &'a str,
    fallback: Option<&'a str>,
}

impl<'a> Placeholder<'a> {
    fn parse(inner: &'a str) -> Self {
        match inner.split_once('|') {
            Some((name, fallback)) => Self {
                name: name.trim(),
                fallback: Some(fallback.trim()),
            },
            None => Self {
                name: inner.trim(),
                fallback: None,
            },
        }
    }
}

fn placeholders(template: &str) -> Vec<Placeholder<'_>> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        found.push(Placeholder::parse(&after[..end]));
        rest = &after[end + 2..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const VALID: &str = r#"{"smsOnWrapup": {"templates": {"ININ-OUTBOUND-NO-ANSWER": "Hi {{contact.firstName}}, about {{ conversationId }} ({{wrapupCode}}, {{campaignId}})"},
        "messagingServiceSid": "MG0123456789abcdef0123456789abcdef"}}"#;

    #[test]
    fn templates_render_every_placeholder() {
        let rules = Rules::parse(VALID).unwrap();
        let sms = rules.sms_on_wrapup.unwrap();
        let contact = json!({"firstName": "Ada", "age": 36});
        let text = render(
            sms.template("ININ-OUTBOUND-NO-ANSWER").unwrap(),
            &TemplateValues {
                wrapup_code: "ININ-OUTBOUND-NO-ANSWER",
                conversation_id: "c1",
                campaign_id: Some("camp"),
                contact: contact.as_object(),
            },
        )
        .unwrap();
        assert_eq!(text, "Hi Ada, about c1 (ININ-OUTBOUND-NO-ANSWER, camp)");
        assert_eq!(rules.delivery_status.attribute_prefix, "sms.");
        assert!(sms.template("Sale").is_none());
    }

    #[test]
    fn a_template_never_renders_a_blank() {
        let blank = json!({"firstName": "  ", "lastName": null, "tags": ["a"]});
        let values = TemplateValues {
            contact: blank.as_object(),
            ..TemplateValues::default()
        };
        assert_eq!(
            render("Sorry we missed you, {{contact.firstName|there}}.", &values).unwrap(),
            "Sorry we missed you, there."
        );
        assert_eq!(
            render("{{ contact.lastName | valued customer }}!{{", &values).unwrap(),
            "valued customer!{{"
        );
        let error = render(
            "Sorry we missed you, {{contact.firstName}} {{contact.tags}}. {{campaignId}}",
            &values,
        )
        .unwrap_err();
        assert_eq!(
            error.missing,
            ["contact.firstName", "contact.tags", "campaignId"]
        );
        assert!(
            error
                .to_string()
                .contains("{{contact.firstName}}, {{contact.tags}}"),
            "{error}"
        );
        assert!(needs_contact("hi {{ contact.firstName|there }}"));
        assert!(!needs_contact("hi {{conversationId}}"));
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        for (json, needle) in [
            (
                r#"{"smsOnWrapup": {"templates": {}, "from": "+15005550006"}}"#,
                "no wrap-up code",
            ),
            (
                r#"{"smsOnWrapup": {"templates": {"X": "{{phone}}"}, "from": "+15005550006"}}"#,
                "{{phone}}",
            ),
            (
                r#"{"smsOnWrapup": {"templates": {"X": "{{phone|none}}"}, "from": "+15005550006"}}"#,
                "{{phone}}",
            ),
            (
                r#"{"smsOnWrapup": {"templates": {"X": "hi"}}}"#,
                "exactly one",
            ),
            (
                r#"{"smsOnWrapup": {"templates": {"X": "hi"}, "from": "+1", "messagingServiceSid": "MG1"}}"#,
                "exactly one",
            ),
            (
                r#"{"smsOnWrapup": {"templates": {"X": "hi"}, "from": "+1", "numberPointers": ["dnis"]}}"#,
                "JSON pointer",
            ),
            (
                r#"{"smsOnWrapup": {"templates": {"X": "hi"}, "messagingServiceSid": "MG1"}}"#,
                "Messaging Service SID",
            ),
            (
                r#"{"smsOnWrapup": {"templates": {"X": "hi"}, "from": " "}}"#,
                "`From` is empty",
            ),
            (r#"{"smsOnWrapups": {}}"#, "unknown field"),
        ] {
            let err = Rules::parse(json).unwrap_err().to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn forward_endpoints_are_checked_and_match_event_types() {
        let rules = Rules::parse(
            r#"{"forward": {"endpoints": [
                {"name": "crm", "url": "https://crm.example.com/hooks", "eventTypes": ["v2.detail.events.conversation.{id}.acw"],
                 "auth": {"type": "bearer", "secretArn": "arn:aws:secretsmanager:us-east-1:1:secret:t"}},
                {"name": "all", "url": "https://all.example.com/"}]}}"#,
        )
        .unwrap();
        let forward = rules.forward.unwrap();
        assert_eq!(forward.max_attempts, 8);
        let crm = &forward.endpoints[0];
        assert!(crm.wants("v2.detail.events.conversation.c1.acw"));
        assert!(!crm.wants("v2.detail.events.conversation.c1.outbound"));
        assert!(!crm.wants("v2.detail.events.conversation.c1.acw.extra"));
        assert!(forward.endpoints[1].wants("twilio.message-status"));
        assert!(matches!(crm.auth, EndpointAuth::Bearer { .. }));
        for (json, needle) in [
            (
                r#"{"forward": {"endpoints": [{"name": "a b", "url": "https://x.example"}]}}"#,
                "name",
            ),
            (
                r#"{"forward": {"endpoints": [{"name": "a", "url": "not a url"}]}}"#,
                "url is not valid",
            ),
            (
                r#"{"forward": {"endpoints": [{"name": "a", "url": "ftp://x.example"}]}}"#,
                "http(s)",
            ),
            (
                r#"{"forward": {"endpoints": [{"name": "a", "url": "https://x.example"}, {"name": "a", "url": "https://y.example"}]}}"#,
                "twice",
            ),
            (
                r#"{"forward": {"endpoints": [{"name": "a", "url": "https://x.example", "auth": {"type": "digest"}}]}}"#,
                "unknown variant",
            ),
        ] {
            let err = Rules::parse(json).unwrap_err().to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn the_customer_number_is_found_where_genesys_puts_it() {
        let sms = Rules::parse(VALID).unwrap().sms_on_wrapup.unwrap();
        assert_eq!(
            sms.customer_number(&json!({"eventBody": {"addressTo": "tel:+14158675309"}}))
                .as_deref(),
            Some("+14158675309")
        );
        assert_eq!(
            sms.customer_number(&json!({"dnis": "+447700900123"}))
                .as_deref(),
            Some("+447700900123")
        );
        assert_eq!(
            sms.customer_number(&json!({"eventBody": {"addressTo": ""}})),
            None
        );
    }
}
