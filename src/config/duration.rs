//! Duration strings (`250ms`, `5s`, `1m`, `1h`).

use std::time::Duration;

/// Parses a contract duration string.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}
