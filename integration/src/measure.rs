//! Small measuring helpers shared by benchmarks.

use std::time::Instant;

/// Seconds elapsed since `start`, rounded to the millisecond.
pub fn secs_since(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

/// `baseline / ours`, rounded to two decimals: above 1 means ovswire is faster.
pub fn ratio(baseline_s: f64, ours_s: f64) -> f64 {
    if ours_s <= 0.0 {
        return f64::INFINITY;
    }
    (baseline_s / ours_s * 100.0).round() / 100.0
}

/// Resident set size of a process in MiB, from `/proc/PID/status` (`VmRSS`).
pub fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

/// The samples in ascending order.
pub fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// The nearest-rank percentile `p` of sorted samples, rounded to two decimals (0 without
/// samples).
pub fn percentile(sorted: &[f64], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    (sorted[rank - 1] * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_says_who_is_faster() {
        assert_eq!(ratio(4.0, 2.0), 2.0);
        assert_eq!(ratio(1.0, 4.0), 0.25);
        assert!(ratio(1.0, 0.0).is_infinite());
    }

    #[test]
    fn rss_of_this_process_is_known() {
        let rss = rss_mb(std::process::id()).expect("VmRSS of self");
        assert!(rss > 0.0);
        assert_eq!(rss_mb(u32::MAX), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<f64> = (1..=200).rev().map(f64::from).collect();
        let s = sorted(&samples);
        assert_eq!(percentile(&s, 50), 100.0);
        assert_eq!(percentile(&s, 99), 198.0);
        assert_eq!(percentile(&s, 100), 200.0);
        assert_eq!(percentile(&s[..1], 99), 1.0);
        assert_eq!(percentile(&[], 99), 0.0);
    }
}
