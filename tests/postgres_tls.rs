//! TLS to PostgreSQL, as libpq's `sslmode` means it, against a private
//! PostgreSQL 15 (`common::postgres_cluster`) with `ssl=on`, a server
//! certificate for 127.0.0.1 and localhost signed by a CA the test made, and
//! a second, unrelated CA. The server takes the job's account over TLS only,
//! so that every run that connects was encrypted.
//!
//! - `verify-full` with the right CA (`--database-ca-file`) connects and the
//!   run erases; with the wrong CA, or with the public roots (no CA file),
//!   it is refused: exit 4, a line naming the certificate, nothing received;
//! - `verify-full` to an address the certificate does not name (127.0.0.2)
//!   is refused, where `verify-ca` with the right CA accepts it (and still
//!   refuses the wrong CA);
//! - `require` encrypts without verifying: it connects to a server no CA it
//!   knows signed; with a CA file it verifies the chain, as libpq's does,
//!   and so does `prefer` (which libpq lets ignore the CA file).
//!
//! Every run is checked for the job's password, as everywhere.

mod common;

use std::time::Duration;

use common::postgres_cluster::PrivatePostgres;
use common::scratch::Scratch;
use common::scratch::make_certificates;
use common::{Engine, Run, Setup, TestEnv, decoded, removals};

/// A TLS-only server with the test's certificates, and a world on it with
/// removals of users 2 and 4 waiting.
struct World {
    certificates: Scratch,
    env: TestEnv,
    _server: PrivatePostgres,
}

impl World {
    async fn new() -> World {
        let certificates = Scratch::new("postgres-tls");
        make_certificates(&certificates);
        let server = PrivatePostgres::start_tls(
            &certificates.join("server.pem"),
            &certificates.join("server.key"),
        )
        .await;
        let env = Setup::new(10)
            .engine(Engine::Postgres)
            .postgres_root(server.root_url("postgres"))
            .create()
            .await;
        env.publish_removals([2, 4]).await;
        World {
            certificates,
            env,
            _server: server,
        }
    }

    /// The path of one of the certificates, as a flag's value.
    fn path(&self, file: &str) -> String {
        self.certificates.join(file).display().to_string()
    }

    /// The job's URL on `host` with `sslmode`, its password in it.
    fn url(&self, host: &str, sslmode: &str) -> String {
        let url = self
            .env
            .database_url()
            .replace("@127.0.0.1:", &format!("@{host}:"));
        format!("{url}?sslmode={sslmode}")
    }

    /// Runs the job on `url`, with `--database-ca-file` when `ca` names one.
    async fn run(&self, url: &str, ca: Option<&str>) -> Run {
        let mut args = vec!["--database-url", url];
        let ca = ca.map(|file| self.path(file));
        if let Some(ca) = &ca {
            args.extend(["--database-ca-file", ca.as_str()]);
        }
        self.env.run(&args).await
    }

    /// The run was refused at connect for `why` (words of its error line):
    /// a database error, nothing received, nothing erased, every message
    /// still there.
    async fn assert_refused(&self, run: &Run, why: &str) {
        run.assert_code(4);
        assert_eq!(run.outcome(), "database_error", "{}", run.stderr);
        let error = run
            .stderr
            .lines()
            .find(|line| line.contains("ERROR"))
            .unwrap_or_else(|| panic!("no error line:\n{}", run.stderr));
        assert!(
            error.contains("cannot connect to") && error.contains(why),
            "the error line does not say {why:?}: {error}"
        );
        assert_eq!(
            (run.count("received"), run.count("deleted_rows")),
            (0, 0),
            "{}",
            run.stderr
        );
        assert_eq!(self.env.users().await.len(), 10);
        assert_eq!(
            decoded(&self.env.peek(Duration::from_secs(2)).await),
            removals([2, 4]),
            "every message must still be in the subscription"
        );
    }

    /// The run connected and erased users 2 and 4.
    async fn assert_erased(&self, run: &Run) {
        run.assert_code(0);
        assert_eq!(run.count("deleted_rows"), 2, "{}", run.stderr);
        assert_eq!(self.env.users().await, [1, 3, 5, 6, 7, 8, 9, 10]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_takes_the_right_ca_and_refuses_a_wrong_one() {
    let world = World::new().await;

    // The server refuses the job's account without TLS.
    let plaintext = world.run(&world.url("127.0.0.1", "disable"), None).await;
    world.assert_refused(&plaintext, "no encryption").await;

    // A CA that did not sign the server's certificate.
    let verify_full = world.url("127.0.0.1", "verify-full");
    let wrong = world.run(&verify_full, Some("other-ca.pem")).await;
    world.assert_refused(&wrong, "certificate").await;
    // The CA file alone means verify-full.
    let plain_url = world.env.database_url();
    let wrong = world.run(&plain_url, Some("other-ca.pem")).await;
    world.assert_refused(&wrong, "certificate").await;
    // No CA file: the public roots, which did not sign it either.
    let public = world.run(&verify_full, None).await;
    world.assert_refused(&public, "certificate").await;

    let right = world.run(&verify_full, Some("ca.pem")).await;
    world.assert_erased(&right).await;
    world.env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_checks_the_name_and_verify_ca_only_the_chain() {
    let world = World::new().await;
    // 127.0.0.2 reaches the same server; the certificate does not name it.
    let verify_full = world.url("127.0.0.2", "verify-full");
    let other_name = world.run(&verify_full, Some("ca.pem")).await;
    world.assert_refused(&other_name, "certificate").await;
    assert!(
        other_name
            .stderr
            .contains("certificate not valid for name \"127.0.0.2\""),
        "the refusal does not say the name is wrong:\n{}",
        other_name.stderr
    );

    let verify_ca = world.url("127.0.0.2", "verify-ca");
    let wrong = world.run(&verify_ca, Some("other-ca.pem")).await;
    world.assert_refused(&wrong, "certificate").await;
    let right = world.run(&verify_ca, Some("ca.pem")).await;
    world.assert_erased(&right).await;
    world.env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn require_encrypts_without_verifying_unless_given_a_ca() {
    let world = World::new().await;
    let require = world.url("127.0.0.2", "require");
    // With a CA file, require verifies the chain (as verify-ca), as libpq's
    // does when it has a root certificate; and so does prefer, which libpq
    // would let ignore it.
    let wrong = world.run(&require, Some("other-ca.pem")).await;
    world.assert_refused(&wrong, "certificate").await;
    let prefer = world.url("127.0.0.2", "prefer");
    let wrong = world.run(&prefer, Some("other-ca.pem")).await;
    world.assert_refused(&wrong, "certificate").await;
    // Without: a certificate from no CA the job knows, for another name.
    let unverified = world.run(&require, None).await;
    world.assert_erased(&unverified).await;
    world.env.cleanup().await;
}
