//! `proxy-next-upstream`, `proxy-next-upstream-tries` and `proxy-next-upstream-timeout`:
//! the backend's retry block, with ingress-nginx's defaults (`error timeout`, 3 tries, no
//! time bound) applied to every Ingress backend, as ingress-nginx applies them.
//!
//! Conditions map onto sluice's failure kinds: `error` = connect failure or reset,
//! `timeout` = no answer head in time (a connect timeout is a connect failure), and
//! `invalid_header` = a reset (sluice counts a malformed answer as one); `http_NNN` retries
//! that answer; `non_idempotent` lets POST and PATCH be sent again. `off` leaves only
//! sluice's own retry of a failed connect (nothing was sent), which every pool has. Like
//! nginx, there is no backoff between tries; unlike nginx, retries also stay within the
//! pool's retry budget (`sluice.dev/retry-budget-*`), so a failing backend cannot be
//! multiplied into a retry storm.

use std::collections::BTreeMap;
use std::time::Duration;

use http::StatusCode;

use crate::config::RetryConfig;

/// ingress-nginx's `proxy-next-upstream` default.
const DEFAULT_CONDITIONS: &str = "error timeout";
/// ingress-nginx's `proxy-next-upstream-tries` default (the first try included).
const DEFAULT_TRIES: u32 = 3;
/// Most extra tries sluice makes (a BackendPool's `retry.attempts` bound).
const MAX_ATTEMPTS: u32 = 10;

/// The backend's retry block; `None` for `off`.
pub(super) fn retry(
    get: &BTreeMap<&str, &str>,
    bad: &mut dyn FnMut(&str, String),
) -> Option<RetryConfig> {
    let conditions = get
        .get("proxy-next-upstream")
        .copied()
        .unwrap_or(DEFAULT_CONDITIONS);
    let tries = match get.get("proxy-next-upstream-tries") {
        None => DEFAULT_TRIES,
        Some(v) => v.parse::<u32>().unwrap_or_else(|_| {
            bad(
                "proxy-next-upstream-tries",
                format!("{v:?} is not a whole number"),
            );
            DEFAULT_TRIES
        }),
    };
    let within = match get.get("proxy-next-upstream-timeout") {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(0) => None,
            Ok(s) => Some(Duration::from_secs(s)),
            Err(_) => {
                bad(
                    "proxy-next-upstream-timeout",
                    format!("{v:?} is not a whole number of seconds"),
                );
                None
            }
        },
    };
    let mut r = RetryConfig {
        // nginx: 0 tries = unlimited; sluice bounds them as it bounds a BackendPool's.
        attempts: match tries {
            0 => MAX_ATTEMPTS,
            n => (n - 1).min(MAX_ATTEMPTS),
        },
        backoff_base: Duration::ZERO,
        backoff_max: Duration::ZERO,
        on_connect_failure: false,
        on_reset: false,
        on_5xx: false,
        on_timeout: false,
        on_statuses: Vec::new(),
        non_idempotent: false,
        within,
        budget_ratio: 0.2,
        budget_min_per_second: 10,
    };
    let mut off = false;
    for word in conditions.split_whitespace() {
        match word {
            "off" => off = true,
            "error" => {
                r.on_connect_failure = true;
                r.on_reset = true;
            }
            "timeout" => {
                r.on_connect_failure = true;
                r.on_timeout = true;
            }
            "invalid_header" => r.on_reset = true,
            "non_idempotent" => r.non_idempotent = true,
            "http_500" | "http_502" | "http_503" | "http_504" | "http_403" | "http_404"
            | "http_429" => {
                let code = word[5..]
                    .parse::<u16>()
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok());
                if let Some(code) = code
                    && !r.on_statuses.contains(&code)
                {
                    r.on_statuses.push(code);
                }
            }
            other => bad(
                "proxy-next-upstream",
                format!(
                    "{other:?} is not a condition (error, timeout, invalid_header, http_500, http_502, http_503, http_504, http_403, http_404, http_429, non_idempotent, off)"
                ),
            ),
        }
    }
    if off {
        if conditions.split_whitespace().count() > 1 {
            bad("proxy-next-upstream", "\"off\" stands alone".to_owned());
        }
        return None;
    }
    Some(r)
}
