//! Bad configuration, through the real binary: every mistake exits 2 with one
//! line naming the setting, prints nothing on stdout, never shows the database
//! password or the service-account key, and contacts nothing.
//!
//! Each run gets settings that would work but for the one under test, pointing
//! at two listening sockets of this process that stand in for the emulator and
//! the database; after the run, neither may have seen a connection. So these
//! tests need neither the emulator nor MariaDB.

mod common;

use common::stand_ins::{Bad, PASSWORD, StandIns, refuse_all};
use common::{KEY_MARKER, Run};

/// Where a configuration error names the setting, e.g. in
/// `error: invalid --table (PURGE_TABLE): ...`.
fn config(setting: &str) -> String {
    format!("invalid {setting}: ")
}

/// Where clap names a flag whose value it cannot parse.
fn unparsable(flag: &str) -> String {
    format!("for '{flag}")
}

/// One bad setting, whose error line must contain `names`.
fn case(what: impl Into<String>, names: String) -> Bad {
    Bad::new(what).contains(names)
}

#[tokio::test]
async fn a_missing_required_setting_is_named() {
    let services = StandIns::new();
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
    refuse_all(&services, cases).await;
}

#[tokio::test]
async fn a_malformed_database_url_is_named_without_its_password() {
    let services = StandIns::new();
    let names = config("--database-url (DATABASE_URL)");
    let urls = [
        ("not a URL", format!("purger {PASSWORD} 127.0.0.1 app")),
        (
            "no scheme",
            format!("purger:{PASSWORD}@{}/app", services.emulator_host()),
        ),
        (
            "postgres:// with no database",
            services.url_with("postgres", ""),
        ),
        (
            "postgres:// with a bad sslmode",
            services.url_with("postgres", "/app?sslmode=maybe"),
        ),
        (
            "postgres:// with an unknown parameter",
            services.url_with("postgresql", "/app?bogus=1"),
        ),
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
    refuse_all(&services, cases).await;
}

#[tokio::test]
async fn an_identifier_that_is_not_plain_is_named() {
    let services = StandIns::new();
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
    refuse_all(&services, cases).await;
}

#[tokio::test]
async fn max_messages_out_of_range_or_not_a_number_is_named() {
    let services = StandIns::new();
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
    refuse_all(&services, cases).await;
}

#[tokio::test]
async fn other_settings_out_of_range_are_named() {
    let services = StandIns::new();
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
    refuse_all(&services, cases).await;
}

#[tokio::test]
async fn a_database_url_in_the_wrong_place_does_not_show_its_password() {
    let services = StandIns::new();
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
    refuse_all(&services, cases).await;
}

#[tokio::test]
async fn help_shows_no_secret_from_the_environment() {
    let services = StandIns::new();
    let mut command = services.command(&["--help"]);
    let help = Run::from(command.output().await.unwrap());
    help.assert_code(0);
    assert!(help.stdout.contains("DATABASE_URL"), "{}", help.stdout);
    help.assert_no_secret(&[PASSWORD, KEY_MARKER]);
    assert!(help.stderr.is_empty());
    assert!(services.contacted().is_empty());
}

/// The check that a run "contacted nothing" is worth something only if a run
/// that gets as far as contacting is seen doing it.
#[tokio::test]
async fn a_valid_configuration_does_contact_the_services() {
    let services = StandIns::new();
    let mut child = services.command(&[] as &[&str]).spawn().unwrap();
    // The first connection to either stand-in, as it comes.
    services
        .wait_for_contact(&mut child, &["the emulator", "the database"])
        .await;
    child.kill().await.unwrap();
}
