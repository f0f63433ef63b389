//! Duration strings (`250ms`, `5s`, `1m`, `1h`, `1m30s`).
//!
//! Owns the one grammar every duration field uses, the same as the CRD pattern
//! `^([0-9]+(ms|s|m|h))+$`, so a value the API server accepts is exactly a value standalone
//! mode accepts. It must not accept anything wider (no spaces, no `min`, no `d`): humantime's
//! richer syntax would let a standalone file hold what `kubectl apply` would refuse.

use std::time::Duration;

/// The contract forms, quoted in every error.
const EXPECTED: &str = "expected 250ms, 5s, 1m, 1h";

/// Parses a contract duration: one or more `<digits><unit>` groups, unit `ms`, `s`, `m`
/// or `h` (`1m30s` is 90 seconds). Groups add up; their order does not matter.
///
/// The error is the message users see after the field path:
/// `invalid duration "5x" (expected 250ms, 5s, 1m, 1h)`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {s:?} ({EXPECTED})");
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return Err(invalid());
    }
    let mut total = Duration::ZERO;
    let mut i = 0;
    while i < bytes.len() {
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits_start {
            return Err(invalid());
        }
        // All ASCII digits, so only overflow can fail here.
        let value: u64 = s[digits_start..i]
            .parse()
            .map_err(|_| format!("invalid duration {s:?} (too large)"))?;
        let rest = &bytes[i..];
        let (part, unit_len) = if rest.starts_with(b"ms") {
            (Some(Duration::from_millis(value)), 2)
        } else if rest.starts_with(b"s") {
            (Some(Duration::from_secs(value)), 1)
        } else if rest.starts_with(b"m") {
            (value.checked_mul(60).map(Duration::from_secs), 1)
        } else if rest.starts_with(b"h") {
            (value.checked_mul(3600).map(Duration::from_secs), 1)
        } else {
            return Err(invalid());
        };
        i += unit_len;
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or_else(|| format!("invalid duration {s:?} (too large)"))?;
    }
    Ok(total)
}

/// Formats a duration in the contract grammar, largest units first (`1h2m3s4ms`; zero is
/// `0s`). Only whole milliseconds are representable: anything finer is truncated.
pub fn format_duration(d: Duration) -> String {
    let total_ms = d.as_millis();
    if total_ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let parts = [
        (total_ms / 3_600_000, "h"),
        (total_ms / 60_000 % 60, "m"),
        (total_ms / 1000 % 60, "s"),
        (total_ms % 1000, "ms"),
    ];
    for (value, unit) in parts {
        if value > 0 {
            out.push_str(&value.to_string());
            out.push_str(unit);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_every_contract_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn adds_up_compound_groups() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("1h1m1s1ms"),
            Ok(Duration::from_millis(3_661_001))
        );
        assert_eq!(parse_duration("1s1s"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn rejects_forms_outside_the_crd_pattern_with_the_contract_message() {
        for bad in [
            "", "5", "s", "5x", "5 s", " 5s", "5s ", "1.5s", "-1s", "5S", "5sec", "1d", "5min",
            "1m30", "+5s", "5us", "5ns",
        ] {
            assert_eq!(
                parse_duration(bad),
                Err(format!(
                    "invalid duration {bad:?} (expected 250ms, 5s, 1m, 1h)"
                )),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_duration("5x").unwrap_err(),
            r#"invalid duration "5x" (expected 250ms, 5s, 1m, 1h)"#
        );
    }

    #[test]
    fn reports_overflow_instead_of_wrapping() {
        let err = parse_duration("99999999999999999999999s").unwrap_err();
        assert!(err.contains("too large"), "{err}");
        let err = parse_duration("18446744073709551615h").unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn formats_largest_units_first() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(
            format_duration(Duration::from_millis(3_661_001)),
            "1h1m1s1ms"
        );
    }

    proptest! {
        #[test]
        fn whole_milliseconds_round_trip(ms in 0u64..=u64::MAX / 4) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn strings_matching_the_crd_pattern_parse(s in "([0-9]{1,9}(ms|s|m|h)){1,4}") {
            prop_assert!(parse_duration(&s).is_ok(), "{}", s);
        }

        #[test]
        fn strings_with_a_foreign_character_are_rejected(
            prefix in "([0-9]{1,4}(ms|s|m|h)){0,2}",
            junk in "[^0-9msh]",
            suffix in "[0-9a-z]{0,4}",
        ) {
            let s = format!("{prefix}{junk}{suffix}");
            prop_assert!(parse_duration(&s).is_err(), "{}", s);
        }
    }
}
