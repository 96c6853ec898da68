//! The command line: flags with environment fallbacks (clap), turned into a
//! validated [`Config`]. This is the only module that imports clap.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{self, Admin, Config, ConfigError, Raw, ReplayTo};
use crate::event::event_type;
use crate::outcome::EXIT_CODES_HELP;

/// Erases removed users: pulls the user service's events from a Pub/Sub
/// subscription, deletes the users named by USER_REMOVED events from one MySQL
/// table in one transaction, and only then acknowledges the messages.
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

    #[command(flatten)]
    run: RunArgs,
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

    /// mysql://user:password@host:port/database (the password is never printed).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,

    /// Table holding the users.
    #[arg(long, env = "PURGE_TABLE", default_value = "users")]
    table: String,

    /// Column of that table holding the user id.
    #[arg(long, env = "PURGE_ID_COLUMN", default_value = "id")]
    id_column: String,

    /// Most messages one run takes (1 to 1,000,000).
    #[arg(
        long,
        env = "MAX_MESSAGES",
        default_value_t = 10_000,
        allow_negative_numbers = true
    )]
    max_messages: i64,

    /// Receive and decode, log what would be deleted, then hand every message
    /// back: nothing is deleted, nothing acknowledged.
    #[arg(long, env = "DRY_RUN", value_parser = clap::builder::BoolishValueParser::new())]
    dry_run: bool,

    /// How long one Pull waits for messages before the subscription counts as drained.
    #[arg(long, env = "PULL_TIMEOUT_MS", default_value_t = 500)]
    pull_timeout_ms: u64,

    /// Seconds the delete may wait for a row lock held by another transaction.
    #[arg(long, env = "LOCK_WAIT_TIMEOUT", default_value_t = 20)]
    lock_wait_timeout: u64,

    /// CA certificate (PEM) to verify the database server with; turns TLS on.
    /// TLS without a custom CA: add require_ssl=true to the URL.
    #[arg(long, env = "DATABASE_CA_FILE", value_name = "PEM")]
    database_ca_file: Option<String>,

    /// http:// URL of a Prometheus Pushgateway; each run pushes its metrics there.
    #[arg(long, env = "PUSHGATEWAY_URL")]
    pushgateway_url: Option<String>,

    /// The `instance` label of the pushed metrics (default: the subscription id).
    #[arg(long, env = "METRICS_INSTANCE")]
    metrics_instance: Option<String>,
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
        "Credentials: PUBSUB_EMULATOR_HOST if set, else PUBSUB_SERVICE_ACCOUNT if set, else\n\
         Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, GKE workload identity).\n\
         Logs go to stderr (RUST_LOG, default info); stdout gets one JSON summary line.\n\n\
         {EXIT_CODES_HELP}"
    )
}

/// What the command line asks for.
pub enum Command {
    /// Run one pass with this configuration.
    Run(Box<Config>),
    /// Seek the subscription back.
    Replay(Admin, ReplayTo),
    /// Snapshot the subscription under this name.
    CreateSnapshot(Admin, String),
    /// Publish these (event type, user id) events on the topic.
    Publish {
        project: String,
        credentials: config::Credentials,
        topic: String,
        events: Vec<(i32, u64)>,
    },
    /// Print this and exit with this code: help, version, or a usage error.
    Exit {
        text: String,
        to_stderr: bool,
        code: u8,
    },
}

/// Parses the arguments (and the environment) and validates them.
pub fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Command {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let text = error.render().to_string();
            return Command::Exit {
                // Help and version go out as they are; errors echo values.
                text: if error.use_stderr() {
                    redact_passwords(&text)
                } else {
                    text
                },
                to_stderr: error.use_stderr(),
                code: if error.use_stderr() { 2 } else { 0 },
            };
        }
    };
    let validated = match cli.command {
        None => run_config(cli.run).map(|config| Command::Run(Box::new(config))),
        Some(Sub::Replay(args)) => admin(args.subscription).and_then(|admin| {
            let to = match (args.since, args.snapshot) {
                (Some(since), _) => ReplayTo::Time(config::parse_time("--since", &since)?),
                (None, Some(snapshot)) => ReplayTo::Snapshot(config::parse_snapshot(&snapshot)?),
                (None, None) => unreachable!("clap requires --since or --snapshot"),
            };
            Ok(Command::Replay(admin, to))
        }),
        Some(Sub::Snapshot(SnapshotCommand::Create { subscription, name })) => admin(subscription)
            .and_then(|admin| {
                Ok(Command::CreateSnapshot(
                    admin,
                    config::parse_snapshot(&name)?,
                ))
            }),
        Some(Sub::Publish(args)) => publish(args),
    };
    validated.unwrap_or_else(|error| config_error(&error))
}

