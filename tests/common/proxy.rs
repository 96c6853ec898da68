//! A TCP proxy that adds latency, for running the job over a slow link to
//! the Pub/Sub emulator.
//!
//! Each chunk read from one side is written to the other side `delay` after it
//! was read, in the order it was read: every direction of every connection
//! adds `delay` (a request and its answer, `2 × delay`), and chunks still
//! pipeline, so the link is slow, not narrow. Half-closes are forwarded after
//! the delay too. Each direction's queue is bounded, so a reader that outruns
//! its writer waits. Dropping the proxy stops it and closes every connection.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Chunks in flight in one direction of one connection before its reader waits.
const QUEUE: usize = 1_024;

/// The most bytes one read takes.
const CHUNK: usize = 64 * 1024;

/// A listening proxy; `host` is what `PUBSUB_EMULATOR_HOST` gets.
pub struct LatencyProxy {
    /// `127.0.0.1:port` the proxy listens on.
    pub host: String,
    /// The accept loop; it owns the connections' tasks, so aborting it ends them.
    accept: JoinHandle<()>,
}

impl LatencyProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`
    /// (`host:port`), delaying each direction by `delay`.
    pub async fn start(upstream: &str, delay: Duration) -> LatencyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let accept = tokio::spawn(accept_loop(listener, upstream.to_owned(), delay));
        LatencyProxy { host, accept }
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, upstream: String, delay: Duration) {
    // Dropped with this task, which aborts every connection's task.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    connections.spawn(relay(client, upstream.clone(), delay));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            // Reap finished connections, so that the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One connection: both directions at once, until both have ended.
async fn relay(client: TcpStream, upstream: String, delay: Duration) {
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return; // dropping the client's socket closes it: as if unreachable
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pipe(client_read, server_write, delay),
        pipe(server_read, client_write, delay)
    );
}

/// One direction: a reader stamps each chunk with the time it is due, a
/// writer writes it then. One queue, so the order is kept.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (queue, mut due) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE);
    let read = async move {
        let mut buffer = vec![0; CHUNK];
        loop {
            match from.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = (Instant::now() + delay, buffer[..n].to_vec());
                    if queue.send(chunk).await.is_err() {
                        break; // the writer is gone: the other side closed
                    }
                }
            }
        }
        // Dropping the sender ends the writer after the last chunk, and it
        // forwards the half-close when that chunk would have arrived.
        drop(queue);
        Instant::now() + delay
    };
    let write = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return None;
            }
        }
        Some(to)
    };
    let (closed_at, to) = tokio::join!(read, write);
    if let Some(mut to) = to {
        tokio::time::sleep_until(closed_at).await;
        let _ = to.shutdown().await;
    }
}
