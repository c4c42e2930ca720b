//! One run that changes the platform at a time, whoever starts it (the alarm router, the CLI,
//! the console, a DR drill's child): the run lock. A run takes it in its first state with a
//! write that only succeeds when nothing is there (S3 `If-None-Match: *`), gives it back in
//! every ending path, and a lock whose holder has ended (or was stopped before it could give
//! it back) is taken over with a write conditional on the stale lock (`If-Match`). What to do
//! is decided here, over what was read; the writes are the journal adapter's.

use serde::{Deserialize, Serialize};

/// Where the lock lives in the audit bucket.
pub const LOCK_KEY: &str = "locks/platform-run.json";

/// The run that holds (or wants) the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// State machine: `failover`, `failback`, ...
    pub machine: String,
    /// Execution name.
    pub execution: String,
    /// Execution ARN, to ask Step Functions whether it still runs.
    pub execution_arn: String,
    /// When it took the lock (RFC 3339).
    pub taken_at: String,
}

impl LockHolder {
    /// Whether `other` is this same run (a retried first state takes its own lock again).
    pub fn same_run(&self, other: &LockHolder) -> bool {
        self.machine == other.machine && self.execution == other.execution
    }
    /// Whether `child` is one this run started and holds the lock for: a DR drill names its
    /// failover `<drill>-failover` and its failback `<drill>-failback` (the drill holds the lock
    /// from its plan to its verdict, so nothing runs between its children).
    pub fn is_parent_of(&self, child: &LockHolder) -> bool {
        self.machine == "dr-drill"
            && ["failover", "failback"].contains(&child.machine.as_str())
            && child.execution == format!("{}-{}", self.execution, child.machine)
    }
}

/// What Step Functions says of the holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderState {
    /// Still running: the lock is its.
    Running,
    /// Succeeded, failed, timed out or aborted: the lock is stale.
    Ended,
    /// It could not be asked: the lock is treated as held (never act on what cannot be
    /// re-verified).
    Unknown,
}

/// The next step of a run that wants the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockStep {
    /// Nobody holds it: create it (only if still absent).
    Take,
    /// This run holds it already.
    AlreadyHeld,
    /// The run that started this one (a DR drill) holds it and still runs: go on under it,
    /// without taking it (the parent gives it back).
    HeldByParent,
    /// Its holder ended without giving it back: replace it (only if unchanged).
    TakeOver,
    /// Another run holds it: end, changing nothing, with this message.
    Refuse(String),
}

/// What `me` does about the lock, given the current holder (`None`: no lock) and, when there
/// is one, what Step Functions says of it.
pub fn lock_step(
    me: &LockHolder,
    current: Option<&LockHolder>,
    holder_state: Option<HolderState>,
) -> LockStep {
    let Some(holder) = current else {
        return LockStep::Take;
    };
    if holder.same_run(me) {
        return LockStep::AlreadyHeld;
    }
    if holder.is_parent_of(me) && holder_state == Some(HolderState::Running) {
        return LockStep::HeldByParent;
    }
    match holder_state {
        Some(HolderState::Ended) => LockStep::TakeOver,
        state => LockStep::Refuse(format!(
            "run {} ({}) holds the platform's run lock since {}{}: one run that changes the platform at a time, whoever starts it. \
             Nothing was changed. Follow that run (hapilot watch {} --machine {}), or stop it (aws stepfunctions stop-execution --execution-arn {}) and start again.",
            holder.execution,
            holder.machine,
            holder.taken_at,
            if state == Some(HolderState::Unknown) {
                " (whether it still runs could not be read)"
            } else {
                ""
            },
            holder.execution,
            holder.machine,
            holder.execution_arn
        )),
    }
}

/// Whether the run `machine`/`execution` holds the lock `current` (it gives it back then).
pub fn held_by(current: Option<&LockHolder>, machine: &str, execution: &str) -> bool {
    current.is_some_and(|h| h.machine == machine && h.execution == execution)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(machine: &str, execution: &str) -> LockHolder {
        LockHolder {
            machine: machine.into(),
            execution: execution.into(),
            execution_arn: format!(
                "arn:aws:states:us-west-2:1:execution:hapilot-{machine}:{execution}"
            ),
            taken_at: "2026-12-06T03:00:00Z".into(),
        }
    }

    #[test]
    fn a_drills_children_run_under_its_lock_and_no_one_else_does() {
        let drill = run("dr-drill", "quarterly-7");
        let child = run("failover", "quarterly-7-failover");
        assert_eq!(
            lock_step(&child, Some(&drill), Some(HolderState::Running)),
            LockStep::HeldByParent
        );
        assert!(!run("failback", "quarterly-7-failback").is_parent_of(&child));
        assert!(drill.is_parent_of(&run("failback", "quarterly-7-failback")));
        // Another run, or a child of another drill, is refused; an ended drill's lock is stale.
        for other in [
            run("failover", "cli-1"),
            run("failover", "quarterly-8-failover"),
        ] {
            assert!(matches!(
                lock_step(&other, Some(&drill), Some(HolderState::Running)),
                LockStep::Refuse(_)
            ));
        }
        assert_eq!(
            lock_step(&child, Some(&drill), Some(HolderState::Ended)),
            LockStep::TakeOver
        );
    }

    #[test]
    fn the_first_run_takes_the_lock_and_a_second_is_refused_naming_the_first() {
        let me = run("failover", "cli-1");
        assert_eq!(lock_step(&me, None, None), LockStep::Take);
        let holder = run("failover", "failover-hapilot-watch-1");
        let LockStep::Refuse(why) = lock_step(&me, Some(&holder), Some(HolderState::Running))
        else {
            panic!("a running holder keeps the lock");
        };
        assert!(why.contains("failover-hapilot-watch-1") && why.contains("Nothing was changed"));
        // Unknown is held: never take over what cannot be re-verified.
        assert!(matches!(
            lock_step(&me, Some(&holder), Some(HolderState::Unknown)),
            LockStep::Refuse(why) if why.contains("could not be read")
        ));
        assert!(matches!(
            lock_step(&me, Some(&holder), None),
            LockStep::Refuse(_)
        ));
    }

    #[test]
    fn a_stale_lock_is_taken_over_and_a_retry_keeps_its_own() {
        let me = run("failback", "fb-1");
        let ended = run("failover", "old");
        assert_eq!(
            lock_step(&me, Some(&ended), Some(HolderState::Ended)),
            LockStep::TakeOver
        );
        let mut mine = me.clone();
        mine.taken_at = "earlier".into();
        assert_eq!(
            lock_step(&me, Some(&mine), Some(HolderState::Running)),
            LockStep::AlreadyHeld
        );
        assert!(held_by(Some(&me), "failback", "fb-1"));
        assert!(!held_by(Some(&me), "failover", "fb-1"));
        assert!(!held_by(None, "failback", "fb-1"));
    }
}
