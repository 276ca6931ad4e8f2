//! `ovswire-cni`: the CNI plugin binary. See the library for what it does.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let outcome = ovswire_cni::run(
        &ovswire_cni::ProcessEnv,
        &mut std::io::stdin().lock(),
        ovswire_cni::DEADLINE,
    );
    if !outcome.stderr.is_empty() {
        eprintln!("{}", outcome.stderr);
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(&outcome.stdout)
        .and_then(|()| stdout.flush())
    {
        eprintln!("ovswire-cni: cannot write to stdout: {e}");
        return ExitCode::from(5);
    }
    ExitCode::from(outcome.exit_code)
}
