//! The deployment files agree with the crate and pass their own tools, so that
//! none of them can drift from the code unnoticed:
//!
//! - `Dockerfile`: hadolint; its binary, path, user and entrypoint against
//!   Cargo.toml; the release binary its `cargo build` line made
//!   (scripts/check-deploy runs that line verbatim).
//! - `k8s/`: `kubectl kustomize` renders it; every object validates offline
//!   against the Kubernetes schemas; the environment names it sets are flags
//!   of `user-purge --help`; its `podFailurePolicy` keys on the exit codes
//!   `--help` documents; the overlay docs/operations.md shows renders.
//! - `k8s/components/verify`: a daily CronJob of `user-purge verify` with the
//!   job's settings, map, Secret and securityContext, failing at once on the
//!   codes of `verify --help` that are an answer; before the Cloud SQL
//!   component, both CronJobs get the proxy, and after it the docs' overlay
//!   refuses to render.
//! - `k8s/components/cloud-sql-proxy-postgres`: the Cloud SQL component with
//!   the proxy on PostgreSQL's port, in the docs' overlay with the two lines
//!   the docs change for PostgreSQL; nothing else of the pod differs.
//! - Secrets (the variables whose values `--help` hides) are never a setting:
//!   `DATABASE_URL` is one only without a password; the password and the key
//!   are files, in the pod from the Secret's read-only volume (whose keys the
//!   example Secret and the docs' `kubectl create secret` give), on a VM from
//!   systemd credentials (`LoadCredential=`, `%d`).
//! - `deploy/systemd/`: `systemd-analyze verify` and `security` pass; its
//!   environment and exit codes agree with `--help` and with the Job's budget;
//!   the verify unit is the job's but for what it runs and its deadline (the
//!   verify CronJob's), its timer daily at the CronJob's time.
//! - The erasure map: the CronJob mounts the generated ConfigMap read-only at
//!   the path ERASURE_MAP names, and the unit reads it from /etc/user-purge/;
//!   neither sets the single-table settings with it; the example
//!   `k8s/erasure-map.toml` and the docs' overlay map parse as TOML in the
//!   map's shape, the example listing children before parents.
//!
//! kubernetes-validate, hadolint, PyYAML and Python's tomllib come from the
//! venv that scripts/check-deploy makes (`DEPLOY_VENV`; scripts/test runs it
//! first); kubectl and systemd-analyze from the machine. A missing tool fails
//! the test that needs it: nothing here is skipped.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::scratch::Scratch;
use serde_json::Value;

/// The schema versions the manifests must validate against: the oldest they
/// support (podFailurePolicy's schema before 1.29 demands `onPodConditions` in
/// every rule) and the newest kubernetes-validate knows.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.29.0", "1.37.0"];

/// The job exits within this many seconds of SIGTERM (README, "What happens on
/// failure"); both grace periods must exceed it.
const SIGTERM_BUDGET_SECS: u64 = 10;

/// The schedule's period: every five minutes.
const PERIOD_SECS: u64 = 300;

/// Environment variables the binary reads that are not flags; `--help` names
/// each one (checked).
const NON_FLAG_ENV: [&str; 2] = ["RUST_LOG", "GOOGLE_APPLICATION_CREDENTIALS"];

/// Each secret (a variable whose value `--help` hides) and the setting that
/// reads it from a file, the only form the deployments use. `DATABASE_URL`'s
/// secret is its password: the URL is a plain setting when it carries none.
const SECRET_FILES: [(&str, &str); 3] = [
    ("DATABASE_URL", "DATABASE_PASSWORD_FILE"),
    // A replica URL without a password takes the primary's.
    ("REPLICA_URLS", "DATABASE_PASSWORD_FILE"),
    ("PUBSUB_SERVICE_ACCOUNT", "PUBSUB_SERVICE_ACCOUNT_FILE"),
];

/// The secrets that may be settings without their password.
const PASSWORDLESS_URLS: [&str; 2] = ["DATABASE_URL", "REPLICA_URLS"];

/// The Secret the CronJob mounts, created by hand (docs/operations.md).
const SECRET: &str = "user-purge";

// ---------------------------------------------------------------------------
// Kubernetes

#[test]
fn kustomize_renders_objects_that_validate_against_the_kubernetes_schemas() {
    let rendered = render_k8s();
    assert_valid_kubernetes(&rendered, &[&root().join("k8s/secret.example.yaml")]);

    let kinds: BTreeSet<String> = yaml_documents(&rendered)
        .iter()
        .map(|object| object["kind"].as_str().unwrap().to_owned())
        .collect();
    // No Secret: a real one is never committed, and the base creates none.
    assert_eq!(
        kinds,
        BTreeSet::from(["ConfigMap", "CronJob", "ServiceAccount"].map(String::from))
    );
}

#[test]
fn the_manifests_set_only_settings_the_binary_accepts() {
    let help = Help::of_the_binary();
    let objects = yaml_documents(&render_k8s());
    let pod = &cronjob(&objects)["spec"]["jobTemplate"]["spec"]["template"]["spec"];

    let mut names = BTreeSet::new();
    for container in pod["containers"].as_array().unwrap() {
        for env in array(&container["env"]) {
            let name = env["name"].as_str().unwrap();
            names.insert(name.to_owned());
            // Secrets are files of the Secret's volume, never variables: a
            // value from a Secret is in the process's environment, for any
            // child and any crash report to see.
            assert!(
                env["valueFrom"]["secretKeyRef"].is_null(),
                "{name} from a Secret's key: mount the Secret, name the file with {}",
                file_form(name)
            );
            if let Some(value) = env["value"].as_str() {
                assert_no_secret("k8s/cronjob.yaml", &help, name, value);
            }
        }
        for source in array(&container["envFrom"]) {
            let Some(map) = source["configMapRef"]["name"].as_str() else {
                panic!("envFrom {source}: only ConfigMaps, so that secrets stay files");
            };
            let config_map = objects
                .iter()
                .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == map)
                .unwrap_or_else(|| panic!("envFrom names ConfigMap {map}, which is not rendered"));
            for (name, value) in config_map["data"].as_object().unwrap() {
                assert_no_secret(
                    &format!("ConfigMap {map}"),
                    &help,
                    name,
                    value.as_str().unwrap(),
                );
                names.insert(name.clone());
            }
        }
    }
    help.assert_accepts("k8s/", &names);
    for required in [
        "PUBSUB_SUBSCRIPTION",
        "PUBSUB_PROJECT",
        "DATABASE_URL",
        "DATABASE_PASSWORD_FILE",
    ] {
        assert!(names.contains(required), "k8s/ does not set {required}");
    }
}

#[test]
fn the_secrets_are_files_of_the_read_only_secret_volume() {
    let help = Help::of_the_binary();
    for (secret, file) in SECRET_FILES {
        assert_eq!(help.env.get(secret), Some(&true), "--help hides {secret}");
        assert_eq!(help.env.get(file), Some(&false), "--help shows {file}");
    }
    for secret in help.secrets() {
        file_form(secret);
    }

    let objects = yaml_documents(&render_k8s());
    let pod = &cronjob(&objects)["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let env = container_environment(&objects, container);

    // The file settings the base sets, and those config.env shows commented
    // out for an overlay to set (the key, instead of Workload Identity): each
    // names a file of the Secret's volume.
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for (_, file) in SECRET_FILES {
        if let Some(path) = env.get(file) {
            let path = path
                .as_deref()
                .unwrap_or_else(|| panic!("{file} is a literal path"));
            files.insert(file.to_owned(), path.to_owned());
        }
    }
    for line in read("k8s/config.env").lines() {
        if let Some((name, path)) = line.trim_start_matches('#').trim().split_once('=')
            && SECRET_FILES.iter().any(|(_, file)| *file == name)
        {
            let known = files.insert(name.to_owned(), path.to_owned());
            assert!(
                known.is_none_or(|known| known == path),
                "k8s/config.env: two paths for {name}"
            );
        }
    }
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        ["DATABASE_PASSWORD_FILE", "PUBSUB_SERVICE_ACCOUNT_FILE"],
        "k8s/config.env: the password's file set, the key's shown"
    );
    let mut keys = BTreeSet::new();
    for (name, path) in &files {
        keys.insert(mounted_secret_key(pod, container, name, path));
    }

    // Readable by the job's user only through its group: the Secret's files
    // belong to root, and to the pod's fsGroup.
    let (_, group) = dockerfile().user;
    assert_eq!(pod["securityContext"]["fsGroup"], group, "fsGroup");
    assert_eq!(pod["securityContext"]["runAsGroup"], group, "runAsGroup");

    // The example Secret and the docs' `kubectl create secret` have exactly
    // those keys.
    let example = &yaml_documents(&read("k8s/secret.example.yaml"))[0];
    assert_eq!(example["metadata"]["name"], SECRET);
    let example_keys: BTreeSet<String> = example["stringData"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(example_keys, keys, "k8s/secret.example.yaml");
    let docs = read("docs/operations.md");
    for key in &keys {
        assert!(
            docs.contains(&format!("--from-file={key}=")),
            "docs/operations.md: `kubectl create secret` lacks {key}"
        );
    }
    assert!(docs.contains(&format!("create secret generic {SECRET} ")));
}

#[test]
fn the_pod_failure_policy_keys_on_the_documented_exit_codes() {
    let help = Help::of_the_binary();
    let objects = yaml_documents(&render_k8s());
    let job = &cronjob(&objects)["spec"]["jobTemplate"]["spec"];
    let container = job["template"]["spec"]["containers"][0]["name"]
        .as_str()
        .unwrap();
    let rules = job["podFailurePolicy"]["rules"].as_array().unwrap();

    // Disruptions first: a drained node's pod exits 143, which must not count.
    assert_eq!(rules[0]["action"], "Ignore");
    assert_eq!(rules[0]["onPodConditions"][0]["type"], "DisruptionTarget");

    let mut by_action: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for rule in &rules[1..] {
        let on = &rule["onExitCodes"];
        assert_eq!(on["operator"], "In", "{rule}");
        assert_eq!(on["containerName"], container, "{rule}");
        let values: Vec<u64> = on["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        // The API wants them ascending and unique, and never 0 with In.
        assert!(values.windows(2).all(|w| w[0] < w[1]), "{rule}");
        assert!(!values.contains(&0), "{rule}");
        by_action
            .entry(rule["action"].as_str().unwrap())
            .or_default()
            .extend(values);
    }
    assert_eq!(
        by_action.get("FailJob"),
        Some(&help.config_error_codes()),
        "FailJob must be exactly the codes --help says no retry can help"
    );
    assert_eq!(
        by_action.get("Count"),
        Some(&help.retryable_codes()),
        "Count must be exactly the other failures --help documents"
    );
    assert_eq!(by_action.len(), 2, "{by_action:?}");
    assert_eq!(job["template"]["spec"]["restartPolicy"], "Never");
    assert!(job["backoffLimit"].as_u64().unwrap() > 0);
}

#[test]
fn the_cronjob_runs_locked_down_within_its_period() {
    let objects = yaml_documents(&render_k8s());
    let cronjob = cronjob(&objects);
    let spec = &cronjob["spec"];
    assert_eq!(spec["schedule"], "*/5 * * * *");
    assert_eq!(spec["timeZone"], "Etc/UTC");
    assert_eq!(spec["concurrencyPolicy"], "Forbid");
    for field in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        assert!(spec[field].is_u64(), "{field}");
    }
    let job = &spec["jobTemplate"]["spec"];
    assert!(job["ttlSecondsAfterFinished"].is_u64());
    let pod = &job["template"]["spec"];

    // A run, including its SIGTERM grace, ends before the next one is due.
    let deadline = job["activeDeadlineSeconds"].as_u64().unwrap();
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace > SIGTERM_BUDGET_SECS, "terminationGracePeriodSeconds");
    assert!(deadline + grace < PERIOD_SECS, "activeDeadlineSeconds");
    // Whatever the line wrapping of the README's paragraph.
    let readme = read("README.md")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(readme.contains(&format!("exits within {SIGTERM_BUDGET_SECS} s")));

    assert_eq!(pod["automountServiceAccountToken"], false);
    let account = objects
        .iter()
        .find(|o| {
            o["kind"] == "ServiceAccount" && o["metadata"]["name"] == pod["serviceAccountName"]
        })
        .expect("the pod's ServiceAccount is rendered");
    assert_eq!(account["automountServiceAccountToken"], false);

    let security = &pod["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    let (user, group) = dockerfile().user;
    assert_eq!(security["runAsUser"], user, "the Dockerfile's USER");
    assert_eq!(security["runAsGroup"], group, "the Dockerfile's USER");
    for container in pod["containers"].as_array().unwrap() {
        let security = &container["securityContext"];
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["readOnlyRootFilesystem"], true);
        assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
        let resources = &container["resources"];
        for field in ["requests", "limits"] {
            assert!(resources[field]["memory"].is_string(), "{field}.memory");
            assert!(resources[field]["cpu"].is_string(), "{field}.cpu");
        }
    }
}

