//! The command line: flags with environment fallbacks (clap), turned into a
//! validated [`Config`]. This is the only module that imports clap.

use clap::Parser;

use crate::config::{Config, ConfigError, Raw};
use crate::outcome::EXIT_CODES_HELP;

/// Erases removed users: pulls the user service's events from a Pub/Sub
/// subscription, deletes the users named by USER_REMOVED events from one MySQL
/// table in one transaction, and only then acknowledges the messages.
#[derive(Parser, Debug)]
#[command(name = "user-purge", version, after_help = after_help())]
struct Cli {
    /// Subscription to pull from: an id, or projects/P/subscriptions/S.
    #[arg(long, env = "PUBSUB_SUBSCRIPTION")]
    subscription: Option<String>,

    /// Google Cloud project of the subscription; required when it is a bare id.
    #[arg(long, env = "PUBSUB_PROJECT")]
    project: Option<String>,

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
    #[arg(long, env = "DRY_RUN")]
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
            return Command::Exit {
                text: error.render().to_string(),
                to_stderr: error.use_stderr(),
                code: if error.use_stderr() { 2 } else { 0 },
            };
        }
    };
    let raw = Raw {
        subscription: cli.subscription,
        project: cli.project,
        database_url: cli.database_url,
        table: cli.table,
        id_column: cli.id_column,
        max_messages: cli.max_messages,
        dry_run: cli.dry_run,
        pull_timeout_ms: cli.pull_timeout_ms,
        lock_wait_timeout_secs: cli.lock_wait_timeout,
        database_ca_file: cli.database_ca_file,
        emulator_host: cli.emulator_host,
        service_account_key: cli.service_account_key,
    };
    match Config::from_raw(raw) {
        Ok(config) => Command::Run(Box::new(config)),
        Err(error) => config_error(&error),
    }
}

fn config_error(error: &ConfigError) -> Command {
    Command::Exit {
        text: format!("error: {error}\n\nFor more information, try '--help'.\n"),
        to_stderr: true,
        code: 2,
    }
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
}
