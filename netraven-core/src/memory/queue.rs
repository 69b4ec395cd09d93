//! [`MemoryQueue`]: the embedded, in-process queue.

use crate::clock::{self, Clock};
use crate::error::{Error, Result};
use crate::queue::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Ready,
    Delayed(DateTime<Utc>),
    Leased(DateTime<Utc>),
    /// Since when.
    Dead(DateTime<Utc>),
}

#[derive(Debug)]
struct Entry {
    task: Task,
    state: State,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    tasks: HashMap<String, Entry>,
    /// Ready ids per zone (`None`: the default zone).
    ready: BTreeMap<Option<String>, VecDeque<String>>,
    delayed: BTreeSet<(DateTime<Utc>, String)>,
    leased: BTreeSet<(DateTime<Utc>, String)>,
    dedupe: HashMap<String, String>,
    /// Last heartbeat per worker: its zone and when.
    beats: HashMap<String, (Option<String>, DateTime<Utc>)>,
}

impl Inner {
    /// Puts a ready task at the back (or, `front`, the front) of its zone's ready list.
    fn push_ready(&mut self, id: String, front: bool) {
        let zone = self.tasks.get(&id).and_then(|e| e.task.zone.clone());
        let list = self.ready.entry(zone).or_default();
        if front {
            list.push_front(id);
        } else {
            list.push_back(id);
        }
    }

    fn promote_due(&mut self, now: DateTime<Utc>) -> u64 {
        let mut n = 0;
        while let Some((at, id)) = self.delayed.first().cloned() {
            if at > now {
                break;
            }
            self.delayed.pop_first();
            if let Some(e) = self.tasks.get_mut(&id) {
                e.state = State::Ready;
                self.push_ready(id, false);
                n += 1;
            }
        }
        n
    }

    fn live(&self, lease: &Lease) -> Result<&Entry> {
        match self.tasks.get(&lease.task.id) {
            Some(e)
                if e.task.attempt == lease.task.attempt && matches!(e.state, State::Leased(_)) =>
            {
                Ok(e)
            }
            _ => Err(Error::stale(format!(
                "task {} attempt {} no longer holds its lease",
                lease.task.id, lease.task.attempt
            ))),
        }
    }

    fn unlease(&mut self, id: &str) {
        if let Some(Entry {
            state: State::Leased(exp),
            ..
        }) = self.tasks.get(id)
        {
            self.leased.remove(&(*exp, id.to_string()));
        }
    }

    fn remove(&mut self, id: &str) {
        self.unlease(id);
        if let Some(e) = self.tasks.remove(id)
            && let Some(k) = e.task.dedupe_key
            && self.dedupe.get(&k).is_some_and(|v| v == id)
        {
            self.dedupe.remove(&k);
        }
    }
}

/// An in-process queue with the full [`Queue`] semantics (leases, fencing, delays, dedupe, dead
/// set). Used by the embedded deployment and by tests; after a restart it is empty and the
/// engine's recovery refills it from the store.
#[derive(Debug)]
pub struct MemoryQueue {
    inner: Mutex<Inner>,
    notify: Notify,
    clock: Arc<dyn Clock>,
}

impl MemoryQueue {
    /// A queue using `clock` for lease expiry and delays.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        MemoryQueue {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes every waiting claim (each looks at its own zone's list).
    fn wake(&self) {
        self.notify.notify_waiters();
    }

