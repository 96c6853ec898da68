//! The `user-purge` binary: logging, configuration, one pass or one operator
//! command, an exit code.

use std::io::Write as _;
use std::process::ExitCode;

use log::{error, info, warn};
use user_purge::check::Finding;
use user_purge::cli::{self, Command};
use user_purge::operate::Checked;
use user_purge::outcome::{self, Exit, Outcome, Signal};
use user_purge::{job, logging, metrics, operate};

/// Variables the Google auth crate reads on its own: an empty one counts as
/// unset, as in Google's own clients, instead of naming the file "".
const GOOGLE_VARIABLES: [&str; 3] = [
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_APPLICATION_CREDENTIALS_JSON",
    "GCE_METADATA_HOST",
];

fn main() -> ExitCode {
    for name in GOOGLE_VARIABLES {
        if std::env::var_os(name).is_some_and(|value| value.is_empty()) {
            // SAFETY: nothing else runs yet: no thread reads the environment.
            unsafe { std::env::remove_var(name) };
        }
    }
    // The command line comes first: it says how to write the log.
    let (log_format, command) = cli::parse(std::env::args_os());
    logging::init(log_format);
    let exit = match command {
        Command::Exit {
            text,
            to_stderr,
            exit,
        } => {
            if to_stderr {
                logging::refusal(log_format, &text, exit);
            } else {
                print!("{text}");
            }
            exit
        }
        command => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => {
                let exit = execute(&runtime, command);
                // Outstanding background work (a dropped connection's goodbye)
                // is not waited for: every promise was kept before the report.
                runtime.shutdown_timeout(std::time::Duration::from_millis(100));
                exit
            }
            Err(e) => {
                error!(exit_code = Exit::Internal.code(); "cannot start the async runtime: {e}");
                Exit::Internal
            }
        },
    };
    let _ = std::io::stdout().flush();
    ExitCode::from(exit.code())
}

/// Runs a pass or an operator's command, prints its JSON line and returns
/// its exit code.
fn execute(runtime: &tokio::runtime::Runtime, command: Command) -> Exit {
    match command {
        Command::Run(config) => {
            let metrics = config.metrics.clone();
            let report = runtime.block_on(job::run(*config, shutdown_signal()));
            let exit = report.outcome.exit();
            match report.outcome.error() {
                Some(e) => failed(&report.outcome, e),
                None => info!("{} (exit {})", report.outcome.name(), exit.code()),
            }
            println!("{}", report.json_line());
            if let Some(metrics) = metrics {
                // Never changes the exit code: the work is done either way.
                if let Err(e) = metrics::push(&metrics.gateway, &metrics.instance, &report) {
                    warn!("cannot push metrics to {}: {e}", metrics.gateway);
                }
            }
            exit
        }
        Command::Replay(admin, to) => {
            operator("replay", runtime.block_on(operate::replay(&admin, &to)))
        }
        Command::CreateSnapshot(admin, name) => operator(
            "snapshot",
            runtime.block_on(operate::create_snapshot(&admin, &name)),
        ),
        Command::Publish {
            project,
            credentials,
            topic,
            events,
        } => operator(
            "publish",
            runtime.block_on(operate::publish(&project, &credentials, &topic, &events)),
        ),
        Command::Check(check) => match runtime.block_on(operate::check(&check)) {
            Ok(Checked::Grants(grants)) => {
                print!("{grants}");
                Exit::Success
            }
            Ok(Checked::Findings(findings)) => report_findings(&findings),
            Err(outcome) => {
                if let Some(e) = outcome.error() {
                    failed(&outcome, e);
                }
                outcome.exit()
            }
        },
        Command::Exit { exit, .. } => exit,
    }
}

/// The check's findings: one JSON line each on stdout, a readable line each
/// in the log; exit 1 when there is any.
fn report_findings(findings: &[Finding]) -> Exit {
    for finding in findings {
        println!("{}", outcome::json(finding));
        warn!(
            "{}.{}: {}: {}",
            finding.table,
            finding.column,
            outcome::json(&finding.finding).trim_matches('"'),
            finding.why
        );
    }
    if findings.is_empty() {
        info!("nothing found: the map and the cascades cover every place the check knows of");
        Exit::Success
    } else {
        info!("{} findings", findings.len());
        Exit::Findings
    }
}

/// Logs an operator's command's result, prints its JSON line, and returns
/// its exit code.
fn operator(name: &str, result: Result<String, Outcome>) -> Exit {
    let outcome = match result {
        Ok(done) => {
            info!("{done}");
            Outcome::Completed
        }
        Err(outcome) => {
            if let Some(e) = outcome.error() {
                failed(&outcome, e);
            }
            outcome
        }
    };
    println!("{}", outcome::command_line(name, &outcome));
    outcome.exit()
}

/// The one error line of a failed run or command, with its outcome and exit
/// code as fields (JSON fields in `--log-format json`).
fn failed(outcome: &Outcome, error: &anyhow::Error) {
    error!(
        outcome = outcome.name(),
        exit_code = outcome.exit().code();
        "{}",
        outcome::one_line(error)
    );
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
