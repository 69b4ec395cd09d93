//! Process-local counters the engine keeps for `/metrics`.

use crate::model::RunStatus;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Upper bounds (seconds) of the device duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0];

/// Engine counters. All methods are lock-free except the run-status map.
#[derive(Debug, Default)]
pub struct EngineMetrics {
    /// Device sessions in progress.
    pub active_devices: AtomicI64,
    /// Devices that ended successfully.
    pub devices_ok: AtomicU64,
    /// Devices that ended failed.
    pub devices_failed: AtomicU64,
    /// Tasks claimed from the queue.
    pub tasks_claimed: AtomicU64,
    buckets: [AtomicU64; 10],
    duration_count: AtomicU64,
    duration_ms_sum: AtomicU64,
    runs: Mutex<Vec<(RunStatus, u64)>>,
}

impl EngineMetrics {
    /// Records one device's duration and outcome.
    pub fn device_done(&self, ok: bool, ms: u64) {
        if ok {
            self.devices_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.devices_failed.fetch_add(1, Ordering::Relaxed);
        }
        let secs = ms as f64 / 1000.0;
        for (i, b) in DURATION_BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        self.duration_ms_sum.fetch_add(ms, Ordering::Relaxed);
    }

    /// Records a run that reached a final status in this process.
    pub fn run_finished(&self, status: RunStatus) {
        let mut g = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        match g.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => g.push((status, 1)),
        }
    }

    /// Cumulative histogram: (bucket upper bound, count ≤ bound), total count, sum in seconds.
    pub fn durations(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let b = DURATION_BUCKETS
            .iter()
            .zip(self.buckets.iter())
            .map(|(le, c)| (*le, c.load(Ordering::Relaxed)))
            .collect();
        (
            b,
            self.duration_count.load(Ordering::Relaxed),
            self.duration_ms_sum.load(Ordering::Relaxed) as f64 / 1000.0,
        )
    }

    /// Runs finished in this process, by status.
    pub fn runs_finished(&self) -> Vec<(RunStatus, u64)> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
