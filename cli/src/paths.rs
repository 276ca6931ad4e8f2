//! Where the CLI keeps its state on this machine.

use std::path::PathBuf;

/// Where ovswire keeps local state: `/run/ovswire`, or `$OVSWIRE_STATE_DIR` when set.
pub fn state_dir() -> PathBuf {
    std::env::var_os("OVSWIRE_STATE_DIR")
        .map_or_else(|| PathBuf::from("/run/ovswire"), PathBuf::from)
}
