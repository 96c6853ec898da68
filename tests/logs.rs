//! The log on stderr, read as a machine reads it: every line of real runs
//! (success with malformed messages, the database down, Pub/Sub down, a
//! refused configuration) parses, in `--log-format text` and `json`. In JSON,
//! each line is one object with the severity Cloud Logging reads, the message,
//! an RFC 3339 UTC time and the module; the failing run's error line carries
//! its outcome and exit code. Every run goes through `TestEnv::checked`, so
//! neither format shows the database password or the key.

mod common;

use common::{Run, TestEnv, free_port, url_on};
use serde_json::{Map, Value};

/// One parsed line of the log.
#[derive(Debug)]
struct Line {
    /// As Cloud Logging would file it: `ERROR`, `WARNING`, `INFO` or `DEBUG`.
    severity: String,
    message: String,
    /// Everything else of a JSON line (`target`, `outcome`, `exit_code`).
    fields: Map<String, Value>,
}

/// Every stderr line of a `--log-format json` run, each checked to be one
/// record Cloud Logging reads; fails on the first that is not.
fn json_lines(run: &Run) -> Vec<Line> {
    assert!(!run.stderr.is_empty(), "no log at all");
    run.stderr
        .lines()
        .map(|line| {
            let mut object: Map<String, Value> = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
            let mut text = |key: &str| match object.remove(key) {
                Some(Value::String(value)) => value,
                other => panic!("{key} is {other:?}, not a string: {line}"),
            };
            let (severity, message, time) = (text("severity"), text("message"), text("time"));
            assert!(
                ["DEBUG", "INFO", "WARNING", "ERROR"].contains(&severity.as_str()),
                "{line}"
            );
            assert!(
                time.ends_with('Z') && user_purge::timestamp::parse(&time).is_ok(),
                "time {time:?} is not RFC 3339 in UTC: {line}"
            );
            assert!(
                object["target"].as_str().is_some_and(|t| !t.is_empty()),
                "{line}"
            );
            Line {
                severity,
                message,
                fields: object,
            }
        })
        .collect()
}

/// Every stderr line of a text run, as env_logger writes it:
/// `[2026-11-26T07:04:47Z INFO  user_purge::job] message`.
fn text_lines(run: &Run) -> Vec<Line> {
    assert!(!run.stderr.is_empty(), "no log at all");
    run.stderr
        .lines()
        .map(|line| {
            let (header, message) = line
                .strip_prefix('[')
                .and_then(|rest| rest.split_once("] "))
                .unwrap_or_else(|| panic!("not an env_logger line: {line:?}"));
            let parts: Vec<&str> = header.split_whitespace().collect();
            let [time, level, target] = parts[..] else {
                panic!("not time, level and target: {line:?}");
            };
            assert!(user_purge::timestamp::parse(time).is_ok(), "{line}");
            let severity = match level {
                "ERROR" => "ERROR",
                "WARN" => "WARNING",
                "INFO" => "INFO",
                "DEBUG" | "TRACE" => "DEBUG",
                _ => panic!("unknown level {level}: {line}"),
            };
            let mut fields = Map::new();
            fields.insert("target".into(), target.into());
            fields.insert("level".into(), level.into());
            Line {
                severity: severity.to_owned(),
                message: message.to_owned(),
                fields,
            }
        })
        .collect()
}

fn errors(lines: &[Line]) -> Vec<&Line> {
    lines.iter().filter(|l| l.severity == "ERROR").collect()
}

const JSON: (&str, &str) = ("LOG_FORMAT", "json");

#[tokio::test(flavor = "multi_thread")]
async fn a_successful_run_logs_info_warnings_and_no_error_in_both_formats() {
    let env = TestEnv::new(6).await;
    // Handed back by each run, so each run meets it once.
    env.publish(vec![b"\xff not a protobuf".to_vec()]).await;
    for (json, removed) in [(true, vec![2, 4]), (false, vec![5])] {
        env.publish_removals(removed).await;
        let formats: &[(&str, &str)] = if json { &[JSON] } else { &[] };
        let run = env.run_with_env(&[], formats).await;
        run.assert_code(0);
        // stdout is unchanged: the one summary line.
        assert_eq!(run.outcome(), "completed");
        assert_eq!(run.count("malformed"), 1);
        let lines = if json {
            json_lines(&run)
        } else {
            text_lines(&run)
        };
        assert!(errors(&lines).is_empty(), "{:?}", errors(&lines));
        let malformed: Vec<&Line> = lines
            .iter()
            .filter(|l| l.message.starts_with("malformed message "))
            .collect();
        assert_eq!(malformed.len(), 1, "{}", run.stderr);
        assert_eq!(malformed[0].severity, "WARNING");
        assert!(
            lines
                .iter()
                .any(|l| l.severity == "INFO" && l.message == "completed (exit 0)"),
            "{}",
            run.stderr
        );
        // RUST_LOG=trace in every test: the job's DEBUG lines are there
        // (TRACE, which Cloud Logging lacks, is DEBUG too: unit-tested in
        // src/logging.rs, since no line of a run is TRACE).
        assert!(
            lines.iter().any(|l| l.severity == "DEBUG"),
            "{}",
            run.stderr
        );
        // The job's own lines name their module.
        assert!(
            lines.iter().any(|l| l.fields["target"]
                .as_str()
                .unwrap()
                .starts_with("user_purge")),
            "{}",
            run.stderr
        );
    }
    assert_eq!(env.users().await, [1, 3, 6]);
    env.cleanup().await;
}

