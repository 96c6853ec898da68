//! The `user-purge` binary: logging, configuration, one pass or one operator
//! command, an exit code. Every path ends in an [`Outcome`], and
//! [`Outcome::exit`] alone picks the code.

use std::io::Write as _;
use std::process::ExitCode;

use log::{error, info, warn};
use user_purge::config::command::{self, Command, Print};
use user_purge::ops::check::Finding;
use user_purge::ops::{self, Checked, metrics};
use user_purge::outcome::{self, Outcome, Signal};
use user_purge::pubsub::google::GOOGLE_VARIABLES;
use user_purge::{logging, run};

fn main() -> ExitCode {
    for name in GOOGLE_VARIABLES {
        if std::env::var_os(name).is_some_and(|value| value.is_empty()) {
            // SAFETY: nothing else runs yet: no thread reads the environment.
            unsafe { std::env::remove_var(name) };
        }
    }
    // The command line comes first: it says how to write the log.
    let (log_format, command) = command::parse(std::env::args_os());
    logging::init(log_format);
    let outcome = match command {
        Err(Print {
            text,
            to_stderr,
            outcome,
        }) => {
            if to_stderr {
                logging::usage_error(log_format, &text, &outcome);
            } else {
                print!("{text}");
            }
            outcome
        }
        Ok(command) => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => {
                let outcome = execute(&runtime, command);
                // Outstanding background work (a dropped connection's goodbye)
                // is not waited for: every promise was kept before the report.
                runtime.shutdown_timeout(std::time::Duration::from_millis(100));
                outcome
            }
            Err(e) => {
                let outcome = Outcome::NoRuntime(
                    anyhow::Error::new(e).context("cannot start the async runtime"),
                );
                if let Some(e) = outcome.error() {
                    failed(&outcome, e);
                }
                outcome
            }
        },
    };
    let _ = std::io::stdout().flush();
    ExitCode::from(outcome.exit().code())
}

/// Runs a pass or an operator's command, prints its JSON line and returns
/// its outcome.
fn execute(runtime: &tokio::runtime::Runtime, command: Command) -> Outcome {
    match command {
        Command::Run(config) => {
            let metrics = config.metrics.clone();
            let report = runtime.block_on(run::run(*config, shutdown_signal()));
            match report.outcome.error() {
                Some(e) => failed(&report.outcome, e),
                None => info!(
                    "{} (exit {})",
                    report.outcome.name(),
                    report.outcome.exit().code()
                ),
            }
            println!("{}", report.json_line());
            if let Some(metrics) = metrics {
                // Never changes the exit code: the work is done either way.
                // Inside the runtime: a stopping run's deadline is its clock's.
                let _entered = runtime.enter();
                if let Err(e) = metrics::push(&metrics.gateway, &metrics.instance, &report) {
                    warn!("cannot push metrics to {}: {e}", metrics.gateway);
                }
            }
            report.outcome
        }
        Command::Replay(admin, to) => {
            operator("replay", runtime.block_on(ops::replay(&admin, &to)))
        }
        Command::CreateSnapshot(admin, name) => operator(
            "snapshot",
            runtime.block_on(ops::create_snapshot(&admin, &name)),
        ),
        Command::Publish {
            project,
            credentials,
            topic,
            events,
        } => operator(
            "publish",
            runtime.block_on(ops::publish(&project, &credentials, &topic, &events)),
        ),
        Command::Verify(verify) => {
            let (verified, outcome) = runtime.block_on(ops::verify::verify(&verify, |f| {
                println!("{}", outcome::json(f));
                warn!(
                    "{}: {} rows of erased user {} in {}.{}",
                    f.finding, f.rows, f.user_id, f.table, f.column
                );
            }));
            match outcome.error() {
                Some(e) => failed(&outcome, e),
                None => info!(
                    "{} users checked, {} findings (exit {})",
                    verified.users_checked,
                    verified.findings,
                    outcome.exit().code()
                ),
            }
            println!("{}", outcome::json(&verified));
            match (&verify.metrics, &outcome, verify.since) {
                (Some(_), Outcome::DatabaseFailed(_), _) | (None, ..) => {}
                // The gauges speak of the whole record: a look at part of it
                // would replace the daily run's findings and timestamp.
                (Some(_), _, Some(_)) => {
                    info!("--since checks part of the record: its figures are not pushed")
                }
                (Some(metrics), _, None) => {
                    let found = verified.left.unwrap_or(verified.findings);
                    if let Err(e) = metrics::push_verify(&metrics.gateway, &metrics.instance, found)
                    {
                        warn!("cannot push metrics to {}: {e}", metrics.gateway);
                    }
                }
            }
            outcome
        }
        Command::Check(check) => match runtime.block_on(ops::check(&check)) {
            Ok(Checked::Grants(grants)) => {
                print!("{grants}");
                Outcome::Completed
            }
            Ok(Checked::Findings(findings)) => report_findings(&findings),
            Err(outcome) => {
                if let Some(e) = outcome.error() {
                    failed(&outcome, e);
                }
                outcome
            }
        },
    }
}

/// The check's findings: one JSON line each on stdout, a readable line each
/// in the log.
fn report_findings(findings: &[Finding]) -> Outcome {
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
        Outcome::Completed
    } else {
        info!("{} findings", findings.len());
        Outcome::Findings(findings.len())
    }
}

/// Logs an operator's command's result, prints its JSON line, and returns
/// its outcome.
fn operator(name: &str, result: Result<String, Outcome>) -> Outcome {
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
    outcome
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
