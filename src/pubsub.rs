//! The subscription seam on Google Cloud Pub/Sub (gcloud-pubsub and its gax and
//! googleapis crates): the only module that imports them.
//!
//! Unary Pull only: a cancelled streaming pull strands messages in the emulator,
//! and unary Pull lets one run take exactly as many messages as it can finish.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context as _, anyhow};
use gcloud_gax::conn::{ConnectionOptions, Environment};
use gcloud_gax::grpc::{Code, Status};
use gcloud_googleapis::pubsub::v1::{AcknowledgeRequest, ModifyAckDeadlineRequest, PullRequest};
use gcloud_pubsub::apiv1::subscriber_client::SubscriberClient;
use gcloud_pubsub::client::google_cloud_auth::credentials::CredentialsFile;
use gcloud_pubsub::client::{Client, ClientConfig};
use tokio::task::JoinSet;

use crate::config::{Credentials, SubscriptionName};
use crate::pass::{Received, Settled, Subscription};

/// Pub/Sub accepts at most 512 KiB per Acknowledge or ModifyAckDeadline request;
/// 1,000 ack ids stay well below it.
pub const ACK_IDS_PER_REQUEST: usize = 1_000;

/// The most messages one Pull may ask for on the real service.
const MAX_PER_PULL: usize = 1_000;

/// How long one acknowledge or deadline change may take, retries included, so
/// that a run told to stop still exits within its 10 s budget.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// How long connecting may take before Pub/Sub counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One subscription, reached through a shared gRPC client.
#[derive(Clone)]
pub struct PubSub {
    client: SubscriberClient,
    /// `projects/P/subscriptions/S`, as every request names it.
    name: String,
    /// How long a Pull waits for messages before the subscription counts as drained.
    pull_timeout: Duration,
}

impl PubSub {
    /// Opens the client. With the emulator this connects at once, so an
    /// unreachable emulator is reported here.
    pub async fn connect(
        subscription: &SubscriptionName,
        credentials: &Credentials,
        pull_timeout: Duration,
    ) -> anyhow::Result<PubSub> {
        let config = ClientConfig {
            project_id: Some(subscription.project.clone()),
            connection_option: ConnectionOptions {
                connect_timeout: Some(CONNECT_TIMEOUT),
                ..ConnectionOptions::default()
            },
            ..ClientConfig::default()
        };
        let config = match credentials {
            Credentials::Emulator(host) => ClientConfig {
                environment: Environment::Emulator(host.clone()),
                ..config
            },
            Credentials::ServiceAccountKey(key) => {
                // The parse error names a position in the JSON, never its content.
                let key = CredentialsFile::new_from_str(key.expose())
                    .await
                    .map_err(|e| {
                        anyhow!("PUBSUB_SERVICE_ACCOUNT is not a service-account JSON key: {e}")
                    })?;
                config
                    .with_credentials(key)
                    .await
                    .map_err(|e| anyhow!("cannot use the service-account key: {e}"))?
            }
            Credentials::ApplicationDefault => config
                .with_auth()
                .await
                .map_err(|e| anyhow!("cannot find Application Default Credentials: {e}"))?,
        };
        let client = Client::new(config)
            .await
            .with_context(|| format!("cannot connect to Pub/Sub for {subscription}"))?;
        let name = subscription.to_string();
        let client = client.subscription(&name).get_client();
        Ok(PubSub {
            client,
            name,
            pull_timeout,
        })
    }

    async fn modify_deadline_chunk(
        &self,
        ack_ids: Vec<String>,
        seconds: i32,
    ) -> Result<(), Status> {
        let request = ModifyAckDeadlineRequest {
            subscription: self.name.clone(),
            ack_ids,
            ack_deadline_seconds: seconds,
        };
        within(RPC_TIMEOUT, self.client.modify_ack_deadline(request, None)).await
    }

