//! Every way the job finds Pub/Sub credentials, tested offline: Workload
//! Identity (Application Default Credentials from the GKE metadata server), a
//! service-account key given inline, and a broken `GOOGLE_APPLICATION_CREDENTIALS`.
//!
//! Each run happens in a network namespace of the test's own that has nothing
//! but a loopback interface: the fake servers listen there, real Pub/Sub
//! (`pubsub.googleapis.com`) is unreachable at once, and the auth crate's own
//! probes (`http://169.254.169.254`, `metadata.google.internal`, DNS) fail
//! without a packet leaving the machine. No emulator, no database: credentials
//! are settled before either is contacted.
//!
//! What gcloud-auth 1.4 does, read from its source:
//! - ADC looks at `GOOGLE_APPLICATION_CREDENTIALS_JSON`, then the file
//!   `GOOGLE_APPLICATION_CREDENTIALS`, then `$HOME/.config/gcloud/
//!   application_default_credentials.json`; when none can be used and the
//!   machine is on GCE (`GCE_METADATA_HOST` set, or 169.254.169.254 answers
//!   with `Metadata-Flavor: Google`), it asks the metadata server, with that
//!   header, for `project/project-id` and for
//!   `instance/service-accounts/default/token?scopes=cloud-platform,pubsub`.
//! - A service-account key with gcloud-pubsub's audience is turned into a
//!   self-signed JWT (RS256, `aud` = `https://pubsub.googleapis.com/`): the
//!   key's `token_uri` is never called.

mod common;

use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::prelude::BASE64_URL_SAFE_NO_PAD;
use common::scratch::{Scratch, openssl};
use common::{KEY_MARKER, PROJECT, Run, job_command};
use gcloud_gax::conn::Environment;
use gcloud_pubsub::client::ClientConfig;
use gcloud_pubsub::client::google_cloud_auth::credentials::CredentialsFile;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

const SCOPE_CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const SCOPE_PUBSUB: &str = "https://www.googleapis.com/auth/pubsub";
/// What the fake metadata server hands out; it must never be printed.
const ACCESS_TOKEN: &str = "ya29.fake-workload-identity-token-5d1e";
/// The path of the metadata server's token for the pod's service account.
const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// Connecting to Pub/Sub may take `CONNECT_TIMEOUT` (5 s) in the job; an
/// unreachable Pub/Sub must end the run well within this.
const RUN_LIMIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Workload Identity

