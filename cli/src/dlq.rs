//! `relay dlq`: read a dead-letter queue without consuming it, and send each dead letter back to
//! where it is processed again.
//!
//! One DLQ holds several shapes (see README, "Dead letters"): the processor's letters and messages
//! SQS moved after too many receives go back to the main queue; the eventbridge-handler's letters,
//! Lambda's on-failure records and EventBridge rule dead letters hold an EventBridge event, which
//! goes back onto the event bus with PutEvents, or to the eventbridge-handler itself by an
//! asynchronous Invoke: EventBridge refuses PutEvents of a source starting with `aws.`, which every
//! Genesys partner event has, so those can only be replayed that way. Anything else stays, with its
//! reason, and is reported.
//!
//! Reading a queue means receiving, which hides a message; every read here makes what it received
//! visible again at once, so a look never takes a message away from a redrive or a consumer for
//! longer than the look itself.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Display;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use aws_config::SdkConfig;
use aws_sdk_eventbridge::primitives::{DateTime, DateTimeFormat};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageAttributeValue,
    MessageSystemAttributeName, QueueAttributeName,
};
use clap::Subcommand;
use genesys_relay::dead_letter::{self, attr as dead, Origin};
use genesys_relay::inbound::event::GenesysDetail;
use genesys_relay::inbound::queue::attr as envelope;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::output::{self, Report};

/// What an operator does with a dead-letter queue: look at why messages failed, then put them back
/// once the cause is fixed.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
#[command(
    after_help = "AWS access comes from the environment, as for the AWS CLI: AWS_PROFILE or \
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_REGION, and AWS_ENDPOINT_URL for a local AWS \
(AWS_ENDPOINT_URL_LAMBDA and the like for one service)."
)]
pub enum Command {
    /// Show dead letters with where they came from and why they failed, leaving them on the queue.
    List {
        /// The dead-letter queue's URL.
        #[arg(long, value_name = "URL")]
        queue: String,
        /// Show at most this many.
        #[arg(long, value_name = "N", default_value_t = 10,
              value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// The eventbridge-handler function, to name it as where events go (see `redrive`).
        #[arg(long, value_name = "FUNCTION", env = "RELAY_EVENTBRIDGE_HANDLER")]
        handler: Option<String>,
    },
    /// Show one dead letter in full (body and every attribute), leaving it on the queue.
    Show {
        /// The dead-letter queue's URL.
        #[arg(long, value_name = "URL")]
        queue: String,
        /// The message id, as `relay dlq list` shows it.
        message_id: String,
        /// The eventbridge-handler function, to name it as where an event goes (see `redrive`).
        #[arg(long, value_name = "FUNCTION", env = "RELAY_EVENTBRIDGE_HANDLER")]
        handler: Option<String>,
    },
    /// Send dead letters back to where they are processed again.
    ///
    /// Queued messages (the processor's letters, and messages SQS moved after too many receives)
    /// go to --to with their original attributes; EventBridge events (the eventbridge-handler's
    /// letters, Lambda on-failure records, EventBridge rule dead letters) go onto --bus with
    /// PutEvents, else to --handler, else onto the bus a rule's dead letter names. An event from
    /// an `aws.` source (every Genesys partner event), which PutEvents refuses, goes to --handler
    /// only. Each letter is deleted only once it was sent; one that cannot be sent (an unknown
    /// shape, an event with nowhere to go) stays with its reason. What was put back carries the
    /// reasons it failed before (`previous-error`), so a replay that fails again keeps them.
    ///
    /// A run handles at most the letters on the queue when it started: one that comes back
    /// while it runs (a replay that failed again) is left for the next run.
    Redrive {
        /// The dead-letter queue's URL.
        #[arg(long, value_name = "URL")]
        queue: String,
        /// The main queue: where queued messages go.
        #[arg(long, value_name = "URL")]
        to: String,
        /// The event bus the eventbridge-handler's rule listens on (the stack's
        /// GenesysEventBusName): where events go, but for those from an `aws.` source, which
        /// PutEvents refuses. Without it, events go to --handler; without either, a rule dead
        /// letter goes back to the bus its rule is on, and other events stay.
        #[arg(long, value_name = "NAME", env = "RELAY_EVENT_BUS")]
        bus: Option<String>,
        /// The eventbridge-handler function (name or ARN), invoked asynchronously with each event
        /// as EventBridge delivers it: Lambda's retries and on-failure destination apply as for a
        /// delivery from the bus. Needs lambda:InvokeFunction on it.
        #[arg(long, value_name = "FUNCTION", env = "RELAY_EVENTBRIDGE_HANDLER")]
        handler: Option<String>,
        /// Handle at most this many.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        /// Show where each would go, and send nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs a command with AWS clients configured from the environment.
pub async fn run(command: Command) -> anyhow::Result<Report> {
    run_with(command, &genesys_relay::aws::load().await).await
}

/// Runs a command with clients made from `aws`, so tests can point it at a local AWS.
pub async fn run_with(command: Command, aws: &SdkConfig) -> anyhow::Result<Report> {
    let sqs = aws_sdk_sqs::Client::new(aws);
    match command {
        Command::List {
            queue,
            limit,
            handler,
        } => list(&sqs, &queue, limit as usize, handler.as_deref()).await,
        Command::Show {
            queue,
            message_id,
            handler,
        } => show(&sqs, &queue, &message_id, handler.as_deref()).await,
        Command::Redrive {
            queue,
            to,
            bus,
            handler,
            limit,
            dry_run,
        } => {
            let target = Target {
                queue: &queue,
                to: &to,
                bus: bus.as_deref(),
                handler: handler.as_deref(),
            };
            let limit = limit.map(|n| n as usize);
            if dry_run {
                dry_run_report(&sqs, &target, limit).await
            } else {
                let senders = Senders {
                    sqs: &sqs,
                    events: &aws_sdk_eventbridge::Client::new(aws),
                    lambda: &aws_sdk_lambda::Client::new(aws),
                };
                redrive(&senders, &target, limit).await
            }
        }
    }
}

/// How long a look hides what it received, should making it visible again fail.
const PEEK_VISIBILITY_SECS: i32 = 30;
/// How long a redrive holds a message: enough to send and delete a batch of ten one by one.
const MOVE_VISIBILITY_SECS: i32 = 120;
/// Long polling asks every SQS server, so an empty answer means an empty queue; kept under the
/// SDK's per-attempt timeout.
const LONG_POLL_SECS: i32 = 1;
/// SQS's batch size.
const BATCH: usize = 10;
/// Reasons are cut to this many characters in a listing (`--json` and `show` have them whole).
const REASON_WIDTH: usize = 60;

const METHOD_BY_HAND: &str = "receive-send-delete";
/// Why a redrive never hands the queue to SQS's own move task.
const WHY_BY_HAND: &str = "not StartMessageMoveTask, which moves every letter to one queue as it \
is: events would fail there, and each letter's reason would be lost";

/// Attributes EventBridge puts on a rule's dead letter.
mod rule_attr {
    /// The rule that matched the event.
    pub const RULE_ARN: &str = "RULE_ARN";
    /// The target it could not deliver to.
    pub const TARGET_ARN: &str = "TARGET_ARN";
    /// Why, as a code (e.g. `SDK_CLIENT_ERROR`).
    pub const ERROR_CODE: &str = "ERROR_CODE";
    /// Why, in words.
    pub const ERROR_MESSAGE: &str = "ERROR_MESSAGE";
}

/// What each shape is called in listings and reports (`origin`).
mod shape {
    pub const PROCESSOR: &str = "processor";
    pub const HANDLER: &str = "eventbridge-handler";
    pub const SQS_MOVE: &str = "sqs-redrive-policy";
    pub const ON_FAILURE: &str = "lambda-on-failure";
    pub const RULE: &str = "eventbridge-rule";
    pub const UNKNOWN: &str = "unknown";
}

/// The attributes a letter gained by failing, dropped when it is put back (its history goes into
/// a fresh `previous-error`).
const ADDED_ON_FAILURE: [&str; 6] = [
    dead::ERROR_CLASS,
    dead::ERROR_MESSAGE,
    dead::ACTION,
    dead::FAILED_AT,
    dead::ORIGIN,
    dead::PREVIOUS_ERROR,
];

/// Where a redrive sends letters.
struct Target<'a> {
    queue: &'a str,
    to: &'a str,
    bus: Option<&'a str>,
    handler: Option<&'a str>,
}

/// The clients a redrive reads with and sends through.
struct Senders<'a> {
    sqs: &'a aws_sdk_sqs::Client,
    events: &'a aws_sdk_eventbridge::Client,
    lambda: &'a aws_sdk_lambda::Client,
}

