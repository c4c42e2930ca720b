//! The errors of the domain, and the names the state machines branch on.

use std::fmt;

/// An error name that a state machine `Retry`/`Catch` can match.
///
/// Handlers raise these as Lambda function errors (`errorType`), so the ASL can say
/// `"ErrorEquals": ["hapilot.EndpointUnhealthy"]`. The names are part of the contract with
/// `statemachines/*.asl.json`: renaming one is a breaking change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorName {
    /// The task's input was malformed or out of range; nothing was changed.
    InvalidInput,
    /// A probed endpoint did not meet the health policy (and the task required it to).
    EndpointUnhealthy,
    /// The standby region failed its health check: failing over to it would not help.
    StandbyUnhealthy,
    /// A database needed for the step could not be reached or refused.
    DatabaseUnreachable,
    /// Promotion of the standby database failed or did not finish in time.
    PromotionFailed,
    /// A CloudNativePG promotion token does not belong to the standby (another database
    /// system, or a timeline the standby has left): nothing was changed.
    PromotionTokenRefused,
    /// The Route53 weights could not be changed.
    TrafficShiftFailed,
    /// A Route53 change did not reach INSYNC before its deadline.
    DnsSyncTimeout,
    /// Scaling the standby region failed.
    ScaleFailed,
    /// The standby's deployments were not ready within the plan's capacity wait, and no human
    /// approved moving traffic to it anyway: traffic was not moved.
    CapacityNotReady,
    /// The Vault of the region taking over could not be made the performance primary, or does
    /// not serve the known secret after its promotion (the run records what was done).
    VaultNotPromoted,
    /// A human denied the approval the run asked for.
    ApprovalDenied,
    /// Nobody answered the approval in time.
    ApprovalTimedOut,
    /// The event handed to the alarm router is not an alarm state change it understands.
    UnrecognisedEvent,
    /// The function's configuration is missing or malformed.
    SetupFailed,
    /// Writing the journal, a report, a metric or a notification failed.
    RecordFailed,
    /// The canary gate rolled the failback back (error rate, or metrics unavailable).
    GateFailed,
    /// A failback pre-check failed: nothing was changed.
    PrecheckFailed,
    /// The backup audit found at least one critical finding (its report says which).
    CriticalBackupFindings,
    /// A graceful switchover's standby did not replay everything in time: fence undone.
    CatchupTimedOut,
    /// Re-protection refused: the old primary still accepts writes (split brain).
    SplitBrain,
    /// Re-protection failed or the new replica did not stream in time.
    ReprotectFailed,
    /// The restore target cannot be reached from the backups (gap, too old, too new).
    RestoreTargetUnreachable,
    /// A backup chosen for the restore failed content verification: nothing was touched.
    RestorePointCorrupt,
    /// Vault refused or failed the snapshot restore.
    VaultRestoreFailed,
    /// PostgreSQL could not be restored or did not become ready in time.
    DatabaseRestoreFailed,
    /// A restore test's scratch redis-server refused the RDB or loaded other than it holds.
    RedisRestoreFailed,
    /// The DR drill missed its RTO or RPO target, or its failover failed.
    DrillFailed,
    /// A readiness check failed (its report says which and how to fix it).
    NotReady,
    /// Another run that changes the platform holds the run lock: nothing was changed.
    RunInProgress,
    /// An outside system failed in a way that trying again may cure (timeout, refused or reset
    /// connection, throttle, 5xx). Idempotent steps retry it with jitter; others fail.
    Transient,
}

