//! How a run ends: the exit codes, the outcome of a pass or an operator's
//! command, and the JSON the program writes: the line each prints on stdout,
//! and the log records of `--log-format json` (serde_json, only here).
//!
//! [`Exit`] is the one list of exit codes; [`Outcome::exit`] is the one place
//! that turns what happened into one of them. `main` only returns it.

use serde::Serialize;
use serde::ser::SerializeMap as _;

/// The signal that asked the run to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (Kubernetes at `activeDeadlineSeconds` or on a node drain, systemd on stop).
    Terminate,
}

/// Once a run must stop (a signal came, or Pub/Sub failed), everything it
/// still does fits in this: the promise that a stopped run exits within 10 s,
/// which the CronJob's grace period and systemd's stop timeout rely on.
const EXIT_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// The one deadline of a stopping run, passed down to each thing it still
/// does; each phase ends by its own instant, in this order, inside
/// [`EXIT_BUDGET`]: awaiting the Pulls in flight, handing messages back,
/// pushing the metrics, and the process's own end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitBy {
    /// When the run learnt that it must stop.
    stopped: tokio::time::Instant,
}

impl ExitBy {
    /// The Pulls in flight get this much, so that their messages are handed
    /// back at once rather than left leased to nobody.
    const PULLS: std::time::Duration = std::time::Duration::from_secs(3);
    /// The Pushgateway gets this much, last.
    const METRICS: std::time::Duration = std::time::Duration::from_secs(2);
    /// Left for dropping connections and the runtime's end.
    const TEARDOWN: std::time::Duration = std::time::Duration::from_millis(500);

    /// The deadline of a run stopping now.
    pub fn now() -> ExitBy {
        ExitBy {
            stopped: tokio::time::Instant::now(),
        }
    }

    /// Until when the Pulls in flight are awaited.
    pub fn pulls(self) -> tokio::time::Instant {
        self.stopped + Self::PULLS
    }

    /// Until when the held messages may be handed back.
    pub fn hand_back(self) -> tokio::time::Instant {
        self.metrics() - Self::METRICS
    }

    /// Until when the metrics may be pushed.
    pub fn metrics(self) -> tokio::time::Instant {
        self.stopped + EXIT_BUDGET - Self::TEARDOWN
    }
}

/// The documented exit codes: the one list, from which `--help` and the
/// README's table are made. Each says whether running again can help, which
/// is what a Kubernetes `podFailurePolicy` keys on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Success = 0,
    Findings = 1,
    Config = 2,
    PubSub = 3,
    Database = 4,
    Ack = 5,
    PartiallyCompleted = 6,
    Internal = 70,
    Interrupted = 130,
    Terminated = 143,
}

impl Exit {
    /// Every code, in order.
    pub const ALL: [Exit; 10] = [
        Exit::Success,
        Exit::Findings,
        Exit::Config,
        Exit::PubSub,
        Exit::Database,
        Exit::Ack,
        Exit::PartiallyCompleted,
        Exit::Internal,
        Exit::Interrupted,
        Exit::Terminated,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    /// What the code tells an operator: what happened, and whether a retry helps.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Success => {
                "the pass completed (also when there was nothing to do; malformed messages \
                 were handed back and are counted in the summary)"
            }
            Exit::Findings => "(check, verify) found places the map misses, or erased users' data",
            Exit::Config => {
                "configuration or usage error (or a subscription that cannot replay); \
                 nothing was changed; no retry can help"
            }
            Exit::PubSub => {
                "Pub/Sub error (unreachable, permission denied, subscription not found); \
                 nothing was acknowledged; the next run retries"
            }
            Exit::Database => {
                "database error or a lagging replica; nothing was acknowledged, every message comes back"
            }
            Exit::Ack => {
                "deleted and committed, but some acknowledgements failed; those messages \
                 come back and their deletes repeat harmlessly"
            }
            Exit::PartiallyCompleted => {
                "partially completed: the database refused to erase some users; every \
                 other user was erased, the refused users' messages were handed back and \
                 will reach the dead-letter topic; no retry can help"
            }
            Exit::Internal => "the job could not start (no async runtime); nothing was contacted",
            Exit::Interrupted => {
                "interrupted by SIGINT; held messages were handed back or finished"
            }
            Exit::Terminated => "terminated by SIGTERM; held messages were handed back or finished",
        }
    }

    /// What the code tells of `verify`, which receives and acknowledges
    /// nothing: its own words where the job's would mislead.
    pub fn verify_meaning(self) -> &'static str {
        match self {
            Exit::Success => {
                "nothing of an erased user was found (with --repair: everything found is gone)"
            }
            Exit::Findings => {
                "(check, verify) data of erased users came back (with --repair: some was \
                 written again while the repair ran)"
            }
            Exit::Database => {
                "database error: verify could not finish, and pushed nothing; the next run retries"
            }
            Exit::PartiallyCompleted => {
                "(--repair) the database refused to erase some users again; their rows stay \
                 and are pushed as found; no retry can help"
            }
            other => other.meaning(),
        }
    }
}