#[tokio::test(flavor = "multi_thread")]
async fn workload_identity_takes_a_pubsub_token_from_the_metadata_server() {
    let network = Offline::new();
    let mut metadata = FakeHttp::start(network.listener(), metadata_server);
    let host = metadata.host();
    let scratch = Scratch::new("creds-wi");

    let run = network
        .run(&scratch, &[("GCE_METADATA_HOST", host.as_str())])
        .await;

    let requests = metadata.received();
    assert_fails_on_pubsub(&run, &[ACCESS_TOKEN]);
    for request in &requests {
        assert_eq!(
            request.header("metadata-flavor"),
            Some("Google"),
            "every metadata request says Metadata-Flavor: Google: {request:?}"
        );
        assert!(
            [TOKEN_PATH, "/computeMetadata/v1/project/project-id"].contains(&request.path()),
            "nothing else is asked of the metadata server: {request:?}"
        );
    }
    let tokens: Vec<&Received> = requests.iter().filter(|r| r.path() == TOKEN_PATH).collect();
    assert_eq!(tokens.len(), 1, "one token, asked once: {requests:#?}");
    assert_eq!(tokens[0].method, "GET");
    assert_eq!(
        tokens[0].query("scopes").as_deref(),
        Some(format!("{SCOPE_CLOUD_PLATFORM},{SCOPE_PUBSUB}").as_str()),
        "the scopes gcloud-pubsub asks for: {:?}",
        tokens[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_google_variables_count_as_unset() {
    // A ConfigMap or an env file that leaves the variables empty: the job goes
    // on to the metadata server, as with them unset, instead of reading "".
    let network = Offline::new();
    let mut metadata = FakeHttp::start(network.listener(), metadata_server);
    let host = metadata.host();
    let scratch = Scratch::new("creds-empty");

    let run = network
        .run(
            &scratch,
            &[
                ("GCE_METADATA_HOST", host.as_str()),
                ("GOOGLE_APPLICATION_CREDENTIALS", ""),
                ("GOOGLE_APPLICATION_CREDENTIALS_JSON", ""),
                ("PUBSUB_EMULATOR_HOST", ""),
            ],
        )
        .await;

    assert_fails_on_pubsub(&run, &[ACCESS_TOKEN]);
    let requests = metadata.received();
    assert!(
        requests.iter().any(|r| r.path() == TOKEN_PATH),
        "the metadata server was not asked for a token: {requests:#?}\n{}",
        run.stderr
    );
}

/// The GKE metadata server: a token for the pod's Google service account,
/// only to requests that carry `Metadata-Flavor: Google` (as the real one).
fn metadata_server(request: &Received) -> (u16, String) {
    if request.header("metadata-flavor") != Some("Google") {
        return (403, "Missing Metadata-Flavor:Google header.".into());
    }
    match request.path() {
        TOKEN_PATH => (
            200,
            json!({"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"})
                .to_string(),
        ),
        "/computeMetadata/v1/project/project-id" => (200, PROJECT.into()),
        _ => (404, "not found".into()),
    }
}

// ---------------------------------------------------------------------------
// A service-account key

#[tokio::test(flavor = "multi_thread")]
async fn a_service_account_key_is_used_without_a_token_exchange_and_never_shown() {
    let network = Offline::new();
    let mut token_endpoint = FakeHttp::start(network.listener(), |_| {
        (
            200,
            json!({"access_token": "unused", "expires_in": 3599, "token_type": "Bearer"})
                .to_string(),
        )
    });
    let scratch = Scratch::new("creds-key");
    let key =
        ServiceAccountKey::generate(&scratch, &format!("http://{}/token", token_endpoint.host()));

    let run = network
        .run(&scratch, &[("PUBSUB_SERVICE_ACCOUNT", key.json.as_str())])
        .await;

    let mut secrets: Vec<&str> = key.private_lines().collect();
    secrets.push(KEY_MARKER);
    assert_fails_on_pubsub(&run, &secrets);
    let requests = token_endpoint.received();
    assert!(
        requests.is_empty(),
        "the key's token_uri is never called: gcloud-auth signs its own JWT for \
         Pub/Sub's audience. It got: {requests:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_account_key_becomes_a_jwt_signed_with_it_for_pubsub() {
    let scratch = Scratch::new("creds-jwt");
    let key = ServiceAccountKey::generate(&scratch, "http://127.0.0.1:9/token");

    // The very call the job makes with PUBSUB_SERVICE_ACCOUNT.
    let credentials = CredentialsFile::new_from_str(&key.json).await.unwrap();
    let config = ClientConfig {
        environment: Environment::GoogleCloud(Box::new(token_source::NoopTokenSourceProvider {})),
        ..ClientConfig::default()
    }
    .with_credentials(credentials)
    .await
    .unwrap();
    let Environment::GoogleCloud(provider) = &config.environment else {
        panic!("with_credentials must keep Google Cloud");
    };
    let bearer = provider.token_source().token().await.unwrap();
    let jwt = bearer.strip_prefix("Bearer ").expect("a bearer token");

    let [header, claims, signature] = jwt.split('.').collect::<Vec<_>>()[..] else {
        panic!("not a JWT: {jwt}");
    };
    let header = decode_json(header);
    let claims = decode_json(claims);
    assert_eq!(header["alg"], "RS256", "{header}");
    assert_eq!(header["kid"], key.id, "{header}");
    assert_eq!(claims["iss"], key.email, "{claims}");
    assert_eq!(claims["sub"], key.email, "{claims}");
    assert_eq!(claims["aud"], "https://pubsub.googleapis.com/", "{claims}");
    assert!(
        claims["scope"].is_null(),
        "a self-signed JWT has no scope: {claims}"
    );
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 3600, "{claims}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((iat - now).abs() < 60, "issued now: {claims}");

    // RS256 over `header.claims`, checked by openssl with the public key.
    let signed = &jwt[..jwt.rfind('.').unwrap()];
    std::fs::write(scratch.join("signed"), signed).unwrap();
    std::fs::write(
        scratch.join("signature"),
        BASE64_URL_SAFE_NO_PAD.decode(signature).unwrap(),
    )
    .unwrap();
    openssl(
        &scratch,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "public.pem",
            "-signature",
            "signature",
            "signed",
        ],
    );
    // And a signature that does not verify is refused, so the check is real.
    let mut forged = BASE64_URL_SAFE_NO_PAD.decode(signature).unwrap();
    forged[10] ^= 1;
    std::fs::write(scratch.join("signature"), forged).unwrap();
    let refused = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            "public.pem",
            "-signature",
            "signature",
            "signed",
        ])
        .current_dir(&*scratch)
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

/// A real 2048-bit RSA key, as a service-account JSON key.
struct ServiceAccountKey {
    json: String,
    pem: String,
    id: String,
    email: String,
}

impl ServiceAccountKey {
    /// Writes `private.pem` and `public.pem` into `dir`.
    fn generate(dir: &Path, token_uri: &str) -> ServiceAccountKey {
        openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "private.pem",
            ],
        );
        openssl(
            dir,
            &[
                "pkey",
                "-in",
                "private.pem",
                "-pubout",
                "-out",
                "public.pem",
            ],
        );
        let pem = std::fs::read_to_string(dir.join("private.pem")).unwrap();
        let id = format!("{KEY_MARKER}-id");
        let email = format!("purge@{PROJECT}.iam.gserviceaccount.com");
        let json = json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": id,
            "private_key": pem,
            "client_email": email,
            "client_id": "100000000000000000001",
            "token_uri": token_uri,
        })
        .to_string();
        ServiceAccountKey {
            json,
            pem,
            id,
            email,
        }
    }

    /// The private key's base64 lines: none may show in any output.
    fn private_lines(&self) -> impl Iterator<Item = &str> {
        self.pem.lines().filter(|line| !line.starts_with("-----"))
    }
}

