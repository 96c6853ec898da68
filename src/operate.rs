//! The operator's commands: replay after a database restore (seek to a time
//! or a snapshot), snapshots, and publishing drill events. Each returns the
//! sentence to log on success, or the [`Outcome`] that says which exit code
//! the failure gets.

use crate::config::{Admin, Credentials, ReplayTo};
use crate::outcome::Outcome;
use crate::pubsub::{self, Unsuitable};
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

/// A subscription that cannot do what was asked is the operator's to fix
/// (exit 2); anything else is Pub/Sub failing or refusing (exit 3).
fn classify(error: anyhow::Error) -> Outcome {
    if error.chain().any(|cause| cause.is::<Unsuitable>()) {
        Outcome::Refused(error)
    } else {
        Outcome::PubSubFailed(error)
    }
}