/// The exit-code table of `--help`, for these codes.
pub fn exit_codes_help(codes: &[Exit]) -> String {
    exit_codes_help_in(codes, Exit::meaning)
}

/// The exit-code table of `verify --help`.
pub fn verify_exit_codes_help(codes: &[Exit]) -> String {
    exit_codes_help_in(codes, Exit::verify_meaning)
}

fn exit_codes_help_in(codes: &[Exit], meaning: fn(Exit) -> &'static str) -> String {
    const WIDTH: usize = 78;
    let mut text = String::from("Exit codes:");
    for exit in codes {
        let mut line = format!("\n  {:<5}", exit.code());
        for word in meaning(*exit).split(' ') {
            if line.len() + 1 + word.len() > WIDTH && line.trim().len() > 3 {
                text.push_str(&line);
                line = format!("\n{:7}", "");
            } else if !line.ends_with(' ') {
                line.push(' ');
            }
            line.push_str(word);
        }
        text.push_str(&line);
    }
    text
}

/// What happened to one pass, or to an operator's command.
#[derive(Debug)]
pub enum Outcome {
    Completed,
    /// `user-purge check` found places the map misses: this many.
    Findings(usize),
    /// The command line or a setting was refused; nothing ran.
    Misconfigured(anyhow::Error),
    /// An operator's command that the subscription cannot carry out as asked
    /// (`replay --since` on a subscription that keeps no acknowledged messages).
    Unsuitable(anyhow::Error),
    PubSubFailed(anyhow::Error),
    DatabaseFailed(anyhow::Error),
    AckFailed(anyhow::Error),
    /// Every user erased but the ones the database refused.
    PartiallyCompleted(anyhow::Error),
    Interrupted(Signal),
    /// The job could not start its async runtime.
    NoRuntime(anyhow::Error),
}

impl Outcome {
    /// The one place that turns what happened into an exit code.
    pub fn exit(&self) -> Exit {
        match self {
            Outcome::Completed => Exit::Success,
            Outcome::Findings(_) => Exit::Findings,
            Outcome::Misconfigured(_) | Outcome::Unsuitable(_) => Exit::Config,
            Outcome::PubSubFailed(_) => Exit::PubSub,
            Outcome::DatabaseFailed(_) => Exit::Database,
            Outcome::AckFailed(_) => Exit::Ack,
            Outcome::PartiallyCompleted(_) => Exit::PartiallyCompleted,
            Outcome::Interrupted(Signal::Interrupt) => Exit::Interrupted,
            Outcome::Interrupted(Signal::Terminate) => Exit::Terminated,
            Outcome::NoRuntime(_) => Exit::Internal,
        }
    }

    /// The `outcome` field of the summary line and of the error's log record.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Findings(_) => "findings",
            Outcome::Misconfigured(_) => "config_error",
            Outcome::Unsuitable(_) => "refused",
            Outcome::PubSubFailed(_) => "pubsub_error",
            Outcome::DatabaseFailed(_) => "database_error",
            Outcome::AckFailed(_) => "ack_error",
            Outcome::PartiallyCompleted(_) => "partially_completed",
            Outcome::Interrupted(_) => "interrupted",
            Outcome::NoRuntime(_) => "internal_error",
        }
    }

    /// The error behind a failed outcome, for the log.
    pub fn error(&self) -> Option<&anyhow::Error> {
        match self {
            Outcome::Misconfigured(e)
            | Outcome::Unsuitable(e)
            | Outcome::PubSubFailed(e)
            | Outcome::DatabaseFailed(e)
            | Outcome::AckFailed(e)
            | Outcome::PartiallyCompleted(e)
            | Outcome::NoRuntime(e) => Some(e),
            Outcome::Completed | Outcome::Findings(_) | Outcome::Interrupted(_) => None,
        }
    }
}

