//! Re-protection's decision about the old primary's database, before anything is rebuilt: a
//! database that still accepts writes is never overwritten (split brain, for a human); one that
//! already is a replica needs nothing; one that is fenced (read-only) or cannot be reached is
//! rebuilt from the new primary.

/// What to do with the old primary's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReprotectDecision {
    /// It is a primary that accepts writes while another is primary: refuse, a human decides
    /// whose writes win.
    RefuseSplitBrain,
    /// It already streams as a replica: nothing to do.
    AlreadyReplica,
    /// Fenced or down: rebuild it as a replica of the new primary (after an approval when the
    /// rebuild deletes data).
    Rebuild,
}

/// Decides from what the old primary says of itself: `(in_recovery, read_only)`, or `None`
/// when it cannot be read (down, or its region dark).
pub fn decide(old: Option<(bool, bool)>) -> ReprotectDecision {
    match old {
        Some((false, false)) => ReprotectDecision::RefuseSplitBrain,
        Some((true, _)) => ReprotectDecision::AlreadyReplica,
        Some((false, true)) | None => ReprotectDecision::Rebuild,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_fenced_or_unreachable_old_primary_is_rebuilt_and_a_writable_one_never() {
        assert_eq!(
            decide(Some((false, false))),
            ReprotectDecision::RefuseSplitBrain
        );
        assert_eq!(
            decide(Some((true, false))),
            ReprotectDecision::AlreadyReplica
        );
        assert_eq!(
            decide(Some((true, true))),
            ReprotectDecision::AlreadyReplica
        );
        assert_eq!(decide(Some((false, true))), ReprotectDecision::Rebuild);
        assert_eq!(decide(None), ReprotectDecision::Rebuild);
    }
}