/// A received dead letter.
pub struct Letter {
    id: String,
    receipt: String,
    body: String,
    attributes: HashMap<String, MessageAttributeValue>,
    system: HashMap<MessageSystemAttributeName, String>,
}

impl Letter {
    fn from_message(message: Message) -> Option<Self> {
        Some(Self {
            id: message.message_id?,
            receipt: message.receipt_handle?,
            body: message.body.unwrap_or_default(),
            attributes: message.message_attributes.unwrap_or_default(),
            system: message.attributes.unwrap_or_default(),
        })
    }

    /// The SQS message id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A string attribute; `None` when absent or empty.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .get(name)?
            .string_value()
            .filter(|value| !value.is_empty())
    }

    /// When SQS took the letter, in epoch milliseconds.
    fn sent_ms(&self) -> Option<u64> {
        self.system
            .get(&MessageSystemAttributeName::SentTimestamp)?
            .parse()
            .ok()
    }

    /// When SQS took the letter (RFC 3339): when it was dead-lettered, for letters sent to the
    /// DLQ rather than moved there.
    fn sent_at(&self) -> Option<String> {
        let millis = i128::from(self.sent_ms()?);
        time::OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000)
            .ok()?
            .format(&time::format_description::well_known::Rfc3339)
            .ok()
    }

    /// The attributes it had before it failed, as the processor expects them.
    fn original_attributes(&self) -> HashMap<String, MessageAttributeValue> {
        self.attributes
            .iter()
            .filter(|(name, _)| !ADDED_ON_FAILURE.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }
}

/// An EventBridge event, as a dead letter holds it.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    source: String,
    detail_type: String,
    detail: Value,
    time: Option<String>,
    resources: Vec<String>,
    /// The whole event as the letter holds it (`version`, `id`, `account`, `region` too), which
    /// the handler is invoked with.
    whole: Value,
}

