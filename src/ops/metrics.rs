//! Run metrics for batch-job alerting, in the Prometheus text format, pushed
//! to a Pushgateway (ureq): the only module that imports it.
//!
//! One group per job and instance, never per run, so the gateway keeps one
//! series each. The push is a POST, which replaces only the metrics it names:
//! a failed run does not push `user_purge_last_success_timestamp_seconds`, so
//! the gateway keeps the last success and a staleness alert fires.
//!
//! The text is written here ([`Text`]): a handful of gauges, written once per
//! run, need no registry; the escaping the format asks for is a few lines.
//! `tests/metrics_format.rs` checks it with `promtool` and a real Pushgateway.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::outcome::Report;

/// The `job` label of the group.
const JOB: &str = "user-purge";

/// What the text is pushed as: the Prometheus text format, which
/// [`Text`] writes and the Pushgateway reads.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// A push may take this long; a stopping run's push ends by its exit
/// deadline ([`crate::outcome::ExitBy::metrics`]) instead, when that is sooner.
const PUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// The metrics of one run, in the Prometheus text format.
pub fn render(report: &Report, finished: SystemTime) -> String {
    let now = finished
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let s = &report.summary;
    let exit = report.outcome.exit();
    let mut metrics = vec![
        (
            "user_purge_last_run_timestamp_seconds",
            "When the last run ended.",
            now,
        ),
        (
            "user_purge_duration_seconds",
            "How long the last run took.",
            s.elapsed_ms as f64 / 1000.0,
        ),
        (
            "user_purge_messages_received",
            "Messages the last run received.",
            s.received as f64,
        ),
        (
            "user_purge_users_deleted",
            "Rows the last run's DELETE removed.",
            s.deleted_rows as f64,
        ),
        (
            "user_purge_users_refused",
            "Users the database refused to erase in the last run.",
            s.refused as f64,
        ),
        (
            "user_purge_users_carried_over",
            "Users the last run left for the next one (--max-duration, a lagging replica).",
            s.carried_over as f64,
        ),
        (
            "user_purge_chunks",
            "Committed chunks of the chunked entries in the last run.",
            s.chunks as f64,
        ),
        (
            "user_purge_replica_wait_seconds",
            "How long the last run waited for lagging replicas.",
            s.replica_wait_ms as f64 / 1000.0,
        ),
        (
            "user_purge_rounds",
            "Rounds of receive, erase and acknowledge in the last run.",
            s.rounds as f64,
        ),
        (
            "user_purge_messages_malformed",
            "Malformed messages the last run handed back.",
            s.malformed as f64,
        ),
        (
            "user_purge_messages_acked",
            "Messages the last run acknowledged.",
            s.acked as f64,
        ),
        (
            "user_purge_exit_code",
            "The last run's exit code.",
            f64::from(exit.code()),
        ),
    ];
    if exit.code() == 0 {
        metrics.push((
            "user_purge_last_success_timestamp_seconds",
            "When the last successful run ended.",
            now,
        ));
    }
    let mut text = Text::default();
    for (name, help, value) in metrics {
        text.gauge(name, help, value);
    }
    text.labelled_gauge(
        "user_purge_rows_affected",
        "Rows the last run deleted or redacted, per table of the erasure map.",
        "table",
        s.tables.iter().map(|(table, rows)| (table, rows as f64)),
    );
    text.into_string()
}

/// Gauges in the Prometheus text format 0.0.4, the text the Pushgateway reads.
/// Names are the caller's constants; help text and label values, which may
/// hold anything, are escaped.
#[derive(Debug, Default)]
pub struct Text(String);

impl Text {
    /// A gauge without labels: `name value`.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, help);
        let _ = writeln!(self.0, "{name} {value}");
    }

    /// A family of gauges told apart by one label, one line per sample:
    /// `user_purge_rows_affected{table="sessions"} 12`. Without samples it
    /// writes nothing, not even the header: a family needs a sample to push.
    pub fn labelled_gauge<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        samples: impl IntoIterator<Item = (&'a str, f64)>,
    ) {
        let mut samples = samples.into_iter().peekable();
        if samples.peek().is_none() {
            return;
        }
        self.header(name, help);
        for (label_value, value) in samples {
            let label_value = escape(label_value, Quoted::Yes);
            let _ = writeln!(self.0, "{name}{{{label}=\"{label_value}\"}} {value}");
        }
    }

    /// The text, ready to push.
    pub fn into_string(self) -> String {
        self.0
    }

    fn header(&mut self, name: &str, help: &str) {
        let help = escape(help, Quoted::No);
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} gauge");
    }
}

/// Whether the text goes between double quotes (a label value) or not (help).
#[derive(Clone, Copy, PartialEq)]
enum Quoted {
    Yes,
    No,
}

