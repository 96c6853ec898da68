//! `user-purge verify`: proof that erased users stay erased. The erasure
//! record says who was erased; every entry of the map is read, by its index,
//! for rows of those users that should not be there (a restore, a writer
//! re-creating rows from a cache, a late sync), as Facebook's DELF finds
//! deletion omissions by detection rather than by trusting declarations.
//! With `--repair` it erases what it found with the job's own erasure, then
//! checks those users again.

use std::collections::BTreeSet;
use std::time::Instant;

use log::{info, warn};
use serde::Serialize;

use crate::config::Engine;
use crate::config::Verify;
use crate::config::map::Action;
use crate::outcome::{Outcome, Tables};
use crate::run::erase;
use crate::store::engine::verify::Found;
use crate::store::engine::{Session, SqlStore};
use crate::store::{Removal, Store, mysql, postgres};
use crate::timestamp;

/// Users read from the record, and checked, at a time.
const PAGE: u64 = 10_000;

/// Users erased again in one transaction.
const REPAIR_BATCH: usize = 10_000;

/// How often a long check says how far it is, in users.
const PROGRESS_EVERY: u64 = 100_000;

/// One finding, printed as one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub finding: &'static str,
    pub table: String,
    pub column: String,
    /// The recorded user the rows belong to (or lead to, through a `via`).
    pub user_id: u64,
    pub rows: u64,
}

/// What `verify` did, for its closing line.
#[derive(Debug, Default, Serialize)]
pub struct Verified {
    pub command: &'static str,
    pub outcome: &'static str,
    pub users_checked: u64,
    /// Places (a user in an entry) found, all of them, printed or not.
    pub findings: u64,
    /// Rows found, per table of the map.
    pub tables: Tables,
    /// With `--repair`: rows erased again, users refused, places left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repaired_rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    pub elapsed_ms: u64,
    /// With `--repair`: every place still holding data, the refused users'
    /// included (the pushed findings: those rows are still there).
    #[serde(skip)]
    pub left: Option<u64>,
}

/// Runs `verify`; `report` gets each finding up to `--max-findings`.
/// Returns the closing figures and the outcome.
pub async fn verify(v: &Verify, mut report: impl FnMut(&Finding)) -> (Verified, Outcome) {
    let started = Instant::now();
    let mut verified = Verified {
        command: "verify",
        ..Verified::default()
    };
    let outcome = match check(v, &mut verified, &mut report).await {
        Ok(outcome) => outcome,
        Err(error) => Outcome::DatabaseFailed(error.context("verify could not finish")),
    };
    verified.outcome = outcome.name();
    verified.elapsed_ms = crate::outcome::elapsed_ms(started);
    (verified, outcome)
}

async fn check(
    v: &Verify,
    verified: &mut Verified,
    report: &mut impl FnMut(&Finding),
) -> anyhow::Result<Outcome> {
    match v.database.engine {
        Engine::MySql => check_on::<mysql::MySql>(v, verified, report).await,
        Engine::Postgres => check_on::<postgres::Postgres>(v, verified, report).await,
    }
}

async fn check_on<S: Session>(
    v: &Verify,
    verified: &mut Verified,
    report: &mut impl FnMut(&Finding),
) -> anyhow::Result<Outcome> {
    let database = &v.database;
    let mut store = SqlStore::<S>::connect_verify(database).await?;
    let since = v.since.map(timestamp::format_datetime);
    info!(
        "verifying the users of {} {}against {} entries of the map",
        database.record.as_ref().map_or("", |r| r.as_str()),
        since
            .as_ref()
            .map_or(String::new(), |s| format!("erased since {s} UTC ")),
        database.map.entries().len()
    );
    let mut printed = 0;
    let mut found_users = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let (ids, last) = store
            .record_page(since.as_deref(), after.as_deref(), PAGE)
            .await
            .map_err(erase::failure)?;
        let Some(through) = last.as_deref() else {
            break;
        };
        let before = verified.users_checked;
        verified.users_checked += ids.len() as u64;
        let found = store
            .found_in_page(&ids, since.as_deref(), after.as_deref(), through)
            .await
            .map_err(erase::failure)?;
        for found in found {
            verified.findings += 1;
            let finding = describe(v, &found);
            verified.tables.add(&finding.table, found.rows);
            found_users.insert(found.user_id);
            if printed < v.max_findings {
                printed += 1;
                report(&finding);
            }
        }
        if verified.users_checked / PROGRESS_EVERY > before / PROGRESS_EVERY {
            info!(
                "verified {} users so far: {} findings",
                verified.users_checked, verified.findings
            );
        }
        after = last;
    }
    if verified.findings as usize > printed {
        warn!(
            "{} more findings not printed (--max-findings {})",
            verified.findings as usize - printed,
            v.max_findings
        );
    }
    if !v.repair {
        return Ok(match verified.findings {
            0 => Outcome::Completed,
            n => Outcome::Findings(n as usize),
        });
    }
    repair(&mut store, &found_users, verified).await
}

/// Erases the users found again, with the job's statements and isolation,
/// writing nothing to the record; then looks at them once more.
async fn repair<S: Session>(
    store: &mut SqlStore<S>,
    users: &BTreeSet<u64>,
    verified: &mut Verified,
) -> anyhow::Result<Outcome> {
    let users: Vec<u64> = users.iter().copied().collect();
    let far = tokio::time::Instant::now() + std::time::Duration::from_secs(365 * 24 * 3600);
    let (mut rows, mut refused) = (0, BTreeSet::new());
    for batch in users.chunks(REPAIR_BATCH) {
        let removals: Vec<Removal> = batch
            .iter()
            .map(|&user_id| Removal {
                user_id,
                message_id: String::new(),
            })
            .collect();
        let erasure = erase::erase(store, &removals, far)
            .await
            .map_err(|halt| match halt {
                erase::Halt::Failed(error) => error,
                erase::Halt::Lagging(line) => anyhow::anyhow!("{line}"),
            })?;
        rows += erasure.erased.rows.iter().sum::<u64>();
        refused.extend(erasure.refused.iter().map(|(id, _)| *id));
    }
    info!(
        "repaired {} users: {rows} rows erased again, {} refused",
        users.len(),
        refused.len()
    );
    let (mut remaining, mut left) = (0, 0);
    for batch in users.chunks(REPAIR_BATCH) {
        for found in store.found(batch).await.map_err(erase::failure)? {
            left += 1;
            if !refused.contains(&found.user_id) {
                remaining += 1;
                warn!(
                    "user {}: {} rows are still in {} after the repair (written again meanwhile?)",
                    found.user_id,
                    found.rows,
                    store.tables()[found.entry]
                );
            }
        }
    }
    verified.repaired_rows = Some(rows);
    verified.refused = Some(refused.len() as u64);
    verified.remaining = Some(remaining);
    verified.left = Some(left);
    Ok(if !refused.is_empty() {
        Outcome::PartiallyCompleted(anyhow::anyhow!(
            "the database refused to erase {} users again; their rows stay",
            refused.len()
        ))
    } else if remaining > 0 {
        Outcome::Findings(remaining as usize)
    } else {
        Outcome::Completed
    })
}

/// A finding as the operator reads it.
fn describe(v: &Verify, found: &Found) -> Finding {
    let entry = &v.database.map.entries()[found.entry];
    Finding {
        finding: match entry.action {
            Action::Delete => "reappeared",
            Action::Redact { .. } => "not redacted",
        },
        table: entry.table.as_str().to_owned(),
        column: entry.column.as_str().to_owned(),
        user_id: found.user_id,
        rows: found.rows,
    }
}
