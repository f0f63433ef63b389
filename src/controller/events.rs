//! What the controller writes into size-limited API fields: Event notes and the `Ready`
//! condition's message, and the one cut that keeps them within the API server's limits.
//!
//! Messages carry user input (pool names, hosts, paths, probe answers), so they may be long
//! and hold any Unicode; a cut must land on a character boundary or `String` panics, and an
//! over-long field makes the API server refuse the whole write. No API calls here.

use std::net::SocketAddr;

use kube::runtime::events::{Event, EventType};

use super::index::Refusal;

/// Most bytes the API server accepts in an Event's `note` (events.k8s.io/v1 validation).
pub const EVENT_NOTE_MAX_BYTES: usize = 1024;
/// Most bytes the API server accepts in a `metav1.Condition` message.
pub const CONDITION_MESSAGE_MAX_BYTES: usize = 32768;

/// The longest prefix of `s` that fits in `max_bytes` and ends on a character boundary.
pub fn truncate_on_char_boundary(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let end = (0..=max_bytes)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    &s[..end]
}

/// The Warning Event for a pool the controller refuses (its reason: `InvalidSpec`,
/// `Conflict` or `PortUnavailable`).
pub fn refusal(refusal: &Refusal) -> Event {
    Event {
        type_: EventType::Warning,
        reason: refusal.reason.to_owned(),
        note: Some(note(&refusal.message)),
        action: "Validate".to_owned(),
        secondary: None,
    }
}

/// The Event for an endpoint turning healthy or unhealthy; `why` is what the check saw.
pub fn health(endpoint: SocketAddr, healthy: bool, why: &str) -> Event {
    let (type_, reason) = if healthy {
        (EventType::Normal, "EndpointHealthy")
    } else {
        (EventType::Warning, "EndpointUnhealthy")
    };
    Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note(&format!("endpoint {endpoint}: {why}"))),
        action: "HealthCheck".to_owned(),
        secondary: None,
    }
}

fn note(text: &str) -> String {
    truncate_on_char_boundary(text, EVENT_NOTE_MAX_BYTES).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refusal_note_with_characters_across_the_limits_is_cut_on_a_boundary() {
        // Two-byte characters at odd offsets: byte 1000 (the old cut) and byte 1024 (the
        // API limit) both fall inside one.
        let message = format!("x{}", "é".repeat(1000));
        let event = refusal(&Refusal {
            reason: "Conflict",
            message,
        });
        let note = event.note.expect("a refusal has a note");
        assert_eq!(note, format!("x{}", "é".repeat(511)));
        assert_eq!(note.len(), EVENT_NOTE_MAX_BYTES - 1);
    }

    #[test]
    fn health_note_stays_within_the_event_limit() {
        let why = "é".repeat(2000);
        let event = health("198.18.0.2:80".parse().unwrap(), false, &why);
        let note = event.note.expect("a health event has a note");
        assert!(note.len() <= EVENT_NOTE_MAX_BYTES);
        assert!(note.starts_with("endpoint 198.18.0.2:80: éé"));
        assert_eq!(event.reason, "EndpointUnhealthy");
    }

    #[test]
    fn short_text_is_kept_whole() {
        assert_eq!(truncate_on_char_boundary("ok ✓", 1024), "ok ✓");
        assert_eq!(truncate_on_char_boundary("✓", 2), "");
        assert_eq!(truncate_on_char_boundary("", 0), "");
    }

    /// Long, non-ASCII and control-character text, as user input may hold: a few runs, each
    /// a short piece repeated, so lengths reach past both limits at little cost.
    fn messages() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[a-z ]{1,8}",
            "[é✓€😀ß]{1,8}",
            "[\\x00-\\x1f\\x7f]{1,4}",
            any::<String>(),
        ];
        let run = (piece, 1usize..1500).prop_map(|(p, n)| p.repeat(n));
        proptest::collection::vec(run, 0..5).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn cut_never_panics_and_keeps_a_char_boundary_prefix_within_the_limit(
            text in messages(),
            max in prop_oneof![Just(EVENT_NOTE_MAX_BYTES), Just(CONDITION_MESSAGE_MAX_BYTES), 0usize..2048],
        ) {
            let cut = truncate_on_char_boundary(&text, max);
            prop_assert!(cut.len() <= max);
            prop_assert!(text.starts_with(cut));
            prop_assert!(text.is_char_boundary(cut.len()));
            // Nothing more fits: the next character would cross the limit.
            if let Some(next) = text[cut.len()..].chars().next() {
                prop_assert!(cut.len() + next.len_utf8() > max);
            }
        }

        #[test]
        fn events_built_from_any_message_fit_the_note_limit(text in messages(), healthy in any::<bool>()) {
            let refused = refusal(&Refusal { reason: "InvalidSpec", message: text.clone() });
            let checked = health("198.18.0.2:80".parse().unwrap(), healthy, &text);
            for event in [refused, checked] {
                let note = event.note.unwrap_or_default();
                prop_assert!(note.len() <= EVENT_NOTE_MAX_BYTES);
            }
        }
    }
}