impl Event {
    /// The event in `value`, when it has the fields PutEvents needs.
    fn from_value(value: &Value) -> Option<Self> {
        let text = |field: &str| value.get(field)?.as_str().map(str::to_owned);
        let detail = value.get("detail").filter(|detail| detail.is_object())?;
        Some(Self {
            whole: value.clone(),
            source: text("source")?,
            detail_type: text("detail-type")?,
            detail: detail.clone(),
            time: text("time"),
            resources: value
                .get("resources")
                .and_then(Value::as_array)
                .map(|all| {
                    all.iter()
                        .filter_map(|r| r.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// The event key the handler gives it, when its detail is a Genesys event.
    fn event_key(&self) -> Option<String> {
        let detail: GenesysDetail = serde_json::from_value(self.detail.clone()).ok()?;
        Some(
            genesys_relay::inbound::partner_event::event_key(&detail)
                .as_str()
                .to_owned(),
        )
    }

    /// Why PutEvents cannot take it back, if it cannot: then only the handler can.
    fn refused(&self) -> Option<String> {
        self.source.starts_with("aws.").then(|| {
            format!(
                "EventBridge refuses PutEvents with a source starting with \"aws.\" ({}): \
                 give --handler (the stack's eventbridge-handler function) to invoke it with \
                 the event",
                self.source
            )
        })
    }

    /// Its resources with `history` in the marked entry (replacing any earlier one): the handler
    /// copies it into the letter it writes if the event fails again.
    fn resources_with(&self, history: &str) -> Vec<String> {
        let mut resources: Vec<String> = self
            .resources
            .iter()
            .filter(|resource| !resource.starts_with(dead_letter::PREVIOUS_ERROR_RESOURCE))
            .cloned()
            .collect();
        resources.push(dead_letter::previous_error_resource(history));
        resources
    }

    /// The event as EventBridge delivers it to the handler: every field as the letter holds it,
    /// `resources` carrying `history`.
    fn delivered(&self, history: &str) -> Value {
        let mut whole = self.whole.clone();
        if let Some(fields) = whole.as_object_mut() {
            fields.insert("resources".to_owned(), json!(self.resources_with(history)));
        }
        whole
    }
}

/// Where a letter goes back to, before the command's options are known.
#[derive(Debug, Clone, PartialEq)]
enum Route {
    /// The main queue.
    Queue,
    /// An event bus or the eventbridge-handler: `bus` when the letter names it (a rule's dead
    /// letter).
    Event { event: Event, bus: Option<String> },
    /// Nowhere: why.
    Keep(String),
}

/// What a dead letter says: where it came from, why it failed, and where it goes back to.
struct Reading {
    origin: &'static str,
    class: Option<String>,
    action: Option<String>,
    failed_at: Option<String>,
    reason: String,
    previous: Option<String>,
    event_key: Option<String>,
    source: Option<String>,
    detail_type: Option<String>,
    route: Route,
}

impl Reading {
    /// Recognises the shape of `letter`: its `origin` attribute, else what it holds.
    fn of(letter: &Letter) -> Self {
        let body: Option<Value> = serde_json::from_str(&letter.body).ok();
        let event = body.as_ref().and_then(Event::from_value);
        let marked = letter.attribute(dead::ORIGIN).and_then(Origin::parse);
        if marked.is_some()
            || letter.attribute(dead::ERROR_CLASS).is_some()
            || letter.attribute(dead::ERROR_MESSAGE).is_some()
        {
            return Self::function_letter(letter, marked, event);
        }
        if let Some(record) = body.as_ref().filter(|body| is_on_failure_record(body)) {
            return Self::on_failure(letter, record);
        }
        if letter.attribute(rule_attr::RULE_ARN).is_some()
            || letter.attribute(rule_attr::ERROR_CODE).is_some()
        {
            return Self::rule_letter(letter, event);
        }
        if letter.attribute(envelope::EVENT_KEY).is_some()
            || letter.attribute(envelope::SOURCE).is_some()
        {
            return Self::queued(
                letter,
                shape::SQS_MOVE,
                "moved here by the main queue's redrive policy after too many receives (each a \
                 retryable failure or a timeout); no reason recorded"
                    .to_owned(),
            );
        }
        let what = if event.is_some() {
            "an EventBridge event with nothing saying what dead-lettered it"
        } else {
            "no origin attribute, not a Lambda on-failure record, no EventBridge rule attributes, \
             no queue envelope"
        };
        Self {
            origin: shape::UNKNOWN,
            class: None,
            action: None,
            failed_at: letter.sent_at(),
            reason: format!("unrecognised dead letter: {what}"),
            previous: None,
            event_key: None,
            source: None,
            detail_type: None,
            route: Route::Keep(format!("unrecognised dead letter: {what}")),
        }
    }

    /// A queued message, the processor's letter or one SQS moved.
    fn queued(letter: &Letter, origin: &'static str, reason: String) -> Self {
        let text = |name: &str| letter.attribute(name).map(str::to_owned);
        Self {
            origin,
            class: text(dead::ERROR_CLASS),
            action: text(dead::ACTION),
            failed_at: text(dead::FAILED_AT),
            reason,
            previous: text(dead::PREVIOUS_ERROR),
            event_key: text(envelope::EVENT_KEY),
            source: text(envelope::SOURCE),
            detail_type: None,
            route: Route::Queue,
        }
    }

    /// A letter either function wrote (marked with its origin, or, from before origins were
    /// marked, by its error attributes).
    fn function_letter(letter: &Letter, marked: Option<Origin>, event: Option<Event>) -> Self {
        let reason = letter
            .attribute(dead::ERROR_MESSAGE)
            .unwrap_or("-")
            .to_owned();
        // Whatever wrote it, an event without the receiver's envelope can only be processed as
        // an event (the handler's letters from before they were marked look like that).
        let is_event = match marked {
            Some(Origin::EventBridgeHandler) => true,
            Some(Origin::Processor) | None => {
                letter.attribute(envelope::RECEIVED_AT).is_none() && event.is_some()
            }
        };
        let mut reading = Self::queued(letter, shape::PROCESSOR, reason);
        reading.failed_at = reading.failed_at.or_else(|| letter.sent_at());
        if !is_event {
            return reading;
        }
        reading.origin = shape::HANDLER;
        reading.detail_type = letter.attribute("detail-type").map(str::to_owned);
        match event {
            Some(event) => reading.event_route(event, None),
            None => {
                reading.route = Route::Keep(
                    "marked as the eventbridge-handler's, but its body is not an EventBridge event"
                        .to_owned(),
                );
                reading
            }
        }
    }

    /// Lambda's record of an invocation of the handler that failed every attempt.
    fn on_failure(letter: &Letter, record: &Value) -> Self {
        let context = &record["requestContext"];
        let condition = context["condition"].as_str().unwrap_or("failed").to_owned();
        let attempts = context["approximateInvokeCount"].as_u64();
        let response = &record["responsePayload"];
        let error = match (
            response["errorType"].as_str(),
            response["errorMessage"].as_str(),
        ) {
            (Some(kind), Some(message)) => Some(format!("{kind}: {message}")),
            (None, Some(message)) => Some(message.to_owned()),
            (Some(kind), None) => Some(kind.to_owned()),
            (None, None) => record["responseContext"]["functionError"]
                .as_str()
                .map(|kind| format!("function error ({kind})")),
        };
        let mut reason = format!(
            "{} failed {condition}",
            context["functionArn"].as_str().unwrap_or("the function")
        );
        if let Some(attempts) = attempts {
            reason.push_str(&format!(" after {attempts} attempt(s)"));
        }
        if let Some(error) = error {
            reason.push_str(": ");
            reason.push_str(&error);
        }
        let reading = Self {
            origin: shape::ON_FAILURE,
            class: Some(condition),
            action: None,
            failed_at: record["timestamp"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| letter.sent_at()),
            reason,
            previous: None,
            event_key: None,
            source: None,
            detail_type: None,
            route: Route::Keep(
                "a Lambda on-failure record whose request is not an EventBridge event".to_owned(),
            ),
        };
        match Event::from_value(&record["requestPayload"]) {
            Some(event) => reading.event_route(event, None),
            None => reading,
        }
    }

    /// An event EventBridge could not deliver to the rule's target.
    fn rule_letter(letter: &Letter, event: Option<Event>) -> Self {
        let code = letter.attribute(rule_attr::ERROR_CODE).map(str::to_owned);
        let mut reason = code.clone().unwrap_or_else(|| "not delivered".to_owned());
        if let Some(message) = letter.attribute(rule_attr::ERROR_MESSAGE) {
            reason.push_str(": ");
            reason.push_str(message);
        }
        if let Some(target) = letter.attribute(rule_attr::TARGET_ARN) {
            reason.push_str(&format!(" (target {target})"));
        }
        let reading = Self {
            origin: shape::RULE,
            class: code,
            action: None,
            failed_at: letter.sent_at(),
            reason,
            previous: None,
            event_key: None,
            source: None,
            detail_type: None,
            route: Route::Keep(
                "EventBridge rule attributes, but the body is not an EventBridge event".to_owned(),
            ),
        };
        match event {
            Some(event) => {
                let bus = letter.attribute(rule_attr::RULE_ARN).and_then(bus_of_rule);
                reading.event_route(event, bus)
            }
            None => reading,
        }
    }

    /// Completes a reading whose letter holds `event`.
    fn event_route(mut self, event: Event, bus: Option<String>) -> Self {
        self.event_key = self.event_key.or_else(|| event.event_key());
        self.source = Some(event.source.clone());
        self.detail_type = Some(event.detail_type.clone());
        if self.previous.is_none() {
            self.previous = dead_letter::previous_error_in(&event.resources).map(str::to_owned);
        }
        self.route = Route::Event { event, bus };
        self
    }

    /// This failure as a line of history, for what is put back.
    fn failure(&self) -> String {
        dead_letter::entry(
            self.class.as_deref().unwrap_or(self.origin),
            self.action.as_deref(),
            self.failed_at.as_deref(),
            &self.reason,
        )
    }

    /// Where a redrive with `target` would send it, or why it stays. An event goes onto --bus,
    /// else to --handler, else onto the bus its letter names: the operator's choice first. One
    /// PutEvents refuses goes to --handler or nowhere.
    fn plan(&self, target: &Target) -> Plan {
        let (event, named) = match &self.route {
            Route::Queue => return Plan::Queue,
            Route::Keep(why) => return Plan::Keep(why.clone()),
            Route::Event { event, bus } => (event.clone(), bus.as_deref()),
        };
        let handler = target.handler.map(|handler| Plan::Handler {
            event: event.clone(),
            handler: handler.to_owned(),
        });
        if let Some(refused) = event.refused() {
            return handler.unwrap_or(Plan::Keep(refused));
        }
        if let Some(bus) = target.bus {
            return Plan::Bus {
                event,
                bus: bus.to_owned(),
            };
        }
        match (handler, named) {
            (Some(handler), _) => handler,
            (None, Some(bus)) => Plan::Bus {
                event,
                bus: bus.to_owned(),
            },
            (None, None) => Plan::Keep(
                "an EventBridge event, and neither --bus (the stack's GenesysEventBusName) nor \
                 --handler (its eventbridge-handler function) given"
                    .to_owned(),
            ),
        }
    }

    /// Where it goes back to, for `list` and `show`: where a redrive with `handler` and without
    /// --bus sends it, or the option it needs.
    fn replay(&self, handler: Option<&str>) -> Replay<'_> {
        let plan = self.plan(&Target {
            queue: "",
            to: "",
            bus: None,
            handler,
        });
        let refused = match &self.route {
            Route::Queue => return Replay::Queue,
            Route::Keep(why) => return Replay::Never(why),
            Route::Event { event, .. } => event.refused().is_some(),
        };
        match plan {
            Plan::Bus { bus, .. } => Replay::Bus(Some(bus)),
            Plan::Handler { handler, .. } => Replay::Handler {
                handler: Some(handler),
                or_bus: !refused,
            },
            Plan::Queue | Plan::Keep(_) if refused => Replay::Handler {
                handler: None,
                or_bus: false,
            },
            Plan::Queue | Plan::Keep(_) => Replay::Bus(None),
        }
    }

    fn summary(&self, letter: &Letter, handler: Option<&str>) -> Value {
        let replay = self.replay(handler);
        json!({
            "message_id": letter.id,
            "origin": self.origin,
            "event_key": self.event_key,
            "source": self.source,
            "detail_type": self.detail_type,
            "error_class": self.class,
            "action": self.action,
            "failed_at": self.failed_at,
            "error_message": self.reason,
            "previous_error": self.previous,
            "replay": replay.kind(),
            "replay_bus": replay.bus(),
            "replay_handler": replay.handler(),
            "not_replayable": replay.never(),
        })
    }
}

/// Where a letter goes back to, as `list` and `show` tell it.
enum Replay<'a> {
    /// The main queue (--to).
    Queue,
    /// An event bus: the one the letter names, else --bus.
    Bus(Option<String>),
    /// The eventbridge-handler: the one given, else --handler; `or_bus` when --bus would do too.
    Handler {
        handler: Option<String>,
        or_bus: bool,
    },
    /// Nowhere: why.
    Never(&'a str),
}

impl Replay<'_> {
    /// `main-queue`, `event-bus`, `handler` or `none`.
    fn kind(&self) -> &'static str {
        match self {
            Self::Queue => "main-queue",
            Self::Bus(_) => "event-bus",
            Self::Handler { .. } => "handler",
            Self::Never(_) => "none",
        }
    }

    fn bus(&self) -> Option<&str> {
        match self {
            Self::Bus(bus) => bus.as_deref(),
            _ => None,
        }
    }

    fn handler(&self) -> Option<&str> {
        match self {
            Self::Handler { handler, .. } => handler.as_deref(),
            _ => None,
        }
    }

    fn never(&self) -> Option<&str> {
        match self {
            Self::Never(why) => Some(why),
            _ => None,
        }
    }

    /// In a few words, for a table.
    fn short(&self) -> String {
        match self {
            Self::Queue => "main queue".to_owned(),
            Self::Bus(Some(bus)) => format!("event bus {bus}"),
            Self::Bus(None) => "event bus (--bus)".to_owned(),
            Self::Handler {
                handler: Some(handler),
                ..
            } => format!("handler {handler}"),
            Self::Handler { handler: None, .. } => "handler (--handler)".to_owned(),
            Self::Never(_) => "none".to_owned(),
        }
    }

    /// In full, for `show`.
    fn long(&self) -> String {
        match self {
            Self::Queue => "the main queue (--to)".to_owned(),
            Self::Bus(Some(bus)) => format!("the event bus {bus} (or --bus, or --handler)"),
            Self::Bus(None) => {
                "the event bus (--bus), or the eventbridge-handler (--handler)".to_owned()
            }
            Self::Handler {
                handler: Some(handler),
                or_bus,
            } => format!(
                "handler {handler} (asynchronous Invoke){}",
                if *or_bus {
                    "; or the event bus (--bus)"
                } else {
                    ""
                }
            ),
            Self::Handler { handler: None, .. } => {
                "the eventbridge-handler (--handler): EventBridge refuses PutEvents of a source \
                  starting with \"aws.\""
                    .to_owned()
            }
            Self::Never(why) => format!("cannot be redriven: {why}"),
        }
    }
}

/// Whether `body` is the record Lambda sends to an on-failure destination.
fn is_on_failure_record(body: &Value) -> bool {
    body.get("requestContext")
        .and_then(|context| context.get("functionArn"))
        .is_some()
        && body.get("requestPayload").is_some()
}

/// The bus a rule is on, from its ARN: `arn:...:rule/NAME` (the default bus) or
/// `arn:...:rule/BUS/NAME` (a bus name may itself hold slashes, as partner buses do).
fn bus_of_rule(rule_arn: &str) -> Option<String> {
    let (_, path) = rule_arn.split_once(":rule/")?;
    Some(match path.rsplit_once('/') {
        Some((bus, _)) if !bus.is_empty() => bus.to_owned(),
        _ => "default".to_owned(),
    })
}

/// What a redrive does with one letter.
enum Plan {
    Queue,
    Bus { event: Event, bus: String },
    Handler { event: Event, handler: String },
    Keep(String),
}

/// Identifies what a letter replays, so a copy of it that comes back in the same run (the replay
/// failed again and was dead-lettered anew, under a new message id) is recognised.
fn fingerprint(letter: &Letter, reading: &Reading) -> [u8; 32] {
    let mut hash = Sha256::new();
    match &reading.route {
        Route::Event { event, .. } => {
            hash.update(b"event\0");
            hash.update(event.source.as_bytes());
            hash.update(b"\0");
            hash.update(event.detail_type.as_bytes());
            hash.update(b"\0");
            hash.update(canonical(&event.detail).as_bytes());
        }
        Route::Queue | Route::Keep(_) => {
            // The body and what it is put back with (a forwarding job names one endpoint's
            // delivery), less what a failure adds and what a dead letter may leave out.
            let mut attributes: Vec<(&String, &str)> = letter
                .attributes
                .iter()
                .filter(|(name, _)| {
                    !ADDED_ON_FAILURE.contains(&name.as_str())
                        && name.as_str() != envelope::CORRELATION_ID
                })
                .filter_map(|(name, value)| Some((name, value.string_value()?)))
                .collect();
            attributes.sort();
            hash.update(b"queued\0");
            for (name, value) in attributes {
                hash.update(name.as_bytes());
                hash.update(b"=");
                hash.update(value.as_bytes());
                hash.update(b"\0");
            }
            hash.update(letter.body.as_bytes());
        }
    }
    hash.finalize().into()
}

/// JSON with every object's keys sorted, so two writers' serialisations of one value compare
/// equal.
fn canonical(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect::<BTreeMap<_, _>>()
                    .into_iter()
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// An attribute value as text; binary ones are only described.
fn attribute_text(value: &MessageAttributeValue) -> String {
    match (value.string_value(), value.binary_value()) {
        (Some(text), _) => text.to_owned(),
        (None, Some(bytes)) => format!("({}, {} bytes)", value.data_type, bytes.as_ref().len()),
        (None, None) => format!("({})", value.data_type),
    }
}

/// An AWS failure in one line: the service's code and message when it answered, else the chain
/// of causes (timeouts, connection failures) without the raw response dump.
fn describe<E>(error: &SdkError<E>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => return format!("{code}: {message}"),
        (Some(code), None) => return code.to_owned(),
        _ => {}
    }
    if let SdkError::ServiceError(service) = error {
        return format!("HTTP {}", service.raw().status().as_u16());
    }
    genesys_relay::error::chain(error)
}

fn aws_error<E>(what: impl Display, error: &SdkError<E>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    anyhow!("{what}: {}", describe(error))
}

/// Receives up to `max` messages (at most ten), hiding them for `visibility_secs`.
async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    max: usize,
    visibility_secs: i32,
) -> anyhow::Result<Vec<Letter>> {
    let out = sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(max.clamp(1, BATCH) as i32)
        .visibility_timeout(visibility_secs)
        .wait_time_seconds(LONG_POLL_SECS)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|e| aws_error(format_args!("could not read {queue}"), &e))?;
    Ok(out
        .messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(Letter::from_message)
        .collect())
}

/// Makes received messages visible again now; returns how many could not be (those reappear
/// when their visibility timeout ends).
async fn release<'a>(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    letters: impl IntoIterator<Item = &'a Letter>,
) -> usize {
    let letters: Vec<&Letter> = letters.into_iter().collect();
    let mut unreleased = 0;
    for chunk in letters.chunks(BATCH) {
        let entries: Vec<_> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, letter)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&letter.receipt)
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect();
        unreleased += chunk.len() - entries.len();
        match sqs
            .change_message_visibility_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => unreleased += out.failed.len(),
            Err(_) => unreleased += chunk.len(),
        }
    }
    unreleased
}