/// The one error line of a failed run: ERROR, and in JSON with the outcome
/// and exit code as fields.
fn assert_error_line(run: &Run, json: bool, outcome: &str, code: i32) {
    run.assert_code(code);
    assert_eq!(run.outcome(), outcome);
    if json {
        let lines = json_lines(run);
        let errors = errors(&lines);
        assert_eq!(errors.len(), 1, "{}", run.stderr);
        assert_eq!(errors[0].fields["outcome"], outcome, "{}", run.stderr);
        assert_eq!(errors[0].fields["exit_code"], code, "{}", run.stderr);
        assert_eq!(errors[0].fields["target"], "user_purge", "{}", run.stderr);
    } else {
        let lines = text_lines(run);
        let errors = errors(&lines);
        assert_eq!(errors.len(), 1, "{}", run.stderr);
        assert!(
            errors[0]
                .message
                .ends_with(&format!(" outcome={outcome} exit_code={code}")),
            "{}",
            run.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_has_one_error_line_with_its_outcome_and_exit_code() {
    let env = TestEnv::new(3).await;
    env.publish_removals([1]).await;
    // The database down: a URL with the real password on a closed port.
    let root = format!("mysql://root@127.0.0.1:{}/x", free_port());
    let down = url_on(&root, &env.user, &env.password, &env.database);
    let no_pubsub = format!("127.0.0.1:{}", free_port());
    for json in [true, false] {
        let mut extra = vec![("DATABASE_URL", down.as_str())];
        if json {
            extra.push(JSON);
        }
        let run = env.run_with_env(&[], &extra).await;
        assert_error_line(&run, json, "database_error", 4);
        assert!(
            run.stderr.contains("cannot connect to mysql://"),
            "{}",
            run.stderr
        );

        let mut extra = vec![("PUBSUB_EMULATOR_HOST", no_pubsub.as_str())];
        if json {
            extra.push(JSON);
        }
        let run = env.run_with_env(&[], &extra).await;
        assert_error_line(&run, json, "pubsub_error", 3);
    }
    assert_eq!(env.users().await, [1, 2, 3]);
    env.cleanup().await;
}

/// A refused command line: its arguments, its variables, what the error names.
type Refused = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

/// A refused configuration exits 2 before anything runs. In text it is
/// clap's message as ever; in JSON it is one ERROR record, so that Cloud
/// Logging shows one entry with the reason, whether the format came from the
/// variable or the flag, and whether clap or the validation refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_configuration_is_one_error_record_in_json() {
    let env = TestEnv::new(1).await;
    let cases: [Refused; 4] = [
        (
            &["--max-messages=0"],
            &[JSON],
            "invalid --max-messages (MAX_MESSAGES)",
        ),
        (&["--no-such-flag"], &[JSON], "'--no-such-flag'"),
        (
            &["--log-format=json", "--table=us'ers"],
            &[],
            "invalid --table (PURGE_TABLE)",
        ),
        // A password file that is not there: named with its path.
        (
            &["--database-password-file=/no/such/password"],
            &[JSON],
            "invalid --database-password-file (DATABASE_PASSWORD_FILE): cannot read \"/no/such/password\"",
        ),
    ];
    for (args, extra, names) in cases {
        let run = env.run_with_env(args, extra).await;
        run.assert_code(2);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        let lines = json_lines(&run);
        assert_eq!(lines.len(), 1, "{}", run.stderr);
        let line = &lines[0];
        assert_eq!(line.severity, "ERROR");
        assert!(line.message.starts_with("error: "), "{}", line.message);
        assert!(line.message.contains(names), "{args:?}: {}", line.message);
        assert_eq!(line.fields["outcome"], "config_error");
        assert_eq!(line.fields["exit_code"], 2);
        // Even with the log filter off: the reason nothing ran is not a log level.
        let mut quiet = extra.to_vec();
        quiet.push(("RUST_LOG", "off"));
        let run = env.run_with_env(args, &quiet).await;
        assert_eq!(json_lines(&run).len(), 1, "{}", run.stderr);

        // In text, clap's lines as before.
        let text_args: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| !a.starts_with("--log-format"))
            .collect();
        let run = env.run_with_env(&text_args, &[]).await;
        run.assert_code(2);
        let first = run.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: ") && first.contains(names),
            "{}",
            run.stderr
        );
    }
    // A log format that cannot be read: clap's text, naming it.
    let run = env.run_with_env(&[], &[("LOG_FORMAT", "yaml")]).await;
    run.assert_code(2);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert!(run.stderr.contains("--log-format"), "{}", run.stderr);
    env.cleanup().await;
}
