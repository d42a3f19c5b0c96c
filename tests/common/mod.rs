//! What the command-line tests share: running the `seqnet` binary in a folder of the
//! test's own, and reading its result.
//!
//! Each integration test file is its own crate and uses only some of these.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `seqnet ARGS` in `dir` with extra environment variables. Nothing from the
/// developer's machine leaks in: no `$SEQNET_DATA`, no proxies (the fetch tests' server
/// is on 127.0.0.1), and the user cache and home are folders inside `dir`.
pub fn seqnet_env(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seqnet"));
    cmd.args(args).current_dir(dir).env_remove("SEQNET_DATA");
    for var in [
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("XDG_CACHE_HOME", dir.join("cache"))
        .env("HOME", dir.join("home"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running seqnet")
}

/// Runs `seqnet ARGS` in `dir` (see [`seqnet_env`]).
pub fn seqnet(dir: &Path, args: &[&str]) -> Output {
    seqnet_env(dir, args, &[])
}

/// stdout and stderr as text.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Asserts that the run succeeded; returns its stdout and stderr.
pub fn ok_out_err(o: &Output) -> (String, String) {
    let (out, err) = text(o);
    assert!(
        o.status.success(),
        "seqnet failed: {:?}\nstdout:\n{out}\nstderr:\n{err}",
        o.status
    );
    (out, err)
}

/// Asserts that the run succeeded; returns its stdout.
pub fn ok(o: &Output) -> String {
    ok_out_err(o).0
}

/// Asserts that the run failed without a panic; returns its stderr (the message).
pub fn fails(o: &Output) -> String {
    let (out, err) = text(o);
    assert!(
        !o.status.success(),
        "seqnet should have failed\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(!err.contains("panicked"), "seqnet panicked:\n{err}");
    err
}