/// What a look at a queue saw.
struct Peeked {
    letters: Vec<Letter>,
    /// Messages still hidden for up to [`PEEK_VISIBILITY_SECS`] because the release failed.
    unreleased: usize,
}

/// Reads up to `limit` distinct messages (all when `None`, or until one satisfies `found`) and
/// makes them visible again before returning, also when a read failed.
async fn peek(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    limit: Option<usize>,
    found: impl Fn(&Letter) -> bool,
) -> anyhow::Result<Peeked> {
    let mut letters: Vec<Letter> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let read = async {
        loop {
            let want = limit.map_or(BATCH, |l| l.saturating_sub(letters.len()).min(BATCH));
            if want == 0 {
                return Ok(());
            }
            let mut fresh = false;
            let mut done = false;
            for letter in receive(sqs, queue, want, PEEK_VISIBILITY_SECS).await? {
                match index.get(&letter.id) {
                    // Seen again after its timeout: only the newest receipt handle counts.
                    Some(&i) => letters[i].receipt = letter.receipt,
                    None => {
                        fresh = true;
                        done |= found(&letter);
                        index.insert(letter.id.clone(), letters.len());
                        letters.push(letter);
                    }
                }
            }
            if !fresh || done {
                return Ok::<(), anyhow::Error>(());
            }
        }
    }
    .await;
    let unreleased = release(sqs, queue, &letters).await;
    read?;
    Ok(Peeked {
        letters,
        unreleased,
    })
}

