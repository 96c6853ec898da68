//! What `user-purge verify` reads: the erasure record's users, page by page,
//! and each map entry's rows of those users that should not be there.

use super::{Session, SqlStore};
use crate::store::StoreError;
use crate::store::sql::{self, IdKind};

/// Rows of one recorded user in one entry that should not be there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The entry of the map.
    pub entry: usize,
    pub user_id: u64,
    pub rows: u64,
}

impl<S: Session> SqlStore<S> {
    /// The next `limit` users of the erasure record after `after` (in the
    /// column's order), erased at or after `since` (a UTC `DATETIME`), and
    /// the last value read, to go on from. Values that are not a user id the
    /// job writes (canonical digits) are skipped: no erasure wrote them.
    pub async fn record_page(
        &mut self,
        since: Option<&str>,
        after: Option<&str>,
        limit: u64,
    ) -> Result<(Vec<u64>, Option<String>), StoreError> {
        let Some((table, kind)) = self.record.clone() else {
            return Ok((Vec::new(), None));
        };
        let since = since.and_then(sql::datetime_literal);
        let select = sql::record_page(S::DIALECT, &table, since.as_deref(), after, limit);
        let values = self
            .session
            .select_column(&select, table.as_str(), "reading the erasure record")
            .await?;
        let last = values.last().map(|value| {
            let digits = !value.is_empty() && value.iter().all(u8::is_ascii_digit);
            match (kind, digits) {
                (IdKind::Integer { .. }, _) => String::from_utf8_lossy(value).into_owned(),
                (IdKind::Text { .. }, true) => format!("'{}'", String::from_utf8_lossy(value)),
                // Never written by the job; compared in the column's own order.
                (IdKind::Text { .. }, false) => sql::key_literal(
                    S::DIALECT,
                    &sql::KeyKind::Text {
                        charset: "utf8mb4".into(),
                    },
                    value,
                )
                .unwrap_or_default(),
            }
        });
        let ids = values
            .iter()
            .filter_map(|value| {
                let text = std::str::from_utf8(value).ok()?;
                let id: u64 = text.parse().ok()?;
                (id.to_string() == text).then_some(id)
            })
            .collect();
        Ok((ids, last))
    }

    /// Every entry's rows of these users that an erasure would have removed
    /// (a delete's rows, a redaction's rows not redacted), read by the
    /// entry's index, as the erasure compares ids.
    pub async fn found(&mut self, user_ids: &[u64]) -> Result<Vec<Found>, StoreError> {
        self.found_with(user_ids, None).await
    }

    /// [`found`](Self::found) for the users of one page of the record, as
    /// [`record_page`](Self::record_page) read it: `user_ids` after `after`
    /// through `through` (the literals it returned), erased at or after
    /// `since`. An integer record whose `user_id` is unique is joined to
    /// each integer column's entry ([`sql::findings_recorded`]); a text
    /// column, a text record or one that may hold a user twice gets the ids
    /// as a list. A user recorded into the range since the page was read is
    /// checked too: its record row commits with its erasure.
    pub async fn found_in_page(
        &mut self,
        user_ids: &[u64],
        since: Option<&str>,
        after: Option<&str>,
        through: &str,
    ) -> Result<Vec<Found>, StoreError> {
        let (Some((table, IdKind::Integer { .. })), true) =
            (self.record.clone(), self.record_unique)
        else {
            return self.found_with(user_ids, None).await;
        };
        let since = since.and_then(sql::datetime_literal);
        let range = sql::RecordRange {
            table: &table,
            after,
            through,
            since: since.as_deref(),
        };
        self.found_with(user_ids, Some(range)).await
    }

    async fn found_with(
        &mut self,
        user_ids: &[u64],
        range: Option<sql::RecordRange<'_>>,
    ) -> Result<Vec<Found>, StoreError> {
        let mut found = Vec::new();
        for i in 0..self.entries.len() {
            let (entry, kind) = &self.entries[i];
            let recorded =
                range.and_then(|range| sql::findings_recorded(S::DIALECT, entry, *kind, range));
            let Some(select) =
                recorded.or_else(|| sql::findings_select(S::DIALECT, entry, *kind, user_ids))
            else {
                continue;
            };
            let table = entry.table.as_str().to_owned();
            let what = format!("verifying entry {} on {table}", i + 1);
            let rows = self.session.select(&select, &table, &what).await?;
            for row in rows {
                // Digits only, by the condition (a text column's REGEXP).
                let number = |value: Option<&Vec<u8>>| -> Option<u64> {
                    std::str::from_utf8(value?).ok()?.trim_end().parse().ok()
                };
                let (Some(user_id), Some(count)) = (number(row.first()), number(row.get(1))) else {
                    continue;
                };
                found.push(Found {
                    entry: i,
                    user_id,
                    rows: count,
                });
            }
        }
        Ok(found)
    }
}
