//! Configuration as platforms pass it, through the real binary: an empty
//! variable counts as unset for every setting; an empty PUBSUB_EMULATOR_HOST
//! is no emulator; the database password and the service-account key read
//! from files (a mounted Secret, a systemd credential), on MariaDB and on a
//! private PostgreSQL that checks passwords (the shared one trusts every
//! role), whose unix socket the job also reaches. Every run goes through
//! `TestEnv::checked`: neither the password nor the key may show.

mod common;

use common::postgres_cluster::PrivatePostgres;
use common::scratch::Scratch;
use common::{Engine, Setup, TestEnv, fake_key};

on_both_engines!(the_password_file_wins_over_the_urls_password);

/// A file in a scratch directory of its own, removed with it when dropped.
struct TempFile {
    path: String,
    _dir: Scratch,
}

impl TempFile {
    fn new(name: &str, content: &str) -> TempFile {
        let dir = Scratch::new("sources");
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        TempFile {
            path: path.to_str().unwrap().to_owned(),
            _dir: dir,
        }
    }

    fn path(&self) -> &str {
        &self.path
    }
}

/// Every variable of clap's own list set to "", but the four this test's
/// world needs: the run is one with all of them unset.
#[tokio::test(flavor = "multi_thread")]
async fn every_setting_set_to_empty_counts_as_unset() {
    let env = TestEnv::new(5).await;
    env.publish_removals([1, 3]).await;
    let needed = [
        "PUBSUB_SUBSCRIPTION",
        "PUBSUB_PROJECT",
        "DATABASE_URL",
        "PUBSUB_EMULATOR_HOST",
    ];
    let settings = user_purge::config::cli::settings();
    let empty: Vec<(&str, &str)> = settings
        .iter()
        .filter_map(|s| s.env.as_deref())
        .filter(|name| !needed.contains(name))
        .map(|name| (name, ""))
        .collect();
    assert!(empty.len() >= 15, "{empty:?}");
    let run = env.run_with_env(&[], &empty).await;
    // MAX_MESSAGES= and the other numbers take their defaults, DRY_RUN= is
    // off, LOG_FORMAT= is text, the empty key and files are no key or file.
    run.assert_code(0);
    assert_eq!(run.count("deleted_rows"), 2);
    assert_eq!(run.summary()["dry_run"], false);
    assert!(run.stderr.starts_with('['), "not text: {}", run.stderr);
    assert_eq!(env.users().await, [2, 4, 5]);
    env.cleanup().await;
}

/// `PUBSUB_EMULATOR_HOST=` with no key: Application Default Credentials, which
/// this machine does not have (an empty HOME, no metadata server), so exit 3
/// naming them; never an emulator at "".
#[tokio::test(flavor = "multi_thread")]
async fn an_empty_emulator_host_means_application_default_credentials() {
    let env = TestEnv::new(2).await;
    env.publish_removals([1]).await;
    let home = Scratch::new("no-adc");
    let mut command = env.command(&[], &[("PUBSUB_EMULATOR_HOST", "")]);
    command
        .env_remove("PUBSUB_SERVICE_ACCOUNT")
        .env_remove("GCE_METADATA_HOST")
        .env("HOME", &*home);
    let run = env.checked(command.output().await.unwrap());
    run.assert_code(3);
    run.assert_logged("cannot find Application Default Credentials");
    assert!(!run.stderr.contains("emulator"), "{}", run.stderr);
    assert_eq!(env.users().await, [1, 2]);
    env.cleanup().await;
}

