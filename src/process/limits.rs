//! Defaults that fit the container: `--max-connections` from the memory limit of the
//! process's cgroup when it is not given (`--workers` needs nothing here: std's
//! `available_parallelism` already honours the CPU quota of cgroup v1 and v2).

/// Connections when the memory is not limited (or the limit cannot be read).
pub const UNLIMITED_DEFAULT: usize = 50_000;
/// Fewest connections a derived default allows (a tiny limit still serves).
const FLOOR: usize = 1_024;
/// Memory budgeted per client connection: an idle HTTP/1.1 keep-alive connection costs
/// about 5 KiB, a busy one its read and write buffers on top; 16 KiB leaves room for both.
const PER_CONNECTION: u64 = 16 * 1024;

/// The default `--max-connections` under a memory limit of `limit` bytes: half the limit
/// budgeted at [`PER_CONNECTION`] each (the other half is the process, its pools and
/// configuration), between [`FLOOR`] and [`UNLIMITED_DEFAULT`]. A 256 MiB pod gets 8,192.
pub fn max_connections_for(limit: Option<u64>) -> usize {
    let Some(limit) = limit else {
        return UNLIMITED_DEFAULT;
    };
    let fits = usize::try_from(limit / 2 / PER_CONNECTION).unwrap_or(usize::MAX);
    fits.clamp(FLOOR, UNLIMITED_DEFAULT)
}

/// The memory limit of this process's cgroup, if one is set: cgroup v2 `memory.max`, else
/// cgroup v1 `memory.limit_in_bytes` (where "no limit" is a number near 2^63).
pub fn memory_limit() -> Option<u64> {
    let v2 = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok();
    let v1 = std::fs::read_to_string("/sys/fs/cgroup/memory/memory.limit_in_bytes").ok();
    parse_limit(v2.as_deref(), v1.as_deref())
}

/// [`memory_limit`] from the two files' contents.
fn parse_limit(v2: Option<&str>, v1: Option<&str>) -> Option<u64> {
    /// cgroup v1 reports "unlimited" as the largest page-aligned i64.
    const V1_UNLIMITED: u64 = 1 << 62;
    if let Some(text) = v2 {
        return text.trim().parse().ok();
    }
    v1?.trim().parse().ok().filter(|&n| n < V1_UNLIMITED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_256_mib_pod_gets_8192_connections_and_no_limit_keeps_50000() {
        assert_eq!(max_connections_for(Some(256 * 1024 * 1024)), 8_192);
        assert_eq!(max_connections_for(None), 50_000);
        assert_eq!(max_connections_for(Some(64 * 1024 * 1024 * 1024)), 50_000);
        assert_eq!(
            max_connections_for(Some(16 * 1024 * 1024)),
            1_024,
            "the floor"
        );
    }

    #[test]
    fn cgroup_limits_are_read_from_v2_then_v1_and_max_means_none() {
        assert_eq!(parse_limit(Some("268435456\n"), None), Some(268_435_456));
        assert_eq!(parse_limit(Some("max\n"), Some("1000")), None, "v2 wins");
        assert_eq!(parse_limit(None, Some("536870912\n")), Some(536_870_912));
        assert_eq!(parse_limit(None, Some("9223372036854771712\n")), None);
        assert_eq!(parse_limit(None, None), None);
    }
}
