//! Bad configuration, through the real binary: every mistake exits 2 with one
//! line naming the setting, prints nothing on stdout, never shows the database
//! password or the service-account key, and contacts nothing.
//!
//! Each run gets settings that would work but for the one under test, pointing
//! at two listening sockets of this process that stand in for the emulator and
//! the database; after the run, neither may have seen a connection. So these
//! tests need neither the emulator nor MariaDB.

mod common;

use std::net::TcpListener;

use common::{KEY_MARKER, job_command};

/// In every database URL, so that any output showing it is caught.
const PASSWORD: &str = "Pw-bad-input-7Qx";

/// Where a configuration error names the setting, e.g. in
/// `error: invalid --table (PURGE_TABLE): ...`.
fn config(setting: &str) -> String {
    format!("invalid {setting}: ")
}

/// Where clap names a flag whose value it cannot parse.
fn unparsable(flag: &str) -> String {
    format!("for '{flag}")
}

/// Two sockets standing in for the services: a run that contacts either one
/// leaves a connection behind in its backlog.
struct Services {
    emulator: TcpListener,
    database: TcpListener,
}

impl Services {
    fn new() -> Services {
        let listen = || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            listener
        };
        Services {
            emulator: listen(),
            database: listen(),
        }
    }

    fn emulator_host(&self) -> String {
        self.emulator.local_addr().unwrap().to_string()
    }

    /// A valid database URL on the stand-in, with the password.
    fn url(&self) -> String {
        self.url_with("mysql", "/app")
    }

    fn url_with(&self, scheme: &str, rest: &str) -> String {
        let port = self.database.local_addr().unwrap().port();
        format!("{scheme}://purger:{PASSWORD}@127.0.0.1:{port}{rest}")
    }

    /// Settings that work: the emulator, a full subscription name, the URL,
    /// a key whose material must not show either, and every log line on.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PUBSUB_EMULATOR_HOST", self.emulator_host()),
            (
                "PUBSUB_SUBSCRIPTION",
                "projects/test-project/subscriptions/purge-sub".into(),
            ),
            ("DATABASE_URL", self.url()),
            (
                "PUBSUB_SERVICE_ACCOUNT",
                format!(r#"{{"type":"service_account","private_key_id":"{KEY_MARKER}"}}"#),
            ),
            ("RUST_LOG", "trace".into()),
        ]
    }

    /// Which of the two saw a connection since the last call.
    fn contacted(&self) -> Vec<&'static str> {
        let mut contacted = Vec::new();
        while self.emulator.accept().is_ok() {
            contacted.push("the emulator");
        }
        while self.database.accept().is_ok() {
            contacted.push("the database");
        }
        contacted
    }
}

/// One bad setting.
struct Case {
    /// What is wrong, for the failure message.
    what: String,
    args: Vec<String>,
    /// Variables to set (`Some`) or to remove (`None`) on top of the valid ones.
    env: Vec<(&'static str, Option<String>)>,
    /// What the error line must contain.
    names: String,
}

fn case(what: impl Into<String>, names: String) -> Case {
    Case {
        what: what.into(),
        args: Vec::new(),
        env: Vec::new(),
        names,
    }
}

impl Case {
    fn arg(mut self, arg: impl Into<String>) -> Case {
        self.args.push(arg.into());
        self
    }

    fn set(mut self, key: &'static str, value: impl Into<String>) -> Case {
        self.env.push((key, Some(value.into())));
        self
    }

