//! The newest result and newest success of a page of devices in one query
//! ([`ResultStore::latest_results`](netraven_core::store::ResultStore::latest_results)), for the
//! devices page and the recent-results view.
//!
//! Per device, two correlated `ORDER BY finished_at DESC, id DESC LIMIT 1` subqueries walk the
//! index `device_results_device_idx (device_id, finished_at, id)` backwards: the first stops at
//! the newest row, the second at the newest success (after the failures that followed it). The
//! ids they pick are then read by primary key. The device ids travel as one bound list, read as a
//! table by [`Dialect::ids_table`].

use crate::sql::SqlStore;
use crate::sql::dialect::Dialect;
use crate::sql::query::{Arg, Sql};
use crate::sql::results::{RESULT_COLS, result_row};
use netraven_core::error::Result;
use netraven_core::model::{DeviceId, DeviceResult, DeviceStatus, LatestResults};
use std::collections::{BTreeSet, HashMap};

/// The query: the device ids bound as one list at `$1`, the success status at `$2`.
fn query<D: Dialect>() -> String {
    let newest = |cond: &str| {
        format!(
            "SELECT (SELECT y.id FROM device_results y WHERE y.device_id = v.id{cond} \
             ORDER BY y.finished_at DESC, y.id DESC LIMIT 1) FROM v"
        )
    };
    format!(
        "WITH v(id) AS ({}) \
         SELECT {RESULT_COLS} FROM device_results WHERE id IN ({} UNION ALL {})",
        D::ids_table("$1"),
        newest(""),
        newest(" AND y.status = $2"),
    )
}

/// See the module documentation.
pub(super) async fn latest_results<D: Dialect>(
    store: &SqlStore<D>,
    devices: &[DeviceId],
) -> Result<HashMap<DeviceId, LatestResults>> {
    let ids: Vec<DeviceId> = devices
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let q = Sql::new(query::<D>())
        .bind(Arg::Ids(ids))
        .bind(DeviceStatus::Success.as_str());
    let rows = store.db.fetch_all(q).await?;
    // At most two rows per device (one when its newest result is its newest success).
    let mut rows = rows.iter().map(result_row).collect::<Result<Vec<_>>>()?;
    rows.sort_by_key(|r| std::cmp::Reverse((r.finished_at, r.id)));
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        merge(&mut out, r);
    }
    Ok(out)
}

/// Adds a row, newest first: the first row of a device is its newest result, its first
/// successful row its newest success.
fn merge(out: &mut HashMap<DeviceId, LatestResults>, r: DeviceResult) {
    match out.get_mut(&r.device_id) {
        None => {
            let latest_success = (r.status == DeviceStatus::Success).then(|| r.clone());
            out.insert(
                r.device_id,
                LatestResults {
                    latest: r,
                    latest_success,
                },
            );
        }
        Some(e) => {
            if e.latest_success.is_none() && r.status == DeviceStatus::Success {
                e.latest_success = Some(r);
            }
        }
    }
}
