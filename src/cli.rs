//! The command line: flags with environment fallbacks (clap), checked once
//! into a validated [`Config`]. This is the only module that imports clap.
//!
//! Two steps, as in ripgrep: clap fills the raw [`RunArgs`] (each setting is
//! declared once, here: its flag, variable, default and help), then
//! [`run_config`] validates them. Errors name a setting by its id, and are
//! shown with the flag and variable clap knows for it.

use std::time::Duration;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};

use crate::config::{
    self, Admin, BATCH_SIZE_LIMIT, Config, ConfigError, LogFormat, MAX_MESSAGES_LIMIT, Metrics,
    PassSettings, ReplayTo, SubscriptionName, invalid,
};
use crate::event::event_type;
use crate::map::{Identifier, Map};
use crate::outcome::{EXIT_CODES_HELP, Exit};
use crate::secret::Secret;
use crate::store::{self, Database};

/// Erases removed users: pulls the user service's events from a Pub/Sub
/// subscription, erases the users named by USER_REMOVED events from MySQL
/// (one table, or every table of an erasure map) in one transaction, and only
/// then acknowledges the messages.
///
/// Without a subcommand it runs one pass; the subcommands are for operators.
#[derive(Parser, Debug)]
#[command(
    name = "user-purge",
    version,
    after_help = after_help(),
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,

    /// How stderr's log lines are written: text, or json (one object per
    /// line, with the severity Cloud Logging reads).
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        default_value_t = LogFormatArg::Text,
        global = true
    )]
    log_format: LogFormatArg,

    #[command(flatten)]
    run: RunArgs,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum LogFormatArg {
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
enum Sub {
    /// Seek the subscription back to a time or a snapshot, so that the next
    /// runs erase again the users removed since then (after restoring a
    /// database backup).
    Replay(ReplayArgs),
    /// Snapshots of the subscription, to replay from.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Report every place a user's data may live that the erasure map and the
    /// foreign-key cascades do not cover (read-only; never contacts Pub/Sub).
    /// Exit 0: nothing found; 1: findings (JSON lines on stdout); 2:
    /// configuration error; 4: the database cannot be read.
    Check(CheckArgs),
    /// Publish well-formed UserEventData messages, for drills and demos.
    Publish(PublishArgs),
}

/// How to reach Pub/Sub.
#[derive(Args, Debug)]
struct CredentialArgs {
    /// Google Cloud project; required when the subscription or topic is a bare id.
    #[arg(long, env = "PUBSUB_PROJECT")]
    project: Option<String>,

    /// host:port of a Pub/Sub emulator: plaintext, no credentials.
    #[arg(long, env = "PUBSUB_EMULATOR_HOST")]
    emulator_host: Option<String>,

    /// A service-account JSON key, inline. Prefer the environment variable:
    /// a flag's value is visible to every user of the machine.
    #[arg(
        long,
        env = "PUBSUB_SERVICE_ACCOUNT",
        hide_env_values = true,
        value_name = "JSON"
    )]
    service_account_key: Option<String>,

    /// A file holding the service-account JSON key (a mounted Secret, a
    /// systemd credential). Not with --service-account-key.
    #[arg(long, env = "PUBSUB_SERVICE_ACCOUNT_FILE", value_name = "PATH")]
    service_account_key_file: Option<String>,
}

/// The subscription and how to reach it.
#[derive(Args, Debug)]
struct SubscriptionArgs {
    /// Subscription to pull from: an id, or projects/P/subscriptions/S.
    #[arg(long, env = "PUBSUB_SUBSCRIPTION")]
    subscription: Option<String>,

    #[command(flatten)]
    credentials: CredentialArgs,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    subscription: SubscriptionArgs,

    #[command(flatten)]
    database: DatabaseArgs,