/// Every message now in `queue`, read without consuming it: each is made visible again before
/// this returns. What the local demo and soak check their dead letters with.
pub async fn read_all(sqs: &aws_sdk_sqs::Client, queue: &str) -> anyhow::Result<Vec<Letter>> {
    Ok(peek(sqs, queue, None, |_| false).await?.letters)
}

fn unreleased_note(peeked: &Peeked) -> Option<String> {
    (peeked.unreleased > 0).then(|| {
        format!(
            "note: {} message(s) could not be made visible again; they reappear within {PEEK_VISIBILITY_SECS} s",
            peeked.unreleased
        )
    })
}

/// One line of text, at most `max` characters.
fn clip(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        line
    } else {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// Which column says where each letter goes: where a redrive with `handler` and without --bus
/// sends it (`list`), or where this redrive would (a dry run).
#[derive(Clone, Copy)]
enum Column<'a> {
    Replay(Option<&'a str>),
    Plan(&'a Target<'a>),
}

impl Column<'_> {
    fn plan(&self) -> Option<&Target<'_>> {
        match self {
            Self::Plan(target) => Some(target),
            Self::Replay(_) => None,
        }
    }

    fn handler(&self) -> Option<&str> {
        match self {
            Self::Plan(target) => target.handler,
            Self::Replay(handler) => *handler,
        }
    }
}

/// The text (`headline`, the letters' table, any note on messages left hidden) and the JSON
/// summaries of what `peek` read, as `list` and a dry run both show them; `column` says where
/// each goes.
fn described(headline: String, peeked: &Peeked, column: Column) -> (Vec<String>, Vec<Value>) {
    let readings: Vec<Reading> = peeked.letters.iter().map(Reading::of).collect();
    let mut text = vec![headline];
    if !peeked.letters.is_empty() {
        text.extend(table(&peeked.letters, &readings, column));
    }
    text.extend(unreleased_note(peeked));
    let summaries = peeked
        .letters
        .iter()
        .zip(&readings)
        .map(|(letter, reading)| {
            let mut summary = reading.summary(letter, column.handler());
            if let Some(target) = column.plan() {
                let (to, why) = plan_text(&reading.plan(target), target);
                summary["redrive_to"] = json!(to);
                summary["kept_because"] = json!(why);
            }
            summary
        })
        .collect();
    (text, summaries)
}

/// Where a plan sends a letter (`None` when it stays), and why it stays.
fn plan_text(plan: &Plan, target: &Target) -> (Option<String>, Option<String>) {
    match plan {
        Plan::Queue => (Some(target.to.to_owned()), None),
        Plan::Bus { bus, .. } => (Some(format!("event bus {bus}")), None),
        Plan::Handler { handler, .. } => (Some(format!("handler {handler}")), None),
        Plan::Keep(why) => (None, Some(why.clone())),
    }
}

/// Dead letters as aligned columns, one per line, with a header and where each goes.
fn table(letters: &[Letter], readings: &[Reading], column: Column) -> Vec<String> {
    let mut header = vec![
        "MESSAGE ID",
        "ORIGIN",
        "EVENT KEY",
        "SOURCE",
        "DETAIL TYPE",
        "CLASS",
        "ACTION",
        "FAILED AT",
        "REASON",
    ];
    header.push(match column {
        Column::Plan(_) => "REDRIVE TO",
        Column::Replay(_) => "REPLAY TO",
    });
    let cell = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let rows: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| (*h).to_owned()).collect())
        .chain(letters.iter().zip(readings).map(|(letter, reading)| {
            let mut row = vec![
                letter.id.clone(),
                reading.origin.to_owned(),
                cell(&reading.event_key),
                cell(&reading.source),
                cell(&reading.detail_type),
                cell(&reading.class),
                cell(&reading.action),
                cell(&reading.failed_at),
                clip(&reading.reason, REASON_WIDTH),
            ];
            row.push(match column {
                Column::Plan(target) => match plan_text(&reading.plan(target), target) {
                    (Some(to), _) => to,
                    (None, why) => clip(
                        &format!("(stays: {})", why.unwrap_or_default()),
                        REASON_WIDTH,
                    ),
                },
                Column::Replay(handler) => reading.replay(handler).short(),
            });
            row
        }))
        .collect();
    let mut widths = vec![0; header.len()];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:width$}"))
                .collect();
            line.join("  ").trim_end().to_owned()
        })
        .collect()
}

async fn list(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    limit: usize,
    handler: Option<&str>,
) -> anyhow::Result<Report> {
    let peeked = peek(sqs, queue, Some(limit), |_| false).await?;
    let (mut text, messages) = described(
        format!(
            "{} dead letter(s) on {queue}, left on the queue",
            peeked.letters.len()
        ),
        &peeked,
        Column::Replay(handler),
    );
    let hidden = hidden_behind_their_group(sqs, queue, peeked.letters.len(), limit).await;
    if hidden > 0 {
        text.push(format!(
            "note: {hidden} more letter(s) wait behind another of their message group, which a \
             FIFO queue shows one at a time (SQS moved them here after MaxReceiveCount, keeping \
             their group); `relay dlq redrive` moves them all"
        ));
    }
    Ok(Report::new(
        text,
        json!({"queue": queue, "count": messages.len(), "messages": messages, "hidden": hidden}),
    ))
}

