//! What may appear in logs (phone numbers only masked, secrets never) and the metrics the
//! functions publish, as CloudWatch Embedded Metric Format lines on stdout: no API call, no
//! latency, and the metric is in the log next to the decision it counts.

use std::time::{SystemTime, UNIX_EPOCH};

/// CloudWatch namespace of every metric.
pub(crate) const NAMESPACE: &str = "GenesysRelay";

/// The function counting: the `function` dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// The queue consumer.
    Processor,
    /// The EventBridge handler.
    EventBridgeHandler,
}

impl Function {
    /// The dimension's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processor => "processor",
            Self::EventBridgeHandler => "eventbridge-handler",
        }
    }
}

/// What became of an event or an action: the `outcome` dimension, and an action's result label.
/// A closed set, so dashboards and alarms can name every value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// An SMS was sent.
    Sent,
    /// An expected refusal (opted out, undeliverable number): written back, not retried.
    Rejected,
    /// A forwarding endpoint took the event.
    Delivered,
    /// Done before: the stored result was returned.
    Duplicate,
    /// Nothing to do (a code not configured, no record to write onto).
    Ignored,
    /// A status check found the status final and written.
    Settled,
    /// Older than what was already applied.
    Stale,
    /// Context stored for a later event.
    Stored,
    /// A status was written onto the conversation.
    Written,
    /// Left to the writer at work, which writes it next.
    HandedOff,
    /// A delayed job not due yet, queued again.
    Postponed,
    /// No action applied to the event.
    Skipped,
    /// Failed for now; tried again later.
    Retry,
    /// A forwarding attempt that will not be retried.
    Failed,
    /// Sent to the dead-letter queue with its reason.
    DeadLettered,
    /// Put on the main queue for the processor.
    Queued,
    /// A forwarding endpoint answered 410 Gone and is disabled.
    Disabled,
}

impl Label {
    /// The dimension's value, and the stored label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Rejected => "rejected",
            Self::Delivered => "delivered",
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
            Self::Settled => "settled",
            Self::Stale => "stale",
            Self::Stored => "stored",
            Self::Written => "written",
            Self::HandedOff => "handed-off",
            Self::Postponed => "postponed",
            Self::Skipped => "skipped",
            Self::Retry => "retry",
            Self::Failed => "failed",
            Self::DeadLettered => "dead-lettered",
            Self::Queued => "queued",
            Self::Disabled => "disabled",
        }
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider whose rate limit refused a call: the `provider` dimension of `Throttled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Twilio's Messages API (429, code 20429).
    Twilio,
    /// The Genesys Cloud Platform API (429).
    Genesys,
}

impl Provider {
    /// The dimension's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Twilio => "twilio",
            Self::Genesys => "genesys",
        }
    }
}

/// One count of `metric` under `dimensions` as an EMF line.
fn emf_count(metric: &str, dimensions: &[(&str, &str)]) -> String {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp as u64,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [names],
                "Metrics": [{"Name": metric, "Unit": "Count"}]
            }]
        },
        metric: 1
    });
    for (name, value) in dimensions {
        line[*name] = serde_json::Value::from(*value);
    }
    line.to_string()
}

/// One `Outcomes` count for (function, action, outcome) as an EMF line.
pub(crate) fn outcome_metric(function: Function, action: &str, outcome: Label) -> String {
    emf_count(
        "Outcomes",
        &[
            ("function", function.as_str()),
            ("action", action),
            ("outcome", outcome.as_str()),
        ],
    )
}

/// One `Throttled` count for a provider as an EMF line.
pub(crate) fn throttled_metric(provider: Provider) -> String {
    emf_count("Throttled", &[("provider", provider.as_str())])
}

/// Prints an EMF line on Lambda, where Lambda sends it to CloudWatch Logs. Outside Lambda (the
/// local stack, tests) there is no CloudWatch to read it, so nothing is printed.
fn publish(line: impl FnOnce() -> String) {
    static ON_LAMBDA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON_LAMBDA.get_or_init(|| std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()) {
        println!("{}", line());
    }
}

/// Counts a call a provider's rate limit refused (it is retried after its `Retry-After`), for the
/// alarm that says the relay is sending faster than the provider takes.
pub fn count_throttled(provider: Provider) {
    publish(|| throttled_metric(provider));
}

/// Publishes one outcome count: one stdout line, which Lambda sends to CloudWatch Logs.
pub fn count_outcome(function: Function, action: &str, outcome: Label) {
    publish(|| outcome_metric(function, action, outcome));
}

/// Masks a phone number for logs, keeping just enough to tell numbers apart when debugging
/// (`+14158675309` → `+14*******09`). Anything short is masked whole.
pub(crate) fn mask_phone(number: &str) -> String {
    let chars: Vec<char> = number.trim().chars().collect();
    let plus = usize::from(chars.first() == Some(&'+'));
    let digits = &chars[plus..];
    if digits.len() < 6 {
        return "*".repeat(chars.len().max(1));
    }
    let (head, tail) = (2, 2);
    let mut masked: String = chars[..plus].iter().collect();
    masked.extend(&digits[..head]);
    masked.extend(std::iter::repeat_n('*', digits.len() - head - tail));
    masked.extend(&digits[digits.len() - tail..]);
    masked
}

#[cfg(test)]
mod tests {
    use super::{mask_phone, outcome_metric, throttled_metric, Function, Label, Provider};

    #[test]
    fn outcome_metrics_are_valid_emf() {
        let line: serde_json::Value = serde_json::from_str(&outcome_metric(
            Function::Processor,
            "sms_on_wrapup",
            Label::Sent,
        ))
        .unwrap();
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "GenesysRelay");
        for dimension in directive["Dimensions"][0].as_array().unwrap() {
            assert!(
                line.get(dimension.as_str().unwrap()).is_some(),
                "dimension {dimension} has a value"
            );
        }
        assert_eq!(line["Outcomes"], 1);
        assert!(line["_aws"]["Timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    }

    #[test]
    fn throttled_metrics_name_the_provider() {
        let line: serde_json::Value =
            serde_json::from_str(&throttled_metric(Provider::Genesys)).unwrap();
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "GenesysRelay");
        assert_eq!(directive["Dimensions"], serde_json::json!([["provider"]]));
        assert_eq!(directive["Metrics"][0]["Name"], "Throttled");
        assert_eq!(line["provider"], "genesys");
        assert_eq!(line["Throttled"], 1);
    }

    #[test]
    fn keeps_only_the_ends_of_a_number() {
        assert_eq!(mask_phone("+14158675309"), "+14*******09");
        assert_eq!(mask_phone("447700900123"), "44********23");
        assert_eq!(mask_phone("+123"), "****");
        assert_eq!(mask_phone(""), "*");
        assert!(!mask_phone("+14158675309").contains("867"));
    }
}