    /// Most messages one run takes (1 to 1,000,000).
    #[arg(
        long,
        env = "MAX_MESSAGES",
        default_value_t = 10_000,
        allow_negative_numbers = true
    )]
    max_messages: i64,

    /// Most messages one round takes, in one transaction (1 to 100,000); a run
    /// goes on with more rounds while messages keep coming.
    #[arg(
        long,
        env = "BATCH_SIZE",
        default_value_t = 10_000,
        allow_negative_numbers = true
    )]
    batch_size: i64,

    /// Seconds after which no new round starts (1 to 3600); keep it inside
    /// the CronJob's activeDeadlineSeconds.
    #[arg(long, env = "MAX_DURATION", default_value_t = 120)]
    max_duration: u64,

    /// Receive and decode, log what would be deleted, then hand every message
    /// back: nothing is deleted, nothing acknowledged.
    #[arg(long, env = "DRY_RUN", value_parser = clap::builder::BoolishValueParser::new())]
    dry_run: bool,

    /// How long the server may hold one Pull while no message arrives; the
    /// client allows two round trips more before it counts as unanswered.
    #[arg(long, env = "PULL_TIMEOUT_MS", default_value_t = 500)]
    pull_timeout_ms: u64,

    /// Seconds the delete may wait for a row lock held by another transaction.
    #[arg(long, env = "LOCK_WAIT_TIMEOUT", default_value_t = 20)]
    lock_wait_timeout: u64,

    /// Seconds one statement of the erasure may run (MariaDB's
    /// max_statement_time; MySQL has none for DELETE and UPDATE).
    #[arg(long, env = "STATEMENT_TIMEOUT", default_value_t = 60)]
    statement_timeout: u64,

    /// http:// URL of a Prometheus Pushgateway; each run pushes its metrics there.
    #[arg(long, env = "PUSHGATEWAY_URL")]
    pushgateway_url: Option<String>,

    /// The `instance` label of the pushed metrics (default: the subscription id).
    #[arg(long, env = "METRICS_INSTANCE")]
    metrics_instance: Option<String>,
}

/// The database and what to erase in it: a run's and the check's.
#[derive(Args, Debug)]
struct DatabaseArgs {
    /// mysql://user:password@host:port/database (the password is never printed).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,

    /// A file holding the database password (one trailing newline is
    /// dropped); it replaces any password in the URL.
    #[arg(long, env = "DATABASE_PASSWORD_FILE", value_name = "PATH")]
    database_password_file: Option<String>,

    /// Table holding the users [default: users]. Not with --erasure-map.
    #[arg(long, env = "PURGE_TABLE")]
    table: Option<String>,

    /// Column of that table holding the user id [default: id]. Not with
    /// --erasure-map.
    #[arg(long, env = "PURGE_ID_COLUMN")]
    id_column: Option<String>,

    /// TOML file listing, in order, the tables to delete from and to redact
    /// (README, "The erasure map"); replaces --table and --id-column.
    #[arg(long, env = "ERASURE_MAP", value_name = "PATH")]
    erasure_map: Option<String>,

    /// Table recording each erasure (user_id, erased_at, message_id), written
    /// in the same transaction.
    #[arg(long, env = "ERASURE_RECORD", value_name = "TABLE")]
    erasure_record: Option<String>,

    /// CA certificate (PEM) to verify the database server with; turns TLS on.
    /// TLS without a custom CA: add require_ssl=true to the URL.
    #[arg(long, env = "DATABASE_CA_FILE", value_name = "PEM")]
    database_ca_file: Option<String>,
}

#[derive(Args, Debug)]
struct CheckArgs {
    #[command(flatten)]
    database: DatabaseArgs,

    /// Also report columns whose names match this MySQL REGEXP as references
    /// to the user, e.g. '^(owner|author)_id$'.
    #[arg(long, value_name = "REGEX")]
    user_columns: Option<String>,

    /// Print the least-privilege GRANT statements the map needs instead.
    #[arg(long)]
    grants: bool,

    /// The account the GRANT statements are for.
    #[arg(long, default_value = "'user_purge'@'%'", requires = "grants")]
    grantee: String,
}

#[derive(Args, Debug)]
struct ReplayArgs {
    #[command(flatten)]
    subscription: SubscriptionArgs,

    /// Seek back to this RFC 3339 time (the subscription must retain
    /// acknowledged messages), e.g. the time of the restored backup.
    #[arg(
        long,
        required_unless_present = "snapshot",
        conflicts_with = "snapshot"
    )]
    since: Option<String>,

    /// Seek to this snapshot instead (see `snapshot create`).
    #[arg(long)]
    snapshot: Option<String>,
}

#[derive(Subcommand, Debug)]
enum SnapshotCommand {
    /// Snapshot the subscription now: take one just before each database backup.
    Create {
        #[command(flatten)]
        subscription: SubscriptionArgs,

        /// The snapshot's id.
        name: String,
    },
}

#[derive(Args, Debug)]
struct PublishArgs {
    /// Topic to publish on: an id, or projects/P/topics/T.
    #[arg(long)]
    topic: String,

    #[command(flatten)]
    credentials: CredentialArgs,

    /// Publish USER_REMOVED for these user ids.
    #[arg(long, num_args = 1.., value_name = "USER_ID", conflicts_with_all = ["event", "user_ids"])]
    removed: Vec<u64>,

    /// Publish this event type for the USER_IDs.
    #[arg(long, value_enum, requires = "user_ids")]
    event: Option<EventKind>,

