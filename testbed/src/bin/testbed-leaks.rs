//! Fails when any testbed namespace, OVS daemon or directory is still present.
//!
//! Run it after the test suite: every test must clean up after itself, even on failure.

fn main() {
    let found = ovswire_testbed::leftovers();
    if found.is_empty() {
        println!("testbed: nothing left behind");
        return;
    }
    eprintln!("testbed: {} leftover(s) from tests:", found.len());
    for item in &found {
        eprintln!("  {item}");
    }
    eprintln!("remove them with `ip netns del`, `kill` and `rm -r`, then fix the test that leaked");
    std::process::exit(1);
}