#[test]
fn the_overlay_in_the_docs_renders_with_its_settings() {
    // The blocks under "# overlays/prod/kustomization.yaml" and
    // "# overlays/prod/erasure-map.toml", rendered against this base as
    // ../../k8s.
    let docs = read("docs/operations.md");
    let kustomization = docs_block(&docs, "# overlays/prod/kustomization.yaml");
    let map = docs_block(&docs, "# overlays/prod/erasure-map.toml");
    let scratch = Scratch::new("deploy-overlay");
    let overlay = scratch.join("overlays/prod");
    std::fs::create_dir_all(&overlay).unwrap();
    std::os::unix::fs::symlink(root().join("k8s"), scratch.join("k8s")).unwrap();
    std::fs::write(overlay.join("kustomization.yaml"), kustomization).unwrap();
    std::fs::write(overlay.join("erasure-map.toml"), &map).unwrap();
    let output = run(Command::new("kubectl").arg("kustomize").arg(&overlay));
    assert_success("kubectl kustomize (the docs' overlay)", &output);

    let objects = yaml_documents(&String::from_utf8(output.stdout).unwrap());
    for object in &objects {
        assert_eq!(object["metadata"]["namespace"], "user-purge", "{object}");
    }
    let pod = &cronjob(&objects)["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let settings = container["envFrom"][0]["configMapRef"]["name"]
        .as_str()
        .unwrap();
    let config_map = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == settings)
        .expect("the settings' ConfigMap is rendered");
    assert_eq!(config_map["data"]["PUBSUB_PROJECT"], "my-project");
    let help = Help::of_the_binary();
    for (name, value) in config_map["data"].as_object().unwrap() {
        assert_no_secret("the docs' overlay", &help, name, value.as_str().unwrap());
    }
    assert_eq!(
        config_map["data"]["MAX_MESSAGES"], "10000",
        "merged, not replaced"
    );

    // The overlay's map, not the base's example, is the file the job reads.
    let env = container_environment(&objects, container);
    for name in SINGLE_TABLE_ENV {
        assert!(!env.contains_key(name), "the docs' overlay sets {name}");
    }
    let path = env["ERASURE_MAP"].as_deref().unwrap();
    let (mounted, key) = mounted_config_map_file(&objects, pod, container, path);
    assert_eq!(mounted["data"][&key], map.as_str(), "behavior: replace");
    erasure_map_entries("the docs' overlay map", &map);
    assert!(
        pod["containers"][0]["image"]
            .as_str()
            .unwrap()
            .ends_with("/user-purge:0.1.0")
    );
}

// ---------------------------------------------------------------------------
// The erasure map

/// Both deployments read the map from this directory: the systemd unit's
/// settings directory, and the same path in the pod.
const MAP_DIR: &str = "/etc/user-purge/";

/// The single-table settings, which the job refuses together with a map
/// (exit 2).
const SINGLE_TABLE_ENV: [&str; 2] = ["PURGE_TABLE", "PURGE_ID_COLUMN"];

/// The name the map's ConfigMap has before kustomize appends its hash.
const MAP_CONFIG_MAP: &str = "user-purge-erasure-map";

#[test]
fn the_cronjob_mounts_the_generated_erasure_map_where_erasure_map_points() {
    let objects = yaml_documents(&render_k8s());
    let pod = &cronjob(&objects)["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let env = container_environment(&objects, container);

    let path = env
        .get("ERASURE_MAP")
        .expect("k8s/ sets ERASURE_MAP")
        .as_deref()
        .expect("ERASURE_MAP is a literal path");
    assert!(path.starts_with(MAP_DIR), "ERASURE_MAP={path}");
    for name in SINGLE_TABLE_ENV {
        assert!(
            !env.contains_key(name),
            "k8s/ sets {name} and ERASURE_MAP: the job refuses both (exit 2)"
        );
    }

    let (config_map, key) = mounted_config_map_file(&objects, pod, container, path);
    // Generated with a content hash, so that a changed map reaches the next
    // Job: kustomize appends a dash and 10 characters.
    let name = config_map["metadata"]["name"].as_str().unwrap();
    let hash = name
        .strip_prefix(MAP_CONFIG_MAP)
        .and_then(|rest| rest.strip_prefix('-'))
        .unwrap_or_else(|| panic!("{name}: not {MAP_CONFIG_MAP} with a hash"));
    assert!(
        hash.len() == 10 && hash.chars().all(|c| c.is_ascii_alphanumeric()),
        "{name}: not {MAP_CONFIG_MAP} with a hash"
    );
    // The file the job reads is the example, and nothing else is in the map's
    // ConfigMap.
    let data = config_map["data"].as_object().unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), [&key], "{name}");
    assert_eq!(data[&key], read("k8s/erasure-map.toml").as_str());
}

#[test]
fn the_example_erasure_map_parses_and_lists_children_before_parents() {
    let text = read("k8s/erasure-map.toml");
    let entries = erasure_map_entries("k8s/erasure-map.toml", &text);
    // Issue #11's example: the user's sessions, then the invoices that stay,
    // then the user; issue #17's newsletter, reached via the user's email,
    // before the user.
    let expected = [
        ("delete", "newsletter"),
        ("delete", "sessions"),
        ("redact", "invoices"),
        ("delete", "users"),
    ]
    .map(|(kind, table)| (kind.to_owned(), table.to_owned()));
    assert_eq!(entries, expected);
    for advice in [
        "List child tables before their parents",
        "run `user-purge check` first",
    ] {
        assert!(text.contains(advice), "k8s/erasure-map.toml: {advice:?}");
    }
}

#[test]
fn the_systemd_unit_reads_the_erasure_map_from_etc_user_purge() {
    let service = unit("user-purge.service");
    let mut env = env_file("deploy/systemd/user-purge.env");
    for value in service.all("Service", "Environment") {
        let (name, value) = value.split_once('=').unwrap();
        env.insert(name.to_owned(), value.to_owned());
    }
    let path = env
        .get("ERASURE_MAP")
        .expect("user-purge.env or the unit sets ERASURE_MAP");
    assert!(path.starts_with(MAP_DIR), "ERASURE_MAP={path}");
    for name in SINGLE_TABLE_ENV {
        assert!(
            !env.contains_key(name),
            "deploy/systemd/ sets {name} and ERASURE_MAP: the job refuses both (exit 2)"
        );
    }

    // Readable under the hardening: ProtectSystem=strict leaves /etc
    // readable, and nothing hides the map's directory.
    assert_eq!(service.one("Service", "ProtectSystem"), "strict");
    for key in ["InaccessiblePaths", "TemporaryFileSystem"] {
        for value in service.all("Service", key) {
            for hidden in value.split_whitespace() {
                let hidden = hidden.trim_start_matches(['-', '+']);
                let hidden = hidden.split(':').next().unwrap();
                assert!(!path.starts_with(hidden), "{key}={value} hides {path}");
            }
        }
    }

    // One copy of the example, k8s/erasure-map.toml: the docs install it
    // there, readable by the unit's dynamic user.
    assert!(
        read("docs/operations.md")
            .contains(&format!("install -m 0644 k8s/erasure-map.toml {path}")),
        "docs/operations.md does not install k8s/erasure-map.toml as {path}"
    );
    assert!(
        !root().join("deploy/systemd/erasure-map.toml").exists(),
        "a second example map would drift from k8s/erasure-map.toml"
    );
}

