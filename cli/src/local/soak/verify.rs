//! What the soak checks once the pipeline has drained: what the stack did is read once
//! ([`observe`]), every accepted event is classified by what it became ([`classify`]), and the
//! checks and figures are made from those ([`checks`], [`figures`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use genesys_relay::dead_letter;
use genesys_relay::inbound::queue::{self, Source};
use genesys_relay::state::table;
use relay_local::fakes::genesys::Patch;
use relay_local::fakes::twilio::{CreatedMessage, RecordedRequest, Reply};

use super::{count, step, Event, Kind, Outage, Route, Sent, FINAL_STATUS};
use crate::local::stack::Stack;
use crate::output::Check;

/// The checks and the figures behind them.
pub(super) struct Verdict {
    pub(super) checks: Vec<Check>,
    pub(super) figures: Vec<(&'static str, String)>,
}

/// A dead letter: the event key and source it carried, the reason (empty when the queue's
/// redrive policy moved it, which names none) and the reasons it failed before a redrive.
#[derive(Debug)]
pub(super) struct DeadLetter {
    pub(super) key: String,
    pub(super) source: String,
    pub(super) reason: String,
    pub(super) previous: String,
}

/// Every message in the DLQs, each read once, then made visible again for the redrive.
pub(super) async fn dead_letters(stack: &Stack) -> Result<Vec<DeadLetter>> {
    let sqs = aws_sdk_sqs::Client::new(&stack.aws);
    let mut letters = Vec::new();
    for queue in stack.resources.dead_letter_queues() {
        letters.extend(crate::dlq::read_all(&sqs, queue).await?);
    }
    Ok(letters
        .iter()
        .map(|letter| {
            let attribute = |name: &str| letter.attribute(name).unwrap_or_default().to_owned();
            DeadLetter {
                key: attribute(queue::attr::EVENT_KEY),
                source: attribute(queue::attr::SOURCE),
                reason: attribute(dead_letter::attr::ERROR_MESSAGE),
                previous: attribute(dead_letter::attr::PREVIOUS_ERROR),
            }
        })
        .collect())
}

/// The SMS action's idempotency records: event key to status. The local AWS scans slowly, so
/// pages are small and given longer than the functions' own timeouts.
async fn sms_claims(stack: &Stack) -> Result<HashMap<String, String>> {
    let patient = aws_config::timeout::TimeoutConfig::builder()
        .operation_timeout(Duration::from_secs(120))
        .operation_attempt_timeout(Duration::from_secs(60))
        .build();
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&stack.aws)
            .timeout_config(patient)
            .build(),
    );
    let mut claims = HashMap::new();
    let mut start = None;
    loop {
        let out = ddb
            .scan()
            .table_name(&stack.resources.table)
            .limit(500)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        for item in out.items.unwrap_or_default() {
            let text = |name: &str| table::text(&item, name);
            if text("sk") == Some("idempotency")
                && text("action") == Some(genesys_relay::actions::sms_on_wrapup::NAME)
            {
                if let (Some(key), Some(status)) = (text("event_key"), text("status")) {
                    claims.insert(key.to_owned(), status.to_owned());
                }
            }
        }
        start = out.last_evaluated_key;
        if start.is_none() {
            return Ok(claims);
        }
    }
}

/// What the stack did, read once after the run.
struct Observed {
    /// The SMS action's idempotency records: event key to status.
    claims: HashMap<String, String>,
    /// The records of processor invocations stopped at their deadline.
    timed_out: Vec<String>,
    letters: Vec<DeadLetter>,
    messages: Vec<CreatedMessage>,
    requests: Vec<RecordedRequest>,
    patches: Vec<Patch>,
    /// Messages read back by status checks (their paths).
    fetches: Vec<String>,
    callbacks_answered: Vec<u16>,
    batches: u64,
    batches_lost: u64,
}

