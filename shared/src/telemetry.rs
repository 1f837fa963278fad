//! What may appear in logs (phone numbers only masked, secrets never) and the metrics the
//! functions publish, as CloudWatch Embedded Metric Format lines on stdout: no API call, no
//! latency, and the metric is in the log next to the decision it counts.

use std::time::{SystemTime, UNIX_EPOCH};

/// CloudWatch namespace of every metric.
pub(crate) const NAMESPACE: &str = "GenesysRelay";

/// The function counting: the `function` dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// The HTTP receiver.
    Receiver,
    /// The queue consumer.
    Processor,
    /// The EventBridge handler.
    EventBridgeHandler,
}

impl Function {
    /// The dimension's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receiver => "receiver",
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

/// One EMF line: each metric `(name, unit, value)` under `dimensions`.
fn emf_line(dimensions: &[(&str, &str)], metrics: &[(&str, &str, u64)]) -> serde_json::Value {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    let definitions: Vec<serde_json::Value> = metrics
        .iter()
        .map(|(name, unit, _)| serde_json::json!({"Name": name, "Unit": unit}))
        .collect();
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp as u64,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [names],
                "Metrics": definitions
            }]
        }
    });
    for (name, value) in dimensions {
        line[*name] = serde_json::Value::from(*value);
    }
    for (name, _, value) in metrics {
        line[*name] = serde_json::Value::from(*value);
    }
    line
}

/// One count of `metric` under `dimensions` as an EMF line.
fn emf_count(metric: &str, dimensions: &[(&str, &str)]) -> serde_json::Value {
    emf_line(dimensions, &[(metric, "Count", 1)])
}