    /// Claims up to `max` ready tasks of `zone` under one lock.
    fn try_claim(
        &self,
        worker_id: &str,
        zone: Option<&str>,
        max: usize,
        lease_for: Duration,
    ) -> Vec<Lease> {
        let now = self.clock.now();
        let mut g = self.lock();
        g.promote_due(now);
        let key = zone.map(str::to_string);
        let expires = clock::add(now, lease_for);
        let mut out = Vec::new();
        while out.len() < max
            && let Some(id) = g.ready.get_mut(&key).and_then(VecDeque::pop_front)
        {
            let Some(e) = g.tasks.get_mut(&id) else {
                continue;
            };
            if e.state != State::Ready || e.task.zone.as_deref() != zone {
                continue;
            }
            e.task.attempt += 1;
            e.state = State::Leased(expires);
            let task = e.task.clone();
            g.leased.insert((expires, id));
            out.push(Lease {
                task,
                worker_id: worker_id.to_string(),
                expires_at: expires,
            });
        }
        out
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn enqueue(&self, spec: TaskSpec) -> Result<Enqueued> {
        let now = self.clock.now();
        let mut g = self.lock();
        if let Some(k) = &spec.dedupe_key
            && let Some(existing) = g.dedupe.get(k)
        {
            return Ok(Enqueued::Duplicate(existing.clone()));
        }
        g.next += 1;
        let id = format!("t{}", g.next);
        let task = Task {
            id: id.clone(),
            kind: spec.kind,
            dedupe_key: spec.dedupe_key.clone(),
            attempt: 0,
            max_attempts: spec.max_attempts.max(1),
            failures: 0,
            released: 0,
            zone: spec.zone.clone(),
        };
        let state = match spec.run_at {
            Some(at) if at > now => {
                g.delayed.insert((at, id.clone()));
                State::Delayed(at)
            }
            _ => State::Ready,
        };
        let ready = state == State::Ready;
        if let Some(k) = spec.dedupe_key {
            g.dedupe.insert(k, id.clone());
        }
        g.tasks.insert(id.clone(), Entry { task, state });
        if ready {
            g.push_ready(id.clone(), false);
        }
        drop(g);
        self.wake();
        Ok(Enqueued::New(id))
    }

    async fn claim_in(
        &self,
        worker_id: &str,
        zone: Option<&str>,
        lease_for: Duration,
        wait: Duration,
    ) -> Result<Option<Lease>> {
        Ok(self
            .claim_many_in(worker_id, zone, 1, lease_for, wait)
            .await?
            .pop())
    }

    async fn claim_many_in(
        &self,
        worker_id: &str,
        zone: Option<&str>,
        max: usize,
        lease_for: Duration,
        wait: Duration,
    ) -> Result<Vec<Lease>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.notify.notified();
            let leases = self.try_claim(worker_id, zone, max, lease_for);
            if !leases.is_empty() {
                return Ok(leases);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            // Wake on a new task, or poll again soon so delayed tasks coming due are seen.
            let nap = (deadline - now).min(Duration::from_millis(250));
            let _ = tokio::time::timeout(nap, notified).await;
        }
    }

    async fn extend(&self, lease: &Lease, lease_for: Duration) -> Result<DateTime<Utc>> {
        let now = self.clock.now();
        let mut g = self.lock();
        g.live(lease)?;
        g.unlease(&lease.task.id);
        let expires = clock::add(now, lease_for);
        if let Some(e) = g.tasks.get_mut(&lease.task.id) {
            e.state = State::Leased(expires);
        }
        g.leased.insert((expires, lease.task.id.clone()));
        Ok(expires)
    }

    async fn complete(&self, lease: &Lease) -> Result<()> {
        let mut g = self.lock();
        g.live(lease)?;
        g.remove(&lease.task.id);
        Ok(())
    }

    async fn retry(&self, lease: &Lease, at: DateTime<Utc>, reason: &str) -> Result<RetryOutcome> {
        let now = self.clock.now();
        let mut g = self.lock();
        g.live(lease)?;
        g.unlease(&lease.task.id);
        let Some(e) = g.tasks.get_mut(&lease.task.id) else {
            return Err(Error::stale(format!("task {} is gone", lease.task.id)));
        };
        e.task.failures += 1;
        let dead = e.task.failures >= e.task.max_attempts;
        if dead {
            tracing::warn!(task = %lease.task.id, reason, "task used all its attempts; moved to dead set");
            let dedupe = g
                .tasks
                .get(&lease.task.id)
                .and_then(|e| e.task.dedupe_key.clone());
            if let Some(k) = dedupe {
                g.dedupe.remove(&k);
            }
            if let Some(e) = g.tasks.get_mut(&lease.task.id) {
                e.state = State::Dead(now);
            }
            return Ok(RetryOutcome::Dead);
        }
        if let Some(e) = g.tasks.get_mut(&lease.task.id) {
            e.state = State::Delayed(at);
        }
        g.delayed.insert((at, lease.task.id.clone()));
        drop(g);
        self.wake();
        Ok(RetryOutcome::Scheduled)
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        let mut g = self.lock();
        g.live(lease)?;
        g.unlease(&lease.task.id);
        if let Some(e) = g.tasks.get_mut(&lease.task.id) {
            e.state = State::Ready;
            e.task.released += 1;
        }
        g.push_ready(lease.task.id.clone(), true);
        drop(g);
        self.wake();
        Ok(())
    }