async fn observe(stack: &Stack) -> Result<Observed> {
    Ok(Observed {
        claims: sms_claims(stack).await?,
        timed_out: stack.invocations.timed_out(),
        letters: dead_letters(stack).await?,
        messages: stack.twilio.messages(),
        requests: stack.twilio.requests(),
        patches: stack.genesys.patches(),
        fetches: stack.twilio.fetches().into_iter().map(|r| r.path).collect(),
        callbacks_answered: stack.twilio.callbacks_answered(),
        batches: stack.counters.batches.load(Ordering::Relaxed),
        batches_lost: stack.counters.batches_lost.load(Ordering::Relaxed),
    })
}

/// Every accepted event, counted by what it became, and what went wrong with any.
#[derive(Default)]
struct Tally {
    completed: usize,
    acknowledged: usize,
    dead_lettered: usize,
    lost: usize,
    wrong: Vec<String>,
    unique_eligible: usize,
    missing_sms: usize,
    stray_sms: usize,
    /// Extra SMS by the cause that explains them.
    explained: BTreeMap<&'static str, usize>,
    unexplained: usize,
    status_written: usize,
    status_wrong: Vec<String>,
    bus_events: usize,
    bus_acw_first: usize,
    bus_texted: usize,
    texted_thrice: usize,
}

/// Classifies every accepted event: completed (eligible), acknowledged (another code) or
/// dead-lettered (poison), with its SMS counted and each extra one given its cause.
fn classify(
    events: &[Event],
    accepted: &HashSet<usize>,
    observed: &Observed,
    killed: &[String],
    outage: &Outage,
) -> Tally {
    let mut letters_by_key: HashMap<&str, Vec<&DeadLetter>> = HashMap::new();
    for letter in &observed.letters {
        letters_by_key.entry(&letter.key).or_default().push(letter);
    }
    let mut sms_by_number: HashMap<&str, Vec<Instant>> = HashMap::new();
    let mut final_status: HashMap<&str, &str> = HashMap::new();
    for message in &observed.messages {
        sms_by_number
            .entry(&message.to)
            .or_default()
            .push(message.created_at);
        final_status.insert(&message.to, &message.status);
    }
    // The last attribute write each conversation received.
    let mut last_write: HashMap<&str, &BTreeMap<String, String>> = HashMap::new();
    for patch in &observed.patches {
        last_write.insert(&patch.conversation_id, &patch.attributes);
    }
    let lost_answers: HashSet<&str> = observed
        .requests
        .iter()
        .filter(|r| matches!(r.reply, Some(Reply::Hang(_))))
        .filter_map(|r| r.field("To"))
        .collect();
    let mut tally = Tally::default();
    for (n, event) in events.iter().enumerate() {
        let sms = sms_by_number.get(event.number.as_str());
        let sms_count = sms.map_or(0, Vec::len);
        if !accepted.contains(&n) {
            continue;
        }
        let claim = observed.claims.get(event.key.as_str()).map(String::as_str);
        let dead = letters_by_key.get(event.key.as_str());
        if event.kind != Kind::Other && claim != Some("COMPLETED") && dead.is_none() {
            tally.lost += 1;
        }
        match event.kind {
            Kind::Eligible => {
                tally.unique_eligible += 1;
                match (claim, dead) {
                    (Some("COMPLETED"), None) => tally.completed += 1,
                    _ => tally.wrong.push(format!(
                        "eligible #{n}: claim {claim:?}, dead letters {}",
                        dead.map_or(0, Vec::len)
                    )),
                }
                let twilio = final_status.get(event.number.as_str()).copied();
                let written = last_write
                    .get(event.conversation.as_str())
                    .and_then(|a| a.get("sms.status"))
                    .map(String::as_str);
                if twilio == Some(FINAL_STATUS) && written == twilio {
                    tally.status_written += 1;
                } else {
                    tally.status_wrong.push(format!(
                        "{}: Twilio {twilio:?}, last write {written:?}",
                        event.conversation
                    ));
                }
                if let Route::Bus { acw_first, .. } = &event.route {
                    tally.bus_events += 1;
                    tally.bus_acw_first += usize::from(*acw_first);
                    tally.bus_texted +=
                        usize::from(sms_count >= 1 && written == Some(FINAL_STATUS));
                }
                tally.texted_thrice += usize::from(sms_count > 2);
                if sms_count == 0 {
                    tally.missing_sms += 1;
                } else if sms_count > 1 {
                    // A webhook body names the number; a queued `.acw` only its conversation.
                    let held = |bodies: &[String]| {
                        bodies
                            .iter()
                            .any(|b| b.contains(&event.number) || b.contains(&event.conversation))
                    };
                    let why = if held(killed) {
                        "killed invocation"
                    } else if held(&observed.timed_out) {
                        "invocation timed out"
                    } else if lost_answers.contains(event.number.as_str()) {
                        "send answer lost"
                    } else if sms.is_some_and(|times| outage.reaches(times[0])) {
                        "AWS away after send"
                    } else {
                        tally.unexplained += 1;
                        "unexplained"
                    };
                    *tally.explained.entry(why).or_default() += sms_count - 1;
                }
            }
            Kind::Other => match (claim, dead) {
                (None, None) if sms_count == 0 => tally.acknowledged += 1,
                _ => tally.wrong.push(format!(
                    "other code #{n}: claim {claim:?}, dead letters {}, SMS {sms_count}",
                    dead.map_or(0, Vec::len)
                )),
            },
            Kind::Poison => match dead {
                Some(letters)
                    if claim.is_none()
                        && sms_count == 0
                        && letters.iter().all(|l| !l.reason.is_empty()) =>
                {
                    tally.dead_lettered += 1
                }
                _ => tally.wrong.push(format!(
                    "poison #{n}: claim {claim:?}, dead letters {:?}",
                    dead.map(|l| l.iter().map(|l| l.reason.as_str()).collect::<Vec<_>>())
                )),
            },
        }
        if event.kind != Kind::Eligible && sms_count > 0 {
            tally.stray_sms += sms_count;
        }
    }
    tally
}