fn decode_json(part: &str) -> Value {
    serde_json::from_slice(&BASE64_URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------
// GOOGLE_APPLICATION_CREDENTIALS

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_malformed_google_application_credentials_is_named() {
    let network = Offline::new();
    let scratch = Scratch::new("creds-adc");
    let mut failures = Vec::new();
    for (name, content) in [
        ("missing.json", None),
        ("not-json.json", Some(format!("{{not json {KEY_MARKER}"))),
        ("empty.json", Some(String::new())),
        (
            "no-private-key.json",
            Some(r#"{"type":"service_account","client_email":"x@y"}"#.to_owned()),
        ),
    ] {
        let path = scratch.join(name);
        if let Some(content) = content {
            std::fs::write(&path, content).unwrap();
        }
        let path = path.display().to_string();
        let run = network
            .run(
                &scratch,
                &[("GOOGLE_APPLICATION_CREDENTIALS", path.as_str())],
            )
            .await;
        failures.extend(failure_to_name_the_variable(&run, name));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// On GKE the metadata server answers; a broken file named by the variable
/// must still fail the run, not be replaced by the node's identity unnoticed.
#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_google_application_credentials_is_not_replaced_by_the_metadata_server() {
    let network = Offline::new();
    let mut metadata = FakeHttp::start(network.listener(), metadata_server);
    let host = metadata.host();
    let scratch = Scratch::new("creds-adc-gke");
    let path = scratch.join("not-json.json");
    std::fs::write(&path, "{not json").unwrap();
    let path = path.display().to_string();

    let run = network
        .run(
            &scratch,
            &[
                ("GOOGLE_APPLICATION_CREDENTIALS", path.as_str()),
                ("GCE_METADATA_HOST", host.as_str()),
            ],
        )
        .await;

    if let Some(failure) = failure_to_name_the_variable(&run, "not JSON, on GKE") {
        panic!("{failure}");
    }
    let tokens: Vec<Received> = metadata
        .received()
        .into_iter()
        .filter(|r| r.path() == TOKEN_PATH)
        .collect();
    assert!(
        tokens.is_empty(),
        "no token from the metadata server: {tokens:#?}"
    );
}

/// Why the run is not one clean failure naming the variable, if it is not:
/// exit 2 or 3 (never a panic), one error line, and that line names
/// GOOGLE_APPLICATION_CREDENTIALS; nothing of the file shows.
fn failure_to_name_the_variable(run: &Run, case: &str) -> Option<String> {
    run.assert_no_secret(&[KEY_MARKER]);
    let errors = error_lines(run);
    let failure = if run.code == Some(101) || run.stderr.contains("panicked") {
        "a panic".to_owned()
    } else if !matches!(run.code, Some(2 | 3)) {
        format!("exit {:?}, not 2 or 3", run.code)
    } else if errors.len() != 1 {
        format!("{} error lines, not one", errors.len())
    } else if !errors[0].contains("GOOGLE_APPLICATION_CREDENTIALS") {
        format!(
            "the error line does not name GOOGLE_APPLICATION_CREDENTIALS: {}",
            errors[0]
        )
    } else {
        return None;
    };
    Some(format!("{case}: {failure}\n{}", run.stderr))
}

// ---------------------------------------------------------------------------
// What every run must show

/// Exit 3 with one error line about Pub/Sub, the summary's outcome says so,
/// and no secret shows.
fn assert_fails_on_pubsub(run: &Run, secrets: &[&str]) {
    run.assert_code(3);
    assert_eq!(run.outcome(), "pubsub_error");
    let errors = error_lines(run);
    assert_eq!(errors.len(), 1, "one error line\n{}", run.stderr);
    assert!(errors[0].contains("Pub/Sub"), "{}", errors[0]);
    run.assert_no_secret(secrets);
}

/// env_logger's error lines: `[time ERROR target] message`.
fn error_lines(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| l.contains(" ERROR "))
        .collect()
}

// ---------------------------------------------------------------------------
// The network namespace

/// A network namespace with only `lo`, up. The fake servers listen in it and
/// the job runs in it; nothing in it reaches beyond this machine.
struct Offline {
    namespace: std::fs::File,
}

impl Offline {
    fn new() -> Offline {
        // A thread of its own enters the new namespace (a namespace belongs to
        // a thread), and keeps a handle to it for the listeners and the job.
        let namespace = std::thread::spawn(|| {
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                panic!(
                    "cannot make a network namespace (needs root): {}",
                    std::io::Error::last_os_error()
                );
            }
            // Spawned from this thread, `ip` runs in the new namespace.
            let status = Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status()
                .expect("ip (iproute2) must be installed");
            assert!(status.success(), "ip link set lo up");
            std::fs::File::open("/proc/thread-self/ns/net").unwrap()
        })
        .join()
        .unwrap();
        Offline { namespace }
    }

    /// A listener on 127.0.0.1 inside the namespace.
    fn listener(&self) -> tokio::net::TcpListener {
        let fd = self.namespace.as_raw_fd();
        let listener = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    assert_eq!(unsafe { libc::setns(fd, libc::CLONE_NEWNET) }, 0);
                    std::net::TcpListener::bind("127.0.0.1:0").unwrap()
                })
                .join()
                .unwrap()
        });
        listener.set_nonblocking(true).unwrap();
        tokio::net::TcpListener::from_std(listener).unwrap()
    }

    /// Runs the job in the namespace against a subscription on real Pub/Sub,
    /// with `env` added to a clean environment: no emulator, no ADC file in
    /// `$HOME`, no proxy. It must end within [`RUN_LIMIT`].
    async fn run(&self, home: &Path, env: &[(&str, &str)]) -> Run {
        let mut command = job_command(&[]);
        for variable in [
            "GCE_METADATA_HOST",
            "GOOGLE_APPLICATION_CREDENTIALS_JSON",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            command.env_remove(variable);
        }
        command
            .env("HOME", home)
            .env("PUBSUB_SUBSCRIPTION", "purge-events")
            .env("PUBSUB_PROJECT", PROJECT)
            // Never reached: the job settles Pub/Sub before the database.
            .env(
                "DATABASE_URL",
                "mysql://purge:Pw-never-used@127.0.0.1:9/app",
            )
            .env("RUST_LOG", "trace");
        for (key, value) in env {
            command.env(key, value);
        }
        let fd = self.namespace.as_raw_fd();
        unsafe {
            command.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let started = Instant::now();
        let output = tokio::time::timeout(RUN_LIMIT, command.output())
            .await
            .unwrap_or_else(|_| panic!("the job did not end within {RUN_LIMIT:?}"))
            .unwrap();
        let run = Run::from(output);
        assert!(started.elapsed() < RUN_LIMIT);
        run.assert_no_secret(&["Pw-never-used"]);
        run
    }
}

