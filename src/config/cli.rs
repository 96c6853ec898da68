//! The command line as declared (clap): every flag with its environment
//! fallback, default and help, declared once here; and what clap knows of
//! them, for the help, the errors' labels and the README's check. The only
//! module that imports clap.
//!
//! Two steps, as in ripgrep: clap fills the raw [`Cli`] here, then
//! `config::validate` checks it into typed values. Errors name a setting by
//! its id, and are shown with the flag and variable clap knows for it
//! ([`label`]).

use std::ffi::OsString;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};

use crate::logging::LogFormat;
use crate::outcome::{self, Exit};

/// Erases removed users: pulls the user service's events from a Pub/Sub
/// subscription, erases the users named by USER_REMOVED events from MySQL,
/// MariaDB or PostgreSQL (one table, or every table of an erasure map) in
/// one transaction, and only then acknowledges the messages.
///
/// Without a subcommand it runs one pass; the subcommands are for operators.
#[derive(Parser, Debug)]
#[command(
    name = "user-purge",
    version,
    after_help = after_help(),
    args_conflicts_with_subcommands = true
)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub(super) command: Option<Sub>,

    /// How stderr's log lines are written: text, or json (one object per
    /// line, with the severity Cloud Logging reads).
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        default_value_t = LogFormatArg::Text,
        global = true
    )]
    pub(super) log_format: LogFormatArg,

    #[command(flatten)]
    pub(super) run: RunArgs,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub(super) enum LogFormatArg {
    Text,
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(format: LogFormatArg) -> LogFormat {
        match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

#[derive(Subcommand, Debug)]
pub(super) enum Sub {
    /// Seek the subscription back to a time or a snapshot, so that the next
    /// runs erase again the users removed since then (after restoring a
    /// database backup).
    Replay(ReplayArgs),
    /// Snapshots of the subscription, to replay from.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Report every place a user's data may live that the erasure map and the
    /// foreign-key cascades do not cover (read-only; never contacts Pub/Sub).
    #[command(after_help = outcome::exit_codes_help(&CHECK_EXITS))]
    Check(CheckArgs),
    /// Look for data of the users in the erasure record that came back (a
    /// restore, a writer), in every entry of the map; read-only unless
    /// --repair; never contacts Pub/Sub.
    #[command(after_help = outcome::verify_exit_codes_help(&VERIFY_EXITS))]
    Verify(VerifyArgs),
    /// Publish well-formed UserEventData messages, for drills and demos.
    Publish(PublishArgs),
}

/// How to reach Pub/Sub.
#[derive(Args, Debug)]
pub(super) struct CredentialArgs {
    /// Google Cloud project; required when the subscription or topic is a bare id.
    #[arg(long, env = "PUBSUB_PROJECT")]
    pub(super) project: Option<String>,

    /// host:port of a Pub/Sub emulator: plaintext, no credentials.
    #[arg(long, env = "PUBSUB_EMULATOR_HOST")]
    pub(super) emulator_host: Option<String>,

    /// A service-account JSON key, inline. Prefer the environment variable:
    /// a flag's value is visible to every user of the machine.
    #[arg(
        long,
        env = "PUBSUB_SERVICE_ACCOUNT",
        hide_env_values = true,
        value_name = "JSON"
    )]
    pub(super) service_account_key: Option<String>,

    /// A file holding the service-account JSON key (a mounted Secret, a
    /// systemd credential). Not with --service-account-key.
    #[arg(long, env = "PUBSUB_SERVICE_ACCOUNT_FILE", value_name = "PATH")]
    pub(super) service_account_key_file: Option<String>,
}

/// The subscription and how to reach it.
#[derive(Args, Debug)]
pub(super) struct SubscriptionArgs {
    /// Subscription to pull from: an id, or projects/P/subscriptions/S.
    #[arg(long, env = "PUBSUB_SUBSCRIPTION")]
    pub(super) subscription: Option<String>,

    #[command(flatten)]
    pub(super) credentials: CredentialArgs,
}

/// The lock wait's default, in seconds: a run's, and the check's (which only reads).
pub(super) const LOCK_WAIT_TIMEOUT: u64 = 20;

/// One statement's default limit, in seconds: a run's, and the check's.
pub(super) const STATEMENT_TIMEOUT: u64 = 60;

#[derive(Args, Debug)]
pub(super) struct RunArgs {
    #[command(flatten)]
    pub(super) subscription: SubscriptionArgs,

    #[command(flatten)]
    pub(super) database: DatabaseArgs,