/// Whether a dead letter's reason is an outage's: the answer (`HTTP 503`) or the spent retry
/// budget. A bare "503" would also match the hex of a message sid in other reasons.
fn from_an_outage(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    reason.contains("http 503") || reason.contains("retry budget")
}

/// What the deliveries and the dead letters add up to, beside the per-event tally.
struct Summary {
    refused: usize,
    unavailable: u32,
    retried: usize,
    repeats_accepted: usize,
    letters_without_reason: usize,
    callback_letters: usize,
    /// Dead letters neither of a poison event nor of a status callback.
    stray_letters: usize,
    /// Dead letters whose reason is a 503 or the retry budget: the outage reached the DLQ.
    outage_letters: usize,
    /// Sends the local Twilio answered 503 during its outage.
    outage_answers: usize,
    callbacks_lost: usize,
}

fn summarise(
    events: &[Event],
    results: &[(usize, Sent)],
    accepted: &HashSet<usize>,
    observed: &Observed,
    twilio_outage: (usize, usize),
) -> Summary {
    let letters = &observed.letters;
    // Every dead letter is a poison event's (each delivery of one) or a status callback's; any
    // other (an `.outbound`, a handler's letter) is a failure the other checks do not see.
    let poison_keys: HashSet<&str> = events
        .iter()
        .filter(|e| e.kind == Kind::Poison)
        .map(|e| e.key.as_str())
        .collect();
    let stray: Vec<&DeadLetter> = letters
        .iter()
        .filter(|l| {
            l.source != Source::TwilioStatus.as_str() && !poison_keys.contains(l.key.as_str())
        })
        .collect();
    let outage: Vec<&DeadLetter> = letters
        .iter()
        .filter(|l| from_an_outage(&l.reason))
        .collect();
    for letter in outage.iter().take(5) {
        step(&format!(
            "dead letter from an outage: key {}, source {}, reason {}",
            letter.key, letter.source, letter.reason
        ));
    }
    for letter in stray.iter().take(5) {
        step(&format!(
            "unexpected dead letter: key {}, source {}, reason {}",
            letter.key, letter.source, letter.reason
        ));
    }
    Summary {
        refused: results.iter().filter(|(_, sent)| !sent.accepted).count(),
        unavailable: results.iter().map(|(_, sent)| sent.unavailable).sum(),
        retried: results.iter().filter(|(_, sent)| sent.attempts > 1).count(),
        repeats_accepted: results.iter().filter(|(_, s)| s.accepted).count() - accepted.len(),
        letters_without_reason: letters.iter().filter(|l| l.reason.is_empty()).count(),
        callback_letters: letters
            .iter()
            .filter(|l| l.source == Source::TwilioStatus.as_str())
            .count(),
        stray_letters: stray.len(),
        outage_letters: outage.len(),
        outage_answers: observed
            .requests
            .get(twilio_outage.0..twilio_outage.1)
            .unwrap_or_default()
            .iter()
            .filter(|r| r.reply == Some(Reply::Status(503)))
            .count(),
        callbacks_lost: observed
            .callbacks_answered
            .iter()
            .filter(|s| !(200..300).contains(*s))
            .count(),
    }
}

