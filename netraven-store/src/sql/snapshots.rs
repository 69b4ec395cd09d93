//! The snapshot index, its content, and the latest snapshot per device (`snapshot_latest`).

use crate::sql::SqlStore;
use crate::sql::dialect::{Dialect, SqlRow};
use crate::sql::query::{Arg, Sql, Where, contains_pattern, or_now, page_args};
use chrono::Utc;
use netraven_core::error::Result;
use netraven_core::model::{
    DeviceId, Page, Paged, Snapshot, SnapshotId, SnapshotMeta, SnapshotPut, content_hash,
};
use netraven_core::store::SnapshotStore;

const SNAP_COLS: &str = "s.id AS id, s.device_id AS device_id, s.hostname AS hostname, \
     s.run_id AS run_id, s.hash AS hash, s.size AS size, s.created_at AS created_at, \
     s.commit_id AS commit_id, s.author AS author";

/// The latest-snapshot index entry, read from `snapshot_latest l` without a join.
const LATEST_COLS: &str = "l.snapshot_id AS id, l.device_id AS device_id, l.hostname AS hostname, \
     l.run_id AS run_id, l.hash AS hash, l.size AS size, l.created_at AS created_at, \
     l.commit_id AS commit_id, l.author AS author";

fn snap_meta_row(r: &impl SqlRow) -> Result<SnapshotMeta> {
    Ok(SnapshotMeta {
        id: r.i64("id")?,
        device_id: r.i64("device_id")?,
        hostname: r.text("hostname")?,
        run_id: r.opt_i64("run_id")?,
        hash: r.text("hash")?,
        size: r.int("size")?,
        created_at: r.ts("created_at")?,
        commit_id: r.opt_text("commit_id")?,
        author: r.opt_text("author")?,
    })
}

fn snap_row(r: &impl SqlRow) -> Result<Snapshot> {
    Ok(Snapshot {
        meta: snap_meta_row(r)?,
        content: r.text("content")?,
    })
}

/// The conflict clause of every `snapshot_latest` insert: a device's latest entry moves only
/// forward (by time, then id), whatever the insert order.
const LATEST_MOVES_FORWARD: &str = "ON CONFLICT (device_id) DO UPDATE SET \
     snapshot_id = excluded.snapshot_id, created_at = excluded.created_at, \
     hostname = excluded.hostname, run_id = excluded.run_id, hash = excluded.hash, \
     size = excluded.size, commit_id = excluded.commit_id, author = excluded.author \
     WHERE excluded.created_at > snapshot_latest.created_at \
        OR (excluded.created_at = snapshot_latest.created_at \
            AND excluded.snapshot_id > snapshot_latest.snapshot_id)";

/// A snapshot to insert, its hash, size and time already decided.
struct NewRow {
    meta: SnapshotMeta,
    content: String,
}

/// Inserts a snapshot, its content and (if it is the newest) the device's latest entry, in the
/// caller's transaction.
async fn insert_in<D: Dialect>(tx: &mut D::Tx, new: &NewRow) -> Result<SnapshotMeta> {
    let m = &new.meta;
    let (hash, created, size) = (m.hash.clone(), m.created_at, new.content.len() as i64);
    // RETURNING the stored index row saves reading it back.
    let row = D::tx_fetch_one(
        tx,
        Sql::new(
            "INSERT INTO snapshots (device_id, hostname, run_id, hash, size, created_at, \
             commit_id, author) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id, \
             device_id, hostname, run_id, hash, size, created_at, commit_id, author",
        )
        .bind(m.device_id)
        .bind(&m.hostname)
        .bind(m.run_id)
        .bind(hash.clone())
        .bind(size)
        .bind(created)
        .bind(&m.commit_id)
        .bind(&m.author),
        "inserted snapshot".into(),
    )
    .await?;
    let meta = snap_meta_row(&row)?;
    let id = meta.id;
    D::tx_execute(
        tx,
        Sql::new("INSERT INTO snapshot_contents (snapshot_id, content) VALUES ($1, $2)")
            .bind(id)
            .bind(&new.content),
    )
    .await?;
    D::tx_execute(
        tx,
        Sql::new(format!(
            "INSERT INTO snapshot_latest (device_id, snapshot_id, created_at, hostname, \
             run_id, hash, size, commit_id, author) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             {LATEST_MOVES_FORWARD}"
        ))
        .bind(m.device_id)
        .bind(id)
        .bind(created)
        .bind(&m.hostname)
        .bind(m.run_id)
        .bind(hash)
        .bind(size)
        .bind(&m.commit_id)
        .bind(&m.author),
    )
    .await?;
    Ok(meta)
}

