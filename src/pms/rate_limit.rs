//! Pacing of the calls made with one PMS credential.
//!
//! PMS APIs limit requests per credential (Mews: 200 per access token per 30 s;
//! OHIP: 50 per second) and answer 429 beyond that. A token bucket per adapter
//! instance keeps chargebridge under the limit; a 429's `Retry-After` pauses
//! every call of that credential until it has passed. A call that would have
//! to wait beyond its request deadline is not sent at all: the charge is
//! "unavailable" (nothing posted) at once instead of timing out later.
//!
//! The bucket is per process: replicas sharing one credential share its limit,
//! so `requests` should be divided among them.

use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

/// `rate_limit = { requests = 200, per = "30s" }`; `requests = 0` turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u32,
    #[serde(with = "humantime_serde")]
    pub per: Duration,
}

impl RateLimit {
    pub const fn new(requests: u32, per: Duration) -> Self {
        RateLimit { requests, per }
    }

    pub const OFF: RateLimit = RateLimit::new(0, Duration::from_secs(1));

    pub fn check(&self) -> Result<(), String> {
        if self.requests > 0 && self.per.is_zero() {
            return Err("rate_limit.per must be longer than 0s".into());
        }
        Ok(())
    }
}

/// A 429 never pauses a credential longer than this, whatever it says.
const MAX_PAUSE: Duration = Duration::from_secs(120);

pub struct RateLimiter {
    pms: &'static str,
    limit: RateLimit,
    state: Mutex<State>,
}

struct State {
    /// May go below zero: each waiting call holds its token in advance, so
    /// waiters leave in order, one interval apart.
    tokens: f64,
    updated: Instant,
    paused_until: Option<Instant>,
}

impl RateLimiter {
    pub fn new(pms: &'static str, limit: RateLimit) -> Self {
        RateLimiter {
            pms,
            limit,
            state: Mutex::new(State {
                tokens: f64::from(limit.requests),
                updated: Instant::now(),
                paused_until: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a turn to send, or says why there is none before `deadline`
    /// (then nothing is sent).
    pub async fn acquire(&self, deadline: Instant) -> Result<(), String> {
        let wait = {
            let now = Instant::now();
            let mut state = self.lock();
            let pause = state
                .paused_until
                .filter(|until| *until > now)
                .map(|until| until - now);
            if self.limit.requests == 0 {
                pause.unwrap_or_default()
            } else {
                let capacity = f64::from(self.limit.requests);
                let rate = capacity / self.limit.per.as_secs_f64();
                let elapsed = now.duration_since(state.updated).as_secs_f64();
                state.tokens = (state.tokens + elapsed * rate).min(capacity);
                state.updated = now;
                let short = (1.0 - state.tokens).max(0.0);
                let wait = Duration::from_secs_f64(short / rate).max(pause.unwrap_or_default());
                if now + wait >= deadline {
                    drop(state);
                    crate::metrics::pms_rate_limited(self.pms, "refused");
                    return Err(format!(
                        "{} rate limit: no turn to send before the deadline (next in {:?})",
                        self.pms, wait
                    ));
                }
                state.tokens -= 1.0;
                wait
            }
        };
        if wait.is_zero() {
            return Ok(());
        }
        if Instant::now() + wait >= deadline {
            crate::metrics::pms_rate_limited(self.pms, "refused");
            return Err(format!(
                "{} asked to wait (Retry-After) beyond the deadline",
                self.pms
            ));
        }
        crate::metrics::pms_rate_limited(self.pms, "waited");
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// After a 429: no call of this credential leaves before its `Retry-After`
    /// (read by `rest::retry_after`) has passed; one second when it gives none.
    pub fn pause(&self, retry_after: Option<Duration>) {
        let pause = retry_after.unwrap_or(Duration::from_secs(1)).min(MAX_PAUSE);
        tracing::warn!(
            pms = self.pms,
            pause_ms = pause.as_millis() as u64,
            "the PMS answered 429 (rate limited): calls with this credential wait"
        );
        crate::metrics::pms_rate_limited(self.pms, "answered_429");
        let until = Instant::now() + pause;
        let mut state = self.lock();
        state.paused_until = Some(state.paused_until.map_or(until, |u| u.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_beyond_the_bucket_wait_their_turn_or_are_not_sent() {
        let limiter = RateLimiter::new("Test", RateLimit::new(2, Duration::from_millis(400)));
        let far = Instant::now() + Duration::from_secs(5);
        let started = Instant::now();
        limiter.acquire(far).await.unwrap();
        limiter.acquire(far).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "two at once"
        );
        limiter.acquire(far).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "the third waited for a token: {:?}",
            started.elapsed()
        );
        // The next turn is about 200 ms away: a 20 ms deadline cannot have it.
        let near = Instant::now() + Duration::from_millis(20);
        assert!(limiter.acquire(near).await.is_err());
    }

    #[tokio::test]
    async fn retry_after_pauses_every_call() {
        let limiter = RateLimiter::new("Test", RateLimit::OFF);
        limiter
            .acquire(Instant::now() + Duration::from_millis(50))
            .await
            .unwrap();
        limiter.pause(Some(Duration::from_secs(2)));
        let refused = limiter
            .acquire(Instant::now() + Duration::from_millis(500))
            .await;
        assert!(refused.unwrap_err().contains("Retry-After"));
    }
}