/// The container's environment as the kubelet builds it: the ConfigMaps of
/// `envFrom`, then `env` over them. Values from a Secret are `None`.
fn container_environment(objects: &[Value], container: &Value) -> BTreeMap<String, Option<String>> {
    let mut env = BTreeMap::new();
    for source in array(&container["envFrom"]) {
        let name = &source["configMapRef"]["name"];
        let config_map = objects
            .iter()
            .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == *name)
            .unwrap_or_else(|| panic!("envFrom names ConfigMap {name}, which is not rendered"));
        for (key, value) in config_map["data"].as_object().unwrap() {
            env.insert(key.clone(), value.as_str().map(String::from));
        }
    }
    for variable in array(&container["env"]) {
        env.insert(
            variable["name"].as_str().unwrap().to_owned(),
            variable["value"].as_str().map(String::from),
        );
    }
    env
}

/// The ConfigMap, and its key, that the container sees as the file `path`,
/// resolved as the kubelet does (a directory mount, or `subPath`; `items`).
/// The mount must be read-only.
fn mounted_config_map_file<'a>(
    objects: &'a [Value],
    pod: &Value,
    container: &Value,
    path: &str,
) -> (&'a Value, String) {
    let (volume, in_volume) = mounted_volume(pod, container, path);
    let source = &volume["configMap"];
    let name = source["name"]
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not from a ConfigMap: {volume}"));
    let key = match source["items"].as_array() {
        None => in_volume,
        Some(items) => items
            .iter()
            .find(|item| item["path"] == in_volume.as_str())
            .and_then(|item| item["key"].as_str())
            .unwrap_or_else(|| panic!("the items of {volume} do not give {in_volume}"))
            .to_owned(),
    };
    let config_map = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == name)
        .unwrap_or_else(|| {
            panic!(
                "volume {} names ConfigMap {name}, which is not rendered",
                volume["name"]
            )
        });
    assert!(
        config_map["data"][&key].is_string(),
        "ConfigMap {name} has no key {key}: {path} would not exist"
    );
    (config_map, key)
}

/// The pod's volume, and the path in it, that the container sees as the file
/// `path` (a directory mount, or `subPath`). The mount must be read-only.
fn mounted_volume<'a>(pod: &'a Value, container: &Value, path: &str) -> (&'a Value, String) {
    let (dir, file) = path.rsplit_once('/').expect("an absolute path");
    let (mount, in_volume) = array(&container["volumeMounts"])
        .iter()
        .find_map(|mount| match mount["subPath"].as_str() {
            Some(sub_path) => (mount["mountPath"] == path).then(|| (mount, sub_path.to_owned())),
            None => (mount["mountPath"] == dir).then(|| (mount, file.to_owned())),
        })
        .unwrap_or_else(|| panic!("nothing is mounted at {dir}, or at {path} by subPath"));
    assert_eq!(mount["readOnly"], true, "the mount of {path}: {mount}");
    let volume = array(&pod["volumes"])
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("no volume {}", mount["name"]));
    (volume, in_volume)
}

/// The key of the Secret [`SECRET`] that the container sees as the file
/// `path`, which the setting `name` gives. The mount is read-only, and the
/// files are for the owner (root) and the pod's group only.
fn mounted_secret_key(pod: &Value, container: &Value, name: &str, path: &str) -> String {
    let (volume, in_volume) = mounted_volume(pod, container, path);
    let source = &volume["secret"];
    assert_eq!(
        source["secretName"], SECRET,
        "{name}={path} is not a file of the Secret {SECRET}: {volume}"
    );
    let mode = source["defaultMode"]
        .as_u64()
        .unwrap_or_else(|| panic!("no defaultMode (the default is 0644): {volume}"));
    assert_eq!(mode & 0o007, 0, "{volume}: the Secret's files for anyone");
    assert_ne!(mode & 0o040, 0, "{volume}: the job's group cannot read");
    // Listed keys would all be required, the optional key with them; and
    // renamed files only confuse.
    assert!(source["items"].is_null(), "{volume}: no items");
    assert!(
        !in_volume.contains('/'),
        "{name}={path}: a key is a file name"
    );
    in_volume
}

/// The file setting of a secret (SECRET_FILES).
fn file_form(secret: &str) -> &'static str {
    SECRET_FILES
        .iter()
        .find(|(name, _)| *name == secret)
        .map(|(_, file)| *file)
        .unwrap_or_else(|| {
            panic!("--help hides {secret}: teach SECRET_FILES which setting reads it from a file")
        })
}

/// Asserts that a setting in plain sight (a ConfigMap, an environment file)
/// holds no secret: no variable whose value `--help` hides, but the URL
/// without a password.
fn assert_no_secret(place: &str, help: &Help, name: &str, value: &str) {
    if !help.secrets().contains(name) {
        return;
    }
    assert!(
        PASSWORDLESS_URLS.contains(&name),
        "{place}: {name} is a secret (--help hides its value): give it as a file, {}",
        file_form(name)
    );
    assert!(
        !value.is_empty() && url_password(value).is_none(),
        "{place}: {name} carries a password: leave it out, {} gives it",
        file_form(name)
    );
}

/// The password of a URL's userinfo (`scheme://user:password@host...`), if it
/// has one. Taken wide, as a check for secrets should: everything before the
/// last `@` ahead of the query is the userinfo.
fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url
        .split_once("://")
        .unwrap_or_else(|| panic!("not a URL: {url:?}"));
    let rest = rest.split('?').next().unwrap();
    let (userinfo, _) = rest.rsplit_once('@')?;
    userinfo.split_once(':').map(|(_, password)| password)
}

#[test]
fn url_password_finds_the_password_only() {
    assert_eq!(url_password("mysql://u:p@h:3306/app"), Some("p"));
    assert_eq!(url_password("mysql://u:@h/app"), Some(""));
    assert_eq!(url_password("mysql://u:p/w@h/app"), Some("p/w"));
    assert_eq!(url_password("mysql://u:p@w@h/app?x=1"), Some("p@w"));
    assert_eq!(url_password("mysql://u@h:3306/app"), None);
    assert_eq!(url_password("mysql://h:3306/app?ssl=a@b"), None);
}

/// The entries of an erasure map in file order, as (kind, table), after
/// checking that it parses as TOML in the shape issue #11 gives it: only
/// `[[delete]]` (table, column) and `[[redact]]` (table, column, null,
/// replace), every name a plain identifier.
fn erasure_map_entries(what: &str, text: &str) -> Vec<(String, String)> {
    let document = toml_document(what, text);
    let identifier = |field: &str, value: &Value| {
        let name = value
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {field} is not a string: {value}"));
        assert!(is_plain_identifier(name), "{what}: {field} = {name:?}");
    };
    let mut parsed = Vec::new();
    for (kind, allowed) in [
        ("delete", &["table", "column", "via"][..]),
        ("redact", &["table", "column", "via", "null", "replace"][..]),
    ] {
        for entry in array(&document[kind]) {
            let entry = entry.as_object().unwrap();
            for key in entry.keys() {
                assert!(allowed.contains(&key.as_str()), "{what}: [[{kind}]] {key}");
            }
            identifier("table", &entry["table"]);
            identifier("column", &entry["column"]);
            let hops = entry.get("via").map(|v| v.as_array().unwrap().as_slice());
            for hop in hops.unwrap_or_default() {
                for field in ["table", "key", "value"] {
                    identifier(field, &hop[field]);
                }
            }
            if kind == "redact" {
                let nulls = entry.get("null").map(|v| v.as_array().unwrap().as_slice());
                for column in nulls.unwrap_or_default() {
                    identifier("null", column);
                }
                let replace = entry.get("replace").map(|v| v.as_object().unwrap());
                for (column, text) in replace.into_iter().flatten() {
                    identifier("replace", &Value::from(column.as_str()));
                    assert!(text.is_string(), "{what}: replace.{column} = {text}");
                }
                assert!(
                    nulls.is_some_and(|n| !n.is_empty()) || replace.is_some_and(|r| !r.is_empty()),
                    "{what}: a [[redact]] of {} changes nothing",
                    entry["table"]
                );
            }
            parsed.push((kind.to_owned(), entry["table"].as_str().unwrap().to_owned()));
        }
    }
    for key in document.as_object().unwrap().keys() {
        assert!(
            ["delete", "redact"].contains(&key.as_str()),
            "{what}: {key}"
        );
    }

    // The order of the file, which TOML's data model does not keep across
    // two arrays of tables: from the headers, checked against the parse.
    let mut ordered: Vec<(String, String)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(kind) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            ordered.push((kind.to_owned(), String::new()));
        } else if let Some((key, value)) = line.split_once('=')
            && key.trim() == "table"
            && let Some((_, table)) = ordered.last_mut()
        {
            *table = value.trim().trim_matches('"').to_owned();
        }
    }
    let mut by_kind = ordered.clone();
    by_kind.sort_by_key(|(kind, _)| kind != "delete");
    assert_eq!(
        by_kind, parsed,
        "{what}: the headers disagree with the parse"
    );
    ordered
}

