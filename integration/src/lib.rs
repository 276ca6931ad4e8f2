//! End-to-end tests and benchmarks of ovswire on a real Open vSwitch.
//!
//! The tests live in `tests/`; `ovswire-bench` (in `src/bin/`) measures ovswire next to the
//! command-line baseline in the same run. This library holds what both share.

pub mod agent;
pub mod bench;
pub mod cluster;
pub mod measure;

/// Waits up to `secs` seconds for `f` to hold, checking every 20 ms; the error names `what`.
pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        if std::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {secs} s waiting for {what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}
