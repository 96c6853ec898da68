//! Security: TLS to MySQL against a private MariaDB with a self-signed CA (the
//! job connects when it verifies the server, and refuses a server it cannot
//! verify), and a service-account key that never shows in any output.
//!
//! Every run of every integration test is also checked by the harness for the
//! database password and the key (`TestEnv::checked`), at RUST_LOG=trace.

mod common;

use common::Setup;
use common::private::PrivateMariaDb;
use common::scratch::{Scratch, make_certificates};

#[tokio::test(flavor = "multi_thread")]
async fn the_job_verifies_the_database_server_certificate() {
    let dir = Scratch::new("tls");
    make_certificates(&dir);
    let path = |file: &str| dir.join(file).display().to_string();
    let db = PrivateMariaDb::start(&[
        format!("--ssl-ca={}", path("ca.pem")),
        format!("--ssl-cert={}", path("server.pem")),
        format!("--ssl-key={}", path("server.key")),
    ])
    .await;
    let env = Setup::new(10)
        .mysql_root(db.url("root", "", "mysql"))
        .create()
        .await;
    env.sql(&format!("ALTER USER '{}'@'%' REQUIRE SSL", env.user))
        .await;
    env.publish_removals([2, 4]).await;

    // Plaintext: the server refuses a user who must use TLS.
    let plaintext = env.run(&[]).await;
    plaintext.assert_code(4);
    assert!(
        plaintext.stderr.contains("Access denied"),
        "{}",
        plaintext.stderr
    );

    // TLS with the public roots: this server's certificate does not verify.
    let url = format!("{}?require_ssl=true", env.database_url());
    let unverified = env.run(&["--database-url", &url]).await;
    unverified.assert_code(4);
    assert!(
        unverified.stderr.contains("certificate"),
        "{}",
        unverified.stderr
    );

    // TLS with a CA that did not sign it: refused too.
    let wrong_ca = env
        .run(&["--database-ca-file", &path("other-ca.pem")])
        .await;
    wrong_ca.assert_code(4);
    assert!(
        wrong_ca.stderr.contains("certificate"),
        "{}",
        wrong_ca.stderr
    );
    assert_eq!(
        env.users().await.len(),
        10,
        "nothing may be deleted over an unverified connection"
    );

    // TLS verified with the right CA: the job runs.
    let verified = env.run(&["--database-ca-file", &path("ca.pem")]).await;
    verified.assert_code(0);
    assert_eq!(verified.count("deleted_rows"), 2);
    assert_eq!(env.users().await, [1, 3, 5, 6, 7, 8, 9, 10]);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_account_key_never_shows_even_when_it_fails() {
    let env = common::TestEnv::new(3).await;
    env.publish_removals([1]).await;
    // No emulator: the job must use the key. Its private key is not a real
    // one, so the job fails before any network call, and says so.
    for key in [
        common::fake_key(),
        format!("not json {}", common::KEY_MARKER),
    ] {
        let mut command = env.command(&[], &[("PUBSUB_SERVICE_ACCOUNT", &key)]);
        command.env_remove("PUBSUB_EMULATOR_HOST");
        let run = env.checked(command.output().await.unwrap());
        run.assert_code(3);
        assert!(
            run.stderr.contains("PUBSUB_SERVICE_ACCOUNT") || run.stderr.contains("service-account"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(env.users().await, [1, 2, 3]);
    env.cleanup().await;
}