/// ASCII letters, digits and `_`, not starting with a digit, at most 64
/// characters (README, "Configuration").
fn is_plain_identifier(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// The assignments of an environment file, NAME=value, comments left out.
fn env_file(path: &str) -> BTreeMap<String, String> {
    read(path)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{path}: not NAME=value: {line}"));
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Container image

#[test]
fn the_dockerfile_passes_hadolint() {
    let output = run(Command::new(venv_tool("hadolint"))
        .arg("Dockerfile")
        .current_dir(root()));
    assert_success("hadolint Dockerfile", &output);
}

#[test]
fn the_dockerfile_builds_and_runs_the_crates_binary() {
    let crate_ = Crate::read();
    let docker = dockerfile();

    // The builder is new enough for the crate's rust-version.
    let builder = docker
        .builder_rust
        .as_ref()
        .expect("the builder stage is FROM rust:X.Y-...");
    assert!(
        *builder >= crate_.rust_version,
        "rust:{builder:?} is older than rust-version {:?}",
        crate_.rust_version
    );
    for flag in ["--release", "--locked"] {
        assert!(
            docker.build.contains(&flag.to_owned()),
            "{flag}: {:?}",
            docker.build
        );
    }
    let target = docker.build_target();

    // The file the build makes is the one copied, the one run, by the name
    // the crate gives it.
    let built = format!(
        "{}/target/{target}/release/{}",
        docker.workdir, crate_.binary
    );
    assert_eq!(docker.copy_from_build.0, built, "COPY --from=build source");
    let installed = &docker.copy_from_build.1;
    assert_eq!(docker.entrypoint, vec![installed.clone()], "ENTRYPOINT");
    assert!(installed.ends_with(&format!("/{}", crate_.binary)));
    assert!(
        docker.runtime.starts_with("gcr.io/distroless/cc-"),
        "{}",
        docker.runtime
    );
    assert!(docker.runtime.ends_with(":nonroot"), "{}", docker.runtime);
    assert_ne!(docker.user.0, 0, "USER must not be root");
    // systemd runs it from the same path the image does.
    assert_eq!(
        &unit("user-purge.service").one("Service", "ExecStart"),
        installed
    );
    assert!(
        read(".dockerignore")
            .lines()
            .any(|l| l.trim() == "**/target"),
        ".dockerignore must keep target/ out of the build context"
    );

    // scripts/check-deploy built it with that very line; it runs.
    let binary = release_binary(&target, &crate_.binary);
    let output = run(Command::new(&binary).arg("--version"));
    assert_success(&format!("{} --version", binary.display()), &output);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("{} {}", crate_.binary, crate_.version)
    );
}

// ---------------------------------------------------------------------------
// systemd

#[test]
fn the_systemd_units_pass_systemd_analyze() {
    // verify wants ExecStart to exist and be executable, so it checks a copy
    // whose ExecStart is the release binary; everything else is as shipped.
    // The optional drop-in is verified with it.
    let scratch = Scratch::new("deploy-systemd");
    let dir: &Path = &scratch;
    let binary = release_binary(&dockerfile().build_target(), &Crate::read().binary);
    let installed = &dockerfile().copy_from_build.1;
    for (service, timer) in UNITS {
        // The installed path replaced, the arguments (verify) kept.
        let text: String = read(&format!("deploy/systemd/{service}"))
            .lines()
            .map(|line| match line.strip_prefix("ExecStart=") {
                Some(command) => {
                    let args = command.strip_prefix(installed.as_str()).unwrap_or_else(|| {
                        panic!("{service}: ExecStart={command}: not {installed}")
                    });
                    format!("ExecStart={}{args}\n", binary.display())
                }
                None => format!("{line}\n"),
            })
            .collect();
        std::fs::write(dir.join(service), text).unwrap();
        std::fs::copy(root().join("deploy/systemd").join(timer), dir.join(timer)).unwrap();
    }
    std::fs::create_dir(dir.join("user-purge.service.d")).unwrap();
    std::fs::copy(
        root().join("deploy/systemd/pubsub-key.conf"),
        dir.join("user-purge.service.d/pubsub-key.conf"),
    )
    .unwrap();

    let output = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(UNITS.iter().flat_map(|(service, timer)| [service, timer]))
        .current_dir(dir));
    assert_success("systemd-analyze verify", &output);
    // An unknown or misspelt setting is only a warning, and still exits 0.
    assert!(
        output.stdout.is_empty() && output.stderr.is_empty(),
        "systemd-analyze verify warned:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // The hardening stays where it is: an exposure of at most 1.5 of 10
    // (it is 1.1; the rest is network access, which the job needs).
    for (service, _) in UNITS {
        let output = run(Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--threshold=15", "--no-pager"])
            .arg(service)
            .current_dir(dir));
        assert_success(
            &format!("systemd-analyze security --threshold=15 {service}"),
            &output,
        );
    }
}

/// The services of deploy/systemd/ and their timers: the job's, verify's.
const UNITS: [(&str, &str); 2] = [
    ("user-purge.service", "user-purge.timer"),
    ("user-purge-verify.service", "user-purge-verify.timer"),
];

/// The [Service] settings in which verify's unit differs from the job's:
/// what it runs, its budget and its memory. Every other one, the hardening,
/// the settings file and the credentials, is the job's.
const VERIFY_UNIT_OWN: [&str; 4] = [
    "ExecStart",
    "TimeoutStartSec",
    "SuccessExitStatus",
    "MemoryMax",
];

#[test]
fn the_verify_unit_runs_verify_as_the_job_runs_with_the_cronjobs_deadline() {
    let job = unit("user-purge.service");
    let verify = unit("user-purge-verify.service");
    assert_eq!(
        verify.one("Service", "ExecStart"),
        format!("{} verify", job.one("Service", "ExecStart")),
        "read-only: no --repair"
    );
    // Everything else of [Service] is the job's, setting for setting.
    let service_keys = |u: &Unit| -> BTreeSet<String> {
        u.0.keys()
            .filter(|(section, key)| {
                section == "Service" && !VERIFY_UNIT_OWN.contains(&key.as_str())
            })
            .map(|(_, key)| key.clone())
            .collect()
    };
    assert_eq!(
        service_keys(&verify),
        service_keys(&job),
        "[Service] settings"
    );
    for key in service_keys(&job) {
        assert_eq!(
            verify.all("Service", &key),
            job.all("Service", &key),
            "{key}="
        );
    }
    assert_eq!(verify.one("Service", "Type"), "oneshot");
    assert!(verify.all("Service", "Restart").iter().all(|v| v == "no"));
    // A finding fails the unit: no exit code but 0 is a success.
    assert!(verify.all("Service", "SuccessExitStatus").is_empty());
    assert!(verify.one("Service", "MemoryMax").ends_with('M'));

    // The same deadline as the verify CronJob.
    let objects = yaml_documents(&render_with_verify());
    let cronjob = verify_cronjob(&objects);
    assert_eq!(
        verify.one("Service", "TimeoutStartSec"),
        cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"].to_string()
    );

    // Daily, at the CronJob's time of day: "M H * * *" is "*-*-* HH:MM:00 UTC".
    let timer = unit("user-purge-verify.timer");
    let schedule: Vec<&str> = cronjob["spec"]["schedule"]
        .as_str()
        .unwrap()
        .split(' ')
        .collect();
    let (minute, hour): (u8, u8) = (schedule[0].parse().unwrap(), schedule[1].parse().unwrap());
    assert_eq!(cronjob["spec"]["timeZone"], "Etc/UTC");
    assert_eq!(
        timer.one("Timer", "OnCalendar"),
        format!("*-*-* {hour:02}:{minute:02}:00 UTC")
    );
    assert_eq!(timer.one("Timer", "Persistent"), "true");
    let delay: u64 = timer.one("Timer", "RandomizedDelaySec").parse().unwrap();
    assert!((1..3600).contains(&delay), "RandomizedDelaySec={delay}");
    assert_eq!(timer.one("Install", "WantedBy"), "timers.target");

    // The docs install both units.
    let docs = read("docs/operations.md");
    assert!(
        docs.contains(
            "install -m 0644 deploy/systemd/user-purge-verify.service deploy/systemd/user-purge-verify.timer /etc/systemd/system/"
        ),
        "docs/operations.md does not install the verify units"
    );
    assert!(docs.contains("systemctl enable --now user-purge-verify.timer"));
}

#[test]
fn the_systemd_units_keep_the_jobs_budget_and_exit_codes() {
    let help = Help::of_the_binary();
    let service = unit("user-purge.service");
    assert_eq!(service.one("Service", "Type"), "oneshot");
    assert_eq!(service.one("Service", "DynamicUser"), "yes");

    // The same budget as the Kubernetes Job.
    let objects = yaml_documents(&render_k8s());
    let job = &cronjob(&objects)["spec"]["jobTemplate"]["spec"];
    let deadline = job["activeDeadlineSeconds"].as_u64().unwrap();
    let seconds = |key| -> u64 {
        service.one("Service", key).parse().unwrap_or_else(|_| {
            panic!("{key}= must be plain seconds");
        })
    };
    assert_eq!(seconds("TimeoutStartSec"), deadline, "TimeoutStartSec");
    assert!(
        seconds("TimeoutStopSec") > SIGTERM_BUDGET_SECS,
        "TimeoutStopSec"
    );

    let codes = |key| -> BTreeSet<u64> {
        service
            .one("Service", key)
            .split_whitespace()
            .map(|c| c.parse().unwrap())
            .collect()
    };
    // The timer is the retry. Should Restart= come, it must spare
    // configuration errors, as the Job's FailJob rule does.
    let restart = service.all("Service", "Restart");
    if !restart.iter().all(|value| value == "no") {
        assert_eq!(
            codes("RestartPreventExitStatus"),
            help.config_error_codes(),
            "RestartPreventExitStatus must be the codes --help says no retry can help"
        );
    }
    assert_eq!(
        codes("SuccessExitStatus"),
        help.codes_described_by("SIGTERM"),
        "SuccessExitStatus must be the SIGTERM code of --help"
    );

    let timer = unit("user-purge.timer");
    assert_eq!(timer.one("Timer", "OnCalendar"), "*:0/5");
    assert_eq!(timer.one("Timer", "Persistent"), "true");
    timer.one("Timer", "RandomizedDelaySec");
    timer.one("Timer", "AccuracySec");
}

#[test]
fn the_systemd_environment_sets_only_settings_the_binary_accepts() {
    let help = Help::of_the_binary();
    // The settings file (its commented-out lines too: they are instructions)
    // and Environment= of the units.
    let mut settings: Vec<(String, String, String)> = Vec::new();
    let file = "deploy/systemd/user-purge.env";
    for line in read(file).lines() {
        if let Some((name, value)) = line.trim_start_matches('#').split_once('=')
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        {
            settings.push((file.to_owned(), name.to_owned(), value.to_owned()));
        }
    }
    for file in [
        "user-purge.service",
        "user-purge-verify.service",
        "pubsub-key.conf",
    ] {
        for value in unit(file).all("Service", "Environment") {
            let (name, value) = value.split_once('=').unwrap();
            settings.push((file.to_owned(), name.to_owned(), value.to_owned()));
        }
    }
    let names: BTreeSet<String> = settings.iter().map(|(_, name, _)| name.clone()).collect();
    help.assert_accepts("deploy/systemd/", &names);
    for (file, name, value) in &settings {
        assert_no_secret(file, &help, name, value);
    }
    for required in ["PUBSUB_SUBSCRIPTION", "DATABASE_URL"] {
        assert!(
            names.contains(required),
            "deploy/systemd/ does not set {required}"
        );
    }
    // The settings file is the only one the units read: secrets are
    // credentials, not environment files.
    for (service, _) in UNITS {
        let files = unit(service).all("Service", "EnvironmentFile");
        assert_eq!(files, [format!("{MAP_DIR}user-purge.env")], "{service}");
    }
    // verify reads the record's setting there, shown for the operator to set.
    let verify = Help::of_verify();
    for name in ["DATABASE_URL", "ERASURE_MAP", "ERASURE_RECORD"] {
        assert!(verify.env.contains_key(name), "verify --help lacks {name}");
        assert!(names.contains(name), "{file} does not show {name}");
    }
    assert!(
        !root().join("deploy/systemd/secrets.env.example").exists(),
        "secrets are credentials now: no secrets.env"
    );
}

#[test]
fn the_systemd_units_hand_the_secrets_over_as_credentials() {
    let docs = read("docs/operations.md");
    // Each unit file and the secret file setting it must set.
    for (file, required) in [
        ("user-purge.service", "DATABASE_PASSWORD_FILE"),
        ("user-purge-verify.service", "DATABASE_PASSWORD_FILE"),
        ("pubsub-key.conf", "PUBSUB_SERVICE_ACCOUNT_FILE"),
    ] {
        let unit = unit(file);
        // LoadCredential=ID:PATH, each ID a file of the credentials directory.
        let mut credentials: BTreeMap<String, String> = BTreeMap::new();
        for value in unit.all("Service", "LoadCredential") {
            let (id, path) = value
                .split_once(':')
                .unwrap_or_else(|| panic!("{file}: LoadCredential={value}: not ID:PATH"));
            assert!(
                path.starts_with(MAP_DIR),
                "{file}: LoadCredential={value}: the secrets live in {MAP_DIR}"
            );
            // Root-only, and created so in the docs' steps.
            assert!(
                docs.contains(path),
                "docs/operations.md does not say how to create {path}"
            );
            credentials.insert(id.to_owned(), path.to_owned());
        }
        let mut used = BTreeSet::new();
        let mut set = BTreeSet::new();
        for value in unit.all("Service", "Environment") {
            let (name, value) = value.split_once('=').unwrap();
            if !SECRET_FILES.iter().any(|(_, file)| *file == name) {
                continue;
            }
            // %d: the credentials directory, the private copy the dynamic
            // user may read.
            let id = value
                .strip_prefix("%d/")
                .unwrap_or_else(|| panic!("{file}: {name}={value}: not %d/ID"));
            assert!(
                credentials.contains_key(id),
                "{file}: {name}={value}, but no LoadCredential={id}:... in {file}"
            );
            used.insert(id.to_owned());
            set.insert(name.to_owned());
        }
        assert!(set.contains(required), "{file} does not set {required}");
        assert_eq!(
            used,
            credentials.keys().cloned().collect(),
            "{file}: a credential no setting names"
        );
    }
}

// ---------------------------------------------------------------------------
// The Cloud SQL component (`k8s/components/cloud-sql-proxy`) and the overlay
// docs/operations.md shows with it, validated against the same Kubernetes
// versions: the Cloud SQL Auth Proxy as a native sidecar (an init container with
// `restartPolicy: Always`) that starts before user-purge and is probed, locked
// down like it, and the address `DATABASE_URL` names, without a password.

/// The heading of the overlay's YAML block in docs/operations.md.
const OVERLAY: &str = "# overlays/cloud-sql/kustomization.yaml";

/// What the docs' overlay puts in for the component's placeholders.
const INSTANCE: &str = "my-project:europe-west1:app-db";
const GOOGLE_SERVICE_ACCOUNT: &str = "user-purge@my-project.iam.gserviceaccount.com";

#[test]
fn the_cloud_sql_overlay_validates_against_the_kubernetes_schemas() {
    assert_valid_kubernetes(&render_docs_overlay(), &[]);
}

#[test]
fn the_proxy_is_a_native_sidecar_that_starts_before_the_job() {
    let objects = yaml_documents(&render_docs_overlay());
    let pod = &cronjob(&objects)["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let init = pod["initContainers"].as_array().expect("initContainers");
    let position = init
        .iter()
        .position(|c| c["name"] == "cloud-sql-proxy")
        .expect("the cloud-sql-proxy init container");
    let proxy = &init[position];

    // A native sidecar: it keeps running beside the regular containers, and
    // the kubelet stops it when they have exited, so the Job completes.
    assert_eq!(proxy["restartPolicy"], "Always");
    // Nothing before it needs the database: no init container ahead of it
    // gets DATABASE_URL. user-purge is a regular container, started after
    // every init container, so after the proxy's startup probe passed.
    for earlier in &init[..position] {
        assert!(
            !earlier.to_string().contains("DATABASE_URL"),
            "{} runs before the proxy and needs the database",
            earlier["name"]
        );
    }
    let job = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "user-purge")
        .expect("user-purge stays a regular container");
    assert_eq!(pod["restartPolicy"], "Never");

    let image = proxy["image"].as_str().unwrap();
    assert!(
        image.starts_with("gcr.io/cloud-sql-connectors/cloud-sql-proxy:2."),
        "{image}"
    );
    let args: Vec<&str> = proxy["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for flag in [
        "--port=3306",
        "--structured-logs",
        "--health-check",
        "--http-address=0.0.0.0",
        "--exit-zero-on-sigterm",
    ] {
        assert!(args.contains(&flag), "{flag} missing: {args:?}");
    }
    // The overlay's patch replaced the placeholder, and only it.
    assert_eq!(args.last(), Some(&INSTANCE), "{args:?}");
    assert!(!args.contains(&"PROJECT:REGION:INSTANCE"), "{args:?}");
    // No --address: the proxy's default, 127.0.0.1, keeps MySQL in the pod.
    assert!(!args.iter().any(|a| a.starts_with("--address")), "{args:?}");

    // The startup probe asks the proxy's health endpoint on its HTTP port.
    let port = args
        .iter()
        .find_map(|a| a.strip_prefix("--http-port="))
        .expect("--http-port");
    let probe = &proxy["startupProbe"]["httpGet"];
    assert_eq!(probe["path"], "/startup");
    let named = proxy["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == probe["port"])
        .expect("the probe's port is a named port of the proxy");
    assert_eq!(named["containerPort"].to_string(), port);

    // As locked down as user-purge, with resources of its own.
    assert_eq!(proxy["securityContext"], job["securityContext"]);
    for field in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                proxy["resources"][field][resource].is_string(),
                "{field}.{resource}"
            );
        }
    }
    // The Job's exit codes stay user-purge's own.
    let rules = cronjob(&objects)["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"]
        .as_array()
        .unwrap()
        .clone();
    for rule in rules.iter().filter(|r| r["onExitCodes"].is_object()) {
        assert_eq!(rule["onExitCodes"]["containerName"], "user-purge", "{rule}");
    }
}

