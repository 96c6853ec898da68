//! The validated configuration of one run, and the types that keep it honest.
//!
//! Raw settings arrive from `cli`; [`Config::from_raw`] checks every one of them
//! once, so the rest of the program works only with values that are known good.
//! Secrets are wrapped in [`Secret`], whose `Debug` never shows them.

use std::fmt;
use std::time::Duration;

/// The largest `--max-messages` accepted: ten times the largest backlog the job
/// is sized for, and still well within memory and `max_allowed_packet`.
pub const MAX_MESSAGES_LIMIT: usize = 1_000_000;

/// Settings as given on the command line or in the environment, unchecked.
#[derive(Default, Clone)]
pub struct Raw {
    pub subscription: Option<String>,
    pub project: Option<String>,
    pub database_url: Option<String>,
    pub table: String,
    pub id_column: String,
    pub max_messages: i64,
    pub dry_run: bool,
    pub pull_timeout_ms: u64,
    pub lock_wait_timeout_secs: u64,
    pub database_ca_file: Option<String>,
    pub emulator_host: Option<String>,
    pub service_account_key: Option<String>,
    pub pushgateway_url: Option<String>,
    pub metrics_instance: Option<String>,
}

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

impl Admin {
    pub fn from_raw(
        subscription: Option<String>,
        project: Option<String>,
        emulator_host: Option<String>,
        service_account_key: Option<String>,
    ) -> Result<Admin, ConfigError> {
        let subscription = subscription
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("--subscription (PUBSUB_SUBSCRIPTION)", "it is required"))?;
        Ok(Admin {
            subscription: SubscriptionName::parse(&subscription, project.as_deref())?,
            credentials: credentials(emulator_host, service_account_key),
        })
    }
}

/// Where `replay` seeks the subscription to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayTo {
    Time(std::time::SystemTime),
    Snapshot(String),
}

/// Where the delete goes.
#[derive(Debug, Clone)]
pub struct Database {
    pub url: Secret,
    pub table: Identifier,
    pub id_column: Identifier,
    /// How long the delete may wait for a row lock held by someone else.
    pub lock_wait_timeout: Duration,
    /// A CA certificate (PEM) to verify the server with; requires TLS.
    pub ca_file: Option<std::path::PathBuf>,
}

/// How one pass behaves.
#[derive(Debug, Clone)]
pub struct PassSettings {
    pub max_messages: usize,
    pub dry_run: bool,
    /// How long one Pull waits for messages before the subscription counts as
    /// drained. The emulator and an idle real subscription hold a Pull open
    /// until this deadline.
    pub pull_timeout: Duration,
}

/// How to reach Pub/Sub, in the documented order of precedence.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// `PUBSUB_EMULATOR_HOST`: plaintext, no credentials.
    Emulator(String),
    /// `PUBSUB_SERVICE_ACCOUNT`: a service-account JSON key, given inline.
    ServiceAccountKey(Secret),
    /// Application Default Credentials.
    ApplicationDefault,
}

/// A configuration error: which setting, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub setting: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.setting, self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn invalid(setting: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        problem: problem.into(),
    }
}