    /// Most messages one run takes (1 to 1,000,000).
    #[arg(
        long,
        env = "MAX_MESSAGES",
        default_value_t = 10_000,
        allow_negative_numbers = true
    )]
    pub(super) max_messages: i64,

    /// Most messages one round takes, in one transaction (1 to 100,000); a run
    /// goes on with more rounds while messages keep coming.
    #[arg(
        long,
        env = "BATCH_SIZE",
        default_value_t = 10_000,
        allow_negative_numbers = true
    )]
    pub(super) batch_size: i64,

    /// Seconds after which no new round starts (1 to 3600); keep it inside
    /// the CronJob's activeDeadlineSeconds.
    #[arg(long, env = "MAX_DURATION", default_value_t = 120)]
    pub(super) max_duration: u64,

    /// Receive and decode, log what would be deleted, then hand every message
    /// back: nothing is deleted, nothing acknowledged.
    #[arg(long, env = "DRY_RUN", value_parser = clap::builder::BoolishValueParser::new())]
    pub(super) dry_run: bool,

    /// How long the server may hold one Pull while no message arrives; the
    /// client allows two round trips more before it counts as unanswered.
    #[arg(long, env = "PULL_TIMEOUT_MS", default_value_t = 500)]
    pub(super) pull_timeout_ms: u64,

    /// Seconds the delete may wait for a row lock held by another transaction.
    #[arg(long, env = "LOCK_WAIT_TIMEOUT", default_value_t = LOCK_WAIT_TIMEOUT)]
    pub(super) lock_wait_timeout: u64,

    /// Seconds one statement of the erasure may run (PostgreSQL's
    /// statement_timeout, MariaDB's max_statement_time; MySQL has none for
    /// DELETE and UPDATE).
    #[arg(long, env = "STATEMENT_TIMEOUT", default_value_t = STATEMENT_TIMEOUT)]
    pub(super) statement_timeout: u64,

    /// http:// URL of a Prometheus Pushgateway; each run pushes its metrics there.
    #[arg(long, env = "PUSHGATEWAY_URL")]
    pub(super) pushgateway_url: Option<String>,

    /// The `instance` label of the pushed metrics (default: the subscription id).
    #[arg(long, env = "METRICS_INSTANCE")]
    pub(super) metrics_instance: Option<String>,

    /// Most rows one DELETE or UPDATE touches (100 to 1,000,000), and one
    /// committed transaction of a `chunked = true` entry.
    #[arg(long, env = "CHUNK_ROWS", default_value_t = super::CHUNK_ROWS as i64, allow_negative_numbers = true)]
    pub(super) chunk_rows: i64,

    /// URL of a replica whose lag the erasure waits for, of the primary's
    /// scheme; repeat it for each replica. Without a password it uses the
    /// primary's.
    #[arg(
        long,
        env = "REPLICA_URLS",
        value_delimiter = ',',
        hide_env_values = true,
        value_name = "URL"
    )]
    pub(super) replica_url: Vec<String>,

    /// Seconds of lag a replica may have before the erasure waits (0 to 3600).
    #[arg(long, env = "MAX_REPLICA_LAG", default_value_t = super::MAX_REPLICA_LAG)]
    pub(super) max_replica_lag: u64,
}

/// The database and what to erase in it: a run's and the check's.
#[derive(Args, Debug)]
pub(super) struct DatabaseArgs {
    /// mysql://user:password@host:port/database, or postgres://...; the scheme
    /// picks the engine (the password is never printed).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub(super) database_url: Option<String>,

    /// A file holding the database password (one trailing newline is
    /// dropped); it replaces any password in the URL.
    #[arg(long, env = "DATABASE_PASSWORD_FILE", value_name = "PATH")]
    pub(super) database_password_file: Option<String>,

    /// Table holding the users [default: users]. Not with --erasure-map.
    #[arg(long, env = "PURGE_TABLE")]
    pub(super) table: Option<String>,

    /// Column of that table holding the user id [default: id]. Not with
    /// --erasure-map.
    #[arg(long, env = "PURGE_ID_COLUMN")]
    pub(super) id_column: Option<String>,

    /// TOML file listing, in order, the tables to delete from and to redact
    /// (README, "The erasure map"); replaces --table and --id-column.
    #[arg(long, env = "ERASURE_MAP", value_name = "PATH")]
    pub(super) erasure_map: Option<String>,

    /// Table recording each erasure (user_id, erased_at, message_id), written
    /// in the same transaction.
    #[arg(long, env = "ERASURE_RECORD", value_name = "TABLE")]
    pub(super) erasure_record: Option<String>,

