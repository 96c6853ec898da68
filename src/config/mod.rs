//! The configuration: read from the command line and the environment
//! ([`cli`], clap), checked once ([`command`]) into the typed values below,
//! so the rest of the program works only with values that are known good.
//! The erasure map is read from its file ([`map`]); passwords and keys are
//! [`Secret`]s.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub mod cli;
pub mod command;
pub mod map;
pub mod secret;

use map::{Identifier, Map};
use secret::Secret;

/// What `user-purge check` works on.
#[derive(Debug)]
pub struct Check {
    pub database: Database,
    /// A MySQL REGEXP for more column names that refer to the user.
    pub user_columns: Option<String>,
    /// A MySQL REGEXP for more column names that hold personal data.
    pub personal_columns: Option<String>,
    /// Print the grants for this account instead of checking.
    pub grants: Option<String>,
}

/// Which database a `--database-url` names, by its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `mysql://`: MySQL or MariaDB.
    MySql,
    /// `postgres://` or `postgresql://`.
    Postgres,
}

impl Engine {
    /// The engine a URL's scheme names (case-insensitively), if any.
    pub fn of(url: &str) -> Option<Engine> {
        let (scheme, _) = url.split_once("://")?;
        match scheme.to_ascii_lowercase().as_str() {
            "mysql" => Some(Engine::MySql),
            "postgres" | "postgresql" => Some(Engine::Postgres),
            _ => None,
        }
    }
}

/// What `user-purge verify` works on.
#[derive(Debug)]
pub struct Verify {
    /// The job's database settings; the record is set.
    pub database: Database,
    /// Only the users erased at or after this.
    pub since: Option<std::time::SystemTime>,
    pub max_findings: usize,
    pub repair: bool,
    pub metrics: Option<Metrics>,
}

/// Where the erasure goes, validated.
#[derive(Debug, Clone)]
pub struct Database {
    /// The URL's engine.
    pub engine: Engine,
    /// A URL that `store::url::check_url` accepted; it may hold the password.
    pub url: Secret,
    /// A password read from a file, which replaces the URL's: the URL can
    /// then live in a ConfigMap and the password in a mounted Secret.
    pub password: Option<Secret>,
    /// The tables and what happens to their rows.
    pub map: Map,
    /// The table that records each erasure, if any.
    pub record: Option<Identifier>,
    /// How long the erasure may wait for a row lock held by someone else.
    pub lock_wait_timeout: Duration,
    /// How long one statement may run (MariaDB's `max_statement_time`), so
    /// that a pathological plan cannot outlive the run's deadline.
    pub statement_timeout: Duration,
    /// A CA certificate (PEM) to verify the server with; requires TLS.
    pub ca_file: Option<PathBuf>,
    /// The most rows one `DELETE` or `UPDATE` touches, and one transaction
    /// of a `chunked` entry.
    pub chunk_rows: u64,
    /// Replicas whose lag the erasure waits for: URLs that
    /// `store::url::check_url` accepted, of the primary's engine, each with a password (its own, or
    /// the primary's).
    pub replicas: Vec<Secret>,
    /// The most lag a replica may have before the erasure waits.
    pub max_replica_lag: Duration,
}

/// `--chunk-rows`' default: a statement that stays well inside a busy
/// primary's statement timeout.
pub const CHUNK_ROWS: u64 = 10_000;

/// `--max-replica-lag`'s default, in seconds.
pub const MAX_REPLICA_LAG: u64 = 5;

/// The largest `--max-messages` accepted: ten times the largest backlog the job
/// is sized for, and still well within memory and `max_allowed_packet`.
pub const MAX_MESSAGES_LIMIT: usize = 1_000_000;

/// The largest `--batch-size`: one transaction's worth of ids, a DELETE of
/// about 1 MB, well inside `max_allowed_packet`.
pub const BATCH_SIZE_LIMIT: usize = 100_000;

