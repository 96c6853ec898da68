//! What the command line asks for, validated: clap parses it first
//! ([`cli`]), then every setting is checked here, once, into the typed
//! [`Config`] or another [`Command`]. Every setting's rule lives here;
//! nothing after it checks a value again.

use std::ffi::OsString;
use std::time::Duration;

use super::cli::{
    self, Cli, CredentialArgs, DatabaseArgs, EventKind, PublishArgs, RunArgs, SnapshotCommand, Sub,
    SubscriptionArgs, VerifyArgs,
};
use super::map::{Identifier, Map};
use super::secret::{self, Secret};
use super::{
    Admin, BATCH_SIZE_LIMIT, CHUNK_ROWS, Check, Config, ConfigError, Credentials, Database, Engine,
    MAX_MESSAGES_LIMIT, MAX_REPLICA_LAG, Metrics, PassSettings, ReplayTo, SubscriptionName, Verify,
    credentials, invalid, parse_snapshot, parse_time, read_secret_file, topic_name,
};
use crate::event::event_type;
use crate::logging::LogFormat;
use crate::outcome::Outcome;
use crate::store;

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
    /// Look for erased users' data that came back, and maybe erase it again.
    Verify(Box<Verify>),
    /// Publish these (event type, user id) events on the topic.
    Publish {
        project: String,
        credentials: Credentials,
        topic: String,
        events: Vec<(i32, u64)>,
    },
}

/// What to print instead of running anything, and the outcome it ends with:
/// help, version, or why the command line was refused.
#[derive(Debug)]
pub struct Print {
    pub text: String,
    pub to_stderr: bool,
    pub outcome: Outcome,
}

/// Parses the arguments (and the environment) and validates them into a
/// command, or what to print instead; also says how to write the log, even
/// when the command line is refused.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> (LogFormat, Result<Command, Print>) {
    let args: Vec<OsString> = args.into_iter().collect();
    let (log_format, read) = cli::read(&args);
    let command = match read {
        cli::Read::Args(cli) => command(*cli).map_err(|error| refused(&error)),
        cli::Read::Shown(text) => Err(Print {
            text,
            to_stderr: false,
            outcome: Outcome::Completed,
        }),
        // Errors echo values: a database URL given in the wrong place would
        // show its password.
        cli::Read::Refused(text) => Err(Print {
            text: secret::redact_passwords(&text),
            to_stderr: true,
            outcome: Outcome::Misconfigured(anyhow::anyhow!("the command line was refused")),
        }),
    };
    (log_format, command)
}

/// A setting that validation refused, as clap words its own refusals.
fn refused(error: &ConfigError) -> Print {
    let text = format!(
        "error: invalid {}: {}\n\nFor more information, try '--help'.\n",
        cli::label(error.setting),
        error.problem
    );
    Print {
        text: secret::redact_passwords(&text),
        to_stderr: true,
        outcome: Outcome::Misconfigured(anyhow::Error::new(error.clone())),
    }
}

/// Validates what clap parsed into a command.
fn command(cli: Cli) -> Result<Command, ConfigError> {
    match cli.command {
        None => run_config(cli.run).map(|config| Command::Run(Box::new(config))),
        Some(Sub::Replay(args)) => admin(args.subscription).and_then(|admin| {
            // clap requires one of the two.
            let to = match (args.since, args.snapshot) {
                (Some(since), _) => ReplayTo::Time(parse_time("since", &since)?),
                (None, snapshot) => {
                    ReplayTo::Snapshot(parse_snapshot("snapshot", &snapshot.unwrap_or_default())?)
                }
            };
            Ok(Command::Replay(admin, to))
        }),
        Some(Sub::Snapshot(SnapshotCommand::Create { subscription, name })) => admin(subscription)
            .and_then(|admin| {
                Ok(Command::CreateSnapshot(
                    admin,
                    parse_snapshot("name", &name)?,
                ))
            }),
        Some(Sub::Publish(args)) => publish(args),
        Some(Sub::Verify(args)) => verify(args).map(|v| Command::Verify(Box::new(v))),
        Some(Sub::Check(args)) => {
            // The run's default limits: the check only reads.
            let lock_wait = Duration::from_secs(cli::LOCK_WAIT_TIMEOUT);
            let statement = Duration::from_secs(cli::STATEMENT_TIMEOUT);
            database(args.database, lock_wait, statement).map(|database| {
                let grantee = args.grantee.unwrap_or_else(|| {
                    match database.engine {
                        Engine::MySql => "'user_purge'@'%'",
                        Engine::Postgres => "user_purge",
                    }
                    .to_owned()
                });
                Command::Check(Box::new(Check {
                    database,
                    user_columns: args.user_columns.filter(|r| !r.is_empty()),
                    personal_columns: args.personal_columns.filter(|r| !r.is_empty()),
                    grants: args.grants.then_some(grantee),
                }))
            })
        }
    }
}

