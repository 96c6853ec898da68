//! The pushed metrics as Prometheus reads them: every run's gauges, and a
//! labelled family whose values need escaping, pass `promtool check metrics`
//! (no parse error, no lint problem); a real Pushgateway takes the family and
//! serves back the very label values that went in.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::SystemTime;

use common::private::PrivatePushgateway;
use serde_json::Value;
use user_purge::ops::metrics::{self, Text};
use user_purge::outcome::{Outcome, Report, Signal, Summary};

/// Label values that break the line unless escaped: a quote, a backslash
/// (also last, where it would swallow the closing quote), a line feed.
const AWKWARD: [&str; 4] = ["sessions", "a\"b", "c:\\temp\\", "two\nlines"];

/// A family like the per-table gauge the next issues add.
fn labelled(values: &[&str]) -> String {
    let mut text = Text::default();
    text.labelled_gauge(
        "user_purge_rows_affected",
        "Rows the last run deleted, per table.",
        "table",
        values.iter().zip(1..).map(|(v, n)| (*v, f64::from(n))),
    );
    text.into_string()
}

/// promtool's exit code (0 fine, 1 a parse error, 3 a lint problem) and output.
fn promtool_check(text: &str) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool must be installed (apt-get install prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), said)
}

#[test]
fn every_outcome_renders_metrics_promtool_accepts() {
    let outcomes = [
        Outcome::Completed,
        Outcome::Unsuitable(anyhow::anyhow!("no retention")),
        Outcome::PubSubFailed(anyhow::anyhow!("down")),
        Outcome::DatabaseFailed(anyhow::anyhow!("down")),
        Outcome::AckFailed(anyhow::anyhow!("down")),
        Outcome::Interrupted(Signal::Terminate),
    ];
    for outcome in outcomes {
        let name = outcome.name();
        let report = Report {
            exit_by: None,
            outcome,
            summary: Summary {
                received: 3,
                deleted_rows: 2,
                elapsed_ms: 1_234,
                ..Summary::default()
            },
        };
        let text = metrics::render(&report, SystemTime::now());
        let (code, said) = promtool_check(&text);
        assert_eq!(code, 0, "{name}: promtool said:\n{said}\non:\n{text}");
    }
}

#[test]
fn a_labelled_family_with_awkward_values_passes_promtool() {
    let text = labelled(&AWKWARD);
    let (code, said) = promtool_check(&text);
    assert_eq!(code, 0, "promtool said:\n{said}\non:\n{text}");

    // The same lines with the values unescaped are what promtool refuses: the
    // check above can fail.
    for raw in &AWKWARD[1..] {
        let broken = format!("user_purge_rows_affected{{table=\"{raw}\"}} 1\n");
        let (code, said) = promtool_check(&broken);
        assert_eq!(code, 1, "{raw:?} unescaped was not refused: {said}");
        assert!(said.contains("parsing error"), "{said}");
    }
}

#[tokio::test]
async fn the_pushgateway_serves_back_the_label_values_that_went_in() {
    let gateway = PrivatePushgateway::start().await;
    let response = ureq::post(&metrics::group_url(&gateway.url, "purge-sub"))
        .header("Content-Type", metrics::CONTENT_TYPE)
        .send(labelled(&AWKWARD))
        .expect("the Pushgateway refused the text");
    assert_eq!(response.status(), 200);

    let served: Value = serde_json::from_str(&gateway.get("/api/v1/metrics")).unwrap();
    let family = served["data"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|group| group.get("user_purge_rows_affected"))
        .unwrap_or_else(|| panic!("no user_purge_rows_affected in {served}"));
    assert_eq!(family["help"], "Rows the last run deleted, per table.");
    let mut samples: Vec<(String, String)> = family["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["labels"]["table"].as_str().unwrap().to_owned(),
                m["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    samples.sort();
    let mut sent: Vec<(String, String)> = AWKWARD
        .iter()
        .zip(1..)
        .map(|(v, n)| (v.to_string(), n.to_string()))
        .collect();
    sent.sort();
    assert_eq!(samples, sent);
}
