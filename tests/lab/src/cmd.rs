//! Running helper commands. Lab setup failures panic with the full command line and its
//! stderr, because a scenario test can do nothing useful on a half-built lab and the
//! message is all the reader of a CI log gets.

use std::process::{Command, Output};

/// Runs `program args` to completion; panics only if it cannot be started at all.
pub(crate) fn output(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", line(program, args)))
}

/// Runs `program args` and panics unless it exits successfully.
pub(crate) fn checked(program: &str, args: &[&str]) -> Output {
    let out = output(program, args);
    if !out.status.success() {
        panic!(
            "`{}` failed ({}): {}",
            line(program, args),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    out
}

/// Runs `ip args`; panics on failure.
pub(crate) fn ip(args: &[&str]) -> Output {
    checked("ip", args)
}

/// Runs a command where a panic is not allowed (cleanup): failures go to stderr only.
pub(crate) fn quiet(program: &str, args: &[&str]) -> bool {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "dockline-lab: `{}` failed ({}): {}",
                line(program, args),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("dockline-lab: cannot run `{}`: {e}", line(program, args));
            false
        }
    }
}

pub(crate) fn line(program: &str, args: &[&str]) -> String {
    let mut s = program.to_owned();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}
