//! Credential resolution: which credentials a device is tried with, in which order.
//!
//! Candidates are the device's pinned credential first, then every credential sharing a tag with
//! the device, ordered by priority (lower first), then success rate (higher first), then id.
//! The engine tries the next candidate only after an authentication failure.

use crate::model::{Credential, Device};
use std::cmp::Ordering;

/// The credentials to try for `device`, in order, from all known credentials.
pub fn candidates(device: &Device, all: &[Credential]) -> Vec<Credential> {
    let mut out: Vec<Credential> = Vec::new();
    if let Some(pinned) = device.credential_id
        && let Some(c) = all.iter().find(|c| c.id == pinned)
    {
        out.push(c.clone());
    }
    let mut tagged: Vec<&Credential> = all
        .iter()
        .filter(|c| Some(c.id) != device.credential_id)
        .filter(|c| c.tags.iter().any(|t| device.tags.contains(t)))
        .collect();
    tagged.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then_with(|| {
                b.success_rate()
                    .partial_cmp(&a.success_rate())
                    .unwrap_or(Ordering::Equal)
            })
            .then_with(|| a.id.cmp(&b.id))
    });
    out.extend(tagged.into_iter().cloned());
    out
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
    fn no_shared_tag_and_no_pin_means_no_candidates() {
        let all = vec![cred(1, 1, &["edge"], 0, 0)];
        let d = Device::new("r1", "127.0.0.1", "cisco_ios").with_tags(["core"]);
        assert!(candidates(&d, &all).is_empty());
    }
}