#[test]
fn the_service_account_acts_as_the_google_one_without_a_kubernetes_token() {
    let objects = yaml_documents(&render_docs_overlay());
    let pod = &cronjob(&objects)["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let account = objects
        .iter()
        .find(|o| {
            o["kind"] == "ServiceAccount" && o["metadata"]["name"] == pod["serviceAccountName"]
        })
        .expect("the pod's ServiceAccount is rendered");
    assert_eq!(
        account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"],
        GOOGLE_SERVICE_ACCOUNT
    );
    assert_eq!(account["automountServiceAccountToken"], false);
    assert_eq!(pod["automountServiceAccountToken"], false);
}

#[test]
fn the_docs_database_url_names_the_proxy() {
    let objects = yaml_documents(&render_docs_overlay());
    let pod = &cronjob(&objects)["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let port = pod["initContainers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|a| a.as_str().unwrap().strip_prefix("--port="))
        .expect("--port")
        .to_owned();
    // The overlay's settings name the proxy, without a password: the
    // password stays the Secret's file, which DATABASE_PASSWORD_FILE names.
    let url = format!("mysql://user_purge@127.0.0.1:{port}/app");
    let job = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "user-purge")
        .unwrap();
    let settings = job["envFrom"][0]["configMapRef"]["name"].as_str().unwrap();
    let config_map = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == settings)
        .expect("the settings' ConfigMap is rendered");
    assert_eq!(config_map["data"]["DATABASE_URL"], url.as_str());
    assert!(config_map["data"]["DATABASE_PASSWORD_FILE"].is_string());
    let docs = read("docs/operations.md");
    let section = &docs[docs.find("\n## Cloud SQL").expect("a Cloud SQL section")..];
    assert!(
        section.contains(&format!("\n{url}\n")),
        "the Cloud SQL section's DATABASE_URL must be {url}"
    );
    assert!(
        read("k8s/components/cloud-sql-proxy/kustomization.yaml").contains(&url),
        "the component's comment must name {url}"
    );
    assert!(docs.contains("\n## GKE\n"), "a GKE section");
}

// ---------------------------------------------------------------------------
// The verify component (`k8s/components/verify`): a daily CronJob running
// `user-purge verify` with the job's settings, map and Secret, as locked down
// as the job; alone, and with the Cloud SQL component after it.

/// The verify component, as an overlay adds it.
const VERIFY_COMPONENT: &str = "../../k8s/components/verify";

/// The base with the verify component, as the docs' "Running verify" adds it.
fn render_with_verify() -> String {
    let output = kustomize_overlay(&format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n\
         kind: Kustomization\n\
         namespace: user-purge\n\
         resources:\n  - ../../k8s\n\
         components:\n  - {VERIFY_COMPONENT}\n"
    ));
    assert_success("kubectl kustomize (the base with verify)", &output);
    String::from_utf8(output.stdout).unwrap()
}

