//! The example alerting rules (`deploy/prometheus/alerts.yml`) are valid, fire
//! when they should and not before (`promtool test rules`), and name only
//! metrics the job pushes.

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    let output = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool must be installed (apt-get install prometheus)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_are_valid_and_fire_as_tested() {
    assert!(promtool(&["check", "rules", "alerts.yml"]).contains("5 rules found"));
    assert!(promtool(&["test", "rules", "alerts_test.yml"]).contains("SUCCESS"));
}

#[test]
fn the_alert_rules_use_only_pushed_metrics() {
    let rules = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yml"),
    )
    .unwrap();
    let pushed = user_purge::ops::metrics::render(
        &user_purge::outcome::Report {
            exit_by: None,
            outcome: user_purge::outcome::Outcome::Completed,
            summary: Default::default(),
        },
        std::time::SystemTime::now(),
    );
    let mut named = 0;
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("user_purge_") {
            named += 1;
            assert!(
                pushed.contains(&format!("\n{word} ")),
                "{word} is not a metric the job pushes"
            );
        }
    }
    assert!(named >= 3);
}
