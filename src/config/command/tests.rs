//! The command line, end to end: what clap accepts and refuses, what
//! validation refuses, and what `--help` and the README say of the settings.

use std::time::Duration;

use super::*;
use crate::config::cli::{help_text, label, settings};
use crate::config::{Config, Credentials, Engine};
use crate::outcome::Exit;

fn run(args: &[&str]) -> Result<Command, Print> {
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
        Ok(Command::Run(config)) => *config,
        Err(Print { text, .. }) => panic!("{extra:?} was refused: {text}"),
        _ => panic!("{extra:?} is not a run"),
    }
}

/// The text and code of a refused command line.
fn refused(extra: &[&str]) -> (String, u8) {
    match parse(with(extra).into_iter().map(Into::into)).1 {
        Err(Print {
            text,
            outcome,
            to_stderr: true,
        }) => (text, outcome.exit().code()),
        Err(Print { text, .. }) => panic!("{extra:?} printed to stdout: {text}"),
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
    let readme = include_str!("../../../README.md");
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
    let exit = |args: &[&str]| match run(args) {
        Err(Print {
            outcome, to_stderr, ..
        }) => (outcome.exit(), to_stderr),
        Ok(_) => panic!("{args:?} ran"),
    };
    assert_eq!(
        exit(&["user-purge", "--no-such-flag"]),
        (Exit::Config, true)
    );
    assert_eq!(exit(&["user-purge", "--help"]), (Exit::Success, false));
    assert_eq!(
        exit(&["user-purge", "--max-messages", "ten"]),
        (Exit::Config, true)
    );
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
        (entries[0].table.as_str(), entries[0].column.as_str()),
        ("users", "id")
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
        "postgres://purger:Pw-Never-Shown@db:5432",
        "postgresql://purger:Pw-Never-Shown@db:5432/app?sslmode=sometimes",
        "postgres://purger:Pw-Never-Shown@db:notaport/app",
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
        "a.b.users",
        "db.us`ers",
        "\u{0443}sers",
        &too_long,
    ] {
        cases.push((one("--table", bad), "--table (PURGE_TABLE)"));
        cases.push((one("--id-column", bad), "--id-column (PURGE_ID_COLUMN)"));
    }
    // A table may be named with its schema, on PostgreSQL only; a column never.
    cases.push((
        one("--id-column", "users.id"),
        "--id-column (PURGE_ID_COLUMN)",
    ));
    cases.push((one("--table", "app.users"), "--table (PURGE_TABLE)"));
    cases.push((
        one("--erasure-record", "audit.erased"),
        "--erasure-record (ERASURE_RECORD)",
    ));
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
        let Err(Print {
            text,
            outcome: Outcome::Misconfigured(_),
            to_stderr: true,
        }) = run(&args)
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
    let Err(Print {
        text,
        outcome: Outcome::Completed,
        ..
    }) = run(&["user-purge", "--help"])
    else {
        panic!("--help failed");
    };
    assert!(text.contains("mysql://user:password@host"), "{text}");
}

#[test]
fn the_url_s_scheme_chooses_the_engine_and_a_replica_must_match_it() {
    let pg = "--database-url=postgres://purger:Pw-Never-Shown@db:5432/app?sslmode=verify-full";
    assert_eq!(config(&[pg]).database.engine, Engine::Postgres);
    let pg = "--database-url=postgresql://purger@db/app";
    assert_eq!(config(&[pg]).database.engine, Engine::Postgres);
    assert_eq!(config(&[]).database.engine, Engine::MySql);
    let replica = "--replica-url=postgres://purger@replica:5432/app";
    assert_eq!(config(&[pg, replica]).database.replicas.len(), 1);
    let (text, code) = refused(&[replica]);
    assert_eq!(code, 2, "{text}");
    assert!(error_line(&text).contains("the primary's engine"), "{text}");
}