/// On a FIFO queue, how many letters a look that found `seen` (of at most `limit`) could not
/// see: a message group shows one message at a time to readers, so a letter SQS moved with its
/// group stays hidden while another of that group is held.
async fn hidden_behind_their_group(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    seen: usize,
    limit: usize,
) -> usize {
    if !genesys_relay::aws::is_fifo_queue(queue) || seen >= limit {
        return 0;
    }
    present_count(sqs, queue)
        .await
        .map_or(0, |present| present.saturating_sub(seen))
}

async fn show(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    id: &str,
    handler: Option<&str>,
) -> anyhow::Result<Report> {
    let peeked = peek(sqs, queue, None, |letter| letter.id == id).await?;
    let note = unreleased_note(&peeked);
    let Some(letter) = peeked.letters.into_iter().find(|letter| letter.id == id) else {
        bail!(
            "no message {id} on {queue} (already redriven or deleted, or held by another reader)"
        );
    };
    let reading = Reading::of(&letter);
    let mut attributes: Vec<(String, String)> = letter
        .attributes
        .iter()
        .map(|(name, value)| (name.clone(), attribute_text(value)))
        .collect();
    attributes.sort();
    let mut system: Vec<(String, String)> = letter
        .system
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
        .collect();
    system.sort();
    let body_json = serde_json::from_str::<Value>(&letter.body).ok();
    let body = body_json
        .as_ref()
        .and_then(|value| serde_json::to_string_pretty(value).ok())
        .unwrap_or_else(|| letter.body.clone());

    let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let replay = reading.replay(handler);
    let mut text = vec![
        format!("message id  {}", letter.id),
        format!("origin      {}", reading.origin),
        format!(
            "failed      {} in {} at {}",
            or_dash(&reading.class),
            or_dash(&reading.action),
            or_dash(&reading.failed_at),
        ),
        format!("reason      {}", reading.reason),
    ];
    if let Some(previous) = &reading.previous {
        let mut lines = previous.lines();
        text.push(format!("before      {}", lines.next().unwrap_or_default()));
        text.extend(lines.map(|line| format!("            {line}")));
    }
    if let Some(key) = &reading.event_key {
        text.push(format!("event key   {key}"));
    }
    if let Some(detail_type) = &reading.detail_type {
        text.push(format!("detail type {detail_type}"));
    }
    text.push(format!("redrive to  {}", replay.long()));
    text.push("attributes".to_owned());
    let width = |pairs: &[(String, String)]| pairs.iter().map(|(n, _)| n.len()).max();
    let pad = width(&attributes).unwrap_or(0);
    text.extend(
        attributes
            .iter()
            .map(|(name, value)| format!("  {name:pad$}  {value}")),
    );
    text.push("system attributes".to_owned());
    let pad = width(&system).unwrap_or(0);
    text.extend(
        system
            .iter()
            .map(|(name, value)| format!("  {name:pad$}  {value}")),
    );
    text.push("body".to_owned());
    text.extend(body.lines().map(|line| format!("  {line}")));
    text.extend(note);

    let event = match &reading.route {
        Route::Event { event, .. } => Some(&event.whole),
        _ => None,
    };
    let json = json!({
        "queue": queue,
        "message_id": letter.id,
        "origin": reading.origin,
        "error_class": reading.class,
        "action": reading.action,
        "failed_at": reading.failed_at,
        "reason": reading.reason,
        "previous_error": reading.previous,
        "event_key": reading.event_key,
        "detail_type": reading.detail_type,
        "replay": replay.kind(),
        "replay_bus": replay.bus(),
        "replay_handler": replay.handler(),
        "not_replayable": replay.never(),
        "event": event,
        "attributes": attributes.into_iter().collect::<BTreeMap<_, _>>(),
        "system_attributes": system.into_iter().collect::<BTreeMap<_, _>>(),
        "body": letter.body,
        "body_json": body_json,
    });
    Ok(Report::new(text, json))
}

async fn dry_run_report(
    sqs: &aws_sdk_sqs::Client,
    target: &Target<'_>,
    limit: Option<usize>,
) -> anyhow::Result<Report> {
    let peeked = peek(sqs, target.queue, limit, |_| false).await?;
    let (text, messages) = described(String::new(), &peeked, Column::Plan(target));
    let sending = messages
        .iter()
        .filter(|m| !m["redrive_to"].is_null())
        .count();
    let mut text = text;
    text[0] = format!(
        "dry run: would send back {sending} of {} letter(s) on {} (the rest stay); nothing sent",
        messages.len(),
        target.queue
    );
    Ok(Report::new(
        text,
        json!({
            "dry_run": true,
            "queue": target.queue,
            "to": target.to,
            "bus": target.bus,
            "handler": target.handler,
            "would_move": sending,
            "would_keep": messages.len() - sending,
            "messages": messages,
        }),
    ))
}

async fn redrive(
    senders: &Senders<'_>,
    target: &Target<'_>,
    limit: Option<usize>,
) -> anyhow::Result<Report> {
    let sqs = senders.sqs;
    // The letters present now are the run's budget: what comes back while it runs (a replay
    // that failed again) waits for the next run instead of going round for ever.
    let present = present_count(sqs, target.queue).await;
    let budget = match (limit, present) {
        (Some(limit), Some(present)) => Some(limit.min(present)),
        (limit, present) => limit.or(present),
    };
    let bar = progress(budget.map(|b| b as u64));
    let mut tally = Tally {
        budget,
        ..Tally::default()
    };
    let moving = tally.move_by_hand(senders, target, &bar).await;
    bar.finish_and_clear();
    let unreleased = release(sqs, target.queue, &tally.held).await;
    moving.with_context(|| {
        format!(
            "redrive stopped after sending {} message(s) back",
            tally.moved.len()
        )
    })?;
    let failed = tally.failed.len() + tally.not_deleted.len();
    let report = tally.report(target, unreleased);
    if failed > 0 {
        // The counts matter to whoever runs this: show them, then fail the command.
        crate::output::print(&report, false);
        anyhow::bail!("{failed} message(s) were not moved cleanly; see above");
    }
    Ok(report)
}

/// How many messages SQS says the queue holds, visible or held by a reader; `None` when it does
/// not say.
async fn present_count(sqs: &aws_sdk_sqs::Client, queue: &str) -> Option<usize> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .ok()?
        .attributes?;
    let count = |name| -> Option<usize> { attributes.get(&name)?.parse().ok() };
    Some(
        count(QueueAttributeName::ApproximateNumberOfMessages)?
            + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible).unwrap_or(0),
    )
}

/// A progress bar on a terminal's stderr; elsewhere nothing, so scripts get clean output.
fn progress(total: Option<u64>) -> ProgressBar {
    if !output::interactive() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::new(total),
            "{spinner} redrive [{bar:30}] {pos}/{len} {msg}",
        ),
        None => (ProgressBar::new_spinner(), "{spinner} redrive: {pos} {msg}"),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A letter left on the dead-letter queue, with why.
struct Kept {
    id: String,
    origin: &'static str,
    reason: String,
    why: String,
}