    /// CA certificate (PEM) to verify the database server with; turns TLS on.
    /// TLS without a custom CA: add require_ssl=true (MySQL) or
    /// sslmode=verify-full (PostgreSQL) to the URL.
    #[arg(long, env = "DATABASE_CA_FILE", value_name = "PEM")]
    pub(super) database_ca_file: Option<String>,
}

#[derive(Args, Debug)]
pub(super) struct CheckArgs {
    #[command(flatten)]
    pub(super) database: DatabaseArgs,

    /// Also report columns whose names match this regular expression (MySQL's
    /// REGEXP, PostgreSQL's ~) as references to the user, e.g.
    /// '^(owner|author)_id$'.
    #[arg(long, value_name = "REGEX")]
    pub(super) user_columns: Option<String>,

    /// Also report columns whose names match this regular expression as
    /// personal data, as email columns are, e.g. '^(phone|address|birth_date)$'.
    #[arg(long, value_name = "REGEX")]
    pub(super) personal_columns: Option<String>,

    /// Print the least-privilege GRANT statements the map needs instead.
    #[arg(long)]
    pub(super) grants: bool,

    /// The account the GRANT statements are for [default: 'user_purge'@'%'
    /// on MySQL, user_purge on PostgreSQL].
    #[arg(long, requires = "grants")]
    pub(super) grantee: Option<String>,
}

#[derive(Args, Debug)]
pub(super) struct ReplayArgs {
    #[command(flatten)]
    pub(super) subscription: SubscriptionArgs,

    /// Seek back to this RFC 3339 time (the subscription must retain
    /// acknowledged messages), e.g. the time of the restored backup.
    #[arg(
        long,
        required_unless_present = "snapshot",
        conflicts_with = "snapshot"
    )]
    pub(super) since: Option<String>,

    /// Seek to this snapshot instead (see `snapshot create`).
    #[arg(long)]
    pub(super) snapshot: Option<String>,
}

#[derive(Subcommand, Debug)]
pub(super) enum SnapshotCommand {
    /// Snapshot the subscription now: take one just before each database backup.
    Create {
        #[command(flatten)]
        subscription: SubscriptionArgs,

        /// The snapshot's id.
        name: String,
    },
}

#[derive(Args, Debug)]
pub(super) struct VerifyArgs {
    #[command(flatten)]
    pub(super) database: DatabaseArgs,

    /// Only the users erased at or after this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub(super) since: Option<String>,

    /// Most finding lines printed (1 to 1,000,000); the totals count them all.
    #[arg(long, default_value_t = 1_000, allow_negative_numbers = true)]
    pub(super) max_findings: i64,

    /// Erase what was found, with the job's own statements, then check again.
    /// Writes nothing new to the erasure record.
    #[arg(long)]
    pub(super) repair: bool,

    /// Most rows one DELETE or UPDATE of the repair touches.
    #[arg(long, env = "CHUNK_ROWS", default_value_t = super::CHUNK_ROWS as i64, allow_negative_numbers = true)]
    pub(super) chunk_rows: i64,

    /// http:// URL of a Prometheus Pushgateway for the verify's gauges.
    #[arg(long, env = "PUSHGATEWAY_URL")]
    pub(super) pushgateway_url: Option<String>,

    /// The `instance` label of the pushed gauges (default: the record table).
    #[arg(long, env = "METRICS_INSTANCE")]
    pub(super) metrics_instance: Option<String>,
}

#[derive(Args, Debug)]
pub(super) struct PublishArgs {
    /// Topic to publish on: an id, or projects/P/topics/T.
    #[arg(long)]
    pub(super) topic: String,

    #[command(flatten)]
    pub(super) credentials: CredentialArgs,

    /// Publish USER_REMOVED for these user ids.
    #[arg(long, num_args = 1.., value_name = "USER_ID", conflicts_with_all = ["event", "user_ids"])]
    pub(super) removed: Vec<u64>,

    /// Publish this event type for the USER_IDs.
    #[arg(long, value_enum, requires = "user_ids")]
    pub(super) event: Option<EventKind>,

