//! Waiting for an event: a state the test can check (a row count, a port that
//! listens, a message back in a subscription), checked again and again until
//! it is reached, never for longer than a deadline. A test that waits names
//! what it waits for, so that a deadline passed says what never happened.

use std::time::{Duration, Instant};

use super::Run;

/// Calls `check` until it gives a value, `every` apart, and returns that
/// value. Panics, naming `what` (the event, as "the job's DELETE to start"),
/// if `limit` passes first, a check under way included.
pub async fn poll_until<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let reached = async {
        loop {
            if let Some(value) = check().await {
                return value;
            }
            tokio::time::sleep(every).await;
        }
    };
    tokio::time::timeout(limit, reached)
        .await
        .unwrap_or_else(|_| panic!("waited {limit:?} for {what}, in vain"))
}

/// Waits until a server listens on 127.0.0.1:`port`: `what` has started.
/// `exited` says why it never will, once the server has exited.
pub async fn until_listening(port: u16, what: &str, mut exited: impl FnMut() -> Option<String>) {
    poll_until(
        &format!("{what} to listen on port {port}"),
        Duration::from_secs(90),
        Duration::from_millis(100),
        async || {
            if let Some(why) = exited() {
                panic!("{what} exited: {why}");
            }
            let connected = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
            connected.ok().map(drop)
        },
    )
    .await
}

/// Runs the job (`run`, which checks each run's exit) until a run finds
/// nothing to acknowledge, `quiet` has passed since the first (the leases of
/// killed runs' messages have run out by then) and `settled` says the
/// database is as it must be; at most `quiet` and two minutes. Returns every
/// run.
pub async fn until_recovered(
    quiet: Duration,
    mut run: impl AsyncFnMut() -> Run,
    mut settled: impl AsyncFnMut() -> bool,
) -> Vec<Run> {
    let started = Instant::now();
    let mut runs = Vec::new();
    let limit = quiet + Duration::from_secs(120);
    let every = Duration::from_millis(500);
    poll_until("the runs to recover", limit, every, async || {
        let last = run().await;
        let idle = last.count("acked") == 0;
        runs.push(last);
        (idle && started.elapsed() >= quiet && settled().await).then_some(())
    })
    .await;
    runs
}
