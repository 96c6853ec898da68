//! The subscription seam on Google Cloud Pub/Sub (gcloud-pubsub and its gax and
//! googleapis crates): the only module that imports them.
//!
//! Unary Pull only: a cancelled streaming pull strands messages in the emulator,
//! and unary Pull lets one run take exactly as many messages as it can finish.

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::anyhow;
use gcloud_gax::conn::{Channel, ConnectionOptions, Environment};
use gcloud_gax::grpc::{Code, Request, Status};
use gcloud_googleapis::pubsub::v1::subscriber_client::SubscriberClient;
use gcloud_googleapis::pubsub::v1::{AcknowledgeRequest, ModifyAckDeadlineRequest, PullRequest};
use gcloud_pubsub::apiv1::conn_pool::ConnectionManager;
use gcloud_pubsub::client::ClientConfig;
use gcloud_pubsub::client::google_cloud_auth::credentials::CredentialsFile;

use crate::config::{Credentials, SubscriptionName};
use crate::pass::{Received, Subscription};

/// The most messages one Pull may ask for on the real service.
const MAX_PER_PULL: usize = 1_000;

/// How long acknowledging or changing deadlines may take, retries included, so
/// that a run told to stop still exits within its 10 s budget.
const RPC_BUDGET: Duration = Duration::from_secs(5);

/// How long connecting may take before Pub/Sub counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest message the service sends (a Pull of 1,000 messages of up to 10 MB
/// each is capped by the service at this response size).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// One subscription, reached through a shared pool of gRPC channels.
///
/// Every request carries its deadline to the server (`grpc-timeout`). A Pull
/// that the client merely abandoned stays open in the emulator and later
/// swallows messages that were handed back; a Pull whose deadline the server
/// knows ends on the server too.
#[derive(Clone)]
pub struct PubSub {
    connections: Arc<ConnectionManager>,
    /// `projects/P/subscriptions/S`, as every request names it.
    name: String,
    /// How long a Pull waits for messages before the subscription counts as drained.
    pull_timeout: Duration,
}

impl PubSub {
    /// Opens the channels. With the emulator this connects at once, so an
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
                pool_size: 1,
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
        let connections = ConnectionManager::new(
            config.pool_size,
            &config.endpoint,
            &config.environment,
            &config.connection_option,
        )
        .await
        .map_err(|e| {
            anyhow::Error::new(e).context(format!("cannot connect to Pub/Sub for {subscription}"))
        })?;
        Ok(PubSub {
            connections: Arc::new(connections),
            name: subscription.to_string(),
            pull_timeout,
        })
    }

    fn client(&self) -> SubscriberClient<Channel> {
        SubscriberClient::new(self.connections.conn()).max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// A request that names its subscription for routing and carries its deadline.
    fn request<T>(&self, body: T, deadline: Duration) -> Request<T> {
        let mut request = Request::new(body);
        request.set_timeout(deadline);
        if let Ok(value) = format!("subscription={}", self.name).parse() {
            request
                .metadata_mut()
                .insert("x-goog-request-params", value);
        }
        request
    }

    /// One Acknowledge or ModifyAckDeadline, retried on transient errors within
    /// [`RPC_BUDGET`]. Both are idempotent, so a retry is always safe.
    async fn settle_chunk(
        &self,
        ack_ids: Vec<String>,
        deadline: Option<i32>,
    ) -> Result<(), Status> {
        let give_up = Instant::now() + RPC_BUDGET;
        let mut backoff = Duration::from_millis(50);
        loop {
            let budget = give_up.saturating_duration_since(Instant::now());
            let result = match deadline {
                None => {
                    let body = AcknowledgeRequest {
                        subscription: self.name.clone(),
                        ack_ids: ack_ids.clone(),
                    };
                    self.client().acknowledge(self.request(body, budget)).await
                }
                Some(seconds) => {
                    let body = ModifyAckDeadlineRequest {
                        subscription: self.name.clone(),
                        ack_ids: ack_ids.clone(),
                        ack_deadline_seconds: seconds,
                    };
                    self.client()
                        .modify_ack_deadline(self.request(body, budget))
                        .await
                }
            };
            match result {
                Ok(_) => return Ok(()),
                Err(status) if transient(&status) && Instant::now() + backoff < give_up => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(status) => return Err(status),
            }
        }
    }
}

/// Errors worth another try: the service asks for one, or the call was lost.
fn transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Aborted
            | Code::Internal
            | Code::Unknown
            | Code::ResourceExhausted
    )
}

impl Subscription for PubSub {
    /// Pub/Sub accepts at most 512 KiB per Acknowledge or ModifyAckDeadline
    /// request; 1,000 ack ids stay well below it.
    const MAX_ACK_IDS: usize = 1_000;

    async fn pull(&self, max: usize) -> anyhow::Result<Vec<Received>> {
        #[allow(deprecated)] // return_immediately: false, as Google recommends.
        let body = PullRequest {
            subscription: self.name.clone(),
            max_messages: max.min(MAX_PER_PULL) as i32,
            return_immediately: false,
        };
        let mut attempts = 0;
        let response = loop {
            attempts += 1;
            match self
                .client()
                .pull(self.request(body.clone(), self.pull_timeout))
                .await
            {
                Ok(response) => break response.into_inner(),
                // Nothing arrived before the deadline (the server says so, or
                // the client's timer fired first): drained for this run.
                Err(status)
                    if matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled) =>
                {
                    return Ok(Vec::new());
                }
                Err(status) if transient(&status) && attempts < 3 => {
                    tokio::time::sleep(Duration::from_millis(100 * attempts)).await;
                }
                Err(status) => return Err(rpc_error("Pull", &self.name, &status)),
            }
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

    async fn acknowledge(&self, ack_ids: Vec<String>) -> anyhow::Result<()> {
        self.settle_chunk(ack_ids, None)
            .await
            .map_err(|status| rpc_error("Acknowledge", &self.name, &status))
    }

    async fn set_deadline(&self, ack_ids: Vec<String>, seconds: u16) -> anyhow::Result<()> {
        self.settle_chunk(ack_ids, Some(i32::from(seconds)))
            .await
            .map_err(|status| rpc_error("ModifyAckDeadline", &self.name, &status))
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