    /// The user ids for --event.
    #[arg(value_name = "USER_ID")]
    pub(super) user_ids: Vec<u64>,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub(super) enum EventKind {
    Created,
    Changed,
    AccessChanged,
    Removed,
}

/// The codes `user-purge check` exits with.
const CHECK_EXITS: [Exit; 4] = [Exit::Success, Exit::Findings, Exit::Config, Exit::Database];

const VERIFY_EXITS: [Exit; 5] = [
    Exit::Success,
    Exit::Findings,
    Exit::Config,
    Exit::Database,
    Exit::PartiallyCompleted,
];

fn after_help() -> String {
    format!(
        "Credentials: PUBSUB_EMULATOR_HOST if set, else the key (PUBSUB_SERVICE_ACCOUNT or\n\
         PUBSUB_SERVICE_ACCOUNT_FILE) if set, else Application Default Credentials\n\
         (GOOGLE_APPLICATION_CREDENTIALS, GKE workload identity).\n\
         A variable set to the empty string counts as unset.\n\
         Logs go to stderr (RUST_LOG, default info; LOG_FORMAT text or json); stdout gets\n\
         one JSON summary line.\n\n\
         {}",
        outcome::exit_codes_help(&Exit::ALL)
    )
}

/// What clap made of a command line.
pub(super) enum Read {
    /// Arguments to validate.
    Args(Box<Cli>),
    /// Help or version, for stdout.
    Shown(String),
    /// Clap's refusal, for stderr; it may echo a value given.
    Refused(String),
}

/// Parses the arguments (and the environment); also says how to write the
/// log, even when the command line is refused.
pub(super) fn read(args: &[OsString]) -> (LogFormat, Read) {
    let mut command = without_empty_variables(Cli::command());
    let cli = command
        .try_get_matches_from_mut(args)
        .and_then(|mut matches| Cli::from_arg_matches_mut(&mut matches))
        .map_err(|error| error.format(&mut command));
    match cli {
        Ok(cli) => (cli.log_format.into(), Read::Args(Box::new(cli))),
        Err(error) => {
            // Refused: read --log-format (LOG_FORMAT) past the errors, so that
            // the refusal itself is written as the operator asked.
            let log_format = without_empty_variables(Cli::command())
                .ignore_errors(true)
                .try_get_matches_from(args)
                .ok()
                .and_then(|matches| matches.get_one::<LogFormatArg>("log_format").copied())
                .map_or(LogFormat::Text, LogFormat::from);
            let text = error.render().to_string();
            let read = if error.use_stderr() {
                Read::Refused(text)
            } else {
                Read::Shown(text)
            };
            (log_format, read)
        }
    }
}

/// clap 4 takes a variable set to the empty string as a value: `MAX_MESSAGES=`
/// would be a number that does not parse, `PUBSUB_EMULATOR_HOST=` an address.
/// Platforms write empty variables (a ConfigMap key left blank, `Environment=X=`
/// in a unit), and Google's own clients read them as unset; so does this job,
/// for every setting: clap forgets the variable of each argument whose value is
/// empty. (`--help` then omits that argument's `[env: ...]` note.) An empty
/// flag, `--max-messages=`, is still a value.
fn without_empty_variables(command: clap::Command) -> clap::Command {
    command
        .mut_args(|arg| {
            let empty = arg
                .get_env()
                .and_then(std::env::var_os)
                .is_some_and(|value| value.is_empty());
            if empty { arg.env(None) } else { arg }
        })
        .mut_subcommands(without_empty_variables)
}

/// How the help names a setting: `--max-messages (MAX_MESSAGES)`, or
/// `<NAME>` for an argument without a flag.
pub(super) fn label(setting: &str) -> String {
    fn find(command: &clap::Command, id: &str) -> Option<String> {
        let found = command.get_arguments().find(|arg| arg.get_id() == id);
        if let Some(arg) = found {
            let name = match arg.get_long() {
                Some(long) => format!("--{long}"),
                None => format!("<{}>", id.to_uppercase()),
            };
            return Some(match arg.get_env() {
                Some(env) => format!("{name} ({})", env.to_string_lossy()),
                None => name,
            });
        }
        command.get_subcommands().find_map(|sub| find(sub, id))
    }
    find(&Cli::command(), setting).unwrap_or_else(|| setting.to_owned())
}

/// One setting of a run, as `--help` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// `--max-messages`.
    pub flag: String,
    /// Its environment fallback, `MAX_MESSAGES`.
    pub env: Option<String>,
    /// Its default, as `--help` shows it.
    pub default: Option<String>,
    /// Whether `--help` hides the variable's value (a secret).
    pub secret: bool,
}

/// Every setting of a run, from clap's own declarations: what the README, the
/// deployment files and the tests' clean environment are checked against.
pub fn settings() -> Vec<Setting> {
    Cli::command()
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            if matches!(long, "help" | "version") {
                return None;
            }
            let default = arg
                .get_default_values()
                .first()
                .map(|v| v.to_string_lossy().into_owned());
            Some(Setting {
                flag: format!("--{long}"),
                env: arg.get_env().map(|e| e.to_string_lossy().into_owned()),
                default,
                secret: arg.is_hide_env_values_set(),
            })
        })
        .collect()
}

/// The full `--help` text, exit codes included.
pub fn help_text() -> String {
    Cli::command().render_long_help().to_string()
}
