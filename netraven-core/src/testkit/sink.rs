//! The snapshot sink conformance suite.

use crate::model::*;
use crate::snapshot::SnapshotSink;
use std::sync::Arc;

fn snap(device: DeviceId, content: &str) -> NewSnapshot {
    NewSnapshot {
        device_id: device,
        hostname: format!("dev{device}"),
        run_id: None,
        content: content.to_string(),
        taken_at: super::t0(),
        author: None,
    }
}

/// Runs every check. `device` must be a device id with no snapshots yet.
pub async fn run_all(sink: Arc<dyn SnapshotSink>, device: DeviceId) {
    let a = sink.put(snap(device, "hostname a\n")).await.expect("put");
    assert!(a.changed, "first snapshot must count as changed");
    let again = sink.put(snap(device, "hostname a\n")).await.expect("put");
    assert!(!again.changed, "equal content must not make a new snapshot");
    assert_eq!(again.snapshot_id, a.snapshot_id);
    let b = sink.put(snap(device, "hostname b\n")).await.expect("put");
    assert!(b.changed);
    assert_ne!(b.snapshot_id, a.snapshot_id);
    let back = sink.put(snap(device, "hostname a\n")).await.expect("put");
    assert!(back.changed, "a revert to older content is a change");
    let h = sink
        .history(device, Page::first(10))
        .await
        .expect("history");
    assert_eq!(h.total, 3);
    let ids: Vec<_> = h.items.iter().map(|m| m.id).collect();
    assert_eq!(
        ids,
        vec![back.snapshot_id, b.snapshot_id, a.snapshot_id],
        "history must be newest first"
    );
    assert_eq!(h.items[1].hash, content_hash("hostname b\n"));
    let latest = sink.latest(device).await.expect("latest").expect("some");
    assert_eq!(latest.content, "hostname a\n");
    assert_eq!(
        sink.get(b.snapshot_id).await.expect("get").content,
        "hostname b\n"
    );
    assert!(
        sink.latest(device + 1_000_000)
            .await
            .expect("latest")
            .is_none()
    );
}
