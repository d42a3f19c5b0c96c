//! The `seqnet` command: a thin layer over the library. Parsing is clap's; each
//! subcommand lives in its own file under `cli/`. Errors are printed with their chain,
//! as one paragraph, with a non-zero exit code.

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so printing to a closed pipe (`seqnet data list | head -1`)
    // fails and println! panics. The default action ends the process quietly instead, as
    // for any Unix tool. A training run killed this way keeps its last checkpoint.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists; SIG_DFL is a
    // valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Parsed in two steps so that `train --resume` can tell which options were typed.
    let matches = cli::Cli::command().try_get_matches().unwrap_or_else(|e| {
        // An option seqnet has under another name: say which, after clap's message.
        if e.kind() == clap::error::ErrorKind::UnknownArgument {
            let arg = e
                .get(clap::error::ContextKind::InvalidArg)
                .map(|v| v.to_string());
            if let Some(tip) = arg.as_deref().and_then(cli::alias_tip) {
                let _ = e.print();
                eprintln!("{tip}");
                std::process::exit(e.exit_code());
            }
        }
        e.exit()
    });
    let args = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli::run(args, &matches) {
        Ok(code) => code,
        Err(err) => {
            let code = cli::exit_code(&err);
            // An interrupted run has already said where its checkpoint is and how to resume.
            if code != 130 {
                eprintln!("error: {}", cli::describe(&err));
            }
            ExitCode::from(code)
        }
    }
}
