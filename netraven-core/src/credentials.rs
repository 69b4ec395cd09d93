//! Credential resolution: which credentials a device is tried with, in which order.
//!
//! Candidates are the device's pinned credential first, then every credential sharing a tag with
//! the device, ordered by priority (lower first), then success rate (higher first), then id.
//! The engine tries the next candidate only after an authentication failure.
//!
//! A [`CredentialIndex`] is built once from all credentials (indexed by id and by tag, each
//! credential behind an `Arc`), so ranking one device costs O(its candidates), not O(every
//! credential): a fleet where each device has its own credential must not make every device copy
//! the whole table.

use crate::model::{Credential, CredentialId, Device};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

/// All credentials, indexed for ranking: by id (for pins) and by tag.
#[derive(Debug, Default)]
pub struct CredentialIndex {
    by_id: HashMap<CredentialId, Arc<Credential>>,
    by_tag: HashMap<String, Vec<Arc<Credential>>>,
}

impl CredentialIndex {
    /// Indexes `all` (consumed: nothing is copied). Credentials whose secrets the store could
    /// not decrypt ([`Credential::unreadable`]) are left out: they are never tried.
    pub fn new(all: Vec<Credential>) -> Self {
        let mut index = CredentialIndex::default();
        for c in all.into_iter().filter(|c| !c.unreadable) {
            let c = Arc::new(c);
            for t in &c.tags {
                index.by_tag.entry(t.clone()).or_default().push(c.clone());
            }
            index.by_id.insert(c.id, c);
        }
        // Each tag's list in rank order once, so a device with one tag needs no sort.
        for list in index.by_tag.values_mut() {
            list.sort_by(|a, b| rank(a, b));
        }
        index
    }

    /// How many credentials the index holds.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether the index holds no credential.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The credentials to try for `device`, in order: its pin, then those sharing a tag.
    pub fn candidates(&self, device: &Device) -> Vec<Arc<Credential>> {
        let mut out: Vec<Arc<Credential>> = Vec::new();
        if let Some(pinned) = device.credential_id
            && let Some(c) = self.by_id.get(&pinned)
        {
            out.push(c.clone());
        }
        let lists: Vec<&Vec<Arc<Credential>>> = device
            .tags
            .iter()
            .filter_map(|t| self.by_tag.get(t))
            .collect();
        let start = out.len();
        for list in &lists {
            out.extend(
                list.iter()
                    .filter(|c| Some(c.id) != device.credential_id)
                    .cloned(),
            );
        }
        if lists.len() > 1 {
            // Rank ties break on id, so a credential met through two tags ends up adjacent.
            out[start..].sort_by(|a, b| rank(a, b));
            let mut seen_tail = out.split_off(start);
            seen_tail.dedup_by_key(|c| c.id);
            out.extend(seen_tail);
        }
        out
    }

    /// Whether `device` has at least one candidate.
    pub fn has_candidates(&self, device: &Device) -> bool {
        device
            .credential_id
            .is_some_and(|id| self.by_id.contains_key(&id))
            || device.tags.iter().any(|t| self.by_tag.contains_key(t))
    }
}

/// Rank order among tag-shared credentials.
fn rank(a: &Credential, b: &Credential) -> Ordering {
    a.priority
        .cmp(&b.priority)
        .then_with(|| {
            b.success_rate()
                .partial_cmp(&a.success_rate())
                .unwrap_or(Ordering::Equal)
        })
        .then_with(|| a.id.cmp(&b.id))
}

/// The credentials to try for `device`, in order, from all known credentials (one-off form of
/// [`CredentialIndex::candidates`]; build an index when ranking many devices).
pub fn candidates(device: &Device, all: &[Credential]) -> Vec<Credential> {
    CredentialIndex::new(all.to_vec())
        .candidates(device)
        .into_iter()
        .map(|c| (*c).clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn cred(id: i64, prio: i32, tags: &[&str], ok: u64, bad: u64) -> Credential {
        let mut c = Credential::new(format!("c{id}"), "u", Secret::new("p"));
        c.id = id;
        c.priority = prio;
        c.tags = tags.iter().map(|s| s.to_string()).collect();
        c.success_count = ok;
        c.failure_count = bad;
        c
    }

    #[test]
    fn pinned_first_then_priority_then_success_rate() {
        let all = vec![
            cred(1, 10, &["core"], 0, 10),
            cred(2, 5, &["core"], 0, 0),
            cred(3, 10, &["core"], 10, 0),
            cred(4, 1, &["edge"], 0, 0),
            cred(5, 99, &[], 0, 0),
        ];
        let mut d = Device::new("r1", "127.0.0.1", "cisco_ios").with_tags(["core"]);
        d.credential_id = Some(5);
        let ids: Vec<i64> = candidates(&d, &all).iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![5, 2, 3, 1]);
    }

    #[test]
    fn index_merges_several_tags_in_rank_order_without_duplicates() {
        let all = vec![
            cred(1, 10, &["core", "edge"], 0, 0),
            cred(2, 5, &["edge"], 0, 0),
            cred(3, 7, &["core"], 0, 0),
            cred(4, 1, &["other"], 0, 0),
            cred(5, 3, &["core", "edge"], 0, 0),
        ];
        let index = CredentialIndex::new(all);
        let mut d = Device::new("r1", "127.0.0.1", "cisco_ios").with_tags(["core", "edge"]);
        d.credential_id = Some(3);
        let ids: Vec<i64> = index.candidates(&d).iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![3, 5, 2, 1]);
        assert!(index.has_candidates(&d));
        let lone = Device::new("r2", "127.0.0.1", "cisco_ios").with_tags(["nothing"]);
        assert!(index.candidates(&lone).is_empty());
        assert!(!index.has_candidates(&lone));
        // A pin to a credential that no longer exists gives nothing for the pin.
        let mut gone = lone.clone();
        gone.credential_id = Some(99);
        assert!(!index.has_candidates(&gone));
    }

    #[test]
    fn unreadable_credentials_are_never_candidates() {
        let mut broken = cred(1, 1, &["core"], 0, 0);
        broken.unreadable = true;
        let all = vec![broken, cred(2, 5, &["core"], 0, 0)];
        let mut d = Device::new("r1", "127.0.0.1", "cisco_ios").with_tags(["core"]);
        d.credential_id = Some(1);
        let index = CredentialIndex::new(all);
        let ids: Vec<i64> = index.candidates(&d).iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![2]);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn no_shared_tag_and_no_pin_means_no_candidates() {
        let all = vec![cred(1, 1, &["edge"], 0, 0)];
        let d = Device::new("r1", "127.0.0.1", "cisco_ios").with_tags(["core"]);
        assert!(candidates(&d, &all).is_empty());
    }
}