/// The progress of a redrive.
#[derive(Default)]
struct Tally {
    /// At most this many letters are handled (`--limit`, or those present at the start).
    budget: Option<usize>,
    moved: Vec<String>,
    to_queue: usize,
    to_bus: BTreeMap<String, usize>,
    to_handler: BTreeMap<String, usize>,
    /// Sent, but still on the dead-letter queue too; the claims absorb the copy.
    not_deleted: Vec<(String, String)>,
    failed: Vec<(String, String)>,
    kept: Vec<Kept>,
    /// Copies of letters sent back in this run (replays that failed again), left for the next.
    returned: Vec<String>,
    /// What was sent back in this run.
    fingerprints: HashSet<[u8; 32]>,
    /// Messages not sent back, kept hidden so this run does not read them again, then released.
    held: Vec<Letter>,
    /// Why the run ended before the queue was empty or the budget spent.
    stopped: Option<String>,
}

impl Tally {
    /// Receives, sends and deletes until the budget is spent, the queue holds nothing new, or a
    /// batch of which nothing could be sent (the destination refuses everything: going on would
    /// only repeat that).
    async fn move_by_hand(
        &mut self,
        senders: &Senders<'_>,
        target: &Target<'_>,
        bar: &ProgressBar,
    ) -> anyhow::Result<()> {
        let sqs = senders.sqs;
        let mut seen = HashSet::new();
        let mut taken = 0;
        // A letter taken by SQS before the run began was present at its start, however like one
        // this run has sent back it is (the same event dead-lettered twice within a second).
        let started_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        loop {
            let want = self
                .budget
                .map_or(BATCH, |b| b.saturating_sub(taken).min(BATCH));
            if want == 0 {
                return Ok(());
            }
            let batch: Vec<Letter> = receive(sqs, target.queue, want, MOVE_VISIBILITY_SECS)
                .await?
                .into_iter()
                // Seen again after its visibility timeout: already handled in this run.
                .filter(|letter| seen.insert(letter.id.clone()))
                .collect();
            if batch.is_empty() {
                return Ok(());
            }
            let (mut tried, mut sent_any) = (0, false);
            for letter in batch {
                let reading = Reading::of(&letter);
                let print = fingerprint(&letter, &reading);
                let came_back = letter.sent_ms().is_none_or(|sent| sent >= started_ms);
                if came_back && self.fingerprints.contains(&print) {
                    self.returned.push(letter.id.clone());
                    self.held.push(letter);
                    continue;
                }
                taken += 1;
                bar.inc(1);
                let plan = reading.plan(target);
                let history = dead_letter::history(&reading.failure(), reading.previous.as_deref());
                let sent = match &plan {
                    Plan::Keep(why) => {
                        self.kept.push(Kept {
                            id: letter.id.clone(),
                            origin: reading.origin,
                            reason: reading.reason.clone(),
                            why: why.clone(),
                        });
                        self.held.push(letter);
                        continue;
                    }
                    Plan::Queue => send(sqs, target.to, &letter, &history).await,
                    Plan::Bus { event, bus } => {
                        put_event(senders.events, bus, event, &history).await
                    }
                    Plan::Handler { event, handler } => {
                        invoke_handler(senders.lambda, handler, event, &history).await
                    }
                };
                tried += 1;
                match sent {
                    Ok(()) => {
                        sent_any = true;
                        self.fingerprints.insert(print);
                        match plan {
                            Plan::Bus { bus, .. } => *self.to_bus.entry(bus).or_default() += 1,
                            Plan::Handler { handler, .. } => {
                                *self.to_handler.entry(handler).or_default() += 1
                            }
                            Plan::Queue | Plan::Keep(_) => self.to_queue += 1,
                        }
                        let deleted = sqs
                            .delete_message()
                            .queue_url(target.queue)
                            .receipt_handle(&letter.receipt)
                            .send()
                            .await;
                        match deleted {
                            Ok(_) => self.moved.push(letter.id),
                            Err(e) => self.not_deleted.push((letter.id, describe(&e))),
                        }
                    }
                    Err(error) => {
                        self.failed.push((letter.id.clone(), error));
                        self.held.push(letter);
                    }
                }
            }
            if tried > 0 && !sent_any {
                self.stopped = Some("none of the last batch could be sent".to_owned());
                return Ok(());
            }
        }
    }

    fn report(self, target: &Target, unreleased: usize) -> Report {
        let bus_text = self
            .to_bus
            .iter()
            .map(|(bus, n)| format!("{n} onto event bus {bus}"))
            .collect::<Vec<_>>();
        let mut destinations = vec![format!("{} to {}", self.to_queue, target.to)];
        destinations.extend(bus_text);
        destinations.extend(
            self.to_handler
                .iter()
                .map(|(handler, n)| format!("{n} to handler {handler} (asynchronous Invoke)")),
        );
        let mut text = vec![
            format!(
                "{} {} message(s) from {}: {} ({METHOD_BY_HAND})",
                output::ok("sent back"),
                self.moved.len() + self.not_deleted.len(),
                target.queue,
                destinations.join(", "),
            ),
            format!(
                "{} {} (left on the dead-letter queue)",
                if self.failed.is_empty() {
                    "failed".to_owned()
                } else {
                    output::bad("failed")
                },
                self.failed.len()
            ),
        ];
        text.extend(
            self.failed
                .iter()
                .map(|(id, error)| format!("  {id}: {}", clip(error, 200))),
        );
        if !self.kept.is_empty() {
            text.push(format!(
                "{} {} that cannot be redriven (left on the dead-letter queue, reasons intact)",
                output::bad("kept"),
                self.kept.len()
            ));
            text.extend(
                self.kept.iter().map(|kept| {
                    format!("  {} ({}): {}", kept.id, kept.origin, clip(&kept.why, 200))
                }),
            );
        }
        if !self.returned.is_empty() {
            text.push(format!(
                "{} letter(s) came back during this run (a replay that failed again, or a \
                 duplicate): left for the next redrive",
                self.returned.len()
            ));
        }
        if !self.not_deleted.is_empty() {
            text.push(format!(
                "{} {} sent but not deleted from the dead-letter queue (a redrive later sends them again; the claims run them once)",
                output::bad("warning:"),
                self.not_deleted.len()
            ));
        }
        text.extend(self.stopped.iter().map(|why| format!("stopped: {why}")));
        if unreleased > 0 {
            text.push(format!(
                "note: {unreleased} message(s) stay hidden for up to {MOVE_VISIBILITY_SECS} s"
            ));
        }
        let pairs = |pairs: &[(String, String)]| -> Vec<Value> {
            pairs
                .iter()
                .map(|(id, error)| json!({"message_id": id, "error": error}))
                .collect()
        };
        let kept: Vec<Value> = self
            .kept
            .iter()
            .map(|kept| {
                json!({
                    "message_id": kept.id,
                    "origin": kept.origin,
                    "reason": kept.reason,
                    "why": kept.why,
                })
            })
            .collect();
        let json = json!({
            "method": METHOD_BY_HAND,
            "fallback_reason": WHY_BY_HAND,
            "queue": target.queue,
            "to": target.to,
            "bus": target.bus,
            "handler": target.handler,
            "budget": self.budget,
            "moved": self.moved.len(),
            "to_queue": self.to_queue,
            "to_bus": self.to_bus,
            "to_handler": self.to_handler,
            "failed": self.failed.len(),
            "kept": self.kept.len(),
            "returned": self.returned.len(),
            "moved_message_ids": self.moved,
            "failures": pairs(&self.failed),
            "kept_letters": kept,
            "returned_message_ids": self.returned,
            "not_deleted": pairs(&self.not_deleted),
            "stopped": self.stopped,
        });
        Report::new(text, json)
    }
}

