//! The `user-purge` binary: logging, configuration, one pass, an exit code.

use std::io::Write as _;
use std::process::ExitCode;

use log::{error, info};
use user_purge::cli::{self, Command};
use user_purge::outcome::{self, Signal};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = match cli::parse(std::env::args_os()) {
        Command::Run(config) => config,
        Command::Exit {
            text,
            to_stderr,
            code,
        } => {
            if to_stderr {
                eprint!("{text}");
            } else {
                print!("{text}");
            }
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let report = runtime.block_on(user_purge::run(*config, shutdown_signal()));
    let exit = report.outcome.exit();
    match report.outcome.error() {
        Some(e) => error!("{}", outcome::one_line(e)),
        None => info!("{} (exit {})", report.outcome.name(), exit.code()),
    }
    println!("{}", report.json_line());
    let _ = std::io::stdout().flush();
    // Outstanding background work (a dropped connection's goodbye) is not
    // waited for: every promise was kept before the report was made.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    ExitCode::from(exit.code())
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() -> Signal {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        error!("cannot listen for SIGINT and SIGTERM; the run cannot be stopped cleanly");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => Signal::Interrupt,
        _ = terminate.recv() => Signal::Terminate,
    }
}