fn run_config(args: RunArgs) -> Result<Config, ConfigError> {
    let pubsub = args.subscription;
    Config::from_raw(Raw {
        subscription: pubsub.subscription,
        project: pubsub.credentials.project,
        database_url: args.database_url,
        table: args.table,
        id_column: args.id_column,
        max_messages: args.max_messages,
        dry_run: args.dry_run,
        pull_timeout_ms: args.pull_timeout_ms,
        lock_wait_timeout_secs: args.lock_wait_timeout,
        database_ca_file: args.database_ca_file,
        emulator_host: pubsub.credentials.emulator_host,
        service_account_key: pubsub.credentials.service_account_key,
        pushgateway_url: args.pushgateway_url,
        metrics_instance: args.metrics_instance,
    })
}

fn admin(args: SubscriptionArgs) -> Result<Admin, ConfigError> {
    let credentials = args.credentials;
    Admin::from_raw(
        args.subscription,
        credentials.project,
        credentials.emulator_host,
        credentials.service_account_key,
    )
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
        return Err(ConfigError {
            setting: "publish",
            problem: "name the users: --removed ID..., or --event TYPE ID...".into(),
        });
    }
    Ok(Command::Publish {
        project,
        credentials: config::credentials(
            credentials.emulator_host,
            credentials.service_account_key,
        ),
        topic,
        events,
    })
}

fn config_error(error: &ConfigError) -> Command {
    Command::Exit {
        text: redact_passwords(&format!(
            "error: {error}\n\nFor more information, try '--help'.\n"
        )),
        to_stderr: true,
        code: 2,
    }
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
    use clap::CommandFactory as _;
    Cli::command().render_long_help().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Command {
        parse(args.iter().map(Into::into))
    }

    #[test]
    fn help_lists_every_setting_and_the_exit_codes() {
        let help = help_text();
        for needle in [
            "PUBSUB_SUBSCRIPTION",
            "PUBSUB_PROJECT",
            "DATABASE_URL",
            "PURGE_TABLE",
            "PURGE_ID_COLUMN",
            "MAX_MESSAGES",
            "--dry-run",
            "PUBSUB_EMULATOR_HOST",
            "PUBSUB_SERVICE_ACCOUNT",
            "RUST_LOG",
            "143",
        ] {
            assert!(help.contains(needle), "--help does not mention {needle}");
        }
    }

    #[test]
    fn usage_errors_exit_2_and_help_exits_0() {
        assert!(matches!(
            run(&["user-purge", "--no-such-flag"]),
            Command::Exit {
                code: 2,
                to_stderr: true,
                ..
            }
        ));
        assert!(matches!(
            run(&["user-purge", "--help"]),
            Command::Exit {
                code: 0,
                to_stderr: false,
                ..
            }
        ));
        assert!(matches!(
            run(&["user-purge", "--max-messages", "ten"]),
            Command::Exit { code: 2, .. }
        ));
    }

    #[test]
    fn flags_become_a_config() {
        let command = run(&[
            "user-purge",
            "--subscription=projects/p/subscriptions/sub",
            "--database-url=mysql://u:p@h:3306/d",
            "--max-messages=100000",
            "--dry-run",
        ]);
        let Command::Run(config) = command else {
            panic!("the flags were refused");
        };
        assert_eq!(config.pass.max_messages, 100_000);
        assert!(config.pass.dry_run);
    }

    #[test]
    fn a_bad_table_is_a_config_error_naming_the_setting() {
        let command = run(&[
            "user-purge",
            "--subscription=projects/p/subscriptions/sub",
            "--database-url=mysql://u:p@h:3306/d",
            "--table=users; DROP TABLE x",
        ]);
        let Command::Exit { text, code: 2, .. } = command else {
            panic!("the bad table was accepted");
        };
        assert!(text.contains("--table (PURGE_TABLE)"), "{text}");
    }

    const URL: &str = "--database-url=mysql://purger:Pw-Never-Shown@db:3306/app";

    /// The text and code of a refused command line.
    fn refused(args: &[&str]) -> (String, u8) {
        let args: Vec<&str> = [
            "user-purge",
            "--subscription=projects/p/subscriptions/sub",
            URL,
        ]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
        match run(&args) {
            Command::Exit {
                text,
                code,
                to_stderr: true,
            } => (text, code),
            Command::Exit { text, .. } => panic!("{args:?} printed to stdout: {text}"),
            _ => panic!("{args:?} was accepted"),
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
    fn a_value_out_of_range_exits_2_naming_flag_and_variable() {
        for value in ["0", "-1", "1000001", "-9223372036854775808"] {
            let (text, code) = refused(&["--max-messages", value]);
            assert_eq!(code, 2, "{text}");
            let line = error_line(&text);
            assert!(line.contains("--max-messages (MAX_MESSAGES)"), "{text}");
            assert!(
                line.contains(value),
                "the line should show the value: {text}"
            );
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
    fn help_keeps_its_example_url() {
        let Command::Exit { text, code: 0, .. } = run(&["user-purge", "--help"]) else {
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