impl Config {
    pub fn from_raw(raw: Raw) -> Result<Config, ConfigError> {
        const SUBSCRIPTION: &str = "--subscription (PUBSUB_SUBSCRIPTION)";
        const DATABASE_URL: &str = "--database-url (DATABASE_URL)";
        let subscription = raw
            .subscription
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid(SUBSCRIPTION, "it is required"))?;
        let subscription = SubscriptionName::parse(&subscription, raw.project.as_deref())?;
        let url = raw
            .database_url
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid(DATABASE_URL, "it is required"))?;
        crate::store::check_url(&url).map_err(|problem| invalid(DATABASE_URL, problem))?;
        let max_messages = usize::try_from(raw.max_messages)
            .ok()
            .filter(|n| (1..=MAX_MESSAGES_LIMIT).contains(n))
            .ok_or_else(|| {
                invalid(
                    "--max-messages (MAX_MESSAGES)",
                    format!(
                        "must be from 1 to {MAX_MESSAGES_LIMIT}, got {}",
                        raw.max_messages
                    ),
                )
            })?;
        if !(1..=600_000).contains(&raw.pull_timeout_ms) {
            return Err(invalid(
                "--pull-timeout-ms (PULL_TIMEOUT_MS)",
                "must be from 1 to 600000",
            ));
        }
        if !(1..=3600).contains(&raw.lock_wait_timeout_secs) {
            return Err(invalid(
                "--lock-wait-timeout (LOCK_WAIT_TIMEOUT)",
                "must be from 1 to 3600 seconds",
            ));
        }
        let ca_file = match raw.database_ca_file.filter(|f| !f.is_empty()) {
            Some(file) if std::path::Path::new(&file).is_file() => Some(file.into()),
            Some(file) => {
                return Err(invalid(
                    "--database-ca-file (DATABASE_CA_FILE)",
                    format!("{file:?} is not a readable file"),
                ));
            }
            None => None,
        };
        let metrics = match raw.pushgateway_url.filter(|u| !u.is_empty()) {
            // The client speaks plain HTTP only: a Pushgateway is normally
            // reached inside the cluster or the host.
            Some(url) if url.starts_with("http://") && url.len() > "http://".len() => {
                Some(Metrics {
                    gateway: url,
                    instance: raw
                        .metrics_instance
                        .filter(|i| !i.is_empty())
                        .unwrap_or_else(|| subscription.id.clone()),
                })
            }
            Some(url) => {
                return Err(invalid(
                    "--pushgateway-url (PUSHGATEWAY_URL)",
                    format!("{url:?} is not an http:// URL (https is not supported)"),
                ));
            }
            None => None,
        };
        let credentials = credentials(raw.emulator_host, raw.service_account_key);
        Ok(Config {
            subscription,
            credentials,
            database: Database {
                url: Secret(url),
                table: Identifier::parse("--table (PURGE_TABLE)", &raw.table)?,
                id_column: Identifier::parse("--id-column (PURGE_ID_COLUMN)", &raw.id_column)?,
                lock_wait_timeout: Duration::from_secs(raw.lock_wait_timeout_secs),
                ca_file,
            },
            pass: PassSettings {
                max_messages,
                dry_run: raw.dry_run,
                pull_timeout: Duration::from_millis(raw.pull_timeout_ms),
            },
            metrics,
        })
    }
}

/// Pub/Sub credentials in the documented order: the emulator, then a key,
/// then Application Default Credentials.
pub fn credentials(
    emulator_host: Option<String>,
    service_account_key: Option<String>,
) -> Credentials {
    match (emulator_host, service_account_key) {
        (Some(host), _) if !host.is_empty() => Credentials::Emulator(host),
        (_, Some(key)) if !key.is_empty() => Credentials::ServiceAccountKey(Secret(key)),
        _ => Credentials::ApplicationDefault,
    }
}

/// An RFC 3339 time given for `setting`.
pub fn parse_time(setting: &'static str, text: &str) -> Result<std::time::SystemTime, ConfigError> {
    crate::timestamp::parse(text).map_err(|problem| invalid(setting, problem))
}

/// A snapshot id: Pub/Sub's resource-id rule, or a full projects/P/snapshots/S.
pub fn parse_snapshot(name: &str) -> Result<String, ConfigError> {
    let id = name.rsplit('/').next().unwrap_or(name);
    if is_resource_id(id) {
        Ok(name.to_owned())
    } else {
        Err(invalid(
            "snapshot name",
            format!(
                "{name:?} is not a valid snapshot id (3 to 255 characters: a letter, then letters, digits, or - _ . ~ + %)"
            ),
        ))
    }
}