/// One `Outcomes` count for (function, action, outcome) as an EMF line.
pub(crate) fn outcome_metric(
    function: Function,
    action: &str,
    outcome: Label,
) -> serde_json::Value {
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
pub(crate) fn throttled_metric(provider: Provider) -> serde_json::Value {
    emf_count("Throttled", &[("provider", provider.as_str())])
}

/// One `SmsStatuses` count for a delivery status written onto a conversation, as an EMF line.
pub(crate) fn sms_status_metric(status: &str) -> serde_json::Value {
    emf_count("SmsStatuses", &[("status", status)])
}

/// Prints an EMF line on Lambda, where Lambda sends it to CloudWatch Logs, with the invocation's
/// trace id as the log lines carry it. Outside Lambda (the local stack, tests) there is no
/// CloudWatch to read it, so nothing is printed.
fn publish(line: impl FnOnce() -> serde_json::Value) {
    static ON_LAMBDA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON_LAMBDA.get_or_init(|| std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()) {
        println!("{}", traced(line(), trace_header().as_deref()));
    }
}

/// `line` with `trace` as its `xrayTraceId`, the field name the invocation's log lines use.
fn traced(mut line: serde_json::Value, trace: Option<&str>) -> serde_json::Value {
    if let Some(trace) = trace {
        line["xrayTraceId"] = serde_json::Value::from(trace);
    }
    line
}

/// The X-Ray trace header of the invocation under way, which the Lambda runtime puts in
/// `_X_AMZN_TRACE_ID`; `None` outside Lambda or when it is not a trace header.
pub(crate) fn trace_header() -> Option<String> {
    std::env::var("_X_AMZN_TRACE_ID")
        .ok()
        .filter(|t| t.starts_with("Root=") && t.len() <= 256 && t.is_ascii())
}

/// One `Rejections` count for a receiver route and the rejection's code as an EMF line.
pub(crate) fn rejection_metric(route: &str, reason: &str) -> serde_json::Value {
    emf_count(
        "Rejections",
        &[
            ("function", Function::Receiver.as_str()),
            ("route", route),
            ("reason", reason),
        ],
    )
}

/// One forwarding attempt to `endpoint`: its count and latency by outcome, as an EMF line.
pub(crate) fn forward_attempt_metric(
    endpoint: &str,
    outcome: Label,
    latency_ms: u64,
) -> serde_json::Value {
    emf_line(
        &[("endpoint", endpoint), ("outcome", outcome.as_str())],
        &[
            ("ForwardAttempts", "Count", 1),
            ("ForwardLatency", "Milliseconds", latency_ms),
        ],
    )
}

/// One `CircuitChanges` count for an endpoint's circuit entering `state`, as an EMF line.
pub(crate) fn circuit_change_metric(endpoint: &str, state: &str) -> serde_json::Value {
    emf_count(
        "CircuitChanges",
        &[("endpoint", endpoint), ("state", state)],
    )
}

/// Counts a request the receiver refused, by route and the rejection's code
/// (`unauthorized`, `payload_too_large`...).
pub fn count_rejection(route: &str, reason: &str) {
    publish(|| rejection_metric(route, reason));
}

/// Records one forwarding attempt to `endpoint`: per-endpoint success and latency.
pub fn record_forward_attempt(endpoint: &str, outcome: Label, latency_ms: u64) {
    publish(|| forward_attempt_metric(endpoint, outcome, latency_ms));
}

/// Counts an endpoint's circuit entering `state` (`open`, `half-open`, `closed`).
pub fn count_circuit_change(endpoint: &str, state: &str) {
    publish(|| circuit_change_metric(endpoint, state));
}

/// Counts a call a provider's rate limit refused (it is retried after its `Retry-After`), for the
/// alarm that says the relay is sending faster than the provider takes.
pub fn count_throttled(provider: Provider) {
    publish(|| throttled_metric(provider));
}

/// Counts a delivery status (`delivered`, `undelivered`, `failed`...) as it is written onto the
/// conversation: what became of the texts sent, next to the relay's own outcomes.
pub fn count_sms_status(status: &str) {
    publish(|| sms_status_metric(status));
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
    use super::{
        circuit_change_metric, forward_attempt_metric, mask_phone, outcome_metric,
        rejection_metric, sms_status_metric, throttled_metric, traced, Function, Label, Provider,
    };

    /// The line parsed, after checking that every dimension it declares has a value and every
    /// metric it declares is there.
    fn parsed(line: serde_json::Value) -> serde_json::Value {
        let line: serde_json::Value = serde_json::from_str(&line.to_string()).unwrap();
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "GenesysRelay");
        for dimension in directive["Dimensions"][0].as_array().unwrap() {
            assert!(line[dimension.as_str().unwrap()].is_string(), "{dimension}");
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            assert!(
                line[metric["Name"].as_str().unwrap()].is_number(),
                "{metric}"
            );
        }
        line
    }

    #[test]
    fn receiver_forwarding_and_circuit_metrics_carry_their_dimensions() {
        let rejected = parsed(rejection_metric("/webhooks/genesys", "unauthorized"));
        assert_eq!(
            rejected["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["function", "route", "reason"]])
        );
        assert_eq!(rejected["function"], "receiver");
        assert_eq!(rejected["reason"], "unauthorized");
        let attempt = parsed(forward_attempt_metric("crm", Label::Delivered, 42));
        assert_eq!(attempt["endpoint"], "crm");
        assert_eq!(attempt["outcome"], "delivered");
        assert_eq!(attempt["ForwardLatency"], 42);
        assert_eq!(
            attempt["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Unit"],
            "Milliseconds"
        );
        let change = parsed(circuit_change_metric("crm", "open"));
        assert_eq!(change["state"], "open");
        assert_eq!(change["CircuitChanges"], 1);
    }

    #[test]
    fn outcome_metrics_are_valid_emf() {
        let line = parsed(outcome_metric(
            Function::Processor,
            "sms_on_wrapup",
            Label::Sent,
        ));
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
    fn single_dimension_counts_name_their_dimension_and_value() {
        for (line, metric, dimension, value) in [
            (
                throttled_metric(Provider::Genesys),
                "Throttled",
                "provider",
                "genesys",
            ),
            (
                sms_status_metric("undelivered"),
                "SmsStatuses",
                "status",
                "undelivered",
            ),
        ] {
            let line = parsed(line);
            let directive = &line["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(directive["Namespace"], "GenesysRelay");
            assert_eq!(directive["Dimensions"], serde_json::json!([[dimension]]));
            assert_eq!(directive["Metrics"][0]["Name"], metric);
            assert_eq!(line[dimension], value);
            assert_eq!(line[metric], 1);
        }
    }

    #[test]
    fn a_metric_line_carries_the_invocations_trace_id_like_its_log_lines() {
        let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let line = parsed(traced(throttled_metric(Provider::Twilio), Some(trace)));
        assert_eq!(line["xrayTraceId"], trace);
        assert_eq!(line["Throttled"], 1, "the metric is untouched");
        assert!(traced(throttled_metric(Provider::Twilio), None)
            .get("xrayTraceId")
            .is_none());
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