impl ErrorName {
    /// The `errorType` string, e.g. `hapilot.InvalidInput`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorName::InvalidInput => "hapilot.InvalidInput",
            ErrorName::EndpointUnhealthy => "hapilot.EndpointUnhealthy",
            ErrorName::StandbyUnhealthy => "hapilot.StandbyUnhealthy",
            ErrorName::DatabaseUnreachable => "hapilot.DatabaseUnreachable",
            ErrorName::PromotionFailed => "hapilot.PromotionFailed",
            ErrorName::PromotionTokenRefused => "hapilot.PromotionTokenRefused",
            ErrorName::TrafficShiftFailed => "hapilot.TrafficShiftFailed",
            ErrorName::DnsSyncTimeout => "hapilot.DnsSyncTimeout",
            ErrorName::ScaleFailed => "hapilot.ScaleFailed",
            ErrorName::CapacityNotReady => "hapilot.CapacityNotReady",
            ErrorName::VaultNotPromoted => "hapilot.VaultNotPromoted",
            ErrorName::ApprovalDenied => "hapilot.ApprovalDenied",
            ErrorName::ApprovalTimedOut => "hapilot.ApprovalTimedOut",
            ErrorName::UnrecognisedEvent => "hapilot.UnrecognisedEvent",
            ErrorName::SetupFailed => "hapilot.SetupFailed",
            ErrorName::RecordFailed => "hapilot.RecordFailed",
            ErrorName::GateFailed => "hapilot.GateFailed",
            ErrorName::PrecheckFailed => "hapilot.PrecheckFailed",
            ErrorName::CriticalBackupFindings => "hapilot.CriticalBackupFindings",
            ErrorName::CatchupTimedOut => "hapilot.CatchupTimedOut",
            ErrorName::SplitBrain => "hapilot.SplitBrain",
            ErrorName::ReprotectFailed => "hapilot.ReprotectFailed",
            ErrorName::RestoreTargetUnreachable => "hapilot.RestoreTargetUnreachable",
            ErrorName::RestorePointCorrupt => "hapilot.RestorePointCorrupt",
            ErrorName::VaultRestoreFailed => "hapilot.VaultRestoreFailed",
            ErrorName::DatabaseRestoreFailed => "hapilot.DatabaseRestoreFailed",
            ErrorName::RedisRestoreFailed => "hapilot.RedisRestoreFailed",
            ErrorName::DrillFailed => "hapilot.DrillFailed",
            ErrorName::NotReady => "hapilot.NotReady",
            ErrorName::RunInProgress => "hapilot.RunInProgress",
            ErrorName::Transient => "hapilot.Transient",
        }
    }

    /// Every name, for documentation and for checks that the ASL only catches names that exist.
    pub const ALL: &'static [ErrorName] = &[
        ErrorName::InvalidInput,
        ErrorName::EndpointUnhealthy,
        ErrorName::StandbyUnhealthy,
        ErrorName::DatabaseUnreachable,
        ErrorName::PromotionFailed,
        ErrorName::PromotionTokenRefused,
        ErrorName::TrafficShiftFailed,
        ErrorName::DnsSyncTimeout,
        ErrorName::ScaleFailed,
        ErrorName::CapacityNotReady,
        ErrorName::VaultNotPromoted,
        ErrorName::ApprovalDenied,
        ErrorName::ApprovalTimedOut,
        ErrorName::UnrecognisedEvent,
        ErrorName::SetupFailed,
        ErrorName::RecordFailed,
        ErrorName::GateFailed,
        ErrorName::PrecheckFailed,
        ErrorName::CriticalBackupFindings,
        ErrorName::CatchupTimedOut,
        ErrorName::SplitBrain,
        ErrorName::ReprotectFailed,
        ErrorName::RestoreTargetUnreachable,
        ErrorName::RestorePointCorrupt,
        ErrorName::VaultRestoreFailed,
        ErrorName::DatabaseRestoreFailed,
        ErrorName::RedisRestoreFailed,
        ErrorName::DrillFailed,
        ErrorName::NotReady,
        ErrorName::RunInProgress,
        ErrorName::Transient,
    ];
}

impl fmt::Display for ErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The one error type of the domain crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// A field of a task input is missing, malformed or out of range.
    #[error("invalid input: `{field}` {problem}")]
    InvalidInput {
        /// The input field, as the operator wrote it in the state machine input.
        field: String,
        /// What is wrong and what is accepted, in plain words.
        problem: String,
    },
}

impl CoreError {
    /// Shorthand for [`CoreError::InvalidInput`].
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        CoreError::InvalidInput {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The name a state machine sees when a handler fails with this error.
    pub fn name(&self) -> ErrorName {
        match self {
            CoreError::InvalidInput { .. } => ErrorName::InvalidInput,
        }
    }
}