/// `put_snapshot` as one multi-statement round trip ([`Dialect::MULTI_STATEMENT`]): the index
/// row is inserted only if the device's latest entry has another hash; the content and the
/// latest entry follow only if it was (`changes()` is the rows the statement just before
/// added, `last_insert_rowid()` the new snapshot's id, which `snapshot_contents` keeps as its
/// rowid); the device's latest entry comes back in the same trip.
async fn put_in_one_trip<D: Dialect>(tx: &mut D::Tx, new: &NewRow) -> Result<SnapshotPut> {
    let m = &new.meta;
    let q = Sql::new(format!(
        "INSERT INTO snapshots (device_id, hostname, run_id, hash, size, created_at, commit_id, \
         author) SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE NOT EXISTS \
         (SELECT 1 FROM snapshot_latest WHERE device_id = $1 AND hash = $4) \
         RETURNING 'new' AS row_kind, id AS snapshot_id; \
         INSERT INTO snapshot_contents (snapshot_id, content) \
         SELECT last_insert_rowid(), $9 WHERE changes() = 1; \
         INSERT INTO snapshot_latest (device_id, snapshot_id, created_at, hostname, run_id, hash, \
         size, commit_id, author) SELECT $1, last_insert_rowid(), $6, $2, $3, $4, $5, $7, $8 \
         WHERE changes() = 1 {LATEST_MOVES_FORWARD}; \
         SELECT 'latest' AS row_kind, snapshot_id FROM snapshot_latest WHERE device_id = $1"
    ))
    .bind(m.device_id)
    .bind(&m.hostname)
    .bind(m.run_id)
    .bind(&m.hash)
    .bind(new.content.len() as i64)
    .bind(m.created_at)
    .bind(&m.commit_id)
    .bind(&m.author)
    .bind(&new.content);
    let (mut fresh, mut latest) = (None, None);
    for row in D::tx_fetch_all(tx, q).await? {
        let id = row.i64("snapshot_id")?;
        match row.text("row_kind")?.as_str() {
            "new" => fresh = Some(id),
            _ => latest = Some(id),
        }
    }
    let (snapshot_id, changed) = match (fresh, latest) {
        (Some(id), _) => (id, true),
        // Not inserted: the latest entry has this very hash.
        (None, Some(id)) => (id, false),
        (None, None) => {
            return Err(netraven_core::error::Error::internal(
                "a snapshot was neither inserted nor found as the device's latest",
            ));
        }
    };
    Ok(SnapshotPut {
        snapshot_id,
        changed,
        hash: m.hash.clone(),
    })
}

#[async_trait::async_trait]
impl<D: Dialect> SnapshotStore for SqlStore<D> {
    async fn insert_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotMeta> {
        let m = &snapshot.meta;
        let hash = if m.hash.is_empty() {
            content_hash(&snapshot.content)
        } else {
            m.hash.clone()
        };
        let row = NewRow {
            meta: SnapshotMeta {
                hash,
                created_at: or_now(m.created_at, Utc::now()),
                size: snapshot.content.len() as u64,
                ..snapshot.meta.clone()
            },
            content: snapshot.content.clone(),
        };
        let row = std::sync::Arc::new(row);
        self.db
            .write(move |tx| {
                let row = row.clone();
                Box::pin(async move { insert_in::<D>(tx, &row).await })
            })
            .await
    }

    /// One write: the device's latest hash is read inside the write transaction, so the
    /// comparison and the insert cannot be split by another writer, and no read round trip
    /// precedes the write.
    async fn put_snapshot(&self, snapshot: Snapshot) -> Result<SnapshotPut> {
        let Snapshot { meta, content } = snapshot;
        let hash = if meta.hash.is_empty() {
            content_hash(&content)
        } else {
            meta.hash.clone()
        };
        let row = std::sync::Arc::new(NewRow {
            meta: SnapshotMeta {
                hash,
                created_at: or_now(meta.created_at, Utc::now()),
                size: content.len() as u64,
                ..meta
            },
            content,
        });
        self.db
            .write(move |tx| {
                let row = row.clone();
                Box::pin(async move {
                    if D::MULTI_STATEMENT {
                        return put_in_one_trip::<D>(tx, &row).await;
                    }
                    let latest = D::tx_fetch_optional(
                        tx,
                        Sql::new(
                            "SELECT snapshot_id, hash FROM snapshot_latest WHERE device_id = $1",
                        )
                        .bind(row.meta.device_id),
                    )
                    .await?;
                    if let Some(l) = latest
                        && l.text("hash")? == row.meta.hash
                    {
                        return Ok(SnapshotPut {
                            snapshot_id: l.i64("snapshot_id")?,
                            changed: false,
                            hash: row.meta.hash.clone(),
                        });
                    }
                    let stored = insert_in::<D>(tx, &row).await?;
                    Ok(SnapshotPut {
                        snapshot_id: stored.id,
                        changed: true,
                        hash: stored.hash,
                    })
                })
            })
            .await
    }