/// Validates a run's settings into a [`Config`]: every setting is checked here, once.
fn run_config(args: RunArgs) -> Result<Config, ConfigError> {
    let pubsub = args.subscription;
    let subscription = required("subscription", pubsub.subscription)?;
    let subscription =
        SubscriptionName::parse(&subscription, pubsub.credentials.project.as_deref())?;
    let mut database = database(
        args.database,
        seconds("lock_wait_timeout", args.lock_wait_timeout)?,
        seconds("statement_timeout", args.statement_timeout)?,
    )?;
    database.chunk_rows = chunk_rows(args.chunk_rows)?;
    for url in args.replica_url.into_iter().filter(|u| !u.is_empty()) {
        let engine =
            store::url::check_url(&url).map_err(|problem| invalid("replica_url", problem))?;
        if engine != database.engine {
            return Err(invalid(
                "replica_url",
                "a replica must be of the primary's engine: both mysql:// or both postgres://",
            ));
        }
        database.replicas.push(Secret::new(url));
    }
    if args.max_replica_lag > 3600 {
        return Err(invalid("max_replica_lag", "must be from 0 to 3600"));
    }
    database.max_replica_lag = Duration::from_secs(args.max_replica_lag);
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
    let max_duration = seconds("max_duration", args.max_duration)?;
    if !(1..=600_000).contains(&args.pull_timeout_ms) {
        return Err(invalid("pull_timeout_ms", "must be from 1 to 600000"));
    }
    let metrics = metrics(
        args.pushgateway_url,
        args.metrics_instance,
        &subscription.id,
    )?;
    let credentials = pubsub.credentials;
    Ok(Config {
        subscription,
        credentials: pubsub_credentials(credentials)?,
        database,
        pass: PassSettings {
            max_messages,
            batch_size,
            max_duration,
            dry_run: args.dry_run,
            pull_timeout: Duration::from_millis(args.pull_timeout_ms),
        },
        metrics,
    })
}

/// Validates `verify`'s settings.
fn verify(args: VerifyArgs) -> Result<Verify, ConfigError> {
    let lock_wait = Duration::from_secs(cli::LOCK_WAIT_TIMEOUT);
    let statement = Duration::from_secs(cli::STATEMENT_TIMEOUT);
    let mut database = database(args.database, lock_wait, statement)?;
    let Some(record) = database.record.clone() else {
        return Err(invalid(
            "erasure_record",
            "verify checks the users of the erasure record: give its table",
        ));
    };
    database.chunk_rows = chunk_rows(args.chunk_rows)?;
    let since = match args.since.filter(|s| !s.is_empty()) {
        Some(since) => Some(parse_time("since", &since)?),
        None => None,
    };
    let max_findings = usize::try_from(args.max_findings)
        .ok()
        .filter(|n| (1..=1_000_000).contains(n))
        .ok_or_else(|| invalid("max_findings", "must be from 1 to 1000000"))?;
    Ok(Verify {
        database,
        since,
        max_findings,
        repair: args.repair,
        metrics: metrics(args.pushgateway_url, args.metrics_instance, record.as_str())?,
    })
}

/// `--chunk-rows`, in its range.
fn chunk_rows(rows: i64) -> Result<u64, ConfigError> {
    u64::try_from(rows)
        .ok()
        .filter(|n| (CHUNK_ROWS_MIN..=CHUNK_ROWS_MAX).contains(n))
        .ok_or_else(|| {
            invalid(
                "chunk_rows",
                format!("must be from {CHUNK_ROWS_MIN} to {CHUNK_ROWS_MAX}, got {rows}"),
            )
        })
}