/// Everything one run needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub subscription: SubscriptionName,
    pub credentials: Credentials,
    pub database: Database,
    pub pass: PassSettings,
    /// Where to push the run's metrics, if anywhere.
    pub metrics: Option<Metrics>,
}

/// A Pushgateway and the `instance` label of this job's group there.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub gateway: String,
    pub instance: String,
}

/// What an operator's command (replay, snapshot) works on.
#[derive(Debug, Clone)]
pub struct Admin {
    pub subscription: SubscriptionName,
    pub credentials: Credentials,
}

/// Where `replay` seeks the subscription to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayTo {
    Time(std::time::SystemTime),
    Snapshot(String),
}

/// How one pass behaves.
#[derive(Debug, Clone)]
pub struct PassSettings {
    /// The most messages one run takes, over all its rounds.
    pub max_messages: usize,
    /// The most messages one round takes: one transaction's worth.
    pub batch_size: usize,
    /// No new round starts after this long.
    pub max_duration: Duration,
    pub dry_run: bool,
    /// How long the server may hold one long-poll Pull while no message
    /// arrives (the client allows two round trips more).
    pub pull_timeout: Duration,
}

/// How to reach Pub/Sub, in the documented order of precedence.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// `PUBSUB_EMULATOR_HOST`: plaintext, no credentials.
    Emulator(String),
    /// A service-account JSON key, given inline (`PUBSUB_SERVICE_ACCOUNT`) or
    /// read from a file (`PUBSUB_SERVICE_ACCOUNT_FILE`).
    ServiceAccountKey {
        key: Secret,
        /// Where it came from, for errors: the variable, or the file's path.
        source: String,
    },
    /// Application Default Credentials.
    ApplicationDefault,
}

/// A configuration error: which setting, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting's id (the field name in `cli`); [`cli::label`] shows it
    /// as the flag and its environment variable.
    pub setting: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.setting, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// The error for `setting`.
pub fn invalid(setting: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        problem: problem.into(),
    }
}

/// Pub/Sub credentials in the documented order: the emulator, then a key
/// (inline or from a file, not both), then Application Default Credentials.
/// An empty value counts as unset. The key file is read only when it is the
/// one used; an unreadable one is an error naming its path, never its content.
pub fn credentials(
    emulator_host: Option<String>,
    service_account_key: Option<String>,
    service_account_key_file: Option<String>,
) -> Result<Credentials, ConfigError> {
    let set = |value: Option<String>| value.filter(|v| !v.is_empty());
    let (host, key, file) = (
        set(emulator_host),
        set(service_account_key),
        set(service_account_key_file),
    );
    // Two keys are a mistake whichever would win: refused even under the
    // emulator, so that it surfaces before the first real deployment.
    if key.is_some() && file.is_some() {
        return Err(invalid(
            "service_account_key_file",
            "give the service-account key either inline (--service-account-key, \
             PUBSUB_SERVICE_ACCOUNT) or as a file, not both",
        ));
    }
    Ok(match (host, key, file) {
        (Some(host), _, _) => Credentials::Emulator(host),
        (None, Some(key), _) => Credentials::ServiceAccountKey {
            key: Secret::new(key),
            source: "PUBSUB_SERVICE_ACCOUNT".to_owned(),
        },
        (None, None, Some(path)) => Credentials::ServiceAccountKey {
            key: read_secret_file("service_account_key_file", &path)?,
            source: format!("the file {path:?}"),
        },
        (None, None, None) => Credentials::ApplicationDefault,
    })
}

/// A secret kept in a file (a mounted Kubernetes Secret, a systemd
/// credential), without one trailing newline: `echo` and editors add it,
/// and it is never part of a password. An unreadable or empty file is an
/// error naming `setting` and the path; the content never shows.
pub fn read_secret_file(setting: &'static str, path: &str) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        // The io error says why (missing, denied, not UTF-8), never what it read.
        invalid(setting, format!("cannot read {path:?}: {e}"))
    })?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if text.is_empty() {
        // Most likely a Secret without its key, or an empty credential:
        // connecting with no password would only hide that.
        return Err(invalid(setting, format!("{path:?} is empty")));
    }
    Ok(Secret::new(text))
}