fn verify_cronjob(objects: &[Value]) -> &Value {
    objects
        .iter()
        .find(|o| o["kind"] == "CronJob" && o["metadata"]["name"] == "user-purge-verify")
        .expect("the verify component renders CronJob user-purge-verify")
}

/// The pod's only regular container, the one that runs user-purge.
fn only_container(pod: &Value) -> &Value {
    match pod["containers"].as_array().unwrap().as_slice() {
        [container] => container,
        containers => panic!("one container expected, got {}", containers.len()),
    }
}

#[test]
fn the_verify_component_renders_objects_that_validate() {
    let rendered = render_with_verify();
    assert_valid_kubernetes(&rendered, &[]);
    let objects = yaml_documents(&rendered);
    let mut kinds: Vec<(String, String)> = objects
        .iter()
        .map(|o| {
            let name = o["metadata"]["name"].as_str().unwrap();
            // Generated names end in their hash.
            let name = name
                .rsplit_once('-')
                .filter(|(_, h)| h.len() == 10)
                .map_or(name, |(n, _)| n);
            (o["kind"].as_str().unwrap().to_owned(), name.to_owned())
        })
        .collect();
    kinds.sort();
    // One CronJob more, and nothing else: verify shares the job's
    // ConfigMaps, ServiceAccount and Secret.
    assert_eq!(
        kinds,
        [
            ("ConfigMap", "user-purge"),
            ("ConfigMap", "user-purge-erasure-map"),
            ("CronJob", "user-purge"),
            ("CronJob", "user-purge-verify"),
            ("ServiceAccount", "user-purge"),
        ]
        .map(|(kind, name)| (kind.to_owned(), name.to_owned()))
    );
    for object in &objects {
        assert_eq!(object["metadata"]["namespace"], "user-purge", "{object}");
    }
    // The job's CronJob is the base's, but for the record's setting.
    let base = yaml_documents(&render_k8s());
    let mut job = cronjob(&objects).clone();
    let mut base_job = cronjob(&base).clone();
    for cronjob in [&mut job, &mut base_job] {
        let spec = &mut cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        spec["containers"][0]["envFrom"] = Value::Null;
        cronjob["metadata"]["namespace"] = Value::Null;
    }
    assert_eq!(
        job, base_job,
        "the verify component changes the job's CronJob"
    );
}