    async fn acknowledge_chunk(&self, ack_ids: Vec<String>) -> Result<(), Status> {
        let request = AcknowledgeRequest {
            subscription: self.name.clone(),
            ack_ids,
        };
        within(RPC_TIMEOUT, self.client.acknowledge(request, None)).await
    }

    /// Sends one request per chunk of ack ids, all at once, and waits for every
    /// one of them.
    async fn settle(
        &self,
        ack_ids: Vec<String>,
        what: &'static str,
        deadline: Option<i32>,
    ) -> Settled {
        let mut requests = JoinSet::new();
        let mut ack_ids = ack_ids;
        while !ack_ids.is_empty() {
            let rest = ack_ids.split_off(ack_ids.len().min(ACK_IDS_PER_REQUEST));
            let chunk = std::mem::replace(&mut ack_ids, rest);
            let this = self.clone();
            requests.spawn(async move {
                let n = chunk.len();
                let result = match deadline {
                    Some(seconds) => this.modify_deadline_chunk(chunk, seconds).await,
                    None => this.acknowledge_chunk(chunk).await,
                };
                (n, result)
            });
        }
        let mut settled = Settled::default();
        while let Some(joined) = requests.join_next().await {
            match joined {
                Ok((n, Ok(()))) => settled.done += n,
                Ok((n, Err(status))) => {
                    settled.failed += n;
                    settled
                        .error
                        .get_or_insert_with(|| rpc_error(what, &self.name, &status));
                }
                Err(join_error) => {
                    settled
                        .error
                        .get_or_insert_with(|| anyhow!("{what} task failed: {join_error}"));
                }
            }
        }
        settled
    }
}

impl Subscription for PubSub {
    async fn pull(&self, max: usize) -> anyhow::Result<Vec<Received>> {
        #[allow(deprecated)] // return_immediately: set false, as Google recommends.
        let request = PullRequest {
            subscription: self.name.clone(),
            max_messages: max.min(MAX_PER_PULL) as i32,
            return_immediately: false,
        };
        let response =
            match tokio::time::timeout(self.pull_timeout, self.client.pull(request, None)).await {
                // Nothing arrived in time: the subscription is drained for this run.
                Err(_elapsed) => return Ok(Vec::new()),
                Ok(Err(status)) if status.code() == Code::DeadlineExceeded => return Ok(Vec::new()),
                Ok(Err(status)) => return Err(rpc_error("Pull", &self.name, &status)),
                Ok(Ok(response)) => response.into_inner(),
            };
        Ok(response
            .received_messages
            .into_iter()
            .filter_map(|received| {
                let message = received.message?;
                Some(Received {
                    ack_id: received.ack_id,
                    message_id: message.message_id,
                    publish_time: message.publish_time.and_then(|t| {
                        let nanos = u32::try_from(t.nanos).ok()?;
                        let seconds = u64::try_from(t.seconds).ok()?;
                        UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
                    }),
                    data: message.data,
                })
            })
            .collect())
    }

    async fn acknowledge(&self, ack_ids: Vec<String>) -> Settled {
        self.settle(ack_ids, "Acknowledge", None).await
    }

    async fn set_deadline(&self, ack_ids: Vec<String>, seconds: u16) -> Settled {
        self.settle(ack_ids, "ModifyAckDeadline", Some(i32::from(seconds)))
            .await
    }
}

/// Bounds one call, retries included; running out of time is reported as
/// DEADLINE_EXCEEDED like any other failed call.
async fn within<T>(
    limit: Duration,
    call: impl Future<Output = Result<gcloud_gax::grpc::Response<T>, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map(|response| response.into_inner()),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "no answer within {limit:?}"
        ))),
    }
}

/// One line an operator can act on: the call, the subscription, the gRPC code.
fn rpc_error(what: &str, subscription: &str, status: &Status) -> anyhow::Error {
    anyhow!(
        "Pub/Sub {what} on {subscription} failed: {:?}: {}",
        status.code(),
        status.message()
    )
}
