//! The [`Subscription`] seam on Google Cloud Pub/Sub (gcloud-pubsub and its
//! gax and googleapis crates), and the admin client of the operator's
//! commands: the only module that imports those crates.
//!
//! Unary Pull only: a cancelled streaming pull strands messages in the emulator,
//! and unary Pull lets one run take exactly as many messages as it can finish.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail};
use gcloud_gax::conn::{Channel, ConnectionOptions, Environment};
use gcloud_gax::grpc::{Code, Request, Status};
use gcloud_googleapis::pubsub::v1::subscriber_client::SubscriberClient;
use gcloud_googleapis::pubsub::v1::{
    AcknowledgeRequest, ModifyAckDeadlineRequest, PubsubMessage, PullRequest,
};
use gcloud_pubsub::apiv1::conn_pool::{self, ConnectionManager};
use gcloud_pubsub::client::google_cloud_auth;
use gcloud_pubsub::client::google_cloud_auth::credentials::CredentialsFile;
use gcloud_pubsub::client::google_cloud_auth::token::DefaultTokenSourceProvider;
use gcloud_pubsub::client::{Client, ClientConfig};
use gcloud_pubsub::subscription::SeekTo;

use super::{MAX_PER_PULL, Received, Subscription, Wait};
use crate::config::{Credentials, SubscriptionName};

/// The subscription cannot do what an operator's command asked (seek back
/// without retained acknowledged messages, or further than it keeps them):
/// a configuration to fix, not a failure to retry.
#[derive(Debug)]
pub struct Unsuitable(String);

impl std::fmt::Display for Unsuitable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unsuitable {}

/// How long connecting may take before Pub/Sub counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an immediate Pull (`Wait::Now`) may take: connecting,
/// authenticating and one round trip, on the slowest link the job supports.
const IMMEDIATE_DEADLINE: Duration = Duration::from_secs(10);

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
}

