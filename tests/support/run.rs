//! Running the `seqnet` binary in a folder of the test's own, and reading its result.

use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The longest a run of [`seqnet_env`] may take: far more than any test needs, even on a
/// loaded machine. A run still going after its limit is killed and the test fails as a
/// hang.
pub const WATCHDOG: Duration = Duration::from_secs(600);

/// `seqnet` in `dir`, with nothing from the developer's machine leaking in: no
/// `$SEQNET_DATA`, no proxies (the fetch tests' server is on 127.0.0.1), no
/// `RUST_BACKTRACE`, and the user cache and home are folders inside `dir`.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seqnet"));
    cmd.current_dir(dir)
        .env_remove("SEQNET_DATA")
        .env_remove("RUST_BACKTRACE");
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
    cmd
}

/// Runs `cmd` to its end or for `limit` at most, `stdin` on its standard input (none when
/// `None`); returns its output and how long it took. Standard output and error go to
/// files in a folder of their own, so a chatty process cannot block on a full pipe and
/// the test's folder holds only what the process wrote.
pub fn watched(mut cmd: Command, stdin: Option<&[u8]>, limit: Duration) -> (Output, Duration) {
    let capture = tempfile::tempdir().expect("tempdir for the output");
    let out_path = capture.path().join("stdout");
    let err_path = capture.path().join("stderr");
    let start = Instant::now();
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("starting seqnet");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        // The process may stop reading early (a too-long spec): a broken pipe is fine.
        let _ = pipe.write_all(bytes);
    }
    let status: ExitStatus = loop {
        if let Some(status) = child.try_wait().expect("polling seqnet") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} hung: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let output = Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    };
    (output, elapsed)
}

/// Runs `seqnet ARGS` in `dir` (see [`command`]) with extra environment variables,
/// under the watchdog.
pub fn seqnet_env(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = command(dir);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    watched(cmd, None, WATCHDOG).0
}

/// Runs `seqnet ARGS` in `dir` (see [`seqnet_env`]).
pub fn seqnet(dir: &Path, args: &[&str]) -> Output {
    seqnet_env(dir, args, &[])
}

/// `train --dataset mnist-5k --epochs 1 --limit LIMIT`, then `extra`: a short run on
/// the first images of the embedded MNIST sample, as most tests that need a model
/// train one.
pub fn train_sample<'a>(limit: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--dataset",
        "mnist-5k",
        "--epochs",
        "1",
        "--limit",
        limit,
    ];
    args.extend_from_slice(extra);
    args
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

/// The message in `text` that starts with `head`: its first line and the lines indented
/// by two spaces that continue it, joined back into one line (seqnet wraps its messages
/// at 100 columns that way). `None` if no line starts with `head`.
pub fn message(text: &str, head: &str) -> Option<String> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(head));
    let mut joined = lines.next()?.to_string();
    for line in lines {
        match line.strip_prefix("  ") {
            Some(rest) if !rest.starts_with(' ') => {
                joined.push(' ');
                joined.push_str(rest);
            }
            _ => break,
        }
    }
    Some(joined)
}