    fn unset(mut self, key: &'static str) -> Case {
        self.env.push((key, None));
        self
    }
}

/// Runs each case and returns every way it broke the promise, so that one
/// failure shows them all.
async fn check(services: &Services, cases: Vec<Case>) {
    let mut failures = Vec::new();
    for case in &cases {
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let mut command = job_command(&args);
        command.env_remove("DATABASE_CA_FILE");
        for (key, value) in services.env() {
            command.env(key, value);
        }
        for (key, value) in &case.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        let output = command.output().await.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut wrong = Vec::new();
        if output.status.code() != Some(2) {
            wrong.push(format!("exit {:?}, not 2", output.status.code()));
        }
        if !stdout.is_empty() {
            wrong.push("something on stdout".to_owned());
        }
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|line| line.to_lowercase().contains("error"))
            .collect();
        match errors[..] {
            [line] if line.starts_with("error: ") && line.contains(&case.names) => {}
            _ => wrong.push(format!("not one error line naming {:?}", case.names)),
        }
        // Besides that line, only clap's pointers: no log line, no second
        // message.
        let others = stderr.lines().filter(|line| {
            !(line.is_empty()
                || line.starts_with("error: ")
                || line.starts_with("Usage: ")
                || line.trim_start().starts_with("user-purge ")
                || line.starts_with("  tip: ")
                || line.starts_with("  [possible values: ")
                || *line == "For more information, try '--help'.")
        });
        if let Some(line) = others.into_iter().next() {
            wrong.push(format!("an unexpected line {line:?}"));
        }
        for secret in [PASSWORD, KEY_MARKER] {
            if stdout.contains(secret) || stderr.contains(secret) {
                wrong.push(format!("shows {secret}"));
            }
        }
        for service in services.contacted() {
            wrong.push(format!("contacted {service}"));
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{}: {}\n  args {:?}\n  stdout {stdout:?}\n  stderr {stderr:?}",
                case.what,
                wrong.join("; "),
                case.args
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases broke the promise:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn a_missing_required_setting_is_named() {
    let services = Services::new();
    let subscription = config("--subscription (PUBSUB_SUBSCRIPTION)");
    let database_url = config("--database-url (DATABASE_URL)");
    let project = config("--project (PUBSUB_PROJECT)");
    let cases = vec![
        case("no subscription", subscription.clone()).unset("PUBSUB_SUBSCRIPTION"),
        case("empty subscription", subscription.clone()).set("PUBSUB_SUBSCRIPTION", ""),
        case("empty --subscription", subscription.clone()).arg("--subscription="),
        case("no database URL", database_url.clone()).unset("DATABASE_URL"),
        case("empty database URL", database_url.clone()).set("DATABASE_URL", ""),
        case("bare subscription, no project", project.clone())
            .set("PUBSUB_SUBSCRIPTION", "purge-sub"),
        case("bare subscription, empty project", project.clone())
            .set("PUBSUB_SUBSCRIPTION", "purge-sub")
            .set("PUBSUB_PROJECT", ""),
        case("bare --subscription, no project", project.clone()).arg("--subscription=purge-sub"),
        case("nothing at all", subscription.clone())
            .unset("PUBSUB_SUBSCRIPTION")
            .unset("DATABASE_URL")
            .unset("PUBSUB_EMULATOR_HOST"),
        case("a project id with a space", project.clone())
            .set("PUBSUB_SUBSCRIPTION", "purge-sub")
            .set("PUBSUB_PROJECT", "my project"),
        case("a subscription that is a topic", subscription.clone())
            .set("PUBSUB_SUBSCRIPTION", "projects/test-project/topics/purge"),
    ];
    check(&services, cases).await;
}

#[tokio::test]
async fn a_malformed_database_url_is_named_without_its_password() {
    let services = Services::new();
    let names = config("--database-url (DATABASE_URL)");
    let urls = [
        ("not a URL", format!("purger {PASSWORD} 127.0.0.1 app")),
        (
            "no scheme",
            format!("purger:{PASSWORD}@{}/app", services.emulator_host()),
        ),
        ("postgres://", services.url_with("postgres", "/app")),
        ("http://", services.url_with("http", "/app")),
        ("mariadb://", services.url_with("mariadb", "/app")),
        ("no database", services.url_with("mysql", "")),
        ("an empty database", services.url_with("mysql", "/")),
        (
            "an unknown parameter",
            services.url_with("mysql", "/app?bogus=1"),
        ),
        (
            "a parameter's bad value",
            services.url_with("mysql", "/app?require_ssl=maybe"),
        ),
        (
            "a port out of range",
            format!("mysql://purger:{PASSWORD}@127.0.0.1:99999/app"),
        ),
        ("no host", format!("mysql://purger:{PASSWORD}@/app")),
    ];
    let mut cases = Vec::new();
    for (what, url) in urls {
        cases.push(case(format!("DATABASE_URL: {what}"), names.clone()).set("DATABASE_URL", &url));
        cases.push(
            case(format!("--database-url: {what}"), names.clone())
                .arg(format!("--database-url={url}")),
        );
    }
    check(&services, cases).await;
}

#[tokio::test]
async fn an_identifier_that_is_not_plain_is_named() {
    let services = Services::new();
    let values = [
        "us'ers",
        "us`ers",
        "us\"ers",
        "users;",
        "users; DROP TABLE users",
        "users`; DROP TABLE users; --",
        "us ers",
        "users\nid",
        "users\t",
        "app.users",
        "usérs",
        "ユーザー",
        "\u{0443}sers", // a Cyrillic u: looks like "users"
        "1users",
        "-users",
        // Not "": an empty table or column counts as unset and takes its
        // default, as every setting does (tests/config_sources.rs).
        &"u".repeat(65),
        &"u".repeat(1_000),
    ];
    let mut cases = Vec::new();
    for (flag, variable) in [
        ("--table", "PURGE_TABLE"),
        ("--id-column", "PURGE_ID_COLUMN"),
    ] {
        let names = config(&format!("{flag} ({variable})"));
        for value in values {
            cases.push(
                case(format!("{flag} {value:?}"), names.clone()).arg(format!("{flag}={value}")),
            );
            cases.push(case(format!("{variable} {value:?}"), names.clone()).set(variable, value));
        }
    }
    check(&services, cases).await;
}

#[tokio::test]
async fn max_messages_out_of_range_or_not_a_number_is_named() {
    let services = Services::new();
    let out_of_range = config("--max-messages (MAX_MESSAGES)");
    let not_a_number = unparsable("--max-messages <MAX_MESSAGES>");
    let mut cases = Vec::new();
    for (value, names) in [
        ("0", &out_of_range),
        ("-1", &out_of_range),
        ("1000001", &out_of_range),
        ("9223372036854775807", &out_of_range),
        ("99999999999999999999", &not_a_number),
        ("ten", &not_a_number),
        ("1.5", &not_a_number),
        ("1e3", &not_a_number),
        ("", &not_a_number),
    ] {
        cases.push(
            case(format!("--max-messages {value:?}"), names.clone())
                .arg(format!("--max-messages={value}")),
        );
        // An empty variable counts as unset (tests/config_sources.rs); an
        // empty flag is still a value that does not parse.
        if !value.is_empty() {
            cases.push(
                case(format!("MAX_MESSAGES {value:?}"), names.clone()).set("MAX_MESSAGES", value),
            );
        }
    }
    // As two arguments too: a negative number is the flag's value, not a flag.
    cases.push(
        case("--max-messages -1", out_of_range.clone())
            .arg("--max-messages")
            .arg("-1"),
    );
    check(&services, cases).await;
}

#[tokio::test]
async fn other_settings_out_of_range_are_named() {
    let services = Services::new();
    let cases = vec![
        case(
            "PULL_TIMEOUT_MS 0",
            config("--pull-timeout-ms (PULL_TIMEOUT_MS)"),
        )
        .set("PULL_TIMEOUT_MS", "0"),
        case(
            "PULL_TIMEOUT_MS -1",
            unparsable("--pull-timeout-ms <PULL_TIMEOUT_MS>"),
        )
        .set("PULL_TIMEOUT_MS", "-1"),
        case(
            "LOCK_WAIT_TIMEOUT 0",
            config("--lock-wait-timeout (LOCK_WAIT_TIMEOUT)"),
        )
        .set("LOCK_WAIT_TIMEOUT", "0"),
        case("DRY_RUN maybe", unparsable("--dry-run")).set("DRY_RUN", "maybe"),
        case("an unknown flag", "'--no-such-flag'".into()).arg("--no-such-flag"),
    ];
    check(&services, cases).await;
}

#[tokio::test]
async fn a_database_url_in_the_wrong_place_does_not_show_its_password() {
    let services = Services::new();
    let url = services.url();
    let cases = vec![
        // A stray argument: clap echoes it, with the password hidden.
        case("the URL as an argument", "'mysql://purger:***@".into()).arg(&url),
        case("a misspelt flag", "'--database_url'".into()).arg(format!("--database_url={url}")),
        case(
            "the URL as the subscription",
            config("--subscription (PUBSUB_SUBSCRIPTION)"),
        )
        .set("PUBSUB_SUBSCRIPTION", &url),
        case("the URL as the table", config("--table (PURGE_TABLE)")).arg(format!("--table={url}")),
        case(
            "the URL as --max-messages",
            unparsable("--max-messages <MAX_MESSAGES>"),
        )
        .set("MAX_MESSAGES", &url),
    ];
    check(&services, cases).await;
}

#[tokio::test]
async fn help_shows_no_secret_from_the_environment() {
    let services = Services::new();
    let mut command = job_command(&["--help"]);
    for (key, value) in services.env() {
        command.env(key, value);
    }
    let output = command.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout.contains("DATABASE_URL"), "{stdout}");
    for secret in [PASSWORD, KEY_MARKER] {
        assert!(!stdout.contains(secret), "--help shows {secret}");
    }
    assert!(output.stderr.is_empty());
    assert!(services.contacted().is_empty());
}

/// The check that a run "contacted nothing" is worth something only if a run
/// that gets as far as contacting is seen doing it.
#[tokio::test]
async fn a_valid_configuration_does_contact_the_services() {
    let services = Services::new();
    let mut command = job_command(&[]);
    command.env_remove("DATABASE_CA_FILE");
    for (key, value) in services.env() {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    // The first connection to either stand-in, as it comes.
    let listen = |listener: &TcpListener| {
        tokio::net::TcpListener::from_std(listener.try_clone().unwrap()).unwrap()
    };
    let (emulator, database) = (listen(&services.emulator), listen(&services.database));
    let contacted = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        tokio::select! {
            _ = emulator.accept() => "the emulator",
            _ = database.accept() => "the database",
        }
    })
    .await;
    child.kill().await.unwrap();
    assert!(
        contacted.is_ok(),
        "a valid configuration contacted neither stand-in within 20 s"
    );
}
