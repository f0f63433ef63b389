//! The healthy/unhealthy threshold state machine of one endpoint (pure, no I/O).

/// Consecutive pass/fail counting against the pool's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    healthy: bool,
    checked: bool,
    passes: u32,
    failures: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            healthy: true,
            checked: false,
            passes: 0,
            failures: 0,
        }
    }
}

impl Thresholds {
    /// Whether the endpoint is currently healthy.
    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Continues from a known health (a checker restarted after a config edit).
    pub fn resume(&mut self, healthy: bool) {
        *self = Thresholds {
            healthy,
            checked: true,
            passes: 0,
            failures: 0,
        };
    }

    /// Records one check result; returns the new health when it changed.
    ///
    /// A new endpoint starts healthy; if its very first check fails it turns unhealthy at
    /// once. After that it takes `unhealthy_threshold` failures in a row to turn unhealthy
    /// and `healthy_threshold` passes in a row to turn healthy again.
    pub fn record(
        &mut self,
        pass: bool,
        healthy_threshold: u32,
        unhealthy_threshold: u32,
    ) -> Option<bool> {
        let first = !self.checked;
        self.checked = true;
        if pass {
            self.passes = self.passes.saturating_add(1);
            self.failures = 0;
            if !self.healthy && self.passes >= healthy_threshold.max(1) {
                self.healthy = true;
                return Some(true);
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.passes = 0;
            if self.healthy && (first || self.failures >= unhealthy_threshold.max(1)) {
                self.healthy = false;
                return Some(false);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_failed_check_makes_a_new_endpoint_unhealthy_at_once() {
        let mut t = Thresholds::default();
        assert_eq!(t.record(false, 2, 3), Some(false));
    }

    #[test]
    fn unhealthy_after_threshold_failures() {
        let mut t = Thresholds::default();
        assert_eq!(t.record(true, 2, 3), None);
        assert_eq!(t.record(false, 2, 3), None);
        assert_eq!(t.record(false, 2, 3), None);
        assert_eq!(t.record(false, 2, 3), Some(false));
        assert!(!t.healthy());
    }

    #[test]
    fn healthy_again_after_threshold_passes() {
        let mut t = Thresholds::default();
        t.record(false, 2, 3);
        assert_eq!(t.record(true, 2, 3), None);
        assert_eq!(t.record(true, 2, 3), Some(true));
    }

    #[test]
    fn a_pass_resets_the_failure_streak() {
        let mut t = Thresholds::default();
        t.record(true, 2, 3);
        t.record(false, 2, 3);
        t.record(false, 2, 3);
        t.record(true, 2, 3);
        assert_eq!(t.record(false, 2, 3), None);
        assert_eq!(t.record(false, 2, 3), None);
        assert_eq!(t.record(false, 2, 3), Some(false));
    }
}