/// Reads what the stack did and checks the soak's invariants against it.
pub(super) async fn verify(
    stack: &Stack,
    events: &[Event],
    results: &[(usize, Sent)],
    killed: &[String],
    outage: Outage,
    twilio_outage: (usize, usize),
) -> Result<Verdict> {
    let observed = observe(stack).await?;
    let accepted: HashSet<usize> = results
        .iter()
        .filter(|(_, sent)| sent.accepted)
        .map(|(event, _)| *event)
        .collect();
    let tally = classify(events, &accepted, &observed, killed, &outage);
    for line in tally.status_wrong.iter().chain(&tally.wrong).take(10) {
        step(&format!("not as expected: {line}"));
    }
    let summary = summarise(events, results, &accepted, &observed, twilio_outage);
    let poison_accepted = events
        .iter()
        .enumerate()
        .filter(|(n, e)| e.kind == Kind::Poison && accepted.contains(n))
        .count();
    Ok(Verdict {
        checks: checks(
            &tally,
            &summary,
            &observed,
            results.len(),
            accepted.len(),
            poison_accepted,
            killed,
        ),
        figures: figures(&tally, &summary, &observed, results.len(), &outage, killed),
    })
}

fn checks(
    tally: &Tally,
    summary: &Summary,
    observed: &Observed,
    deliveries: usize,
    accepted: usize,
    poison_accepted: usize,
    killed: &[String],
) -> Vec<Check> {
    let t = tally;
    let ended = t.completed + t.acknowledged + t.dead_lettered;
    let duplicates: usize = t.explained.values().sum();
    let sms = observed.messages.len();
    vec![
        Check::new(
            "deliveries accepted",
            format!("{} of {deliveries}", deliveries - summary.refused),
            "all (the sender retries 503s)",
            summary.refused == 0,
        ),
        Check::new(
            "receiver answered 503 while AWS was away",
            summary.unavailable,
            "at least 1",
            summary.unavailable > 0,
        ),
        Check::new(
            "accepted events ended exactly once",
            format!("{ended} of {accepted}"),
            "all: completed, acknowledged or dead-lettered",
            t.wrong.is_empty() && ended == accepted,
        ),
        Check::new("lost", t.lost, "0", t.lost == 0),
        Check::new(
            "poison dead-lettered with a reason",
            t.dead_lettered,
            "every accepted poison event",
            poison_accepted == t.dead_lettered,
        ),
        Check::new(
            "dead letters without a reason",
            summary.letters_without_reason,
            "0",
            summary.letters_without_reason == 0,
        ),
        Check::new(
            "dead letters neither poison nor a status callback",
            summary.stray_letters,
            "0",
            summary.stray_letters == 0,
        ),
        Check::new(
            "SMS sent",
            sms,
            format!(
                "{} unique eligible + {duplicates} in the crash window",
                t.unique_eligible
            ),
            t.missing_sms == 0
                && t.stray_sms == 0
                && t.unexplained == 0
                && sms == t.unique_eligible + duplicates,
        ),
        Check::new(
            "SMS repeated outside the crash window",
            t.unexplained,
            "0",
            t.unexplained == 0,
        ),
        Check::new(
            "events through the bus texted, status written",
            format!(
                "{} of {} ({} .acw first)",
                t.bus_texted, t.bus_events, t.bus_acw_first
            ),
            "all, and at least one .acw before its .outbound",
            t.bus_texted == t.bus_events && t.bus_acw_first > 0,
        ),
        Check::new(
            "events texted more than twice",
            t.texted_thrice,
            "0 (at most one extra SMS, with a named cause)",
            t.texted_thrice == 0,
        ),
        Check::new(
            "Twilio outage: sends answered 503",
            summary.outage_answers,
            "at least 1",
            summary.outage_answers > 0,
        ),
        Check::new(
            "dead letters from an outage (503, retry budget)",
            summary.outage_letters,
            "0 (retries are by time)",
            summary.outage_letters == 0,
        ),
        Check::new(
            "final status is the last write on the conversation",
            format!("{} of {}", t.status_written, t.unique_eligible),
            format!("every eligible event: sms.status = {FINAL_STATUS}"),
            t.status_written == t.unique_eligible,
        ),
        Check::new(
            "processor invocation killed mid-send",
            format!("1 ({} records in its batch)", killed.len()),
            "1",
            !killed.is_empty(),
        ),
    ]
}