    async fn latest_snapshot(&self, device: DeviceId) -> Result<Option<SnapshotMeta>> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(format!(
                    "SELECT {LATEST_COLS} FROM snapshot_latest l WHERE l.device_id = $1"
                ))
                .bind(device),
            )
            .await?;
        row.as_ref().map(snap_meta_row).transpose()
    }

    async fn get_snapshot(&self, id: SnapshotId) -> Result<Snapshot> {
        let row = self
            .db
            .fetch_one(
                Sql::new(format!(
                    "SELECT {SNAP_COLS}, c.content AS content FROM snapshots s \
                     JOIN snapshot_contents c ON c.snapshot_id = s.id WHERE s.id = $1"
                ))
                .bind(id),
                format!("snapshot {id}"),
            )
            .await?;
        snap_row(&row)
    }

    async fn list_snapshots(&self, device: DeviceId, page: Page) -> Result<Paged<SnapshotMeta>> {
        let total = self
            .db
            .count(
                Sql::new("SELECT COUNT(*) AS n FROM snapshots WHERE device_id = $1").bind(device),
            )
            .await?;
        let mut w = Where::default();
        w.arg(device);
        let text = format!(
            "SELECT {SNAP_COLS} FROM snapshots s WHERE s.device_id = $1 \
             ORDER BY s.created_at DESC, s.id DESC{}",
            page_args(&mut w, page)
        );
        let rows = self.db.fetch_all(Sql::with_args(text, w.args)).await?;
        let items = rows.iter().map(snap_meta_row).collect::<Result<Vec<_>>>()?;
        Ok(Paged::new(items, total, page))
    }

    async fn latest_snapshots(&self, devices: &[DeviceId]) -> Result<Vec<SnapshotMeta>> {
        if devices.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .db
            .fetch_all(
                Sql::new(format!(
                    "SELECT {LATEST_COLS} FROM snapshot_latest l WHERE {} ORDER BY l.device_id",
                    D::in_list("l.device_id", "$1")
                ))
                .bind(Arg::Ids(devices.to_vec())),
            )
            .await?;
        rows.iter().map(snap_meta_row).collect()
    }

    async fn uncommitted_snapshots(&self, limit: u32) -> Result<Vec<Snapshot>> {
        let rows = self
            .db
            .fetch_all(
                Sql::new(format!(
                    "SELECT {SNAP_COLS}, c.content AS content FROM snapshots s \
                     JOIN snapshot_contents c ON c.snapshot_id = s.id \
                     WHERE s.commit_id IS NULL ORDER BY s.id LIMIT $1"
                ))
                .bind(i64::from(limit)),
            )
            .await?;
        rows.iter().map(snap_row).collect()
    }

    async fn mark_committed(&self, ids: &[SnapshotId], commit_id: &str) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin_write().await?;
        for (table, col) in [("snapshots", "id"), ("snapshot_latest", "snapshot_id")] {
            D::tx_execute(
                &mut tx,
                Sql::new(format!(
                    "UPDATE {table} SET commit_id = $1 WHERE {}",
                    D::in_list(col, "$2")
                ))
                .bind(commit_id)
                .bind(Arg::Ids(ids.to_vec())),
            )
            .await?;
        }
        D::commit(tx).await
    }

    async fn last_commit_id(&self) -> Result<Option<String>> {
        let row = self
            .db
            .fetch_optional(Sql::new(
                "SELECT commit_id FROM snapshots WHERE commit_id IS NOT NULL \
                 ORDER BY id DESC LIMIT 1",
            ))
            .await?;
        row.map(|r| r.text("commit_id")).transpose()
    }

    async fn search_latest(&self, needle: &str, page: Page) -> Result<Paged<SnapshotMeta>> {
        let from = format!(
            " FROM snapshot_latest l JOIN snapshot_contents c ON c.snapshot_id = l.snapshot_id \
             WHERE c.content {} $1 ESCAPE '\\'",
            D::CI_LIKE
        );
        let pattern = contains_pattern(needle);
        let total = self
            .db
            .count(Sql::new(format!("SELECT COUNT(*) AS n{from}")).bind(pattern.clone()))
            .await?;
        let mut w = Where::default();
        w.arg(pattern);
        let text = format!(
            "SELECT {LATEST_COLS}{from} ORDER BY l.hostname, l.snapshot_id{}",
            page_args(&mut w, page)
        );
        let rows = self.db.fetch_all(Sql::with_args(text, w.args)).await?;
        let items = rows.iter().map(snap_meta_row).collect::<Result<Vec<_>>>()?;
        Ok(Paged::new(items, total, page))
    }
}
