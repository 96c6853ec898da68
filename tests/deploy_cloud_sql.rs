//! The Cloud SQL component (`k8s/components/cloud-sql-proxy`) and the overlay
//! docs/operations.md shows with it: rendered by `kubectl kustomize`, validated
//! offline against the Kubernetes 1.29 and 1.37 schemas, and checked for what
//! makes the Job complete: the Cloud SQL Auth Proxy as a native sidecar (an
//! init container with `restartPolicy: Always`) that starts before user-purge
//! and is probed, locked down like it, and the address `DATABASE_URL` names,
//! without a password (that stays the Secret's file).
//!
//! Tools as in tests/deploy.rs: kubernetes-validate and PyYAML from the venv
//! scripts/check-deploy makes (`DEPLOY_VENV`), kubectl from the machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// As in tests/deploy.rs: native sidecars need 1.29, the oldest the base
/// supports; 1.37 is the newest kubernetes-validate knows.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.29.0", "1.37.0"];

/// The heading of the overlay's YAML block in docs/operations.md.
const OVERLAY: &str = "# overlays/cloud-sql/kustomization.yaml";

/// What the docs' overlay puts in for the component's placeholders.
const INSTANCE: &str = "my-project:europe-west1:app-db";
const GOOGLE_SERVICE_ACCOUNT: &str = "user-purge@my-project.iam.gserviceaccount.com";

#[test]
fn the_cloud_sql_overlay_validates_against_the_kubernetes_schemas() {
    let rendered = render_docs_overlay();
    let scratch = Scratch::new("validate");
    let file = scratch.path().join("rendered.yaml");
    std::fs::write(&file, &rendered).unwrap();
    for version in KUBERNETES_VERSIONS {
        let output = run(Command::new(venv_tool("kubernetes-validate"))
            .args(["--strict", "--quiet", "--kubernetes-version", version])
            .arg(&file));
        assert_success(&format!("kubernetes-validate for {version}"), &output);
    }
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
// Helpers, the few of tests/deploy.rs this file needs

/// The YAML block under [`OVERLAY`] in docs/operations.md, rendered against
/// this repository's `k8s/` as `../../k8s`.
fn render_docs_overlay() -> String {
    let docs = read("docs/operations.md");
    let start = docs
        .find(OVERLAY)
        .unwrap_or_else(|| panic!("docs/operations.md shows {OVERLAY}"));
    let block: String = docs[start..]
        .lines()
        .take_while(|line| !line.trim_start().starts_with("```"))
        .map(|line| format!("{line}\n"))
        .collect();
    let scratch = Scratch::new("overlay");
    let overlay = scratch.path().join("overlays/cloud-sql");
    std::fs::create_dir_all(&overlay).unwrap();
    std::os::unix::fs::symlink(root().join("k8s"), scratch.path().join("k8s")).unwrap();
    std::fs::write(overlay.join("kustomization.yaml"), block).unwrap();
    let output = run(Command::new("kubectl").arg("kustomize").arg(&overlay));
    assert_success("kubectl kustomize (the docs' Cloud SQL overlay)", &output);
    String::from_utf8(output.stdout).unwrap()
}

fn cronjob(objects: &[Value]) -> &Value {
    objects
        .iter()
        .find(|o| o["kind"] == "CronJob" && o["metadata"]["name"] == "user-purge")
        .expect("the overlay renders CronJob user-purge")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// A tool from the venv scripts/check-deploy makes.
fn venv_tool(name: &str) -> PathBuf {
    let venv = std::env::var_os("DEPLOY_VENV")
        .expect("DEPLOY_VENV is not set: run scripts/test, or scripts/check-deploy first");
    let tool = Path::new(&venv).join("bin").join(name);
    assert!(
        tool.is_file(),
        "no {}: scripts/check-deploy installs it",
        tool.display()
    );
    tool
}

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

/// The documents of a YAML stream, through the venv's PyYAML.
fn yaml_documents(yaml: &str) -> Vec<Value> {
    use std::io::Write as _;
    let mut child = Command::new(venv_tool("python"))
        .args([
            "-c",
            "import json, sys, yaml; \
             json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run the venv's python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_success("YAML to JSON", &output);
    match serde_json::from_slice(&output.stdout).unwrap() {
        Value::Array(documents) => documents,
        other => panic!("not a list of documents: {other}"),
    }
}

/// A private directory, removed on drop; one per test and process, since the
/// tests run in parallel.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "user-purge-cloud-sql-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
