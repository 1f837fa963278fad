//! The order of outbound message statuses. Twilio retries status callbacks and does not keep them
//! in order, so a status is only recorded when it moves the message forward: a late `sent` must
//! never overwrite `delivered`, and a repeated callback must change nothing.

/// Where an outbound status sits in a message's life, so callbacks can be compared:
/// `queued`/`accepted`/`scheduled` (0) < `sending` (1) < `sent` (2) < the final ones, `delivered`,
/// `undelivered`, `failed`, `canceled`, `partially_delivered` (3) < `read` (4), which only follows a
/// delivery. `None` for inbound statuses (`receiving`, `received`) and anything unknown, which must
/// not move an outbound record at all.
pub fn status_rank(status: &str) -> Option<u8> {
    known_status(status).map(|(_, rank)| rank)
}

/// A known outbound status in Twilio's own spelling (lower case, `partially_delivered`) with its
/// [`status_rank`], so the ledger, the conversation and the metrics hold one spelling whichever
/// way a callback wrote it.
pub fn known_status(status: &str) -> Option<(&'static str, u8)> {
    const RANKS: [(&str, u8); 11] = [
        ("queued", 0),
        ("accepted", 0),
        ("scheduled", 0),
        ("sending", 1),
        ("sent", 2),
        ("delivered", 3),
        ("undelivered", 3),
        ("failed", 3),
        ("canceled", 3),
        ("partially_delivered", 3),
        ("read", 4),
    ];
    let status = status.trim();
    RANKS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(status))
        .copied()
}

/// Whether a callback with status `new` should replace the recorded `current` one: only a known
/// status of a strictly higher rank does, so duplicates and stragglers are no-ops. With nothing
/// recorded (or an unrankable record), any known status advances.
pub fn status_advances(current: Option<&str>, new: &str) -> bool {
    let Some(new_rank) = status_rank(new) else {
        return false;
    };
    match current.and_then(status_rank) {
        Some(current_rank) => new_rank > current_rank,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_a_message_life() {
        let life = ["queued", "sending", "sent", "delivered", "read"];
        for pair in life.windows(2) {
            assert!(
                status_rank(pair[0]) < status_rank(pair[1]),
                "{} < {}",
                pair[0],
                pair[1]
            );
        }
        assert_eq!(status_rank("accepted"), status_rank("queued"));
        assert_eq!(status_rank("scheduled"), status_rank("queued"));
        for terminal in ["undelivered", "failed", "canceled", "partially_delivered"] {
            assert_eq!(
                status_rank(terminal),
                status_rank("delivered"),
                "{terminal}"
            );
        }
    }

    #[test]
    fn inbound_and_unknown_statuses_have_no_rank() {
        for status in ["receiving", "received", "", "bogus", "deliveredx"] {
            assert_eq!(status_rank(status), None, "{status:?}");
        }
        assert_eq!(status_rank("Delivered"), status_rank("delivered"));
        assert_eq!(known_status(" DELIVERED "), Some(("delivered", 3)));
    }

    #[test]
    fn a_late_sent_never_overwrites_delivered() {
        assert!(!status_advances(Some("delivered"), "sent"));
        assert!(!status_advances(Some("failed"), "sending"));
        assert!(!status_advances(Some("read"), "delivered"));
        assert!(status_advances(Some("sent"), "delivered"));
        assert!(status_advances(Some("queued"), "sent"));
        assert!(status_advances(Some("delivered"), "read"));
    }

    #[test]
    fn duplicates_and_equal_ranks_are_no_ops() {
        assert!(!status_advances(Some("sent"), "sent"));
        assert!(!status_advances(Some("delivered"), "delivered"));
        assert!(!status_advances(Some("delivered"), "undelivered"));
        assert!(!status_advances(Some("queued"), "accepted"));
    }

    #[test]
    fn with_nothing_recorded_any_known_status_advances() {
        assert!(status_advances(None, "queued"));
        assert!(status_advances(None, "delivered"));
        assert!(status_advances(Some("mystery"), "sent"));
        assert!(!status_advances(None, "received"));
        assert!(!status_advances(None, "bogus"));
        assert!(!status_advances(Some("sent"), "receiving"));
    }
}
