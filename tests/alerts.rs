//! The example alerting rules (`deploy/prometheus/alerts.yml`) are valid, fire
//! when they should and not before (`promtool test rules`), each tested both
//! ways, name only metrics the job or `verify` pushes, under the job each
//! pushes to, and are the alerts docs/operations.md lists.

use std::collections::{BTreeMap, BTreeSet};
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

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The alert name of each rule of alerts.yml, in order (a name may have
/// several rules).
fn alert_rules() -> Vec<String> {
    read("deploy/prometheus/alerts.yml")
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert:"))
        .map(|name| name.trim().to_owned())
        .collect()
}

#[test]
fn the_alert_rules_are_valid_and_fire_as_tested() {
    let rules = alert_rules();
    // promtool counts every rule it loaded: all of them are the file's.
    let checked = promtool(&["check", "rules", "alerts.yml"]);
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", rules.len())),
        "{checked}"
    );
    assert!(promtool(&["test", "rules", "alerts_test.yml"]).contains("SUCCESS"));
}

#[test]
fn every_alert_is_tested_firing_and_not_firing() {
    // alertname -> (tested quiet, tested firing), from each
    // `alertname:` line and the `exp_alerts:` line after it.
    let mut tested: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in read("deploy/prometheus/alerts_test.yml").lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("alertname:") {
            current = Some(name.trim().to_owned());
        } else if let Some(expected) = line.strip_prefix("exp_alerts:") {
            let name = current.take().expect("exp_alerts: after an alertname:");
            let entry = tested.entry(name).or_default();
            if expected.trim() == "[]" {
                entry.0 = true;
            } else {
                entry.1 = true;
            }
        }
    }
    let names: BTreeSet<String> = alert_rules().into_iter().collect();
    for name in &names {
        assert_eq!(
            tested.get(name),
            Some(&(true, true)),
            "{name}: alerts_test.yml must test it both quiet and firing"
        );
    }
    for name in tested.keys() {
        assert!(
            names.contains(name),
            "alerts_test.yml tests {name}, which alerts.yml lacks"
        );
    }
}

#[test]
fn the_alert_rules_use_only_pushed_metrics() {
    let rules = read("deploy/prometheus/alerts.yml");
    let pushed = user_purge::ops::metrics::render(
        &user_purge::outcome::Report {
            exit_by: None,
            outcome: user_purge::outcome::Outcome::Completed,
            summary: Default::default(),
        },
        std::time::SystemTime::now(),
    );
    let verified = user_purge::ops::metrics::render_verify(0, std::time::SystemTime::now());
    let mut named = BTreeSet::new();
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("user_purge_") {
            named.insert(word);
            let metric = format!("\n{word} ");
            assert!(
                pushed.contains(&metric) || verified.contains(&metric),
                "{word} is not a metric the job or verify pushes"
            );
        }
    }
    assert!(named.len() >= 5, "{named:?}");
    for metric in [
        "user_purge_verify_findings",
        "user_purge_verify_last_run_timestamp_seconds",
    ] {
        assert!(named.contains(metric), "alerts.yml does not use {metric}");
    }

    // The `job` a rule names is the one its metrics are pushed under (a
    // Pushgateway scraped with honor_labels).
    for (url, metric) in [
        (
            user_purge::ops::metrics::group_url("http://gw", "i"),
            "user_purge_last_success_timestamp_seconds",
        ),
        (
            user_purge::ops::metrics::verify_group_url("http://gw", "i"),
            "user_purge_verify_last_run_timestamp_seconds",
        ),
    ] {
        let job = url
            .split("/job/")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no job in {url}"));
        assert!(
            rules.contains(&format!("{metric}{{job=\"{job}\"}}")),
            "alerts.yml: {metric} is pushed under job {job}"
        );
    }
}

#[test]
fn the_docs_list_exactly_the_alerts_of_alerts_yml() {
    let names: BTreeSet<String> = alert_rules().into_iter().collect();
    let docs = read("docs/operations.md");
    let mentioned: BTreeSet<String> = docs
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| word.starts_with("UserPurge"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        mentioned, names,
        "docs/operations.md names these alerts, alerts.yml has those"
    );
    // Each has its bullet in "Metrics and alerts".
    let section = &docs[docs
        .find("\n### Metrics and alerts")
        .expect("a \"Metrics and alerts\" section")..];
    let section = &section[..section[1..]
        .find("\n### ")
        .map_or(section.len(), |end| end + 1)];
    for name in &names {
        assert!(
            section.contains(&format!("- `{name}`")),
            "\"Metrics and alerts\" has no bullet for {name}"
        );
    }
}