    async fn defer(&self, lease: &Lease, at: DateTime<Utc>) -> Result<()> {
        let mut g = self.lock();
        g.live(lease)?;
        g.unlease(&lease.task.id);
        if let Some(e) = g.tasks.get_mut(&lease.task.id) {
            e.state = State::Delayed(at);
            e.task.released += 1;
        }
        g.delayed.insert((at, lease.task.id.clone()));
        drop(g);
        self.wake();
        Ok(())
    }

    async fn prune_dead(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut g = self.lock();
        let old: Vec<String> = g
            .tasks
            .iter()
            .filter(|(_, e)| matches!(e.state, State::Dead(at) if at < before))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &old {
            g.remove(id);
        }
        Ok(old.len() as u64)
    }

    async fn reap_expired(&self) -> Result<u64> {
        let now = self.clock.now();
        let mut g = self.lock();
        let mut n = 0;
        while let Some((exp, id)) = g.leased.first().cloned() {
            if exp > now {
                break;
            }
            g.leased.pop_first();
            if let Some(e) = g.tasks.get_mut(&id) {
                e.state = State::Ready;
                g.push_ready(id, false);
                n += 1;
            }
        }
        let promoted = g.promote_due(now);
        drop(g);
        if n + promoted > 0 {
            self.wake();
        }
        Ok(n)
    }

    async fn stats(&self) -> Result<QueueStats> {
        let g = self.lock();
        let mut s = QueueStats::default();
        for e in g.tasks.values() {
            count(&mut s, &e.state);
        }
        Ok(s)
    }

    async fn zone_stats(&self) -> Result<Vec<ZoneStats>> {
        let g = self.lock();
        let mut by: BTreeMap<Option<String>, QueueStats> = BTreeMap::new();
        by.insert(None, QueueStats::default());
        for e in g.tasks.values() {
            count(by.entry(e.task.zone.clone()).or_default(), &e.state);
        }
        // `None` sorts first: the default zone leads.
        Ok(by
            .into_iter()
            .map(|(zone, stats)| ZoneStats { zone, stats })
            .collect())
    }

    async fn heartbeat(&self, worker_id: &str, zone: Option<&str>) -> Result<()> {
        let now = self.clock.now();
        self.lock()
            .beats
            .insert(worker_id.to_string(), (zone.map(str::to_string), now));
        Ok(())
    }

    async fn workers(&self, since: DateTime<Utc>) -> Result<Vec<WorkerBeat>> {
        let g = self.lock();
        let mut out: Vec<WorkerBeat> = g
            .beats
            .iter()
            .filter(|(_, (_, at))| *at >= since)
            .map(|(id, (zone, at))| WorkerBeat {
                worker_id: id.clone(),
                zone: zone.clone(),
                at: *at,
            })
            .collect();
        out.sort_by(|a, b| (&a.zone, &a.worker_id).cmp(&(&b.zone, &b.worker_id)));
        Ok(out)
    }
}

fn count(s: &mut QueueStats, state: &State) {
    match state {
        State::Ready => s.ready += 1,
        State::Delayed(_) => s.delayed += 1,
        State::Leased(_) => s.leased += 1,
        State::Dead(_) => s.dead += 1,
    }
}