/// Where to push metrics, if anywhere: an http:// Pushgateway, and the
/// instance label (`default` unless given).
fn metrics(
    url: Option<String>,
    instance: Option<String>,
    default: &str,
) -> Result<Option<Metrics>, ConfigError> {
    match url.filter(|u| !u.is_empty()) {
        // The client speaks plain HTTP only: a Pushgateway is normally
        // reached inside the cluster or the host.
        Some(url) if url.starts_with("http://") && url.len() > "http://".len() => {
            Ok(Some(Metrics {
                gateway: url,
                instance: instance
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| default.to_owned()),
            }))
        }
        Some(url) => Err(invalid(
            "pushgateway_url",
            format!("{url:?} is not an http:// URL (https is not supported)"),
        )),
        None => Ok(None),
    }
}

/// Validates where and what to erase: the URL, the map (or the one table),
/// the record, the CA file.
fn database(
    args: DatabaseArgs,
    lock_wait_timeout: Duration,
    statement_timeout: Duration,
) -> Result<Database, ConfigError> {
    let url = required("database_url", args.database_url)?;
    let engine = store::url::check_url(&url).map_err(|problem| invalid("database_url", problem))?;
    let identifier = |setting, value: &str| {
        Identifier::parse(value).map_err(|problem| invalid(setting, problem))
    };
    // `schema.table` is PostgreSQL's; on MySQL it would name another
    // database, which the job neither reads nor may erase from.
    let qualified = |table: &Identifier| match engine {
        Engine::MySql if table.parts().count() > 1 => Some(format!(
            "{table} names another database's table; on MySQL and MariaDB the map's \
             tables are the URL's database's, named plainly"
        )),
        _ => None,
    };
    let table_name = |setting, value: &str| {
        let table = Identifier::parse_table(value).map_err(|problem| invalid(setting, problem))?;
        match qualified(&table) {
            Some(problem) => Err(invalid(setting, problem)),
            None => Ok(table),
        }
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
            let map = Map::load(&path).map_err(|problem| invalid("erasure_map", problem))?;
            let tables = map.entries().iter().flat_map(|entry| {
                std::iter::once(&entry.table).chain(entry.via.iter().map(|hop| &hop.table))
            });
            if let Some(problem) = tables.filter_map(qualified).next() {
                return Err(invalid("erasure_map", format!("{path}: {problem}")));
            }
            map
        }
        None => Map::single(
            table_name("table", table.as_deref().unwrap_or("users"))?,
            identifier("id_column", id_column.as_deref().unwrap_or("id"))?,
        ),
    };
    let record = match args.erasure_record.filter(|r| !r.is_empty()) {
        Some(table) => Some(table_name("erasure_record", &table)?),
        None => None,
    };
    let password = match args.database_password_file.filter(|f| !f.is_empty()) {
        Some(path) => Some(read_secret_file("database_password_file", &path)?),
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
        engine,
        url: Secret::new(url),
        password,
        map,
        record,
        lock_wait_timeout,
        statement_timeout,
        ca_file,
        chunk_rows: CHUNK_ROWS,
        replicas: Vec::new(),
        max_replica_lag: Duration::from_secs(MAX_REPLICA_LAG),
    })
}

/// `--chunk-rows`' range: below it, the round trips cost more than the rows.
const CHUNK_ROWS_MIN: u64 = 100;
const CHUNK_ROWS_MAX: u64 = 1_000_000;

/// How to reach Pub/Sub, from its flags.
fn pubsub_credentials(args: CredentialArgs) -> Result<Credentials, ConfigError> {
    credentials(
        args.emulator_host,
        args.service_account_key,
        args.service_account_key_file,
    )
}

/// The range of every setting given in seconds.
const SECONDS: std::ops::RangeInclusive<u64> = 1..=3600;

/// A setting in seconds, within [`SECONDS`].
fn seconds(setting: &'static str, value: u64) -> Result<Duration, ConfigError> {
    if SECONDS.contains(&value) {
        Ok(Duration::from_secs(value))
    } else {
        Err(invalid(
            setting,
            format!(
                "must be from {} to {} seconds",
                SECONDS.start(),
                SECONDS.end()
            ),
        ))
    }
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
        credentials: pubsub_credentials(credentials)?,
    })
}

fn publish(args: PublishArgs) -> Result<Command, ConfigError> {
    let credentials = args.credentials;
    let (project, topic) = topic_name(&args.topic, credentials.project.as_deref())?;
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
        credentials: pubsub_credentials(credentials)?,
        topic,
        events,
    })
}

#[cfg(test)]
mod tests;