    /// The user ids for --event.
    #[arg(value_name = "USER_ID")]
    user_ids: Vec<u64>,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum EventKind {
    Created,
    Changed,
    AccessChanged,
    Removed,
}

fn after_help() -> String {
    format!(
        "Credentials: PUBSUB_EMULATOR_HOST if set, else the key (PUBSUB_SERVICE_ACCOUNT or\n\
         PUBSUB_SERVICE_ACCOUNT_FILE) if set, else Application Default Credentials\n\
         (GOOGLE_APPLICATION_CREDENTIALS, GKE workload identity).\n\
         A variable set to the empty string counts as unset.\n\
         Logs go to stderr (RUST_LOG, default info; LOG_FORMAT text or json); stdout gets\n\
         one JSON summary line.\n\n\
         {EXIT_CODES_HELP}"
    )
}

/// What `user-purge check` works on.
#[derive(Debug)]
pub struct Check {
    pub database: Database,
    /// A MySQL REGEXP for more column names that refer to the user.
    pub user_columns: Option<String>,
    /// Print the grants for this account instead of checking.
    pub grants: Option<String>,
}

/// What the command line asks for.
pub enum Command {
    /// Run one pass with this configuration.
    Run(Box<Config>),
    /// Seek the subscription back.
    Replay(Admin, ReplayTo),
    /// Snapshot the subscription under this name.
    CreateSnapshot(Admin, String),
    /// Check the schema against the map, or print the grants it needs.
    Check(Box<Check>),
    /// Publish these (event type, user id) events on the topic.
    Publish {
        project: String,
        credentials: config::Credentials,
        topic: String,
        events: Vec<(i32, u64)>,
    },
    /// Print this and exit: help, version, or a usage error.
    Exit {
        text: String,
        to_stderr: bool,
        exit: Exit,
    },
}

/// Parses the arguments (and the environment) and validates them; also says
/// how to write the log, even when the command line is refused.
pub fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> (LogFormat, Command) {
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let mut command = without_empty_variables(Cli::command());
    let cli = command
        .try_get_matches_from_mut(&args)
        .and_then(|mut matches| Cli::from_arg_matches_mut(&mut matches))
        .map_err(|error| error.format(&mut command));
    match cli {
        Ok(cli) => (cli.log_format.into(), validate(cli)),
        Err(error) => {
            // Refused: read --log-format (LOG_FORMAT) past the errors, so that
            // the refusal itself is written as the operator asked.
            let log_format = without_empty_variables(Cli::command())
                .ignore_errors(true)
                .try_get_matches_from(&args)
                .ok()
                .and_then(|matches| matches.get_one::<LogFormatArg>("log_format").copied())
                .map_or(LogFormat::Text, LogFormat::from);
            (log_format, refusal(&error))
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

/// A command line clap refused: help and version go to stdout, errors to stderr.
fn refusal(error: &clap::Error) -> Command {
    let text = error.render().to_string();
    Command::Exit {
        // Help and version go out as they are; errors echo values.
        text: if error.use_stderr() {
            redact_passwords(&text)
        } else {
            text
        },
        to_stderr: error.use_stderr(),
        exit: if error.use_stderr() {
            Exit::Config
        } else {
            Exit::Success
        },
    }
}

/// Validates what clap parsed into a command.
fn validate(cli: Cli) -> Command {
    let validated = match cli.command {
        None => run_config(cli.run).map(|config| Command::Run(Box::new(config))),
        Some(Sub::Replay(args)) => admin(args.subscription).and_then(|admin| {
            let to = match (args.since, args.snapshot) {
                (Some(since), _) => ReplayTo::Time(config::parse_time("since", &since)?),
                (None, Some(snapshot)) => {
                    ReplayTo::Snapshot(config::parse_snapshot("snapshot", &snapshot)?)
                }
                (None, None) => unreachable!("clap requires --since or --snapshot"),
            };
            Ok(Command::Replay(admin, to))
        }),
        Some(Sub::Snapshot(SnapshotCommand::Create { subscription, name })) => admin(subscription)
            .and_then(|admin| {
                Ok(Command::CreateSnapshot(
                    admin,
                    config::parse_snapshot("name", &name)?,
                ))
            }),
        Some(Sub::Publish(args)) => publish(args),
        Some(Sub::Check(args)) => {
            // The run's default limits: the check only reads.
            let (lock_wait, statement) = (Duration::from_secs(20), Duration::from_secs(60));
            database(args.database, lock_wait, statement).map(|database| {
                Command::Check(Box::new(Check {
                    database,
                    user_columns: args.user_columns.filter(|r| !r.is_empty()),
                    grants: args.grants.then_some(args.grantee),
                }))
            })
        }
    };
    validated.unwrap_or_else(|error| config_error(&error))
}

/// Validates a run's settings into a [`Config`]: every setting is checked here, once.
fn run_config(args: RunArgs) -> Result<Config, ConfigError> {
    let pubsub = args.subscription;
    let subscription = required("subscription", pubsub.subscription)?;
    let subscription =
        SubscriptionName::parse(&subscription, pubsub.credentials.project.as_deref())?;
    if !(1..=3600).contains(&args.lock_wait_timeout) {
        return Err(invalid(
            "lock_wait_timeout",
            "must be from 1 to 3600 seconds",
        ));
    }
    if !(1..=3600).contains(&args.statement_timeout) {
        return Err(invalid(
            "statement_timeout",
            "must be from 1 to 3600 seconds",
        ));
    }
    let database = database(
        args.database,
        Duration::from_secs(args.lock_wait_timeout),
        Duration::from_secs(args.statement_timeout),
    )?;
    let max_messages = usize::try_from(args.max_messages)
        .ok()
        .filter(|n| (1..=MAX_MESSAGES_LIMIT).contains(n))
        .ok_or_else(|| {
            invalid(
                "max_messages",
                format!(
                    "must be from 1 to {MAX_MESSAGES_LIMIT}, got {}",
                    args.max_messages
                ),
            )
        })?;
    let batch_size = usize::try_from(args.batch_size)
        .ok()
        .filter(|n| (1..=BATCH_SIZE_LIMIT).contains(n))
        .ok_or_else(|| {
            invalid(
                "batch_size",
                format!(
                    "must be from 1 to {BATCH_SIZE_LIMIT}, got {}",
                    args.batch_size
                ),
            )
        })?;
    if !(1..=3600).contains(&args.max_duration) {
        return Err(invalid("max_duration", "must be from 1 to 3600 seconds"));
    }
    if !(1..=600_000).contains(&args.pull_timeout_ms) {
        return Err(invalid("pull_timeout_ms", "must be from 1 to 600000"));
    }
    let metrics = match args.pushgateway_url.filter(|u| !u.is_empty()) {
        // The client speaks plain HTTP only: a Pushgateway is normally
        // reached inside the cluster or the host.
        Some(url) if url.starts_with("http://") && url.len() > "http://".len() => Some(Metrics {
            gateway: url,
            instance: args
                .metrics_instance
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| subscription.id.clone()),
        }),
        Some(url) => {
            return Err(invalid(
                "pushgateway_url",
                format!("{url:?} is not an http:// URL (https is not supported)"),
            ));
        }
        None => None,
    };
    let credentials = pubsub.credentials;
    Ok(Config {
        subscription,
        credentials: config::credentials(
            credentials.emulator_host,
            credentials.service_account_key,
            credentials.service_account_key_file,
        )?,
        database,
        pass: PassSettings {
            max_messages,
            batch_size,
            max_duration: Duration::from_secs(args.max_duration),
            dry_run: args.dry_run,
            pull_timeout: Duration::from_millis(args.pull_timeout_ms),
        },
        metrics,
    })
}

/// Validates where and what to erase: the URL, the map (or the one table),
/// the record, the CA file.
fn database(
    args: DatabaseArgs,
    lock_wait_timeout: Duration,
    statement_timeout: Duration,
) -> Result<Database, ConfigError> {
    let url = required("database_url", args.database_url)?;
    store::check_url(&url).map_err(|problem| invalid("database_url", problem))?;
    let identifier = |setting, value: &str| {
        Identifier::parse(value).map_err(|problem| invalid(setting, problem))
    };
    let table = args.table.filter(|t| !t.is_empty());
    let id_column = args.id_column.filter(|c| !c.is_empty());
    let map = match args.erasure_map.filter(|m| !m.is_empty()) {
        Some(path) => {
            if table.is_some() || id_column.is_some() {
                return Err(invalid(
                    "erasure_map",
                    "give either the erasure map or --table and --id-column \
                     (PURGE_TABLE, PURGE_ID_COLUMN), not both",
                ));
            }
            Map::load(&path).map_err(|problem| invalid("erasure_map", problem))?
        }
        None => Map::single(
            identifier("table", table.as_deref().unwrap_or("users"))?,
            identifier("id_column", id_column.as_deref().unwrap_or("id"))?,
        ),
    };
    let record = match args.erasure_record.filter(|r| !r.is_empty()) {
        Some(table) => Some(identifier("erasure_record", &table)?),
        None => None,
    };
    let password = match args.database_password_file.filter(|f| !f.is_empty()) {
        Some(path) => Some(config::read_secret_file("database_password_file", &path)?),
        None => None,
    };
    let ca_file = match args.database_ca_file.filter(|f| !f.is_empty()) {
        Some(file) if std::path::Path::new(&file).is_file() => Some(file.into()),
        Some(file) => {
            return Err(invalid(
                "database_ca_file",
                format!("{file:?} is not a readable file"),
            ));
        }
        None => None,
    };
    Ok(Database {
        url: Secret::new(url),
        password,
        map,
        record,
        lock_wait_timeout,
        statement_timeout,
        ca_file,
    })
}

/// A setting that must be given, and not empty.
fn required(setting: &'static str, value: Option<String>) -> Result<String, ConfigError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid(setting, "it is required"))
}

fn admin(args: SubscriptionArgs) -> Result<Admin, ConfigError> {
    let subscription = required("subscription", args.subscription)?;
    let credentials = args.credentials;
    Ok(Admin {
        subscription: SubscriptionName::parse(&subscription, credentials.project.as_deref())?,
        credentials: config::credentials(
            credentials.emulator_host,
            credentials.service_account_key,
            credentials.service_account_key_file,
        )?,
    })
}

fn publish(args: PublishArgs) -> Result<Command, ConfigError> {
    let credentials = args.credentials;
    let (project, topic) = config::topic_name(&args.topic, credentials.project.as_deref())?;
    let events: Vec<(i32, u64)> = if args.removed.is_empty() {
        let kind = match args.event.unwrap_or(EventKind::Removed) {
            EventKind::Created => event_type::CREATED,
            EventKind::Changed => event_type::CHANGED,
            EventKind::AccessChanged => event_type::ACCESS_CHANGED,
            EventKind::Removed => event_type::REMOVED,
        };
        args.user_ids.iter().map(|&id| (kind, id)).collect()
    } else {
        args.removed
            .iter()
            .map(|&id| (event_type::REMOVED, id))
            .collect()
    };
    if events.is_empty() {
        return Err(invalid(
            "removed",
            "name the users: --removed ID..., or --event TYPE ID...",
        ));
    }
    Ok(Command::Publish {
        project,
        credentials: config::credentials(
            credentials.emulator_host,
            credentials.service_account_key,
            credentials.service_account_key_file,
        )?,
        topic,
        events,
    })
}

fn config_error(error: &ConfigError) -> Command {
    Command::Exit {
        text: redact_passwords(&format!(
            "error: invalid {}: {}\n\nFor more information, try '--help'.\n",
            label(error.setting),
            error.problem
        )),
        to_stderr: true,
        exit: Exit::Config,
    }
}

/// How the help names a setting: `--max-messages (MAX_MESSAGES)`, or
/// `<NAME>` for an argument without a flag.
fn label(setting: &str) -> String {
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

/// Hides the password of every `scheme://user:password@host` in an error
/// message. A refused value is echoed, and a database URL given in the wrong
/// place (a stray argument, the wrong setting) would show its password.
fn redact_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (head, tail) = rest.split_at(start + 3);
        out.push_str(head);
        // The user info ends at the last '@' before the value ends: passwords
        // may hold '@', '/' or ':' unescaped in a URL that did not parse.
        let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
        let value = &tail[..end];
        match (value.find(':'), value.rfind('@')) {
            (Some(colon), Some(at)) if colon < at => {
                out.push_str(&value[..colon]);
                out.push_str(":***");
                out.push_str(&value[at..]);
            }
            _ => out.push_str(value),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The full `--help` text, exit codes included.
pub fn help_text() -> String {
    Cli::command().render_long_help().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Credentials;

    fn run(args: &[&str]) -> Command {
        parse(args.iter().map(Into::into)).1
    }

    const URL: &str = "--database-url=mysql://purger:Pw-Never-Shown@db:3306/app";

    /// A complete command line with `extra`, which replaces a base flag it names.
    fn with(extra: &[&str]) -> Vec<String> {
        let base = ["--subscription=purge-sub", "--project=my-project", URL];
        let named = |flag: &str| {
            let name = flag.split('=').next().unwrap_or(flag);
            extra.iter().any(|e| e.split('=').next() == Some(name))
        };
        std::iter::once("user-purge")
            .chain(base.into_iter().filter(|flag| !named(flag)))
            .chain(extra.iter().copied())
            .map(str::to_owned)
            .collect()
    }

    fn config(extra: &[&str]) -> Config {
        match parse(with(extra).into_iter().map(Into::into)).1 {
            Command::Run(config) => *config,
            Command::Exit { text, .. } => panic!("{extra:?} was refused: {text}"),
            _ => panic!("{extra:?} is not a run"),
        }
    }

    /// The text and code of a refused command line.
    fn refused(extra: &[&str]) -> (String, u8) {
        match parse(with(extra).into_iter().map(Into::into)).1 {
            Command::Exit {
                text,
                exit,
                to_stderr: true,
            } => (text, exit.code()),
            Command::Exit { text, .. } => panic!("{extra:?} printed to stdout: {text}"),
            _ => panic!("{extra:?} was accepted"),
        }
    }

    /// The one line that says what is wrong: the other lines are clap's usage
    /// line and the pointer to --help.
    fn error_line(text: &str) -> &str {
        let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{text}");
        errors[0]
    }

    #[test]
    fn help_lists_every_setting_and_the_exit_codes() {
        let help = help_text();
        for setting in settings() {
            assert!(
                help.contains(&setting.flag),
                "--help lacks {}",
                setting.flag
            );
            if let Some(env) = setting.env {
                assert!(help.contains(&env), "--help lacks {env}");
            }
        }
        for needle in ["RUST_LOG", "143", "\n  1 "] {
            assert!(help.contains(needle), "--help does not mention {needle}");
        }
    }

    #[test]
    fn settings_are_read_from_clap_with_their_variables_and_defaults() {
        let settings = settings();
        let table = settings.iter().find(|s| s.flag == "--table").unwrap();
        assert_eq!(table.env.as_deref(), Some("PURGE_TABLE"));
        // No clap default: a table given with a map is an error, the default is not.
        assert_eq!(table.default, None);
        let batch = settings.iter().find(|s| s.flag == "--batch-size").unwrap();
        assert_eq!(batch.default.as_deref(), Some("10000"));
        let url = settings
            .iter()
            .find(|s| s.flag == "--database-url")
            .unwrap();
        assert!(url.secret && url.default.is_none());
        assert!(settings.iter().all(|s| s.env.is_some()), "{settings:?}");
        assert_eq!(label("max_messages"), "--max-messages (MAX_MESSAGES)");
        assert_eq!(label("since"), "--since");
        assert_eq!(label("name"), "<NAME>");
    }

    #[test]
    fn the_readme_configuration_table_lists_exactly_these_settings() {
        let readme = include_str!("../README.md");
        let table = readme
            .split_once("## Configuration")
            .and_then(|(_, rest)| rest.split_once("\n\n| flag |"))
            .map(|(_, rest)| rest.split("\n\n").next().unwrap_or(""))
            .expect("the README has a configuration table");
        let cell = |text: &str| text.trim().trim_matches('`').to_owned();
        let mut documented = std::collections::BTreeMap::new();
        for row in table.lines().skip(2) {
            let cells: Vec<&str> = row.split('|').collect();
            assert!(cells.len() >= 5, "{row}");
            documented.insert(cell(cells[2]), (cell(cells[1]), cell(cells[3])));
        }
        assert!(
            documented.remove("RUST_LOG").is_some(),
            "RUST_LOG is not documented"
        );
        for setting in settings() {
            let env = setting.env.clone().unwrap_or_default();
            let Some((flag, default)) = documented.remove(&env) else {
                panic!("the README does not document {} ({env})", setting.flag);
            };
            assert_eq!(flag, setting.flag, "{env}");
            if let Some(value) = setting.default.filter(|v| v != "false") {
                assert_eq!(default, value, "the README's default of {}", setting.flag);
            }
        }
        assert!(
            documented.is_empty(),
            "the README documents unknown settings: {documented:?}"
        );
    }

    #[test]
    fn usage_errors_exit_2_and_help_exits_0() {
        assert!(matches!(
            run(&["user-purge", "--no-such-flag"]),
            Command::Exit {
                exit: Exit::Config,
                to_stderr: true,
                ..
            }
        ));
        assert!(matches!(
            run(&["user-purge", "--help"]),
            Command::Exit {
                exit: Exit::Success,
                to_stderr: false,
                ..
            }
        ));
        assert!(matches!(
            run(&["user-purge", "--max-messages", "ten"]),
            Command::Exit {
                exit: Exit::Config,
                ..
            }
        ));
    }

    #[test]
    fn a_complete_configuration_is_accepted() {
        let config = config(&["--max-messages=100000", "--dry-run", "--emulator-host=h:1"]);
        assert_eq!(
            config.subscription.to_string(),
            "projects/my-project/subscriptions/purge-sub"
        );
        let entries = config.database.map.entries();
        assert_eq!(entries.len(), 1);
        assert_eq!(
            (entries[0].table.quoted(), entries[0].column.quoted()),
            ("`users`".to_owned(), "`id`".to_owned())
        );
        assert_eq!(config.database.lock_wait_timeout, Duration::from_secs(20));
        assert_eq!(config.pass.max_messages, 100_000);
        assert_eq!(config.pass.pull_timeout, Duration::from_millis(500));
        assert!(config.pass.dry_run);
        assert!(config.metrics.is_none());
    }

    #[test]
    fn the_emulator_wins_over_a_key_and_empty_counts_as_unset() {
        let emulator = config(&["--emulator-host=127.0.0.1:8085", "--service-account-key={}"]);
        assert!(matches!(emulator.credentials, Credentials::Emulator(_)));
        let key = config(&["--emulator-host=", "--service-account-key={\"k\":1}"]);
        assert!(matches!(
            key.credentials,
            Credentials::ServiceAccountKey { .. }
        ));
    }

    #[test]
    fn secrets_do_not_print() {
        let config = config(&["--emulator-host=", "--service-account-key=KEY-MATERIAL"]);
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("Pw-Never-Shown") && !printed.contains("KEY-MATERIAL"),
            "{printed}"
        );
    }

    #[test]
    fn metrics_default_to_the_subscription_as_instance() {
        let metrics = config(&["--pushgateway-url=http://gw:9091"])
            .metrics
            .unwrap();
        assert_eq!(
            (metrics.gateway.as_str(), metrics.instance.as_str()),
            ("http://gw:9091", "purge-sub")
        );
        let metrics = config(&["--pushgateway-url=http://gw:9091", "--metrics-instance=eu"])
            .metrics
            .unwrap();
        assert_eq!(metrics.instance, "eu");
    }

    /// Every way a run's configuration can be refused, with the setting it names.
    fn refusals() -> Vec<(Vec<String>, &'static str)> {
        let one = |flag: &str, value: &str| vec![format!("{flag}={value}")];
        let mut cases = vec![
            (
                one("--subscription", ""),
                "--subscription (PUBSUB_SUBSCRIPTION)",
            ),
            (
                one("--subscription", "projects/p/subscriptions/a b"),
                "--subscription (PUBSUB_SUBSCRIPTION)",
            ),
            (
                one("--subscription", "ab"),
                "--subscription (PUBSUB_SUBSCRIPTION)",
            ),
            (one("--project", ""), "--project (PUBSUB_PROJECT)"),
            (one("--project", "my project"), "--project (PUBSUB_PROJECT)"),
            (one("--database-url", ""), "--database-url (DATABASE_URL)"),
            (one("--max-messages", "0"), "--max-messages (MAX_MESSAGES)"),
            (one("--max-messages", "-1"), "--max-messages (MAX_MESSAGES)"),
            (
                one("--max-messages", "1000001"),
                "--max-messages (MAX_MESSAGES)",
            ),
            (
                one("--max-messages", &i64::MIN.to_string()),
                "--max-messages (MAX_MESSAGES)",
            ),
            (
                one("--pull-timeout-ms", "0"),
                "--pull-timeout-ms (PULL_TIMEOUT_MS)",
            ),
            (one("--batch-size", "0"), "--batch-size (BATCH_SIZE)"),
            (
                one("--statement-timeout", "0"),
                "--statement-timeout (STATEMENT_TIMEOUT)",
            ),
            (one("--batch-size", "100001"), "--batch-size (BATCH_SIZE)"),
            (one("--max-duration", "0"), "--max-duration (MAX_DURATION)"),
            (
                one("--lock-wait-timeout", "0"),
                "--lock-wait-timeout (LOCK_WAIT_TIMEOUT)",
            ),
            (
                one("--database-ca-file", "/no/such/ca.pem"),
                "--database-ca-file (DATABASE_CA_FILE)",
            ),
            (
                one("--pushgateway-url", "https://gw"),
                "--pushgateway-url (PUSHGATEWAY_URL)",
            ),
        ];
        for url in [
            "not a url Pw-Never-Shown",
            "postgres://purger:Pw-Never-Shown@db:3306/app",
            "http://purger:Pw-Never-Shown@db:3306/app",
            "mysql://purger:Pw-Never-Shown@db:3306",
            "mysql://purger:Pw-Never-Shown@db:3306/",
            "mysql://purger:Pw-Never-Shown@db:99999/app",
            "mysql://purger:Pw-Never-Shown@db:3306/app?bogus=1",
        ] {
            cases.push((one("--database-url", url), "--database-url (DATABASE_URL)"));
        }
        let too_long = "a".repeat(65);
        for bad in [
            "1users",
            "us'ers",
            "us`ers",
            "users; DROP TABLE x",
            "db.users",
            "\u{0443}sers",
            &too_long,
        ] {
            cases.push((one("--table", bad), "--table (PURGE_TABLE)"));
            cases.push((one("--id-column", bad), "--id-column (PURGE_ID_COLUMN)"));
        }
        cases
    }

    #[test]
    fn each_refusal_is_exit_2_and_one_line_naming_its_setting_and_no_secret() {
        for (args, setting) in refusals() {
            let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
            args.push("--service-account-key=KEY-MATERIAL");
            let (text, code) = refused(&args);
            assert_eq!(code, 2, "{args:?}: {text}");
            let line = error_line(&text);
            assert!(
                line.starts_with(&format!("error: invalid {setting}: ")),
                "{args:?}: {line}"
            );
            assert!(
                !text.contains("Pw-Never-Shown") && !text.contains("KEY-MATERIAL"),
                "{text}"
            );
        }
    }

    #[test]
    fn the_limits_themselves_are_accepted() {
        let longest = format!("--table={}", "a".repeat(64));
        for args in [
            vec!["--max-messages=1"],
            vec!["--max-messages=1000000"],
            vec![longest.as_str(), "--id-column=_x1"],
            vec!["--subscription=projects/p/subscriptions/sub", "--project="],
            vec!["--pull-timeout-ms=600000", "--lock-wait-timeout=3600"],
            vec!["--batch-size=1", "--max-duration=1"],
            vec!["--batch-size=100000", "--max-duration=3600"],
        ] {
            config(&args);
        }
    }

    #[test]
    fn a_value_clap_cannot_parse_exits_2_naming_the_flag() {
        for value in ["ten", "1.5", "", "1e3", "99999999999999999999", "0x10"] {
            let (text, code) = refused(&[&format!("--max-messages={value}")]);
            assert_eq!(code, 2, "{text}");
            assert!(
                error_line(&text).contains("'--max-messages <MAX_MESSAGES>'"),
                "{text}"
            );
        }
        let (text, code) = refused(&["--table"]);
        assert_eq!(code, 2, "{text}");
        assert!(error_line(&text).contains("--table"), "{text}");
        let (text, code) = refused(&["--dry-run=maybe"]);
        assert_eq!(code, 2, "{text}");
        assert!(error_line(&text).contains("--dry-run"), "{text}");
    }

    #[test]
    fn a_value_out_of_range_shows_the_value() {
        for value in ["0", "-1", "1000001", "-9223372036854775808"] {
            let (text, _) = refused(&["--max-messages", value]);
            assert!(error_line(&text).contains(value), "{text}");
        }
    }

    #[test]
    fn a_database_url_out_of_place_does_not_show_its_password() {
        let stray = "mysql://purger:Pw-Never-Shown@db:3306/app";
        for args in [
            vec![stray],
            vec!["--subscription", stray],
            vec!["--project", stray, "--subscription=sub"],
            vec!["--table", stray],
            vec!["--max-messages", stray],
            vec!["--databse-url", stray],
            vec!["--database-url=mysql://purger:Pw-Never-Shown@db:3306"],
        ] {
            let (text, code) = refused(&args);
            assert_eq!(code, 2, "{args:?}: {text}");
            assert!(!text.contains("Pw-Never-Shown"), "{args:?}: {text}");
        }
    }

    #[test]
    fn operator_commands_name_their_bad_arguments() {
        let base = ["--subscription=projects/p/subscriptions/sub"];
        for (args, setting) in [
            (vec!["replay", base[0], "--since=yesterday"], "--since"),
            (vec!["replay", base[0], "--snapshot=x"], "--snapshot"),
            (vec!["snapshot", "create", base[0], "x"], "<NAME>"),
            (
                vec!["publish", "--topic=a/b", "--project=p", "--removed", "1"],
                "--topic",
            ),
            (
                vec!["publish", "--topic=t", "--removed", "1", "--project="],
                "--project (PUBSUB_PROJECT)",
            ),
        ] {
            let args: Vec<&str> = ["user-purge"].into_iter().chain(args).collect();
            let Command::Exit {
                text,
                exit: Exit::Config,
                to_stderr: true,
            } = run(&args)
            else {
                panic!("{args:?} was accepted");
            };
            assert!(
                error_line(&text).starts_with(&format!("error: invalid {setting}: ")),
                "{text}"
            );
        }
    }

    #[test]
    fn help_keeps_its_example_url() {
        let Command::Exit {
            text,
            exit: Exit::Success,
            ..
        } = run(&["user-purge", "--help"])
        else {
            panic!("--help failed");
        };
        assert!(text.contains("mysql://user:password@host"), "{text}");
    }

    #[test]
    fn passwords_are_redacted_and_nothing_else() {
        for (text, redacted) in [
            (
                "'mysql://u:secret@h:1/d' found",
                "'mysql://u:***@h:1/d' found",
            ),
            ("\"mysql://u:p@ss:w/rd@h/d\" is", "\"mysql://u:***@h/d\" is"),
            ("a://x:1@h b://y:2@h", "a://x:***@h b://y:***@h"),
            ("mysql://u@h:3306/d", "mysql://u@h:3306/d"),
            ("mysql://h:3306/d", "mysql://h:3306/d"),
            ("no url at all: a@b", "no url at all: a@b"),
            ("ends with ://", "ends with ://"),
        ] {
            assert_eq!(redact_passwords(text), redacted);
        }
    }
}