/// An error and its causes on one line, each cause once: many errors repeat
/// their source's message in their own.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// The counts of one pass, printed as the one line on stdout.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Messages received.
    pub received: usize,
    /// Distinct user ids of valid USER_REMOVED events.
    pub removed_ids: usize,
    /// Rows the last entry of the map (the users table) removed: fewer than
    /// the ids when some were gone already.
    pub deleted_rows: u64,
    /// Rows each table of the map had deleted or redacted.
    pub tables: Tables,
    /// Valid events that ask for nothing.
    pub ignored: usize,
    /// Messages that could not be acted on, handed back.
    pub malformed: usize,
    /// Messages acknowledged.
    pub acked: usize,
    /// Messages handed back (nacked).
    pub nacked: usize,
    /// Users the database refused to erase; their messages were handed back.
    pub refused: usize,
    /// Users left unfinished by the run's own limits (`--max-duration`, the
    /// isolation limit, a replica that lagged): handed back for the next run.
    pub carried_over: usize,
    /// Committed chunks of the `chunked` entries.
    pub chunks: u64,
    /// Time spent waiting for the replicas.
    pub replica_wait_ms: u64,
    /// Rounds of receive → erase → settle the run went through.
    pub rounds: usize,
    pub dry_run: bool,
    pub elapsed_ms: u64,
}

/// Rows affected per table, in the map's order; a JSON object.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tables(Vec<(String, u64)>);

impl Tables {
    /// Adds rows to a table's count (a table in two entries counts once).
    pub fn add(&mut self, table: &str, rows: u64) {
        match self.0.iter_mut().find(|(name, _)| name == table) {
            Some((_, total)) => *total += rows,
            None => self.0.push((table.to_owned(), rows)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(name, rows)| (name.as_str(), *rows))
    }
}

impl Serialize for Tables {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (table, rows) in &self.0 {
            map.serialize_entry(table, rows)?;
        }
        map.end()
    }
}

/// Milliseconds since `started`, for the summary.
pub fn elapsed_ms(started: std::time::Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A pass's outcome with its counts.
#[derive(Debug)]
pub struct Report {
    pub outcome: Outcome,
    pub summary: Summary,
    /// Set when the run had to stop: what is left of its exit budget is for
    /// the metrics push.
    pub exit_by: Option<ExitBy>,
}

impl Report {
    /// The summary as one JSON object, the outcome first.
    pub fn json_line(&self) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            outcome: &'static str,
            #[serde(flatten)]
            summary: &'a Summary,
        }
        json(&Line {
            outcome: self.outcome.name(),
            summary: &self.summary,
        })
    }
}

/// The JSON line an operator's command prints: `{"command":"replay","outcome":"completed"}`.
pub fn command_line(command: &str, outcome: &Outcome) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        command: &'a str,
        outcome: &'static str,
    }
    json(&Line {
        command,
        outcome: outcome.name(),
    })
}

/// One log record as Cloud Logging reads a line of a container's stderr:
/// `severity`, `message`, `time`, then the module as `target`, then the
/// record's own fields (`"outcome":"database_error","exit_code":4`).
#[derive(Debug)]
pub struct LogRecord<'a> {
    /// `DEBUG`, `INFO`, `WARNING` or `ERROR`.
    pub severity: &'static str,
    pub message: &'a str,
    /// RFC 3339, UTC.
    pub time: &'a str,
    pub target: &'a str,
    pub fields: &'a [(String, Field)],
}

