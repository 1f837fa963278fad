//! The cached OAuth access token and when to replace it.
//!
//! A token is replaced a little before Genesys says it expires, so a request never leaves with a
//! token that dies in flight: the safety margin is the smaller of one minute and a tenth of the
//! token's lifetime (a 300 s token is replaced after 270 s, a day-long token one minute early).
//! Each token carries a generation number so that, when several callers see the same token
//! refused, only the first replaces it and the others use the replacement.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use tokio::time::Instant;

/// The longest token lifetime an OAuth client can be configured with (48 hours); longer claims are
/// capped so no arithmetic on instants can overflow.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(172_800);
/// The largest safety margin before expiry.
pub(crate) const MAX_MARGIN: Duration = Duration::from_secs(60);

/// How long before its expiry a token of this lifetime is replaced.
pub(crate) fn safety_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(MAX_MARGIN)
}

/// When a token of `lifetime`, requested at `requested_at`, stops being used. The lifetime counts
/// from the request, not the answer: Genesys started the clock somewhere in between.
pub(crate) fn refresh_at(requested_at: Instant, lifetime: Duration) -> Instant {
    let lifetime = lifetime.min(MAX_LIFETIME);
    requested_at + (lifetime - safety_margin(lifetime))
}

/// The token endpoint's answer (`expires_in` in seconds).
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub access_token: SecretString,
    #[serde(default)]
    pub token_type: Option<String>,
    pub expires_in: u64,
}

/// One access token as held by the cache.
pub(crate) struct AccessToken {
    pub secret: SecretString,
    pub generation: u64,
    pub refresh_at: Instant,
}

impl AccessToken {
    /// Whether it may still be sent at `now`.
    pub(crate) fn is_fresh(&self, now: Instant) -> bool {
        now < self.refresh_at
    }
}

/// The cache's content; lives behind the client's async mutex, which is held across a token
/// request so concurrent callers share one.
#[derive(Default)]
pub(crate) struct TokenSlot {
    current: Option<Arc<AccessToken>>,
    issued: u64,
}

impl TokenSlot {
    /// The cached token if it is fresh at `now` and is not the one just refused (`refused`
    /// generation): a caller whose token was refused must not be handed the same one back, but
    /// may use a newer one another caller already fetched.
    pub fn usable(&self, now: Instant, refused: Option<u64>) -> Option<Arc<AccessToken>> {
        self.current
            .as_ref()
            .filter(|t| t.is_fresh(now) && Some(t.generation) != refused)
            .map(Arc::clone)
    }

    /// Keeps a newly issued token and returns it.
    pub fn store(
        &mut self,
        secret: SecretString,
        requested_at: Instant,
        lifetime: Duration,
    ) -> Arc<AccessToken> {
        self.issued += 1;
        let token = Arc::new(AccessToken {
            secret,
            generation: self.issued,
            refresh_at: refresh_at(requested_at, lifetime),
        });
        self.current = Some(Arc::clone(&token));
        token
    }

    /// Forgets the token of `generation` if it is still the cached one.
    pub(crate) fn discard(&mut self, generation: u64) {
        if self
            .current
            .as_ref()
            .is_some_and(|t| t.generation == generation)
        {
            self.current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn token(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn the_margin_is_a_tenth_of_the_lifetime_up_to_a_minute() {
        assert_eq!(safety_margin(secs(300)), secs(30));
        assert_eq!(safety_margin(secs(600)), secs(60));
        assert_eq!(safety_margin(secs(86_400)), secs(60));
        assert_eq!(safety_margin(secs(10)), secs(1));
        assert_eq!(safety_margin(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn tokens_are_replaced_before_they_expire() {
        let t0 = Instant::now();
        assert_eq!(refresh_at(t0, secs(300)), t0 + secs(270));
        assert_eq!(refresh_at(t0, secs(3_600)), t0 + secs(3_540));
        assert_eq!(refresh_at(t0, secs(5)), t0 + Duration::from_millis(4_500));
        assert_eq!(refresh_at(t0, Duration::ZERO), t0);
    }

    #[test]
    fn absurd_lifetimes_are_capped_instead_of_overflowing() {
        let t0 = Instant::now();
        assert_eq!(
            refresh_at(t0, Duration::from_secs(u64::MAX)),
            t0 + MAX_LIFETIME - MAX_MARGIN
        );
    }

    #[test]
    fn a_short_lived_token_is_fresh_until_its_margin_only() {
        let t0 = Instant::now();
        let mut slot = TokenSlot::default();
        let issued = slot.store(token("a"), t0, secs(300));
        assert!(slot.usable(t0, None).is_some());
        assert!(slot.usable(t0 + secs(269), None).is_some());
        assert!(slot.usable(t0 + secs(270), None).is_none());
        assert!(slot.usable(t0 + secs(299), None).is_none());
        assert!(issued.is_fresh(t0 + secs(100)));
        assert!(!issued.is_fresh(t0 + secs(300)));
    }

    #[test]
    fn a_refused_token_is_not_handed_back_but_a_newer_one_is() {
        let t0 = Instant::now();
        let mut slot = TokenSlot::default();
        let first = slot.store(token("a"), t0, secs(3_600));
        assert!(slot.usable(t0, Some(first.generation)).is_none());

        let second = slot.store(token("b"), t0, secs(3_600));
        assert_ne!(first.generation, second.generation);
        let handed = slot.usable(t0, Some(first.generation)).unwrap();
        assert_eq!(handed.generation, second.generation);
    }

    #[test]
    fn discarding_only_drops_the_named_generation() {
        let t0 = Instant::now();
        let mut slot = TokenSlot::default();
        let first = slot.store(token("a"), t0, secs(3_600));
        let second = slot.store(token("b"), t0, secs(3_600));
        slot.discard(first.generation);
        assert!(slot.usable(t0, None).is_some());
        slot.discard(second.generation);
        assert!(slot.usable(t0, None).is_none());
    }
}