/// A topic as an id (with a project) or projects/P/topics/T; returns the
/// project and the full name.
pub fn topic_name(value: &str, project: Option<&str>) -> Result<(String, String), ConfigError> {
    const SETTING: &str = "--topic";
    let (project, id) = match value.split('/').collect::<Vec<_>>()[..] {
        ["projects", project, "topics", id] => (project, id),
        [id] => (
            project.filter(|p| !p.is_empty()).ok_or_else(|| {
                invalid(
                    "--project (PUBSUB_PROJECT)",
                    "it is required when the topic is a bare id",
                )
            })?,
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

/// A value that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must hand it to a client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A plain SQL identifier: ASCII letters, digits and `_`, not starting with a
/// digit, at most 64 characters. Anything else is refused rather than escaped,
/// so no configuration value can change the statement's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier(String);

impl Identifier {
    pub fn parse(setting: &'static str, value: &str) -> Result<Identifier, ConfigError> {
        let mut chars = value.chars();
        let plain = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && value.len() <= 64;
        if plain {
            Ok(Identifier(value.to_owned()))
        } else {
            Err(invalid(
                setting,
                format!(
                    "{value:?} is not a plain SQL identifier (ASCII letters, digits and _, \
                     not starting with a digit, at most 64 characters)"
                ),
            ))
        }
    }

    /// The identifier in backticks, ready for SQL text.
    pub fn quoted(&self) -> String {
        format!("`{}`", self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
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
        const SETTING: &str = "--subscription (PUBSUB_SUBSCRIPTION)";
        let (project, id) = match value.split('/').collect::<Vec<_>>()[..] {
            ["projects", project, "subscriptions", id] => (project, id),
            [id] => {
                let project = project.filter(|p| !p.is_empty()).ok_or_else(|| {
                    invalid(
                        "--project (PUBSUB_PROJECT)",
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
                "--project (PUBSUB_PROJECT)",
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

    fn raw() -> Raw {
        Raw {
            subscription: Some("purge-sub".into()),
            project: Some("my-project".into()),
            database_url: Some("mysql://purger:hunter2@db:3306/app".into()),
            table: "users".into(),
            id_column: "id".into(),
            max_messages: 10_000,
            dry_run: false,
            pull_timeout_ms: 500,
            lock_wait_timeout_secs: 20,
            database_ca_file: None,
            emulator_host: None,
            service_account_key: None,
            pushgateway_url: None,
            metrics_instance: None,
        }
    }

    fn error_of(raw: Raw) -> ConfigError {
        Config::from_raw(raw).expect_err("the configuration should be refused")
    }

    #[test]
    fn a_complete_configuration_is_accepted() {
        let config = Config::from_raw(raw()).unwrap();
        assert_eq!(
            config.subscription.to_string(),
            "projects/my-project/subscriptions/purge-sub"
        );
        assert_eq!(config.database.table.quoted(), "`users`");
        assert_eq!(config.pass.max_messages, 10_000);
        assert!(matches!(
            config.credentials,
            Credentials::ApplicationDefault
        ));
    }

    #[test]
    fn a_full_subscription_path_needs_no_project() {
        let name = SubscriptionName::parse("projects/p-1/subscriptions/sub", None).unwrap();
        assert_eq!((name.project.as_str(), name.id.as_str()), ("p-1", "sub"));
    }

    #[test]
    fn a_bare_subscription_id_needs_a_project() {
        let error = SubscriptionName::parse("sub", None).unwrap_err();
        assert_eq!(error.setting, "--project (PUBSUB_PROJECT)");
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
    fn required_settings_are_named_when_missing() {
        let error = error_of(Raw {
            subscription: None,
            ..raw()
        });
        assert_eq!(error.setting, "--subscription (PUBSUB_SUBSCRIPTION)");
        let error = error_of(Raw {
            database_url: Some(String::new()),
            ..raw()
        });
        assert_eq!(error.setting, "--database-url (DATABASE_URL)");
    }

    #[test]
    fn identifiers_must_be_plain() {
        for good in ["users", "_x", "T1", "user_accounts"] {
            assert!(Identifier::parse("t", good).is_ok(), "{good} was refused");
        }
        let too_long = "a".repeat(65);
        for bad in [
            "",
            "1users",
            "users; DROP TABLE x",
            "us`ers",
            "us\"ers",
            "db.users",
            "usérs",
            "a b",
            &too_long,
        ] {
            assert!(Identifier::parse("t", bad).is_err(), "{bad} was accepted");
        }
        let error = error_of(Raw {
            table: "users; DROP TABLE x".into(),
            ..raw()
        });
        assert_eq!(error.setting, "--table (PURGE_TABLE)");
    }

    #[test]
    fn max_messages_is_bounded() {
        for bad in [0, -1, MAX_MESSAGES_LIMIT as i64 + 1] {
            let error = error_of(Raw {
                max_messages: bad,
                ..raw()
            });
            assert_eq!(error.setting, "--max-messages (MAX_MESSAGES)");
        }
        assert!(
            Config::from_raw(Raw {
                max_messages: 100_000,
                ..raw()
            })
            .is_ok()
        );
    }

    #[test]
    fn a_bad_database_url_is_refused_without_echoing_it() {
        for bad in [
            "postgres://u:hunter2@h/db",
            "not a url hunter2",
            "mysql://u:hunter2@h/db?bogus=1",
        ] {
            let error = error_of(Raw {
                database_url: Some(bad.into()),
                ..raw()
            });
            assert_eq!(error.setting, "--database-url (DATABASE_URL)");
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn the_emulator_wins_over_a_key() {
        let config = Config::from_raw(Raw {
            emulator_host: Some("127.0.0.1:8085".into()),
            service_account_key: Some("{}".into()),
            ..raw()
        })
        .unwrap();
        assert!(matches!(config.credentials, Credentials::Emulator(_)));
        let config = Config::from_raw(Raw {
            service_account_key: Some("{\"k\":1}".into()),
            ..raw()
        })
        .unwrap();
        assert!(matches!(
            config.credentials,
            Credentials::ServiceAccountKey(_)
        ));
    }

    #[test]
    fn secrets_do_not_print() {
        let config = Config::from_raw(Raw {
            service_account_key: Some("KEY-MATERIAL".into()),
            ..raw()
        })
        .unwrap();
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("KEY-MATERIAL"),
            "{printed}"
        );
    }

    /// Every way a configuration can be refused, with the setting it names.
    fn refusals() -> Vec<(&'static str, Raw)> {
        let too_long = "a".repeat(65);
        let mut cases = vec![
            (
                "--subscription (PUBSUB_SUBSCRIPTION)",
                Raw {
                    subscription: None,
                    ..raw()
                },
            ),
            (
                "--subscription (PUBSUB_SUBSCRIPTION)",
                Raw {
                    subscription: Some(String::new()),
                    ..raw()
                },
            ),
            (
                "--subscription (PUBSUB_SUBSCRIPTION)",
                Raw {
                    subscription: Some("projects/p/subscriptions/a b".into()),
                    ..raw()
                },
            ),
            (
                "--project (PUBSUB_PROJECT)",
                Raw {
                    project: None,
                    ..raw()
                },
            ),
            (
                "--project (PUBSUB_PROJECT)",
                Raw {
                    project: Some(String::new()),
                    ..raw()
                },
            ),
            (
                "--project (PUBSUB_PROJECT)",
                Raw {
                    project: Some("my project".into()),
                    ..raw()
                },
            ),
            (
                "--database-url (DATABASE_URL)",
                Raw {
                    database_url: None,
                    ..raw()
                },
            ),
            (
                "--max-messages (MAX_MESSAGES)",
                Raw {
                    max_messages: i64::MIN,
                    ..raw()
                },
            ),
            (
                "--max-messages (MAX_MESSAGES)",
                Raw {
                    max_messages: i64::MAX,
                    ..raw()
                },
            ),
            (
                "--pull-timeout-ms (PULL_TIMEOUT_MS)",
                Raw {
                    pull_timeout_ms: 0,
                    ..raw()
                },
            ),
            (
                "--lock-wait-timeout (LOCK_WAIT_TIMEOUT)",
                Raw {
                    lock_wait_timeout_secs: 0,
                    ..raw()
                },
            ),
        ];
        for url in [
            "not a url hunter2",
            "postgres://purger:hunter2@db:3306/app",
            "http://purger:hunter2@db:3306/app",
            "mysql://purger:hunter2@db:3306",
            "mysql://purger:hunter2@db:3306/",
            "mysql://purger:hunter2@db:99999/app",
            "mysql://purger:hunter2@db:3306/app?bogus=1",
        ] {
            cases.push((
                "--database-url (DATABASE_URL)",
                Raw {
                    database_url: Some(url.into()),
                    ..raw()
                },
            ));
        }
        for bad in [
            "",
            "1users",
            "us'ers",
            "us`ers",
            "us\"ers",
            "users;",
            "users; DROP TABLE x",
            "a b",
            "users\n",
            "users\0",
            "db.users",
            "users--",
            "usérs",
            "ユーザー",
            "\u{0443}sers", // Cyrillic u: looks like "users"
            &too_long,
        ] {
            cases.push((
                "--table (PURGE_TABLE)",
                Raw {
                    table: bad.into(),
                    ..raw()
                },
            ));
            cases.push((
                "--id-column (PURGE_ID_COLUMN)",
                Raw {
                    id_column: bad.into(),
                    ..raw()
                },
            ));
        }
        cases
    }

    #[test]
    fn each_refusal_is_one_line_naming_its_setting_and_no_secret() {
        for (setting, raw) in refusals() {
            let what = format!(
                "{:?} {:?} {}",
                raw.subscription, raw.table, raw.max_messages
            );
            let error = Config::from_raw(Raw {
                service_account_key: Some("KEY-MATERIAL".into()),
                ..raw
            })
            .expect_err(&what);
            assert_eq!(error.setting, setting, "{what}");
            let line = error.to_string();
            assert!(line.starts_with(&format!("invalid {setting}: ")), "{line}");
            assert!(!line.contains('\n') && !line.contains('\0'), "{line:?}");
            assert!(
                !line.contains("hunter2") && !line.contains("KEY-MATERIAL"),
                "{line}"
            );
        }
    }

    #[test]
    fn the_limits_themselves_are_accepted() {
        let longest = "a".repeat(64);
        for raw in [
            Raw {
                max_messages: 1,
                ..raw()
            },
            Raw {
                max_messages: MAX_MESSAGES_LIMIT as i64,
                ..raw()
            },
            Raw {
                table: longest.clone(),
                id_column: longest,
                ..raw()
            },
            Raw {
                subscription: Some("projects/p/subscriptions/sub".into()),
                project: None,
                ..raw()
            },
        ] {
            let what = format!("{:?} {}", raw.subscription, raw.max_messages);
            assert!(Config::from_raw(raw).is_ok(), "{what}");
        }
    }
}
