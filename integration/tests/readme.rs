//! The README's two commands work as written on a fresh machine used as root, which may have
//! no `sudo`: each is a script of the repository, run as it is, and the scripts never call
//! `sudo` themselves. Needs no root.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The commands of the Quick start's first shell block, without their comments.
fn quick_start_commands(readme: &str) -> Vec<String> {
    let section = readme
        .split("## Quick start")
        .nth(1)
        .expect("the README has a Quick start section");
    let block = section
        .split("```sh")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the Quick start has a ```sh block");
    block
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_readme_names_two_commands_that_run_as_root_without_sudo() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let commands = quick_start_commands(&readme);
    assert_eq!(commands, ["scripts/setup", "scripts/test"], "{commands:?}");
    for command in &commands {
        let script = root().join(command);
        let mode = std::fs::metadata(&script)
            .unwrap_or_else(|e| panic!("{command}: {e}"))
            .permissions()
            .mode();
        assert!(mode & 0o100 != 0, "{command} is not executable");
    }
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == "exec scripts/test"),
        ".ci/run must run the README's test command:\n{ci}"
    );
}

#[test]
fn the_scripts_never_call_sudo() {
    for script in ["scripts/setup", "scripts/test", "scripts/demo"] {
        let text = std::fs::read_to_string(root().join(script)).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            let calls_sudo = !code.starts_with('#')
                && !code.starts_with("echo ")
                && code.split_whitespace().any(|word| word == "sudo");
            assert!(!calls_sudo, "{script}:{}: {line}", n + 1);
        }
    }
}

#[test]
fn the_quick_start_parser_sees_a_sudo() {
    let readme = "## Quick start\n\n```sh\nsudo scripts/setup   # x\nscripts/test\n```\n";
    assert_eq!(
        quick_start_commands(readme),
        ["sudo scripts/setup", "scripts/test"]
    );
}