/// An RFC 3339 time given for `setting`.
pub fn parse_time(setting: &'static str, text: &str) -> Result<std::time::SystemTime, ConfigError> {
    crate::timestamp::parse(text).map_err(|problem| invalid(setting, problem))
}

/// A snapshot id (`setting`): Pub/Sub's resource-id rule, or a full
/// projects/P/snapshots/S.
pub fn parse_snapshot(setting: &'static str, name: &str) -> Result<String, ConfigError> {
    let id = name.rsplit('/').next().unwrap_or(name);
    if is_resource_id(id) {
        Ok(name.to_owned())
    } else {
        Err(invalid(
            setting,
            format!(
                "{name:?} is not a valid snapshot id (3 to 255 characters: a letter, then letters, digits, or - _ . ~ + %)"
            ),
        ))
    }
}

/// A topic as an id (with a project) or projects/P/topics/T; returns the
/// project and the full name.
pub fn topic_name(value: &str, project: Option<&str>) -> Result<(String, String), ConfigError> {
    const SETTING: &str = "topic";
    let (project, id) = match value.split('/').collect::<Vec<_>>()[..] {
        ["projects", project, "topics", id] => (project, id),
        [id] => (
            project
                .filter(|p| !p.is_empty())
                .ok_or_else(|| invalid("project", "it is required when the topic is a bare id"))?,
            id,
        ),
        _ => {
            return Err(invalid(
                SETTING,
                format!("{value:?} is neither an id nor projects/P/topics/T"),
            ));
        }
    };
    if !is_resource_id(id) || !is_project_id(project) {
        return Err(invalid(SETTING, format!("{value:?} is not a valid topic")));
    }
    Ok((
        project.to_owned(),
        format!("projects/{project}/topics/{id}"),
    ))
}

/// A subscription's full name, `projects/P/subscriptions/S`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionName {
    pub project: String,
    pub id: String,
}

impl SubscriptionName {
    /// Accepts a full name, or a bare id together with a project.
    pub fn parse(value: &str, project: Option<&str>) -> Result<SubscriptionName, ConfigError> {
        const SETTING: &str = "subscription";
        let (project, id) = match value.split('/').collect::<Vec<_>>()[..] {
            ["projects", project, "subscriptions", id] => (project, id),
            [id] => {
                let project = project.filter(|p| !p.is_empty()).ok_or_else(|| {
                    invalid(
                        "project",
                        format!("it is required when the subscription is a bare id ({value:?})"),
                    )
                })?;
                (project, id)
            }
            _ => {
                return Err(invalid(
                    SETTING,
                    format!("{value:?} is neither an id nor projects/P/subscriptions/S"),
                ));
            }
        };
        if !is_resource_id(id) {
            return Err(invalid(
                SETTING,
                format!(
                    "{id:?} is not a valid subscription id (3 to 255 characters: a letter, \
                     then letters, digits, or - _ . ~ + %)"
                ),
            ));
        }
        if !is_project_id(project) {
            return Err(invalid(
                "project",
                format!("{project:?} is not a valid project id"),
            ));
        }
        Ok(SubscriptionName {
            project: project.to_owned(),
            id: id.to_owned(),
        })
    }
}

impl fmt::Display for SubscriptionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "projects/{}/subscriptions/{}", self.project, self.id)
    }
}

/// Pub/Sub's rule for topic and subscription ids.
fn is_resource_id(id: &str) -> bool {
    let mut chars = id.chars();
    (3..=255).contains(&id.len())
        && matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "-_.~+%".contains(c))
        && !id.starts_with("goog")
}