impl PubSub {
    /// Opens the channels. With the emulator this connects at once, so an
    /// unreachable emulator is reported here.
    pub async fn connect(
        subscription: &SubscriptionName,
        credentials: &Credentials,
    ) -> anyhow::Result<PubSub> {
        let config = client_config(&subscription.project, credentials).await?;
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

    /// One Acknowledge or ModifyAckDeadline, retried on transient errors until
    /// `give_up`. Both are idempotent, so a retry is always safe.
    async fn settle_chunk(
        &self,
        ack_ids: Vec<String>,
        deadline: Option<i32>,
        give_up: tokio::time::Instant,
    ) -> Result<(), Status> {
        let give_up = give_up.into_std();
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

/// The client configuration for a project: endpoint, credentials, timeouts.
async fn client_config(project: &str, credentials: &Credentials) -> anyhow::Result<ClientConfig> {
    // Every field is set here: `ClientConfig::default()` reads
    // PUBSUB_EMULATOR_HOST from the process, where an empty value would make
    // "" an emulator address, and `with_auth` then leaves it be. Each branch
    // sets the environment itself, from the validated credentials only.
    let (environment, pool_size) = match credentials {
        Credentials::Emulator(host) => (Environment::Emulator(host.clone()), 1),
        Credentials::ServiceAccountKey { key, source } => {
            // The parse error names a position in the JSON, never its content.
            let key = CredentialsFile::new_from_str(key.expose())
                .await
                .map_err(|e| anyhow!("{source} is not a service-account JSON key: {e}"))?;
            let tokens = DefaultTokenSourceProvider::new_with_credentials(auth(), Box::new(key))
                .await
                .map_err(|e| anyhow!("cannot use the service-account key from {source}: {e}"))?;
            (Environment::GoogleCloud(Box::new(tokens)), POOL_SIZE)
        }
        Credentials::ApplicationDefault => {
            let tokens = match std::env::var(CREDENTIALS_VARIABLE) {
                // Read here, so that a broken file is an error that names the
                // variable: left to the crate, it would fall back to the
                // metadata server and run as the node's identity.
                Ok(path) if !path.is_empty() => {
                    let file = CredentialsFile::new_from_file(path.clone())
                        .await
                        .map_err(|e| {
                            anyhow!(
                                "{CREDENTIALS_VARIABLE} ({path}) is not a usable credentials file: {e}"
                            )
                        })?;
                    DefaultTokenSourceProvider::new_with_credentials(auth(), Box::new(file))
                        .await
                        .map_err(|e| {
                            anyhow!(
                                "cannot use the credentials in {CREDENTIALS_VARIABLE} ({path}): {e}"
                            )
                        })?
                }
                _ => DefaultTokenSourceProvider::new(auth())
                    .await
                    .map_err(|e| anyhow!("cannot find Application Default Credentials: {e}"))?,
            };
            (Environment::GoogleCloud(Box::new(tokens)), POOL_SIZE)
        }
    };
    Ok(ClientConfig {
        pool_size,
        project_id: Some(project.to_owned()),
        environment,
        endpoint: conn_pool::PUBSUB.to_owned(),
        connection_option: ConnectionOptions {
            connect_timeout: Some(CONNECT_TIMEOUT),
            ..ConnectionOptions::default()
        },
    })
}

/// The file of Application Default Credentials, when one is named.
const CREDENTIALS_VARIABLE: &str = "GOOGLE_APPLICATION_CREDENTIALS";

/// Variables the Google auth crate reads on its own. An empty one must count
/// as unset, as in Google's own clients, instead of naming the file "": the
/// binary removes them before anything reads the environment.
pub const GOOGLE_VARIABLES: [&str; 3] = [
    CREDENTIALS_VARIABLE,
    "GOOGLE_APPLICATION_CREDENTIALS_JSON",
    "GCE_METADATA_HOST",
];

/// gRPC connections to the real service: the crate's own default.
const POOL_SIZE: usize = 4;

/// What the tokens are for: Pub/Sub, as the crate's `with_auth` asks.
fn auth() -> google_cloud_auth::project::Config<'static> {
    google_cloud_auth::project::Config::default()
        .with_audience(conn_pool::AUDIENCE)
        .with_scopes(&conn_pool::SCOPES)
}

/// The operator's commands: replay (seek), snapshots, and publishing drill
/// events. Rare, so they use the crate's own client and its retries.
pub struct Admin {
    client: Client,
}

impl Admin {
    pub async fn connect(project: &str, credentials: &Credentials) -> anyhow::Result<Admin> {
        let config = client_config(project, credentials).await?;
        let client = Client::new(config)
            .await
            .map_err(|e| anyhow::Error::new(e).context("cannot connect to Pub/Sub"))?;
        Ok(Admin { client })
    }

    /// Seeks the subscription back to `time`: every message published since
    /// then is delivered again, acknowledged or not. Refuses when the
    /// subscription does not keep acknowledged messages, or not for that long,
    /// because the seek would then silently bring back nothing erased.
    pub async fn seek_to_time(
        &self,
        subscription: &SubscriptionName,
        time: SystemTime,
    ) -> anyhow::Result<()> {
        let name = subscription.to_string();
        let handle = self.client.subscription(&name);
        let (_, config) = handle
            .config(None)
            .await
            .map_err(|status| rpc_error("GetSubscription", &name, &status))?;
        if !config.retain_acked_messages {
            bail!(Unsuitable(format!(
                "{name} does not retain acknowledged messages, so seeking back would not bring back the removals \
                 already erased. Turn it on (gcloud pubsub subscriptions update {} --retain-acked-messages \
                 --message-retention-duration=7d), or take a snapshot before each backup \
                 (user-purge snapshot create NAME) and replay with --snapshot",
                subscription.id
            )));
        }
        let retention = config
            .message_retention_duration
            .unwrap_or(Duration::from_secs(7 * 86_400));
        let age = SystemTime::now().duration_since(time).unwrap_or_default();
        if age > retention {
            bail!(Unsuitable(format!(
                "{name} keeps messages for {} s, less than the {} s back to the requested time: \
                 the oldest removals are gone; restore a more recent backup or replay from a snapshot",
                retention.as_secs(),
                age.as_secs()
            )));
        }
        handle
            .seek(SeekTo::Timestamp(time), None)
            .await
            .map_err(|status| rpc_error("Seek", &name, &status))
    }

    /// Seeks the subscription to a snapshot taken with [`Admin::create_snapshot`].
    pub async fn seek_to_snapshot(
        &self,
        subscription: &SubscriptionName,
        snapshot: &str,
    ) -> anyhow::Result<()> {
        let name = subscription.to_string();
        self.client
            .subscription(&name)
            .seek(SeekTo::Snapshot(snapshot.to_owned()), None)
            .await
            .map_err(|status| rpc_error("Seek", &name, &status))
    }

    /// Snapshots the subscription's acknowledgement state, to replay from later.
    pub async fn create_snapshot(
        &self,
        subscription: &SubscriptionName,
        snapshot: &str,
    ) -> anyhow::Result<()> {
        let name = subscription.to_string();
        self.client
            .subscription(&name)
            .create_snapshot(snapshot, Default::default(), None)
            .await
            .map(|_| ())
            .map_err(|status| rpc_error("CreateSnapshot", &name, &status))
    }

    /// Publishes each payload as one message; returns their message ids.
    pub async fn publish(
        &self,
        topic: &str,
        payloads: Vec<Vec<u8>>,
    ) -> anyhow::Result<Vec<String>> {
        let mut publisher = self.client.topic(topic).new_publisher(None);
        let messages = payloads
            .into_iter()
            .map(|data| PubsubMessage {
                data,
                ..PubsubMessage::default()
            })
            .collect();
        let mut ids = Vec::new();
        let mut failure = None;
        for awaiter in publisher.publish_bulk(messages).await {
            match awaiter.get().await {
                Ok(id) => ids.push(id),
                Err(status) => {
                    failure.get_or_insert_with(|| rpc_error("Publish", topic, &status));
                }
            }
        }
        publisher.shutdown().await;
        match failure {
            Some(error) => {
                Err(error.context(format!("{} of the messages were published", ids.len())))
            }
            None => Ok(ids),
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

    /// The deadline goes to the server (`grpc-timeout`), which also ends the
    /// Pull then; tonic enforces the same deadline on the client, and its
    /// expiry (`Cancelled`) is no answer, never an empty subscription.
    async fn pull(&self, max: usize, wait: Wait) -> anyhow::Result<Option<Vec<Received>>> {
        let (deadline, return_immediately) = match wait {
            Wait::Poll(deadline) => (deadline, false),
            Wait::Now => (IMMEDIATE_DEADLINE, true),
        };
        #[allow(deprecated)] // return_immediately: only to confirm an empty subscription.
        let body = PullRequest {
            subscription: self.name.clone(),
            max_messages: max.min(MAX_PER_PULL) as i32,
            return_immediately,
        };
        let mut attempts = 0;
        let response = loop {
            attempts += 1;
            match self
                .client()
                .pull(self.request(body.clone(), deadline))
                .await
            {
                Ok(response) => break response.into_inner(),
                // The server's own word: nothing arrived before the deadline.
                Err(status) if status.code() == Code::DeadlineExceeded => {
                    return Ok(Some(Vec::new()));
                }
                // The client's timer fired first: no answer.
                Err(status) if status.code() == Code::Cancelled => return Ok(None),
                Err(status) if transient(&status) && attempts < 3 => {
                    tokio::time::sleep(Duration::from_millis(100 * attempts)).await;
                }
                Err(status) => return Err(rpc_error("Pull", &self.name, &status)),
            }
        };
        Ok(Some(
            response
                .received_messages
                .into_iter()
                .map(|received| {
                    // A delivery without a message body still holds a lease: it is
                    // classified (as empty data, so malformed) and handed back with
                    // the rest, never dropped.
                    let message = received.message.unwrap_or_default();
                    Received {
                        ack_id: received.ack_id,
                        message_id: message.message_id,
                        publish_time: message.publish_time.and_then(|t| {
                            let nanos = u32::try_from(t.nanos).ok()?;
                            let seconds = u64::try_from(t.seconds).ok()?;
                            UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
                        }),
                        data: message.data,
                        ordered: !message.ordering_key.is_empty(),
                    }
                })
                .collect(),
        ))
    }

    async fn acknowledge(
        &self,
        ack_ids: Vec<String>,
        give_up: tokio::time::Instant,
    ) -> anyhow::Result<()> {
        self.settle_chunk(ack_ids, None, give_up)
            .await
            .map_err(|status| rpc_error("Acknowledge", &self.name, &status))
    }

    async fn set_deadline(
        &self,
        ack_ids: Vec<String>,
        seconds: u16,
        give_up: tokio::time::Instant,
    ) -> anyhow::Result<()> {
        self.settle_chunk(ack_ids, Some(i32::from(seconds)), give_up)
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
