//! Every record kind of the state table: its partition key prefix, its sort key and how long it
//! lives (the table's TTL attribute, [`crate::state::table::EXPIRES_AT`], in epoch seconds). New state
//! goes here first, so two kinds never share a key and every kind has a lifetime.

/// One kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordKind {
    /// What it is for.
    pub name: &'static str,
    /// The partition key: this prefix, then the record's own key.
    pub pk_prefix: &'static str,
    /// The sort key, the same for every record of the kind.
    pub sk: &'static str,
    /// How long it lives, and which setting says so.
    pub ttl: &'static str,
}

impl RecordKind {
    /// The partition key of the record keyed `key`.
    pub fn pk(&self, key: &str) -> String {
        format!("{}{key}", self.pk_prefix)
    }
}

/// An action's idempotency claim; the key is a hash of the action and the event key.
pub(crate) const IDEMPOTENCY: RecordKind = RecordKind {
    name: "idempotency claim",
    pk_prefix: "idem#",
    sk: "idempotency",
    ttl: "IDEMPOTENCY_WINDOW_SECS (24 h); the SMS and forwarding deliveries: \
          SMS_IDEMPOTENCY_WINDOW_SECS (35 days)",
};

/// An SMS sent: its conversation, participant and the furthest status seen and written.
pub const SMS: RecordKind = RecordKind {
    name: "SMS ledger",
    pk_prefix: "sms#",
    sk: "sms",
    ttl: "SMS_RECORD_TTL_SECS (7 days)",
};

/// A number that replied STOP (Twilio error 21610); the key is a hash of the number.
pub(crate) const OPT_OUT: RecordKind = RecordKind {
    name: "opt-out",
    pk_prefix: "optout#",
    sk: "opt-out",
    ttl: "none: kept until the customer opts back in",
};

/// A conversation's `.outbound` context and the times of its latest events.
pub const CONVERSATION: RecordKind = RecordKind {
    name: "conversation context",
    pk_prefix: "conv#",
    sk: "context",
    ttl: "CONTEXT_TTL_SECS (7 days) after its last update",
};

/// A forwarding endpoint's circuit breaker.
pub(crate) const CIRCUIT: RecordKind = RecordKind {
    name: "circuit breaker",
    pk_prefix: "circuit#",
    sk: "circuit",
    ttl: "7 days after its last update",
};

/// A forwarding endpoint disabled by a 410 Gone.
pub(crate) const ENDPOINT_DISABLED: RecordKind = RecordKind {
    name: "disabled endpoint",
    pk_prefix: "endpoint#",
    sk: "disabled",
    ttl: "none: kept until the record is deleted, which enables the endpoint again",
};

/// A forwarding endpoint's recent delivery attempts (the sort key is the attempt's time).
pub const ATTEMPTS: RecordKind = RecordKind {
    name: "delivery attempts",
    pk_prefix: "attempts#",
    sk: "<attempt time>",
    ttl: "7 days",
};

/// Every kind, for checks that keys never collide.
pub const ALL: [RecordKind; 7] = [
    IDEMPOTENCY,
    SMS,
    OPT_OUT,
    CONVERSATION,
    CIRCUIT,
    ENDPOINT_DISABLED,
    ATTEMPTS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_prefix_is_another_kinds_prefix() {
        for a in ALL {
            for b in ALL {
                if a != b {
                    assert!(!a.pk_prefix.starts_with(b.pk_prefix), "{a:?} / {b:?}");
                }
            }
        }
    }
}
