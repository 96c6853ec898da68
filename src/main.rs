//! The `user-purge` binary: logging, configuration, one pass or one operator
//! command, an exit code.

use std::io::Write as _;
use std::process::ExitCode;

use log::{error, info, warn};
use user_purge::cli::{self, Command};
use user_purge::outcome::{self, Exit, Signal};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let command = match cli::parse(std::env::args_os()) {
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
        command => command,
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
    let exit = match command {
        Command::Run(config) => {
            let metrics = config.metrics.clone();
            let report = runtime.block_on(user_purge::run(*config, shutdown_signal()));
            let exit = report.outcome.exit();
            match report.outcome.error() {
                Some(e) => error!("{}", outcome::one_line(e)),
                None => info!("{} (exit {})", report.outcome.name(), exit.code()),
            }
            println!("{}", report.json_line());
            if let Some(metrics) = metrics {
                // Never changes the exit code: the work is done either way.
                if let Err(e) =
                    user_purge::metrics::push(&metrics.gateway, &metrics.instance, &report)
                {
                    warn!("cannot push metrics to {}: {e}", metrics.gateway);
                }
            }
            exit
        }
        Command::Replay(admin, to) => operator(&runtime, "replay", user_purge::replay(&admin, &to)),
        Command::CreateSnapshot(admin, name) => operator(
            &runtime,
            "snapshot",
            user_purge::create_snapshot(&admin, &name),
        ),
        Command::Publish {
            project,
            credentials,
            topic,
            events,
        } => operator(
            &runtime,
            "publish",
            user_purge::publish(&project, &credentials, &topic, &events),
        ),
        Command::Exit { .. } => unreachable!("handled above"),
    };
    let _ = std::io::stdout().flush();
    // Outstanding background work (a dropped connection's goodbye) is not
    // waited for: every promise was kept before the report was made.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    ExitCode::from(exit.code())
}

/// Runs an operator's command: a JSON line on success, an error line and exit
/// 3 (Pub/Sub refused or failed) otherwise.
fn operator(
    runtime: &tokio::runtime::Runtime,
    name: &str,
    command: impl Future<Output = anyhow::Result<String>>,
) -> Exit {
    match runtime.block_on(command) {
        Ok(done) => {
            info!("{done}");
            println!("{{\"command\":\"{name}\",\"outcome\":\"completed\"}}");
            Exit::Success
        }
        Err(e) => {
            error!("{}", outcome::one_line(&e));
            println!("{{\"command\":\"{name}\",\"outcome\":\"pubsub_error\"}}");
            Exit::PubSub
        }
    }
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