/// The value of one field of a log record.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl Serialize for LogRecord<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        const FIXED: [&str; 4] = ["severity", "message", "time", "target"];
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("severity", self.severity)?;
        map.serialize_entry("message", self.message)?;
        map.serialize_entry("time", self.time)?;
        map.serialize_entry("target", self.target)?;
        // A field named like a fixed key would make a second key that
        // parsers read differently: the fixed one stays.
        for (key, value) in self
            .fields
            .iter()
            .filter(|(k, _)| !FIXED.contains(&k.as_str()))
        {
            match value {
                Field::Unsigned(n) => map.serialize_entry(key, n)?,
                Field::Signed(n) => map.serialize_entry(key, n)?,
                Field::Float(x) => map.serialize_entry(key, x)?,
                Field::Bool(b) => map.serialize_entry(key, b)?,
                Field::Text(text) => map.serialize_entry(key, text)?,
            }
        }
        map.end()
    }
}

/// Any value as one JSON line.
pub fn json(value: &impl Serialize) -> String {
    // Serializing these plain structs cannot fail: no maps with non-string
    // keys, no failing Serialize impls.
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_has_its_documented_code() {
        let error = || anyhow::anyhow!("x");
        let cases = [
            (Outcome::Completed, 0),
            (Outcome::Findings(3), 1),
            (Outcome::Misconfigured(error()), 2),
            (Outcome::Unsuitable(error()), 2),
            (Outcome::PubSubFailed(error()), 3),
            (Outcome::DatabaseFailed(error()), 4),
            (Outcome::AckFailed(error()), 5),
            (Outcome::PartiallyCompleted(error()), 6),
            (Outcome::NoRuntime(error()), 70),
            (Outcome::Interrupted(Signal::Interrupt), 130),
            (Outcome::Interrupted(Signal::Terminate), 143),
        ];
        let help = exit_codes_help(&Exit::ALL);
        for (outcome, code) in cases {
            assert_eq!(outcome.exit().code(), code, "{outcome:?}");
            assert!(
                help.contains(&format!("\n  {code} ")),
                "{code} is not in --help"
            );
        }
    }

    #[test]
    fn the_help_table_lists_every_code_once_wrapped() {
        let help = exit_codes_help(&Exit::ALL);
        assert!(
            help.starts_with("Exit codes:\n  0    the pass completed"),
            "{help}"
        );
        for line in help.lines() {
            assert!(line.len() <= 78, "{line:?} is too long");
        }
        let codes: Vec<u8> = help
            .lines()
            .filter_map(|l| l.strip_prefix("  ")?.split(' ').next()?.parse().ok())
            .collect();
        let all: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, all);
        let check = exit_codes_help(&[Exit::Success, Exit::Findings]);
        assert_eq!(check.lines().count(), 4, "{check}");
        // verify acknowledges nothing: its table speaks of rows, not messages.
        let verify = verify_exit_codes_help(&[Exit::Database, Exit::PartiallyCompleted]);
        assert!(!verify.contains("message"), "{verify}");
        assert!(verify.contains("pushed nothing"), "{verify}");
    }

    /// The README's exit-code table: one row per code, in the enum's order,
    /// each saying what `meaning` says.
    #[test]
    fn the_readme_exit_code_table_is_the_enum() {
        let readme = include_str!("../README.md");
        let table = readme
            .split_once("## Exit codes")
            .map(|(_, rest)| rest.split("\n## ").next().unwrap_or(""))
            .expect("the README has an exit-code section");
        let rows: Vec<(u8, String)> = table
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let code = cells.get(1)?.trim_matches('`').parse().ok()?;
                Some((code, cells.get(2)?.replace('`', "").to_lowercase()))
            })
            .collect();
        let codes: Vec<u8> = rows.iter().map(|(code, _)| *code).collect();
        let all: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, all, "the README's exit codes");
        for ((_, text), exit) in rows.iter().zip(Exit::ALL) {
            // The first words of the meaning, after a leading "(check only)",
            // up to its first comma, semicolon or parenthesis.
            let meaning = exit.meaning();
            let meaning = match meaning.strip_prefix('(') {
                Some(rest) => rest.split_once(')').map_or(rest, |(_, after)| after),
                None => meaning,
            };
            let head = meaning
                .split([',', ';', '('])
                .find(|part| !part.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_lowercase();
            assert!(
                text.contains(&head),
                "the README's row for {} does not say {head:?}: {text}",
                exit.code()
            );
        }
    }

    #[test]
    fn a_stopping_run_spends_its_budget_in_order_and_within_it() {
        let exit = ExitBy::now();
        assert!(exit.stopped < exit.pulls());
        assert!(exit.pulls() < exit.hand_back());
        assert!(exit.hand_back() < exit.metrics());
        assert!(exit.metrics() < exit.stopped + EXIT_BUDGET);
    }

    #[test]
    fn an_error_chain_names_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let error = anyhow::Error::new(io)
            .context("Input/output error: Connection refused")
            .context("cannot connect to mysql://u@h:3306/d");
        assert_eq!(
            one_line(&error),
            "cannot connect to mysql://u@h:3306/d: Input/output error: Connection refused"
        );
    }

    #[test]
    fn the_summary_is_one_line_of_json() {
        let report = Report {
            exit_by: None,
            outcome: Outcome::Completed,
            summary: Summary {
                received: 7,
                removed_ids: 2,
                deleted_rows: 1,
                tables: {
                    let mut tables = Tables::default();
                    tables.add("sessions", 4);
                    tables.add("users", 1);
                    tables.add("sessions", 2);
                    tables
                },
                ignored: 3,
                malformed: 2,
                acked: 5,
                nacked: 2,
                refused: 0,
                carried_over: 1,
                chunks: 3,
                replica_wait_ms: 40,
                rounds: 1,
                dry_run: false,
                elapsed_ms: 12,
            },
        };
        assert_eq!(
            report.json_line(),
            r#"{"outcome":"completed","received":7,"removed_ids":2,"deleted_rows":1,"tables":{"sessions":6,"users":1},"ignored":3,"malformed":2,"acked":5,"nacked":2,"refused":0,"carried_over":1,"chunks":3,"replica_wait_ms":40,"rounds":1,"dry_run":false,"elapsed_ms":12}"#
        );
    }

    #[test]
    fn a_log_record_is_one_line_of_json_with_its_fields_last() {
        let fields = [
            ("outcome".to_owned(), Field::Text("database_error".into())),
            ("exit_code".to_owned(), Field::Unsigned(4)),
            ("message".to_owned(), Field::Text("shadow".into())),
            ("delta".to_owned(), Field::Signed(-1)),
            ("ratio".to_owned(), Field::Float(0.5)),
            ("dry_run".to_owned(), Field::Bool(true)),
        ];
        let line = json(&LogRecord {
            severity: "ERROR",
            message: "cannot connect:\n\"db\" \\ down",
            time: "2026-11-26T07:04:47.123456Z",
            target: "user_purge",
            fields: &fields,
        });
        assert_eq!(
            line,
            r#"{"severity":"ERROR","message":"cannot connect:\n\"db\" \\ down","time":"2026-11-26T07:04:47.123456Z","target":"user_purge","outcome":"database_error","exit_code":4,"delta":-1,"ratio":0.5,"dry_run":true}"#
        );
    }

    #[test]
    fn every_outcome_prints_a_line_a_json_parser_reads_back() {
        let error = || anyhow::anyhow!("a \"quoted\" \\ message\nover lines");
        for outcome in [
            Outcome::Completed,
            Outcome::Unsuitable(error()),
            Outcome::PubSubFailed(error()),
            Outcome::DatabaseFailed(error()),
            Outcome::AckFailed(error()),
            Outcome::PartiallyCompleted(error()),
            Outcome::Interrupted(Signal::Interrupt),
            Outcome::Interrupted(Signal::Terminate),
        ] {
            let name = outcome.name();
            let report = Report {
                exit_by: None,
                outcome,
                summary: Summary {
                    elapsed_ms: u64::MAX,
                    ..Summary::default()
                },
            };
            let line = report.json_line();
            assert!(!line.contains('\n'), "{line}");
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(value["outcome"], name);
            assert_eq!(value["elapsed_ms"], u64::MAX);
            let command: serde_json::Value =
                serde_json::from_str(&command_line("replay \"x\"", &report.outcome)).unwrap();
            assert_eq!(
                (command["command"].as_str(), command["outcome"].as_str()),
                (Some("replay \"x\""), Some(name))
            );
        }
    }
}