/// Sends a queued letter to `to` as it was before it failed, with `history` as its
/// `previous-error`. On a FIFO queue it keeps its group, and its dead-letter message id
/// deduplicates a repeated redrive.
async fn send(
    sqs: &aws_sdk_sqs::Client,
    to: &str,
    letter: &Letter,
    history: &str,
) -> Result<(), String> {
    let mut attributes = letter.original_attributes();
    if let Ok(value) = MessageAttributeValue::builder()
        .data_type("String")
        .string_value(history)
        .build()
    {
        attributes.insert(dead::PREVIOUS_ERROR.to_owned(), value);
    }
    let mut request = sqs
        .send_message()
        .queue_url(to)
        .message_body(&letter.body)
        .set_message_attributes(Some(attributes));
    if genesys_relay::aws::is_fifo_queue(to) {
        let group = letter
            .system
            .get(&MessageSystemAttributeName::MessageGroupId)
            .ok_or("the destination is a FIFO queue and the message has no group id")?;
        request = request
            .message_group_id(group)
            .message_deduplication_id(&letter.id);
    }
    request.send().await.map(|_| ()).map_err(|e| describe(&e))
}

/// Puts `event` back on `bus` as it was (source, detail type, detail, resources, time), with
/// `history` in a marked `resources` entry: the handler copies it into the letter it writes if
/// the event fails again.
async fn put_event(
    events: &aws_sdk_eventbridge::Client,
    bus: &str,
    event: &Event,
    history: &str,
) -> Result<(), String> {
    let resources = event.resources_with(history);
    let time = event
        .time
        .as_deref()
        .and_then(|time| DateTime::from_str(time, DateTimeFormat::DateTime).ok());
    let entry = PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(&event.source)
        .detail_type(&event.detail_type)
        .detail(event.detail.to_string())
        .set_resources(Some(resources))
        .set_time(time)
        .build();
    let out = events
        .put_events()
        .entries(entry)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    if out.failed_entry_count() == 0 {
        return Ok(());
    }
    let refused = out.entries().first();
    Err(format!(
        "PutEvents refused the event: {}: {}",
        refused.and_then(|e| e.error_code()).unwrap_or("unknown"),
        refused.and_then(|e| e.error_message()).unwrap_or("-"),
    ))
}

/// Invokes `handler` asynchronously with `event` as EventBridge delivers it, `history` in the
/// marked `resources` entry. Asynchronous, as EventBridge invokes it, so the replay has Lambda's
/// retries and, should it fail again, its on-failure destination, which takes it back to the DLQ
/// with its history. Lambda answers 202 once it has queued the event; anything else is a failure.
async fn invoke_handler(
    lambda: &aws_sdk_lambda::Client,
    handler: &str,
    event: &Event,
    history: &str,
) -> Result<(), String> {
    let payload = event.delivered(history).to_string();
    let out = lambda
        .invoke()
        .function_name(handler)
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(payload))
        .send()
        .await
        .map_err(|e| format!("Invoke of {handler} failed: {}", describe(&e)))?;
    match out.status_code() {
        202 => Ok(()),
        status => Err(format!(
            "Invoke of {handler} answered HTTP {status}, not 202 (queued for asynchronous \
             invocation)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_one_line_and_marks_the_cut() {
        assert_eq!(clip("a\nb  c", 10), "a b c");
        assert_eq!(clip("abcdefghij", 5), "abcd…");
        assert_eq!(clip("ééééé", 5), "ééééé");
    }

    #[test]
    fn a_rule_names_its_bus() {
        let arn = "arn:aws:events:us-east-1:123456789012:rule";
        assert_eq!(
            bus_of_rule(&format!("{arn}/genesys")).as_deref(),
            Some("default")
        );
        assert_eq!(
            bus_of_rule(&format!("{arn}/relay-bus/genesys")).as_deref(),
            Some("relay-bus")
        );
        assert_eq!(
            bus_of_rule(&format!(
                "{arn}/aws.partner/genesys.com/cloud/org/relay/genesys"
            ))
            .as_deref(),
            Some("aws.partner/genesys.com/cloud/org/relay")
        );
        assert_eq!(bus_of_rule("not an arn"), None);
    }

    #[test]
    fn canonical_json_ignores_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"y":2,"x":1}],"c":null}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
    }

    fn event(source: &str) -> Event {
        Event {
            source: source.to_owned(),
            detail_type: "t".to_owned(),
            detail: json!({}),
            time: None,
            resources: Vec::new(),
            whole: json!({"source": source, "detail-type": "t", "detail": {}}),
        }
    }

    #[test]
    fn partner_sources_cannot_be_put_back() {
        assert!(event("aws.partner/genesys.com/cloud/x/y")
            .refused()
            .is_some());
        assert!(event("genesys-relay.test").refused().is_none());
    }

    /// Where an event from `source`, in a letter naming `named` as its bus, goes with `bus` and
    /// `handler` given: `bus:NAME`, `handler:NAME` or `keep`.
    fn goes(source: &str, named: Option<&str>, bus: Option<&str>, handler: Option<&str>) -> String {
        let reading = Reading {
            origin: shape::RULE,
            class: None,
            action: None,
            failed_at: None,
            reason: "r".to_owned(),
            previous: None,
            event_key: None,
            source: None,
            detail_type: None,
            route: Route::Event {
                event: event(source),
                bus: named.map(str::to_owned),
            },
        };
        let target = Target {
            queue: "q",
            to: "t",
            bus,
            handler,
        };
        match reading.plan(&target) {
            Plan::Bus { bus, .. } => format!("bus:{bus}"),
            Plan::Handler { handler, .. } => format!("handler:{handler}"),
            Plan::Queue => "queue".to_owned(),
            Plan::Keep(_) => "keep".to_owned(),
        }
    }

    #[test]
    fn an_event_goes_to_the_bus_given_then_the_handler_then_its_rules_bus() {
        let partner = "aws.partner/genesys.com/cloud/x/y";
        let other = "genesys-relay.test";
        assert_eq!(goes(partner, Some("p"), Some("b"), Some("h")), "handler:h");
        assert_eq!(goes(partner, Some("p"), Some("b"), None), "keep");
        assert_eq!(goes(partner, None, None, None), "keep");
        assert_eq!(goes(other, Some("p"), Some("b"), Some("h")), "bus:b");
        assert_eq!(goes(other, Some("p"), None, Some("h")), "handler:h");
        assert_eq!(goes(other, Some("p"), None, None), "bus:p");
        assert_eq!(goes(other, None, None, None), "keep");
    }

    #[test]
    fn the_handler_gets_the_whole_event_with_one_history_entry() {
        let mut whole = json!({
            "version": "0", "id": "i", "detail-type": "t", "source": "aws.partner/x",
            "account": "1", "time": "2026-11-22T05:00:00Z", "region": "r",
            "resources": ["a", format!("{}old", dead_letter::PREVIOUS_ERROR_RESOURCE)],
            "detail": {"k": 1}
        });
        let event = Event::from_value(&whole).unwrap();
        let delivered = event.delivered("new");
        whole["resources"] = json!(["a", dead_letter::previous_error_resource("new")]);
        assert_eq!(delivered, whole);
    }
}
