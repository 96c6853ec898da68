//! The operator's commands: replay after a database restore (seek to a time
//! or a snapshot), snapshots, publishing drill events, and the schema check
//! ([`check`]); and the run's metrics for a Pushgateway ([`metrics`]). Each
//! command returns what to print on success, or the [`Outcome`] that says
//! which exit code the failure gets.

pub mod check;
pub mod metrics;
pub mod verify;

use check::Finding;

use crate::config::Engine;
use crate::config::{Admin, Check, Credentials, ReplayTo};
use crate::outcome::Outcome;
use crate::pubsub::google::{self as pubsub, Unsuitable};
use crate::store::schema::SchemaError;
use crate::store::sql::Dialect;
use crate::store::{self, mysql, postgres};
use crate::{event, timestamp};

/// Seeks the subscription back (`replay`).
pub async fn replay(admin: &Admin, to: &ReplayTo) -> Result<String, Outcome> {
    let pubsub = pubsub::Admin::connect(&admin.subscription.project, &admin.credentials)
        .await
        .map_err(classify)?;
    match to {
        ReplayTo::Time(time) => {
            pubsub
                .seek_to_time(&admin.subscription, *time)
                .await
                .map_err(classify)?;
            Ok(format!(
                "{} now delivers again every message published since {}; the next runs erase those users again",
                admin.subscription,
                timestamp::format(*time)
            ))
        }
        ReplayTo::Snapshot(name) => {
            pubsub
                .seek_to_snapshot(&admin.subscription, name)
                .await
                .map_err(classify)?;
            Ok(format!(
                "{} is back at snapshot {name}; the next runs erase again the users removed since",
                admin.subscription
            ))
        }
    }
}

/// Snapshots the subscription (`snapshot create`).
pub async fn create_snapshot(admin: &Admin, name: &str) -> Result<String, Outcome> {
    let pubsub = pubsub::Admin::connect(&admin.subscription.project, &admin.credentials)
        .await
        .map_err(classify)?;
    pubsub
        .create_snapshot(&admin.subscription, name)
        .await
        .map_err(classify)?;
    Ok(format!(
        "snapshot {name} of {} created; `user-purge replay --snapshot {name}` returns to it",
        admin.subscription
    ))
}

/// Publishes drill events (`publish`): (event type, user id) pairs.
pub async fn publish(
    project: &str,
    credentials: &Credentials,
    topic: &str,
    events: &[(i32, u64)],
) -> Result<String, Outcome> {
    let pubsub = pubsub::Admin::connect(project, credentials)
        .await
        .map_err(classify)?;
    let payloads = events
        .iter()
        .map(|&(kind, user_id)| event::encode(kind, user_id))
        .collect();
    let ids = pubsub.publish(topic, payloads).await.map_err(classify)?;
    Ok(format!("published {} messages on {topic}", ids.len()))
}

/// What `user-purge check` found.
pub enum Checked {
    /// Places the map misses; none when it covers everything the check knows of.
    Findings(Vec<Finding>),
    /// With `--grants`: the grant statements.
    Grants(String),
}

/// `user-purge check`: the findings, read-only; or, with `--grants`, the
/// grant statements (no database needed).
pub async fn check(check: &Check) -> Result<Checked, Outcome> {
    let database = &check.database;
    if let Some(grantee) = &check.grants {
        let name = store::url::database_name(database.engine, database.url.expose());
        let dialect = match database.engine {
            Engine::MySql => Dialect::MySql,
            Engine::Postgres => Dialect::Postgres,
        };
        return Ok(Checked::Grants(check::grants(
            dialect,
            &name,
            &database.map,
            database.record.as_ref(),
            grantee,
        )));
    }
    let patterns = [
        ("--user-columns", check.user_columns.as_deref()),
        ("--personal-columns", check.personal_columns.as_deref()),
    ];
    let read = match database.engine {
        Engine::MySql => mysql::schema(database, patterns).await,
        Engine::Postgres => postgres::schema(database, patterns).await,
    };
    let (schema, [users, personal], hidden) = read.map_err(|error| match error {
        SchemaError::BadPattern(setting, why) => {
            Outcome::Misconfigured(anyhow::anyhow!("invalid {setting}: {why}"))
        }
        SchemaError::Unreadable(error) => Outcome::DatabaseFailed(error),
    })?;
    let seen = check::Seen {
        schema,
        user_named: users,
        personal_named: personal,
        hidden,
    };
    Ok(Checked::Findings(check::findings(
        &seen,
        &database.map,
        database.record.as_ref(),
    )))
}

/// A subscription that cannot do what was asked is the operator's to fix
/// (exit 2); anything else is Pub/Sub failing or refusing (exit 3).
fn classify(error: anyhow::Error) -> Outcome {
    if error.chain().any(|cause| cause.is::<Unsuitable>()) {
        Outcome::Unsuitable(error)
    } else {
        Outcome::PubSubFailed(error)
    }
}