// ---------------------------------------------------------------------------
// A fake HTTP/1.1 server

/// One request as the fake server read it.
#[derive(Debug)]
struct Received {
    method: String,
    /// The request target: path and query.
    target: String,
    /// Names in lower case.
    headers: Vec<(String, String)>,
}

impl Received {
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A query parameter, percent-decoded.
    fn query(&self, name: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| percent_decode(v))
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Answers every request with `respond`'s status and body, and records it.
struct FakeHttp {
    host: String,
    requests: mpsc::UnboundedReceiver<Received>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeHttp {
    fn start(
        listener: tokio::net::TcpListener,
        respond: fn(&Received) -> (u16, String),
    ) -> FakeHttp {
        let host = listener.local_addr().unwrap().to_string();
        let (sender, requests) = mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let sender = sender.clone();
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut stream).await else {
                        return;
                    };
                    let (status, body) = respond(&request);
                    let _ = sender.send(request);
                    let response = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        FakeHttp {
            host,
            requests,
            server,
        }
    }

    fn host(&self) -> String {
        self.host.clone()
    }

    /// Every request answered so far. Called after the job has exited, so
    /// every request it made has been answered, and so recorded.
    fn received(&mut self) -> Vec<Received> {
        let mut all = Vec::new();
        while let Ok(request) = self.requests.try_recv() {
            all.push(request);
        }
        all
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// One HTTP/1.1 request: its head, then `Content-Length` bytes of body.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut data = Vec::new();
    let mut buffer = [0; 4096];
    let head_end = loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut buffer).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buffer[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, target) = (
        request_line.next()?.to_owned(),
        request_line.next()?.to_owned(),
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    // The body, read to the end of the request and not kept: no fake needs it.
    let mut body = data.len() - (head_end + 4);
    while body < length {
        let n = stream.read(&mut buffer).await.ok()?;
        if n == 0 {
            return None;
        }
        body += n;
    }
    Some(Received {
        method,
        target,
        headers,
    })
}