fn figures(
    tally: &Tally,
    summary: &Summary,
    observed: &Observed,
    deliveries: usize,
    outage: &Outage,
    killed: &[String],
) -> Vec<(&'static str, String)> {
    let faults = |pick: fn(&Reply) -> bool| {
        observed
            .requests
            .iter()
            .filter(|r| r.reply.as_ref().is_some_and(pick))
            .count()
    };
    let fetched: HashSet<&str> = observed.fetches.iter().map(String::as_str).collect();
    vec![
        ("deliveries", deliveries.to_string()),
        ("repeats accepted", summary.repeats_accepted.to_string()),
        (
            "deliveries retried by the sender",
            summary.retried.to_string(),
        ),
        ("503 answers", summary.unavailable.to_string()),
        (
            "outage",
            format!("{:.1} s", (outage.to - outage.from).as_secs_f64()),
        ),
        ("Twilio sends", observed.requests.len().to_string()),
        (
            "Twilio 503 injected",
            faults(|r| matches!(r, Reply::Status(503))).to_string(),
        ),
        (
            "Twilio 429 injected",
            faults(|r| matches!(r, Reply::TooManyRequests { .. })).to_string(),
        ),
        (
            "Twilio hangs injected",
            faults(|r| matches!(r, Reply::Hang(_))).to_string(),
        ),
        ("SMS repeated, by cause", format!("{:?}", tally.explained)),
        (
            "Twilio outage 503 answers",
            summary.outage_answers.to_string(),
        ),
        (
            "status checks: Twilio reads (messages read)",
            format!("{} ({})", observed.fetches.len(), fetched.len()),
        ),
        (
            "status callbacks lost (answered other than 2xx), left to the checks",
            summary.callbacks_lost.to_string(),
        ),
        (
            "Genesys attribute writes",
            observed.patches.len().to_string(),
        ),
        ("records in the killed batch", killed.len().to_string()),
        ("processor batches", observed.batches.to_string()),
        (
            "processor batches lost (killed or timed out)",
            observed.batches_lost.to_string(),
        ),
        ("dead letters", observed.letters.len().to_string()),
        (
            "dead letters from status callbacks (SMS whose answer was lost)",
            summary.callback_letters.to_string(),
        ),
        (
            "status callbacks answered",
            format!("{:?}", count(&observed.callbacks_answered)),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::from_an_outage;

    #[test]
    fn an_outage_is_told_by_its_answer_or_budget_never_by_a_sid() {
        assert!(from_an_outage(
            "HTTP 503 (no code: Service Unavailable); the message may have been sent"
        ));
        assert!(from_an_outage(
            "retried for 21601 s, and the retry budget (RETRY_BUDGET_SECS) is 21600 s; last \
             failure: HTTP 503"
        ));
        // Both status callbacks of a message whose send answer was lost name its sid.
        assert!(!from_an_outage(
            "no SMS record for SM1f503c9a0d4e4b7c8a2f6e1d9b3c5a70 after 5 attempts"
        ));
    }
}
