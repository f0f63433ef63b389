//! Status conditions as the translation decides them, before they become
//! `metav1.Condition`s (which add the generation and transition time when written).

/// Why something is not (fully) accepted or resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The condition reason (`UnsupportedValue`, `BackendNotFound`, ...).
    pub reason: &'static str,
    /// Names the object's field.
    pub message: String,
}

/// One condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    /// `Accepted`, `Programmed`, `ResolvedRefs`, `Conflicted`.
    pub type_: &'static str,
    /// True or False.
    pub status: bool,
    /// The reason.
    pub reason: &'static str,
    /// A human-readable message.
    pub message: String,
}

impl Cond {
    /// A condition that holds.
    pub fn yes(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Cond {
        Cond {
            type_,
            status: true,
            reason,
            message: message.into(),
        }
    }

    /// A condition that does not hold.
    pub fn no(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Cond {
        Cond {
            type_,
            status: false,
            reason,
            message: message.into(),
        }
    }

    /// The `status` text.
    pub fn status_text(&self) -> &'static str {
        if self.status { "True" } else { "False" }
    }
}

/// Sets (replaces) the condition of `c.type_` in `list`.
pub fn set(list: &mut Vec<Cond>, c: Cond) {
    match list.iter_mut().find(|x| x.type_ == c.type_) {
        Some(slot) => *slot = c,
        None => list.push(c),
    }
}