/// Google Cloud project ids (and the emulator's free-form ones): letters, digits,
/// `-`, and `:`/`.` for domain-scoped projects.
fn is_project_id(project: &str) -> bool {
    !project.is_empty()
        && project.len() <= 100
        && project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-:._".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_subscription_path_needs_no_project() {
        let name = SubscriptionName::parse("projects/p-1/subscriptions/sub", None).unwrap();
        assert_eq!((name.project.as_str(), name.id.as_str()), ("p-1", "sub"));
    }

    #[test]
    fn a_bare_subscription_id_needs_a_project() {
        let error = SubscriptionName::parse("sub", None).unwrap_err();
        assert_eq!(error.setting, "project");
    }

    #[test]
    fn bad_subscription_names_are_refused() {
        for bad in [
            "ab",
            "1abc",
            "projects/p/topics/t",
            "projects//subscriptions/s",
            "a b c",
            "goog-sub",
        ] {
            assert!(
                SubscriptionName::parse(bad, Some("p")).is_err(),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn an_empty_emulator_host_or_key_counts_as_unset() {
        let empty = || Some(String::new());
        assert!(matches!(
            credentials(empty(), Some("{}".into()), empty()),
            Ok(Credentials::ServiceAccountKey { .. })
        ));
        assert!(matches!(
            credentials(empty(), empty(), empty()),
            Ok(Credentials::ApplicationDefault)
        ));
        assert!(matches!(
            credentials(Some("127.0.0.1:8085".into()), Some("{}".into()), None),
            Ok(Credentials::Emulator(_))
        ));
    }

    fn temp_file(name: &str, content: &str) -> String {
        let path =
            std::env::temp_dir().join(format!("user-purge-config-{}-{name}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }

    #[test]
    fn a_key_file_is_read_and_both_keys_are_refused() {
        let file = temp_file("key.json", "{\"k\":\"KEY-MATERIAL\"}\n");
        match credentials(None, None, Some(file.clone())) {
            Ok(Credentials::ServiceAccountKey { key, source }) => {
                assert_eq!(key.expose(), "{\"k\":\"KEY-MATERIAL\"}");
                assert!(source.contains(&file), "{source}");
            }
            other => panic!("{other:?}"),
        }
        let both = credentials(None, Some("{}".into()), Some(file.clone())).unwrap_err();
        assert_eq!(both.setting, "service_account_key_file");
        // The emulator wins, and the file it makes unnecessary is not read.
        assert!(matches!(
            credentials(Some("h:1".into()), None, Some("/no/such/key.json".into())),
            Ok(Credentials::Emulator(_))
        ));
        let missing = credentials(None, None, Some("/no/such/key.json".into())).unwrap_err();
        assert!(missing.problem.contains("/no/such/key.json"), "{missing}");
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn a_secret_file_loses_one_trailing_newline_and_never_shows() {
        for (content, read) in [
            ("pw", "pw"),
            ("pw\n", "pw"),
            ("pw\r\n", "pw"),
            ("pw\n\n", "pw\n"),
            (" pw \n", " pw "),
        ] {
            let file = temp_file("pw", content);
            let secret = read_secret_file("database_password_file", &file).unwrap();
            assert_eq!(secret.expose(), read, "{content:?}");
            let _ = std::fs::remove_file(file);
        }
        for content in ["", "\n"] {
            let file = temp_file("empty", content);
            let error = read_secret_file("database_password_file", &file).unwrap_err();
            assert!(error.problem.ends_with("is empty"), "{error}");
            let _ = std::fs::remove_file(file);
        }
    }

    #[test]
    fn topics_and_snapshots_follow_the_resource_id_rule() {
        assert_eq!(
            topic_name("events", Some("p")).unwrap(),
            ("p".to_owned(), "projects/p/topics/events".to_owned())
        );
        assert_eq!(topic_name("events", None).unwrap_err().setting, "project");
        assert_eq!(topic_name("a/b", Some("p")).unwrap_err().setting, "topic");
        assert!(parse_snapshot("name", "before-backup").is_ok());
        assert!(parse_snapshot("name", "projects/p/snapshots/before-backup").is_ok());
        assert_eq!(parse_snapshot("name", "x").unwrap_err().setting, "name");
    }
}