/// The URL's password is wrong; the file's is right, and wins. On
/// PostgreSQL, the same through the server's unix socket too.
async fn the_password_file_wins_over_the_urls_password(engine: Engine) {
    let server = match engine {
        Engine::MariaDb => None,
        Engine::Postgres => Some(PrivatePostgres::start(&[]).await),
    };
    let mut setup = Setup::new(5).engine(engine);
    if let Some(server) = &server {
        setup = setup.postgres_root(server.root_url("postgres"));
    }
    let env = setup.create().await;
    let denied = match engine {
        Engine::MariaDb => "Access denied",
        Engine::Postgres => "password authentication failed",
    };
    let wrong = env.database_url_as(&env.user, "not-the-password");
    // One trailing newline, as `echo` and kubectl --from-file leave it.
    let right = TempFile::new("password", &format!("{}\n", env.password));
    env.publish_removals([2]).await;
    let run = env
        .run_with_env(
            &[],
            &[
                ("DATABASE_URL", &wrong),
                ("DATABASE_PASSWORD_FILE", right.path()),
            ],
        )
        .await;
    run.assert_code(0);
    assert_eq!(run.count("deleted_rows"), 1);

    // The flag form, and a URL without any password.
    env.publish_removals([3]).await;
    let bare = env
        .database_url()
        .replace(&format!(":{}@", env.password), "@");
    assert!(!bare.contains(&env.password), "{bare}");
    let run = env
        .run_with_env(
            &["--database-password-file", right.path()],
            &[("DATABASE_URL", &bare)],
        )
        .await;
    run.assert_code(0);
    assert_eq!(run.count("deleted_rows"), 1);
    assert_eq!(env.users().await, [1, 4, 5]);

    // Only one newline goes: a second is part of the password, which is then wrong.
    let two = TempFile::new("password2", &format!("{}\n\n", env.password));
    let run = env
        .run_with_env(&[], &[("DATABASE_PASSWORD_FILE", two.path())])
        .await;
    run.assert_code(4);
    run.assert_logged(denied);

    // A file that is not there: exit 2, naming the setting and the path.
    let run = env
        .run_with_env(&[], &[("DATABASE_PASSWORD_FILE", "/no/such/password")])
        .await;
    run.assert_code(2);
    run.assert_logged(
        "invalid --database-password-file (DATABASE_PASSWORD_FILE): cannot read \"/no/such/password\"",
    );
    assert!(run.stdout.is_empty());
    assert_eq!(env.users().await, [1, 4, 5]);

    // PostgreSQL's unix socket: a URL with no TCP host at all, as Cloud SQL's
    // `host=/cloudsql/...` is.
    if let Some(server) = &server {
        env.publish_removals([4]).await;
        let socket = format!(
            "postgres://{}@/{}?host={}&port={}",
            env.user,
            env.database,
            server.dir.display(),
            server.port
        );
        let run = env
            .run_with_env(
                &["--database-password-file", right.path()],
                &[("DATABASE_URL", &socket)],
            )
            .await;
        run.assert_code(0);
        assert_eq!(run.count("deleted_rows"), 1);
        assert_eq!(env.users().await, [1, 5]);
    }
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_file_is_used_named_and_never_shown() {
    let env = TestEnv::new(2).await;
    env.publish_removals([1]).await;
    // Well-formed, but its private key is not one: the job fails at the key,
    // before any network call.
    let key = TempFile::new("key.json", &fake_key());
    let mut command = env.command(&[], &[("PUBSUB_SERVICE_ACCOUNT_FILE", key.path())]);
    command
        .env_remove("PUBSUB_EMULATOR_HOST")
        .env_remove("PUBSUB_SERVICE_ACCOUNT");
    let run = env.checked(command.output().await.unwrap());
    run.assert_code(3);
    run.assert_logged(&format!(
        "cannot use the service-account key from the file {:?}",
        key.path()
    ));

    // Both the inline key and a file: exit 2, even under the emulator.
    let run = env
        .run_with_env(&[], &[("PUBSUB_SERVICE_ACCOUNT_FILE", key.path())])
        .await;
    run.assert_code(2);
    run.assert_logged("invalid --service-account-key-file (PUBSUB_SERVICE_ACCOUNT_FILE)");

    // A key file that is not there, when it is the one to use: exit 2.
    let mut command = env.command(&[], &[("PUBSUB_SERVICE_ACCOUNT_FILE", "/no/such/key.json")]);
    command
        .env_remove("PUBSUB_EMULATOR_HOST")
        .env_remove("PUBSUB_SERVICE_ACCOUNT");
    let run = env.checked(command.output().await.unwrap());
    run.assert_code(2);
    run.assert_logged(
        "invalid --service-account-key-file (PUBSUB_SERVICE_ACCOUNT_FILE): cannot read \"/no/such/key.json\"",
    );
    assert_eq!(env.users().await, [1, 2]);
    env.cleanup().await;
}
