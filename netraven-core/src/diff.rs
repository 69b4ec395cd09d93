//! Text diffs between snapshots (pure text; used by the API and by embedders).

use crate::model::Snapshot;
use chrono::Utc;

/// A unified diff (3 lines of context) from one snapshot's content to another's, with headers
/// naming the hostnames, snapshot ids and times. Empty when the contents are equal.
pub fn unified_diff(from: &Snapshot, to: &Snapshot) -> String {
    unified_diff_with_context(from, to, 3)
}

/// [`unified_diff`] with `context` lines of context around each change.
pub fn unified_diff_with_context(from: &Snapshot, to: &Snapshot, context: usize) -> String {
    if from.content == to.content {
        return String::new();
    }
    let header = |s: &Snapshot| {
        format!(
            "{}.cfg\t#{} {}",
            s.meta.hostname,
            s.meta.id,
            s.meta.created_at.with_timezone(&Utc).to_rfc3339()
        )
    };
    similar::TextDiff::from_lines(&from.content, &to.content)
        .unified_diff()
        .context_radius(context)
        .header(&header(from), &header(to))
        .to_string()
}