#[test]
fn the_verify_cronjob_runs_verify_with_the_jobs_settings_and_secret() {
    let help = Help::of_verify();
    let objects = yaml_documents(&render_with_verify());
    let job_pod = &cronjob(&objects)["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let job_container = &job_pod["containers"][0];
    let pod = &verify_cronjob(&objects)["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let container = only_container(pod);

    // `user-purge verify`, read-only: no --repair, which erases.
    assert!(container["command"].is_null(), "the image's ENTRYPOINT");
    assert_eq!(container["args"], serde_json::json!(["verify"]));
    assert_eq!(container["image"], job_container["image"]);

    // The job's settings, from the same ConfigMap; nothing from a Secret's key.
    assert_eq!(container["envFrom"], job_container["envFrom"]);
    for env in array(&container["env"]) {
        assert!(env["valueFrom"].is_null(), "{env}: a literal, or a file");
    }
    let env = container_environment(&objects, container);
    for (name, value) in &env {
        let value = value.as_deref().unwrap();
        assert_no_secret("the verify CronJob", &help, name, value);
    }
    // Verify reads the database settings, the map and the record; the job's
    // other settings (the subscription...) are not verify's and are ignored.
    for required in [
        "DATABASE_URL",
        "DATABASE_PASSWORD_FILE",
        "ERASURE_MAP",
        "ERASURE_RECORD",
    ] {
        assert!(
            help.env.contains_key(required),
            "verify --help lacks {required}"
        );
        assert!(
            env.get(required)
                .is_some_and(|v| v.as_deref().is_some_and(|v| !v.is_empty())),
            "the verify CronJob does not set {required}"
        );
    }
    // The same record as the job's: the component turns it on for both.
    let job_env = container_environment(&objects, job_container);
    assert_eq!(env["ERASURE_RECORD"], job_env["ERASURE_RECORD"]);
    assert_eq!(env["DATABASE_URL"], job_env["DATABASE_URL"]);

    // The password is the job's Secret's file, the map the job's ConfigMap's.
    let path = env["DATABASE_PASSWORD_FILE"].as_deref().unwrap();
    assert_eq!(
        mounted_secret_key(pod, container, "DATABASE_PASSWORD_FILE", path),
        "database-password"
    );
    let path = env["ERASURE_MAP"].as_deref().unwrap();
    let (map, key) = mounted_config_map_file(&objects, pod, container, path);
    let job_path = job_env["ERASURE_MAP"].as_deref().unwrap();
    let (job_map, job_key) = mounted_config_map_file(&objects, job_pod, job_container, job_path);
    assert_eq!((map, key), (job_map, job_key), "the job's erasure map");

    // As locked down as the job, by the same securityContext.
    assert_eq!(pod["securityContext"], job_pod["securityContext"]);
    assert_eq!(
        container["securityContext"],
        job_container["securityContext"]
    );
    for field in [
        "serviceAccountName",
        "automountServiceAccountToken",
        "enableServiceLinks",
        "restartPolicy",
    ] {
        assert_eq!(pod[field], job_pod[field], "{field}");
    }
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() > SIGTERM_BUDGET_SECS);
    for field in ["requests", "limits"] {
        assert!(
            container["resources"][field]["memory"].is_string(),
            "{field}.memory"
        );
        assert!(
            container["resources"][field]["cpu"].is_string(),
            "{field}.cpu"
        );
    }

    // The docs say how to add it.
    let docs = read("docs/operations.md");
    let section = &docs[docs
        .find("\n## Running verify")
        .expect("a \"Running verify\" section")..];
    assert!(section.contains(&format!("  - {VERIFY_COMPONENT}\n")));
}

#[test]
fn the_verify_cronjob_runs_daily_and_fails_at_once_on_an_answer() {
    let help = Help::of_verify();
    let objects = yaml_documents(&render_with_verify());
    let cronjob = verify_cronjob(&objects);
    let spec = &cronjob["spec"];

    // Once a day (minute and hour fixed, every day), in UTC, one at a time.
    let schedule: Vec<&str> = spec["schedule"].as_str().unwrap().split(' ').collect();
    assert!(
        schedule.len() == 5
            && schedule[..2].iter().all(|f| f.parse::<u8>().is_ok())
            && schedule[2..] == ["*", "*", "*"],
        "not daily: {schedule:?}"
    );
    assert_eq!(spec["timeZone"], "Etc/UTC");
    assert_eq!(spec["concurrencyPolicy"], "Forbid");
    let job = &spec["jobTemplate"]["spec"];
    // Three hours: a record of a million users, within the day.
    let deadline = job["activeDeadlineSeconds"].as_u64().unwrap();
    assert!(
        (10_800..86_400).contains(&deadline),
        "activeDeadlineSeconds {deadline}"
    );
    assert_eq!(job["backoffLimit"], 0, "the next day's run is the retry");
    assert!(job["ttlSecondsAfterFinished"].is_u64());

    // Disruptions first, then FailJob on exactly the codes of verify's that
    // are an answer: a finding, and those --help says no retry can help.
    let container = only_container(&job["template"]["spec"])["name"]
        .as_str()
        .unwrap();
    let rules = job["podFailurePolicy"]["rules"].as_array().unwrap();
    assert_eq!(rules[0]["action"], "Ignore");
    assert_eq!(rules[0]["onPodConditions"][0]["type"], "DisruptionTarget");
    let mut by_action: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for rule in &rules[1..] {
        let on = &rule["onExitCodes"];
        assert_eq!(on["operator"], "In", "{rule}");
        assert_eq!(on["containerName"], container, "{rule}");
        by_action
            .entry(rule["action"].as_str().unwrap())
            .or_default()
            .extend(
                on["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap()),
            );
    }
    let verify_codes: BTreeSet<u64> = help.exit_codes.keys().copied().collect();
    let answers: BTreeSet<u64> = help
        .config_error_codes()
        .union(&help.codes_described_by("(check, verify)"))
        .copied()
        .collect();
    assert!(
        answers.is_subset(&verify_codes),
        "{answers:?} {verify_codes:?}"
    );
    let fail: Vec<u64> = answers.into_iter().collect();
    assert_eq!(fail, [1, 2, 6], "verify --help: {:?}", help.exit_codes);
    assert_eq!(by_action.get("FailJob"), Some(&fail), "FailJob");
    // Nothing else is ruled on: with backoffLimit 0 every other failure
    // fails the Job too.
    assert_eq!(by_action.len(), 1, "{by_action:?}");
}

#[test]
fn the_cloud_sql_component_after_verify_puts_the_proxy_in_both_cronjobs() {
    // The docs' Cloud SQL overlay with verify listed before the proxy, as
    // "Running verify" says.
    let overlay = docs_cloud_sql_overlay();
    let proxy_line = "  - ../../k8s/components/cloud-sql-proxy\n";
    assert!(overlay.contains(proxy_line), "{overlay}");
    let verify_line = format!("  - {VERIFY_COMPONENT}\n");
    let output =
        kustomize_overlay(&overlay.replace(proxy_line, &format!("{verify_line}{proxy_line}")));
    assert_success("kubectl kustomize (Cloud SQL with verify)", &output);
    let rendered = String::from_utf8(output.stdout).unwrap();
    assert_valid_kubernetes(&rendered, &[]);
    let objects = yaml_documents(&rendered);
    let job = &cronjob(&objects)["spec"]["jobTemplate"]["spec"];
    let verify = &verify_cronjob(&objects)["spec"]["jobTemplate"]["spec"];
    let proxy = &job["template"]["spec"]["initContainers"];
    assert_eq!(proxy[0]["name"], "cloud-sql-proxy");
    assert_eq!(
        proxy[0]["args"].as_array().unwrap().last().unwrap(),
        INSTANCE
    );
    assert_eq!(
        verify["template"]["spec"]["initContainers"], *proxy,
        "the same proxy"
    );
    // verify's own container still decides the Job's failure.
    let container = only_container(&verify["template"]["spec"])["name"].clone();
    for rule in array(&verify["podFailurePolicy"]["rules"]) {
        if rule["onExitCodes"].is_object() {
            assert_eq!(rule["onExitCodes"]["containerName"], container, "{rule}");
        }
    }

    // Listed the other way round, the proxy would reach the job's pod only,
    // and verify could not connect: the overlay's patch of every CronJob's
    // proxy refuses to render instead.
    let output =
        kustomize_overlay(&overlay.replace(proxy_line, &format!("{proxy_line}{verify_line}")));
    assert!(!output.status.success(), "verify after the proxy rendered");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("initContainers"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------
// The Cloud SQL component for PostgreSQL (`k8s/components/cloud-sql-proxy-postgres`):
// the MySQL one with the proxy on 5432, in the docs' Cloud SQL overlay with the
// component and the URL changed, as the docs' Cloud SQL section says.

/// The component line of the docs' Cloud SQL overlay, and its PostgreSQL form.
const PROXY_COMPONENT: &str = "  - ../../k8s/components/cloud-sql-proxy\n";
const POSTGRES_PROXY_COMPONENT: &str = "  - ../../k8s/components/cloud-sql-proxy-postgres\n";

/// The overlay's `DATABASE_URL`, and its PostgreSQL form: the proxy on the
/// pod's loopback, no password, no TLS of the job's own (the proxy encrypts).
const MYSQL_PROXY_URL: &str = "mysql://user_purge@127.0.0.1:3306/app";
const POSTGRES_PROXY_URL: &str = "postgres://user_purge@127.0.0.1:5432/app?sslmode=disable";

/// The docs' Cloud SQL overlay as the docs turn it into PostgreSQL's.
fn docs_cloud_sql_postgres_overlay() -> String {
    let overlay = docs_cloud_sql_overlay();
    for line in [PROXY_COMPONENT, MYSQL_PROXY_URL] {
        assert!(overlay.contains(line), "the docs' overlay has no {line:?}");
    }
    overlay
        .replace(PROXY_COMPONENT, POSTGRES_PROXY_COMPONENT)
        .replace(MYSQL_PROXY_URL, POSTGRES_PROXY_URL)
}

/// The proxy's arguments in a CronJob's pod.
fn proxy_args(cronjob: &Value) -> Vec<&str> {
    array(&cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"][0]["args"])
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

#[test]
fn the_postgres_cloud_sql_overlay_is_the_mysql_one_with_the_proxy_on_5432() {
    let output = kustomize_overlay(&docs_cloud_sql_postgres_overlay());
    assert_success(
        "kubectl kustomize (the docs' Cloud SQL overlay, PostgreSQL)",
        &output,
    );
    let rendered = String::from_utf8(output.stdout).unwrap();
    assert_valid_kubernetes(&rendered, &[]);
    let objects = yaml_documents(&rendered);
    let job = cronjob(&objects);
    let args = proxy_args(job);
    assert_eq!(args.first(), Some(&"--port=5432"), "{args:?}");
    assert!(!args.iter().any(|a| a.contains("3306")), "{args:?}");
    assert_eq!(args.last(), Some(&INSTANCE), "{args:?}");

    // Nothing else of the pod differs from the MySQL component's: the
    // PostgreSQL one reuses it, and changes the port alone.
    let mysql = yaml_documents(&render_docs_overlay());
    let pod = |cronjob: &Value| {
        let mut pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"].clone();
        pod["initContainers"][0]["args"][0] = Value::Null;
        // The settings' ConfigMap name carries a hash of its (other) URL.
        for container in pod["containers"].as_array_mut().unwrap() {
            container["envFrom"] = Value::Null;
        }
        pod
    };
    assert_eq!(pod(job), pod(cronjob(&mysql)));

    // The URL names the proxy's port, without a password; the docs' Cloud SQL
    // section and the component's comment show it.
    let settings = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        ["envFrom"][0]["configMapRef"]["name"]
        .as_str()
        .unwrap();
    let config_map = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == settings)
        .expect("the settings' ConfigMap is rendered");
    assert_eq!(config_map["data"]["DATABASE_URL"], POSTGRES_PROXY_URL);
    assert_eq!(url_password(POSTGRES_PROXY_URL), None);
    let port = args[0].strip_prefix("--port=").unwrap();
    assert!(POSTGRES_PROXY_URL.contains(&format!("@127.0.0.1:{port}/")));
    let docs = read("docs/operations.md");
    let section = &docs[docs.find("\n## Cloud SQL").expect("a Cloud SQL section")..];
    for shown in [
        format!("\n{POSTGRES_PROXY_URL}\n"),
        POSTGRES_PROXY_COMPONENT.trim().to_owned(),
    ] {
        assert!(
            section.contains(&shown),
            "the Cloud SQL section must show {shown:?}"
        );
    }
    assert!(
        read("k8s/components/cloud-sql-proxy-postgres/kustomization.yaml")
            .contains(POSTGRES_PROXY_URL),
        "the component's comment must name {POSTGRES_PROXY_URL}"
    );
}

#[test]
fn the_postgres_cloud_sql_component_after_verify_puts_the_proxy_in_both_cronjobs() {
    let overlay = docs_cloud_sql_postgres_overlay();
    let verify_line = format!("  - {VERIFY_COMPONENT}\n");
    let output = kustomize_overlay(&overlay.replace(
        POSTGRES_PROXY_COMPONENT,
        &format!("{verify_line}{POSTGRES_PROXY_COMPONENT}"),
    ));
    assert_success(
        "kubectl kustomize (Cloud SQL for PostgreSQL with verify)",
        &output,
    );
    let rendered = String::from_utf8(output.stdout).unwrap();
    assert_valid_kubernetes(&rendered, &[]);
    let objects = yaml_documents(&rendered);
    let job = proxy_args(cronjob(&objects));
    assert_eq!(job.first(), Some(&"--port=5432"), "{job:?}");
    assert_eq!(proxy_args(verify_cronjob(&objects)), job, "the same proxy");

    // The other order fails to render, as with the MySQL component.
    let output = kustomize_overlay(&overlay.replace(
        POSTGRES_PROXY_COMPONENT,
        &format!("{POSTGRES_PROXY_COMPONENT}{verify_line}"),
    ));
    assert!(!output.status.success(), "verify after the proxy rendered");
}

// ---------------------------------------------------------------------------
// Helpers, the few of tests/deploy.rs this file needs

/// The YAML block under [`OVERLAY`] in docs/operations.md, rendered against
/// this repository's `k8s/` as `../../k8s`.
fn render_docs_overlay() -> String {
    let output = kustomize_overlay(&docs_cloud_sql_overlay());
    assert_success("kubectl kustomize (the docs' Cloud SQL overlay)", &output);
    String::from_utf8(output.stdout).unwrap()
}

/// The YAML block under [`OVERLAY`] in docs/operations.md.
fn docs_cloud_sql_overlay() -> String {
    let docs = read("docs/operations.md");
    let start = docs
        .find(OVERLAY)
        .unwrap_or_else(|| panic!("docs/operations.md shows {OVERLAY}"));
    docs[start..]
        .lines()
        .take_while(|line| !line.trim_start().starts_with("```"))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// `kubectl kustomize` of an overlay two levels below a directory where this
/// repository's `k8s/` is `../../k8s`, as in the docs' overlays.
fn kustomize_overlay(kustomization: &str) -> Output {
    let scratch = Scratch::new("deploy-overlay");
    let overlay = scratch.join("overlays/test");
    std::fs::create_dir_all(&overlay).unwrap();
    std::os::unix::fs::symlink(root().join("k8s"), scratch.join("k8s")).unwrap();
    std::fs::write(overlay.join("kustomization.yaml"), kustomization).unwrap();
    run(Command::new("kubectl").arg("kustomize").arg(&overlay))
}

// ---------------------------------------------------------------------------
// What `--help` documents

/// The environment names and exit codes of `user-purge --help`.
struct Help {
    text: String,
    /// Each flag's environment variable, and whether --help hides its value
    /// (a secret).
    env: BTreeMap<String, bool>,
    /// Each documented exit code and its description.
    exit_codes: BTreeMap<u64, String>,
}

impl Help {
    fn of_the_binary() -> Help {
        Help::of(&["--help"])
    }

    /// `user-purge verify --help`: verify's own flags and exit codes.
    fn of_verify() -> Help {
        Help::of(&["verify", "--help"])
    }

    fn of(args: &[&str]) -> Help {
        // A clean environment: clap prints the values of variables it sees.
        let output = run(Command::new(env!("CARGO_BIN_EXE_user-purge"))
            .args(args)
            .env_clear());
        assert_success(&format!("user-purge {}", args.join(" ")), &output);
        let text = String::from_utf8(output.stdout).unwrap();

        let mut env = BTreeMap::new();
        for piece in text.split("[env: ").skip(1) {
            let name: String = piece
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let secret = piece[name.len()..].starts_with(']');
            env.insert(name, secret);
        }

        let table = text
            .split_once("Exit codes:")
            .expect("--help has an exit-code table")
            .1;
        let mut exit_codes = BTreeMap::new();
        let mut last = None;
        for line in table.lines().filter(|l| !l.trim().is_empty()) {
            let trimmed = line.trim_start();
            let (first, rest) = trimmed
                .split_once(char::is_whitespace)
                .unwrap_or((trimmed, ""));
            match first.parse::<u64>() {
                Ok(code) => {
                    exit_codes.insert(code, rest.trim().to_owned());
                    last = Some(code);
                }
                Err(_) => {
                    let code = last.expect("the table starts with a code");
                    let description = exit_codes.get_mut(&code).unwrap();
                    description.push(' ');
                    description.push_str(trimmed);
                }
            }
        }
        assert!(exit_codes.contains_key(&0), "{text}");
        Help {
            text,
            env,
            exit_codes,
        }
    }

    /// Asserts that every name is one the binary reads.
    fn assert_accepts(&self, place: &str, names: &BTreeSet<String>) {
        for name in NON_FLAG_ENV {
            assert!(self.text.contains(name), "--help no longer mentions {name}");
        }
        for name in names {
            assert!(
                self.env.contains_key(name) || NON_FLAG_ENV.contains(&name.as_str()),
                "{place} sets {name}, which `user-purge --help` does not list"
            );
        }
        // Never in a deployment: it turns credentials off.
        assert!(!names.contains("PUBSUB_EMULATOR_HOST"), "{place}");
    }

    /// The variables whose values --help hides.
    fn secrets(&self) -> BTreeSet<&str> {
        self.env
            .iter()
            .filter(|(_, secret)| **secret)
            .map(|(name, _)| name.as_str())
            .collect()
    }

    fn codes_described_by(&self, word: &str) -> BTreeSet<u64> {
        self.exit_codes
            .iter()
            .filter(|(_, description)| description.contains(word))
            .map(|(code, _)| *code)
            .collect()
    }

    /// The failures no retry can help: configuration errors and refusals.
    fn config_error_codes(&self) -> BTreeSet<u64> {
        let codes = self.codes_described_by("no retry can help");
        assert!(!codes.is_empty(), "{:?}", self.exit_codes);
        codes
    }

    /// Every other failure.
    /// (The check's own codes are never a run's.)
    fn retryable_codes(&self) -> BTreeSet<u64> {
        let config = self.config_error_codes();
        let check_only = self.codes_described_by("(check, verify)");
        self.exit_codes
            .keys()
            .filter(|code| **code != 0 && !config.contains(code) && !check_only.contains(code))
            .copied()
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Cargo.toml and the Dockerfile

struct Crate {
    binary: String,
    version: String,
    rust_version: Vec<u64>,
}

impl Crate {
    /// The few fields needed, read line by line from the [package] table
    /// (there is no [[bin]], so the binary is named after the package).
    fn read() -> Crate {
        let manifest = read("Cargo.toml");
        assert!(
            !manifest.contains("[[bin]]"),
            "Cargo.toml declares [[bin]]: teach tests/deploy.rs which binary ships"
        );
        let mut package = BTreeMap::new();
        let mut section = "";
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
            } else if section == "[package]"
                && let Some((key, value)) = line.split_once('=')
            {
                package.insert(key.trim(), value.trim().trim_matches('"').to_owned());
            }
        }
        Crate {
            binary: package["name"].clone(),
            version: package["version"].clone(),
            rust_version: version_numbers(&package["rust-version"]),
        }
    }
}

struct Dockerfile {
    /// X.Y of the builder's `FROM rust:X.Y-...`.
    builder_rust: Option<Vec<u64>>,
    /// The builder's WORKDIR.
    workdir: String,
    /// The words of the builder's `cargo build ...`.
    build: Vec<String>,
    /// The runtime stage's base image.
    runtime: String,
    /// Source and destination of `COPY --from=build`.
    copy_from_build: (String, String),
    /// USER uid:gid.
    user: (u64, u64),
    entrypoint: Vec<String>,
}

impl Dockerfile {
    fn build_target(&self) -> String {
        let at = self
            .build
            .iter()
            .position(|w| w == "--target")
            .expect("cargo build --target TRIPLE");
        self.build[at + 1].clone()
    }
}

/// The instructions this test relies on, continuation lines joined.
fn dockerfile() -> Dockerfile {
    let text = read("Dockerfile").replace("\\\n", " ");
    let mut docker = Dockerfile {
        builder_rust: None,
        workdir: String::new(),
        build: Vec::new(),
        runtime: String::new(),
        copy_from_build: (String::new(), String::new()),
        user: (0, 0),
        entrypoint: Vec::new(),
    };
    let mut stage = 0;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (instruction, args) = line.split_once(' ').unwrap_or((line, ""));
        let words: Vec<&str> = args.split_whitespace().collect();
        match (instruction, stage) {
            ("FROM", _) => {
                stage += 1;
                if stage == 1 {
                    assert_eq!(words[1..], ["AS", "build"], "the builder stage is `build`");
                    docker.builder_rust = words[0]
                        .strip_prefix("rust:")
                        .map(|tag| version_numbers(tag.split('-').next().unwrap()));
                } else {
                    docker.runtime = words[0].to_owned();
                }
            }
            ("WORKDIR", 1) => docker.workdir = args.to_owned(),
            ("RUN", 1) => {
                if let Some(at) = args.find("cargo build") {
                    docker.build = args[at..].split_whitespace().map(String::from).collect();
                }
            }
            ("COPY", 2) => {
                assert_eq!(
                    words.len(),
                    3,
                    "COPY --from=build SOURCE DESTINATION: {line}"
                );
                assert_eq!(words[0], "--from=build");
                docker.copy_from_build = (words[1].to_owned(), words[2].to_owned());
            }
            ("USER", 2) => {
                let (uid, gid) = args.split_once(':').expect("USER uid:gid");
                let number = |n: &str| n.parse().expect("USER is numeric, for runAsNonRoot");
                docker.user = (number(uid), number(gid));
            }
            ("ENTRYPOINT", 2) => {
                docker.entrypoint = serde_json::from_str(args).expect("ENTRYPOINT in exec form");
            }
            _ => {}
        }
    }
    assert_eq!(stage, 2, "a builder and a runtime stage");
    assert!(!docker.build.is_empty(), "the builder runs `cargo build`");
    docker
}

fn version_numbers(text: &str) -> Vec<u64> {
    text.split('.')
        .map(|n| {
            n.parse()
                .unwrap_or_else(|_| panic!("not a version: {text}"))
        })
        .collect()
}

/// The binary scripts/check-deploy built with the Dockerfile's line.
fn release_binary(target: &str, binary: &str) -> PathBuf {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let path = target_dir.join(target).join("release").join(binary);
    assert!(
        path.is_file(),
        "no {}: scripts/check-deploy builds it (scripts/test runs it first)",
        path.display()
    );
    path
}

// ---------------------------------------------------------------------------
// systemd unit files

/// A unit file's settings: (section, key) to every value, in order.
struct Unit(BTreeMap<(String, String), Vec<String>>);

fn unit(file: &str) -> Unit {
    let mut settings: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in read(&format!("deploy/systemd/{file}"))
        .lines()
        .map(str::trim)
    {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, value)) = line.split_once('=') {
            settings
                .entry((section.clone(), key.to_owned()))
                .or_default()
                .push(value.to_owned());
        }
    }
    Unit(settings)
}

impl Unit {
    fn all(&self, section: &str, key: &str) -> Vec<String> {
        self.0
            .get(&(section.to_owned(), key.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    fn one(&self, section: &str, key: &str) -> String {
        match &self.all(section, key)[..] {
            [value] => value.clone(),
            values => panic!("[{section}] {key}= should be set once, is {values:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Tools and files

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// A tool from the venv scripts/check-deploy makes.
fn venv_tool(name: &str) -> PathBuf {
    let Some(venv) = std::env::var_os("DEPLOY_VENV") else {
        panic!(
            "DEPLOY_VENV is not set: run scripts/test, or scripts/check-deploy and then \
             DEPLOY_VENV=$PWD/target/deploy-venv cargo test --test deploy"
        );
    };
    let tool = Path::new(&venv).join("bin").join(name);
    assert!(
        tool.is_file(),
        "no {}: scripts/check-deploy installs it",
        tool.display()
    );
    tool
}

/// Runs a command to completion; a tool that cannot be started fails the test.
fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {:?}: {e} (is it installed?)",
            command.get_program()
        )
    })
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `kubectl kustomize k8s/`.
fn render_k8s() -> String {
    let output = run(Command::new("kubectl")
        .args(["kustomize", "k8s/"])
        .current_dir(root()));
    assert_success("kubectl kustomize k8s/", &output);
    String::from_utf8(output.stdout).unwrap()
}

/// The documents of a YAML stream, through the venv's PyYAML.
fn yaml_documents(yaml: &str) -> Vec<Value> {
    let script = "import json, sys, yaml; \
                  json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)";
    match python_to_json("YAML to JSON", script, yaml) {
        Value::Array(documents) => documents,
        other => panic!("not a list of documents: {other}"),
    }
}

/// A TOML document, through the venv's Python (tomllib, Python 3.11 or newer).
/// The crate's own `toml` is not a dependency this test can rely on yet.
fn toml_document(what: &str, toml: &str) -> Value {
    let script =
        "import json, sys, tomllib; json.dump(tomllib.loads(sys.stdin.read()), sys.stdout)";
    python_to_json(&format!("{what} as TOML"), script, toml)
}

/// What a Python script of the venv prints as JSON, given `input` on stdin.
fn python_to_json(what: &str, script: &str, input: &str) -> Value {
    use std::io::Write as _;
    let mut child = Command::new(venv_tool("python"))
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run the venv's python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_success(what, &output);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The code block of docs/operations.md that starts with the comment line
/// `first_line` (inside a list item, its indentation removed).
fn docs_block(docs: &str, first_line: &str) -> String {
    let start = docs
        .find(first_line)
        .unwrap_or_else(|| panic!("docs/operations.md shows no block {first_line:?}"));
    docs[start..]
        .lines()
        .take_while(|line| !line.trim_start().starts_with("```"))
        .map(|line| format!("{}\n", line.strip_prefix("   ").unwrap_or(line)))
        .collect()
}

/// Asserts that `rendered`, and the manifests `also`, validate against the
/// schemas of every version in [`KUBERNETES_VERSIONS`].
fn assert_valid_kubernetes(rendered: &str, also: &[&Path]) {
    let scratch = Scratch::new("deploy-validate");
    let file = scratch.join("rendered.yaml");
    std::fs::write(&file, rendered).unwrap();
    for version in KUBERNETES_VERSIONS {
        let output = run(Command::new(venv_tool("kubernetes-validate"))
            .args(["--strict", "--quiet", "--kubernetes-version", version])
            .arg(&file)
            .args(also));
        assert_success(&format!("kubernetes-validate for {version}"), &output);
    }
}

fn cronjob(objects: &[Value]) -> &Value {
    objects
        .iter()
        .find(|o| o["kind"] == "CronJob" && o["metadata"]["name"] == "user-purge")
        .expect("k8s/ renders CronJob user-purge")
}

/// A JSON array, or nothing when the field is absent.
fn array(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}