/// Backslash and line feed escaped, and `"` inside quotes: the format's only
/// escapes. A line feed left raw would end the line; `\"` in help text is an
/// error to the parser.
fn escape(text: &str, quoted: Quoted) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quoted == Quoted::Yes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// The group's URL: `<gateway>/metrics/job/user-purge/instance@base64/<instance>`.
/// Base64 lets the instance hold any character, `/` included.
pub fn group_url(gateway: &str, instance: &str) -> String {
    format!(
        "{}/metrics/job/{JOB}/instance@base64/{}",
        gateway.trim_end_matches('/'),
        base64url(instance.as_bytes())
    )
}

/// Pushes the run's metrics. A failure is returned for the log only: it never
/// changes the exit code or the acknowledgements.
pub fn push(gateway: &str, instance: &str, report: &Report) -> Result<(), String> {
    let timeout = match report.exit_by {
        Some(exit_by) => exit_by
            .metrics()
            .saturating_duration_since(tokio::time::Instant::now())
            .min(PUSH_TIMEOUT),
        None => PUSH_TIMEOUT,
    };
    if timeout.is_zero() {
        return Err("the stopping run's exit budget is spent".to_owned());
    }
    let body = render(report, SystemTime::now());
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .new_agent();
    agent
        .post(&group_url(gateway, instance))
        .header("Content-Type", CONTENT_TYPE)
        .send(body)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// RFC 4648 base64 with the URL alphabet and no padding, as the Pushgateway reads it.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Outcome, Summary};

    fn report(outcome: Outcome) -> Report {
        Report {
            exit_by: None,
            outcome,
            summary: Summary {
                received: 12,
                deleted_rows: 3,
                tables: {
                    let mut tables = crate::outcome::Tables::default();
                    tables.add("sessions", 7);
                    tables.add("users", 3);
                    tables
                },
                malformed: 2,
                acked: 10,
                refused: 1,
                rounds: 2,
                elapsed_ms: 1_500,
                ..Summary::default()
            },
        }
    }

    #[test]
    fn a_success_pushes_its_timestamp_and_counts() {
        let text = render(
            &report(Outcome::Completed),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        );
        for line in [
            "user_purge_last_run_timestamp_seconds 1700000000",
            "user_purge_last_success_timestamp_seconds 1700000000",
            "user_purge_duration_seconds 1.5",
            "user_purge_messages_received 12",
            "user_purge_users_deleted 3",
            "user_purge_messages_malformed 2",
            "user_purge_messages_acked 10",
            "user_purge_exit_code 0",
            "# TYPE user_purge_exit_code gauge",
            "user_purge_users_refused 1",
            "user_purge_rounds 2",
            "# TYPE user_purge_rows_affected gauge",
            "user_purge_rows_affected{table=\"sessions\"} 7",
            "user_purge_rows_affected{table=\"users\"} 3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn a_failure_does_not_push_a_success_timestamp() {
        let text = render(
            &report(Outcome::DatabaseFailed(anyhow::anyhow!("down"))),
            SystemTime::now(),
        );
        assert!(!text.contains("user_purge_last_success_timestamp_seconds"));
        assert!(text.contains("user_purge_exit_code 4\n"));
    }

    #[test]
    fn a_labelled_gauge_has_one_line_per_label_value_escaped() {
        let mut text = Text::default();
        text.labelled_gauge(
            "user_purge_rows_affected",
            "Rows the last run deleted, per table.",
            "table",
            [("sessions", 12.0), ("a\"b\\c\nd", 0.5)],
        );
        assert_eq!(
            text.into_string(),
            "# HELP user_purge_rows_affected Rows the last run deleted, per table.\n\
             # TYPE user_purge_rows_affected gauge\n\
             user_purge_rows_affected{table=\"sessions\"} 12\n\
             user_purge_rows_affected{table=\"a\\\"b\\\\c\\nd\"} 0.5\n"
        );
    }

    #[test]
    fn a_labelled_gauge_without_samples_writes_nothing() {
        let mut text = Text::default();
        text.labelled_gauge("user_purge_rows_affected", "Rows.", "table", []);
        assert_eq!(text.into_string(), "");
    }

    #[test]
    fn help_escapes_backslash_and_line_feed_but_not_quotes() {
        let mut text = Text::default();
        text.gauge("user_purge_x", "a \"b\" c\\d\ne", 1.0);
        assert_eq!(
            text.into_string(),
            "# HELP user_purge_x a \"b\" c\\\\d\\ne\n# TYPE user_purge_x gauge\nuser_purge_x 1\n"
        );
    }

    #[test]
    fn the_group_is_job_and_instance_in_base64() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"a/b?"), "YS9iPw");
        assert_eq!(
            group_url("http://gw:9091/", "purge-sub"),
            "http://gw:9091/metrics/job/user-purge/instance@base64/cHVyZ2Utc3Vi"
        );
    }
}
