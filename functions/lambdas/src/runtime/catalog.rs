//! The list of hapilot's Lambda functions: one place that the local stack, the state machine
//! substitutions, the Lambda mains and the SAM template checks all read.

/// One Lambda function of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionSpec {
    /// The function (and binary) name, e.g. `check-health`; the local stack's function name.
    pub name: &'static str,
    /// The `${...}` name state machines use for its ARN, e.g. `CheckHealthFunctionArn`;
    /// `infra/template.yaml` defines the same name in `DefinitionSubstitutions`.
    pub substitution: &'static str,
    /// The environment variables it cannot start without.
    pub requires: &'static [&'static str],
    /// Every AWS API action its code calls in Lambda: its IAM policy in `infra/template.yaml`
    /// grants exactly these (a test keeps both in step). Metrics are not among them: the
    /// template sets `HAPILOT_METRICS=emf`, so they leave as log lines.
    pub iam_actions: &'static [&'static str],
    /// What it does, for `hapilot local up` and docs.
    pub summary: &'static str,
    /// The credentials it reads at start, each from its own secret: its role may read exactly
    /// those secrets (and the regions secret when it needs the regions).
    pub credentials: &'static [Credential],
}

/// A kind of credential, kept in a secret of its own so that each function reads only what it
/// uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// Database DSNs (with their passwords): `HAPILOT_DATABASE_SECRET`.
    Database,
    /// Kubernetes API tokens: `HAPILOT_KUBERNETES_SECRET`.
    Kubernetes,
    /// Vault tokens: `HAPILOT_VAULT_SECRET`.
    Vault,
    /// The canary provider's authentication (Prometheus behind a proxy): `HAPILOT_CANARY_SECRET`.
    Canary,
}

impl Credential {
    /// The variable naming its secret.
    pub fn variable(self) -> &'static str {
        match self {
            Credential::Database => "HAPILOT_DATABASE_SECRET",
            Credential::Kubernetes => "HAPILOT_KUBERNETES_SECRET",
            Credential::Vault => "HAPILOT_VAULT_SECRET",
            Credential::Canary => "HAPILOT_CANARY_SECRET",
        }
    }

    /// The template parameter holding the secret's name.
    pub fn parameter(self) -> &'static str {
        match self {
            Credential::Database => "DatabaseCredentialsSecret",
            Credential::Kubernetes => "KubernetesCredentialsSecret",
            Credential::Vault => "VaultCredentialsSecret",
            Credential::Canary => "CanaryCredentialsSecret",
        }
    }
}

impl FunctionSpec {
    /// Whether it needs the regions, and so at start reads `HAPILOT_REGIONS_SECRET` when the
    /// deployment gives them that way.
    pub fn reads_regions(&self) -> bool {
        self.requires.contains(&REGIONS)
    }

    /// Every IAM action its role grants: what its code calls, plus reading the regions secret
    /// and its credentials' secrets,
    /// plus the topic key's data-key actions for a function that publishes (the topic is
    /// encrypted with a customer managed key, which SNS uses on the publisher's behalf).
    pub fn role_actions(&self) -> Vec<&'static str> {
        let mut actions = self.iam_actions.to_vec();
        if self.reads_regions() || !self.credentials.is_empty() {
            actions.push("secretsmanager:GetSecretValue");
        }
        if self.iam_actions.contains(&"sns:Publish") {
            actions.extend(["kms:Decrypt", "kms:GenerateDataKey"]);
        }
        actions
    }
}

const ZONE: &str = "HAPILOT_HOSTED_ZONE_ID";
const RECORD: &str = "HAPILOT_RECORD_NAME";
const BUCKET: &str = "HAPILOT_AUDIT_BUCKET";
const TOPIC: &str = "HAPILOT_TOPIC_ARN";
const REGIONS: &str = "HAPILOT_REGIONS";

/// The emergency path: the functions a failover runs in the standby when the primary region
/// is dark (each with reserved concurrency in the template); readiness checks their roles.
pub const EMERGENCY_PATH: [&str; 11] = [
    "alarm-router",
    "check-dns-sync",
    "check-health",
    "fence-primary",
    "plan-failover",
    "promote-database",
    "read-replication",
    "record-run",
    "request-approval",
    "shift-traffic",
    "snapshot-weights",
];

/// Functions a state must not run twice: a second run could do again what the first already
/// did (a second approval message, a second restore or rebuild over the first, a second child
/// run). Their states retry only Lambda's own errors. Every other function leaves the platform
/// as one run would when run twice with the same input (scale to N, set weights, promote an
/// already promoted primary, write the same journal key), so its states also retry
/// `hapilot.Transient`, with full jitter and capped delays (an infra test reads every ASL).
pub const NOT_RETRIED_ON_BLIPS: &[&str] = &[
    "reprotect-database",
    "request-approval",
    "restore-database",
    "restore-vault",
    "start-run",
];

/// Every function hapilot deploys.
pub const FUNCTIONS: &[FunctionSpec] = &[
    FunctionSpec {
        name: "alarm-router",
        substitution: "AlarmRouterFunctionArn",
        requires: &["HAPILOT_FAILOVER_STATE_MACHINE_ARN", BUCKET, TOPIC],
        iam_actions: &[
            "cloudwatch:DescribeAlarms",
            "s3:DeleteObject",
            "s3:GetObject",
            "s3:PutObject",
            "sns:Publish",
            "states:DescribeExecution",
            "states:GetExecutionHistory",
            "states:ListExecutions",
            "states:StartExecution",
        ],
        credentials: &[],
        summary: "turn a CloudWatch alarm state change into a failover run, or a reasoned refusal",
    },
    FunctionSpec {
        name: "answer-approval",
        substitution: "AnswerApprovalFunctionArn",
        requires: &[BUCKET],
        iam_actions: &["s3:GetObject", "s3:PutObject", "states:SendTaskSuccess"],
        credentials: &[],
        summary: "answer a waiting run as the approver AWS authenticated (function URL, AWS_IAM)",
    },
    FunctionSpec {
        name: "audit-backup-policy",
        substitution: "AuditBackupPolicyFunctionArn",
        requires: &[],
        iam_actions: &["s3:GetObject", "s3:ListBucket"],
        credentials: &[],
        summary: "audit one backup policy: listing checks, then the newest backups verified by content",
    },
    FunctionSpec {
        name: "canary-gate",
        substitution: "CanaryGateFunctionArn",
        requires: &["HAPILOT_CANARY_PROVIDER", BUCKET],
        iam_actions: &["cloudwatch:GetMetricData", "s3:PutObject"],
        credentials: &[Credential::Canary],
        summary: "measure the primary's error rate over the bake window and judge the failback step",
    },
    FunctionSpec {
        name: "check-catchup",
        substitution: "CheckCatchupFunctionArn",
        requires: &[REGIONS, BUCKET],
        iam_actions: &["s3:PutObject"],
        credentials: &[Credential::Database, Credential::Kubernetes],
        summary: "compare a primary's WAL position with what its replica replayed",
    },
    FunctionSpec {
        name: "check-data",
        substitution: "CheckDataFunctionArn",
        requires: &[REGIONS],
        iam_actions: &[],
        credentials: &[Credential::Database],
        summary: "the drill's data check: newest row time of a table in one region",
    },
    FunctionSpec {
        name: "check-dns-sync",
        substitution: "CheckDnsSyncFunctionArn",
        requires: &[],
        iam_actions: &[
            "cloudwatch:DescribeAlarms",
            "route53-recovery-cluster:GetRoutingControlState",
            "route53:GetChange",
        ],
        credentials: &[],
        summary: "look once at a traffic change: Route53 INSYNC, or the controls in the wanted states?",
    },
    FunctionSpec {
        name: "check-health",
        substitution: "CheckHealthFunctionArn",
        requires: &[],
        iam_actions: &[],
        credentials: &[],
        summary: "probe an HTTP /health endpoint N times and judge it healthy or not",
    },
    FunctionSpec {
        name: "check-redis-restore",
        substitution: "CheckRedisRestoreFunctionArn",
        requires: &[REGIONS, BUCKET],
        iam_actions: &["s3:GetObject", "s3:PutObject"],
        credentials: &[],
        summary: "load a restore test's Redis RDB on the scratch host and compare its key count",
    },
    FunctionSpec {
        name: "check-restore",
        substitution: "CheckRestoreFunctionArn",
        requires: &[REGIONS, BUCKET],
        iam_actions: &["s3:PutObject"],
        credentials: &[Credential::Database, Credential::Kubernetes],
        summary: "one look at a DR restore: ready (out of recovery)? then the data check",
    },
    FunctionSpec {
        name: "choose-standby",
        substitution: "ChooseStandbyFunctionArn",
        requires: &[REGIONS, BUCKET],
        iam_actions: &["s3:PutObject"],
        credentials: &[Credential::Database, Credential::Kubernetes],
        summary: "measure the failover's candidate secondaries and choose the one that loses the least",
    },
    FunctionSpec {
        name: "describe-run",
        substitution: "DescribeRunFunctionArn",
        requires: &[],
        iam_actions: &["states:DescribeExecution"],
        credentials: &[],
        summary: "one look at a child run (the drill's failover or failback)",
    },
    FunctionSpec {
        name: "evaluate-readiness",
        substitution: "EvaluateReadinessFunctionArn",
        requires: &[REGIONS, BUCKET, TOPIC],
        iam_actions: &[
            "cloudwatch:DescribeAlarms",
            "cloudwatch:GetMetricStatistics",
            "iam:SimulatePrincipalPolicy",
            "route53:GetHealthCheck",
            "route53:ListResourceRecordSets",
            "s3:GetObject",
            "s3:ListBucket",
            "s3:PutObject",
            "scheduler:GetSchedule",
            "sns:Publish",
        ],
        credentials: &[
            Credential::Database,
            Credential::Kubernetes,
            Credential::Vault,
        ],
        summary: "the HA checklist and section 6.1 alerts, per region: report, score, notice",
    },
    FunctionSpec {
        name: "fence-by-weights",
        substitution: "FenceByWeightsFunctionArn",
        requires: &[ZONE, RECORD, REGIONS, BUCKET],
        iam_actions: &[
            "route53:ListResourceRecordSets",
            "route53:ChangeResourceRecordSets",
            "s3:PutObject",
        ],
        credentials: &[Credential::Database, Credential::Kubernetes],
        summary: "planned switchover's fence: the primary's weight 0, its database read-only",
    },
    FunctionSpec {
        name: "fence-primary",
        substitution: "FencePrimaryFunctionArn",
        requires: &[REGIONS, BUCKET],
        iam_actions: &[
            "cloudwatch:DescribeAlarms",
            "cloudwatch:PutMetricData",
            "route53-recovery-cluster:GetRoutingControlState",
            "route53-recovery-cluster:UpdateRoutingControlStates",
            "s3:PutObject",
        ],
        credentials: &[Credential::Database, Credential::Kubernetes],
        summary: "emergency fence: the failing primary's control off (data plane only), its database read-only where reachable",
    },
    FunctionSpec {
        name: "follow-new-primary",
        substitution: "FollowNewPrimaryFunctionArn",
        requires: &[REGIONS, BUCKET],
        iam_actions: &["s3:PutObject"],
        credentials: &[Credential::Database, Credential::Kubernetes],
        summary: "point the other secondaries at the promoted database (each must stream on its timeline)",
    },
    FunctionSpec {
        name: "plan-backup-audit",
        substitution: "PlanBackupAuditFunctionArn",
        requires: &[],
        iam_actions: &[],
        credentials: &[],
        summary: "check a backup audit request and split it into one item per policy",
    },
    FunctionSpec {
        name: "plan-drill",
        substitution: "PlanDrillFunctionArn",
        requires: &[REGIONS, BUCKET],
        iam_actions: &["s3:GetObject", "s3:PutObject", "states:DescribeExecution"],
        credentials: &[],
        summary: "check a DR drill request; build its children's inputs and targets",
    },
    FunctionSpec {
        name: "plan-failback",
        substitution: "PlanFailbackFunctionArn",
        requires: &[REGIONS, "HAPILOT_GLOBAL_HEALTH_URL", BUCKET, ZONE, RECORD],
        iam_actions: &[
            "route53:ListResourceRecordSets",
            "s3:GetObject",
            "s3:PutObject",
            "states:DescribeExecution",
        ],
        credentials: &[],
        summary: "validate a failback input against the deployment and fill in defaults",
    },
    FunctionSpec {
        name: "plan-failover",
        substitution: "PlanFailoverFunctionArn",
        requires: &[REGIONS, "HAPILOT_GLOBAL_HEALTH_URL", BUCKET, ZONE, RECORD],
        iam_actions: &[
            "route53:ListResourceRecordSets",
            "s3:GetObject",
            "s3:PutObject",
            "states:DescribeExecution",
        ],
        credentials: &[],
        summary: "validate a failover input against the deployment and fill in defaults",
    },
    FunctionSpec {
        name: "plan-restore",
        substitution: "PlanRestoreFunctionArn",
        requires: &[REGIONS, BUCKET],
        iam_actions: &[
            "s3:GetObject",
            "s3:ListBucket",
            "s3:PutObject",
            "states:DescribeExecution",
        ],
        credentials: &[],
        summary: "choose the restore point (base backup + WAL + Vault snapshot) for a target time",
    },
    FunctionSpec {
        name: "promote-database",
        substitution: "PromoteDatabaseFunctionArn",
        requires: &[REGIONS, BUCKET],
        iam_actions: &["s3:PutObject"],
        credentials: &[Credential::Database, Credential::Kubernetes],
        summary: "promote the standby region's database (idempotent)",
    },
    FunctionSpec {
        name: "promote-vault",
        substitution: "PromoteVaultFunctionArn",
        requires: &[REGIONS, BUCKET],
        iam_actions: &["s3:PutObject"],
        credentials: &[Credential::Vault],
        summary: "make the region taking over the Vault performance primary, the old one its secondary",
    },
    FunctionSpec {
        name: "publish-replication-lag",
        substitution: "PublishReplicationLagFunctionArn",
        requires: &[REGIONS, BUCKET],
        iam_actions: &["s3:PutObject"],
        credentials: &[Credential::Database, Credential::Kubernetes],
        summary: "every minute: each replica's lag as hapilot/Database ReplicationLagSeconds, and the primary's WAL position",
    },
    FunctionSpec {
        name: "read-replication",
        substitution: "ReadReplicationFunctionArn",
        requires: &[REGIONS, BUCKET],
        iam_actions: &["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
        credentials: &[Credential::Database, Credential::Kubernetes],
        summary: "bound the data at risk (bytes, seconds, sources), replay the archive, judge against the RPO",
    },
    FunctionSpec {
        name: "record-run",
        substitution: "RecordRunFunctionArn",
        requires: &[BUCKET, TOPIC],
        iam_actions: &[
            "s3:DeleteObject",
            "s3:GetObject",
            "s3:ListBucket",
            "s3:PutObject",
            "sns:Publish",
            "states:GetExecutionHistory",
        ],
        credentials: &[],
        summary: "write the run's report, metrics and notification; give the run lock back",
    },
    FunctionSpec {
        name: "report-backup-audit",
        substitution: "ReportBackupAuditFunctionArn",
        requires: &[BUCKET, TOPIC],
        iam_actions: &["s3:PutObject", "sns:Publish"],
        credentials: &[],
        summary: "write the backup audit's report (JSON + Markdown), metrics and alert",
    },
    FunctionSpec {
        name: "report-drill",
        substitution: "ReportDrillFunctionArn",
        requires: &[BUCKET, TOPIC],
        iam_actions: &[
            "s3:DeleteObject",
            "s3:GetObject",
            "s3:PutObject",
            "sns:Publish",
        ],
        credentials: &[],
        summary: "judge the DR drill against its targets; report, metrics, notification",
    },
    FunctionSpec {
        name: "reprotect-database",
        substitution: "ReprotectDatabaseFunctionArn",
        requires: &[REGIONS, BUCKET],
        iam_actions: &["s3:PutObject"],
        credentials: &[Credential::Database, Credential::Kubernetes],
        summary: "turn the old primary into a replica of the new one (refuses split brain)",
    },
    FunctionSpec {
        name: "request-approval",
        substitution: "RequestApprovalFunctionArn",
        requires: &[BUCKET, TOPIC],
        iam_actions: &["s3:PutObject", "sns:Publish"],
        credentials: &[],
        summary: "park a run until a human approves or denies (task token)",
    },
    FunctionSpec {
        name: "restore-database",
        substitution: "RestoreDatabaseFunctionArn",
        requires: &[REGIONS, BUCKET],
        iam_actions: &["s3:GetObject", "s3:PutObject"],
        credentials: &[Credential::Database, Credential::Kubernetes],
        summary: "start laying down PostgreSQL in the DR region from the restore point",
    },
    FunctionSpec {
        name: "restore-vault",
        substitution: "RestoreVaultFunctionArn",
        requires: &[REGIONS, BUCKET],
        iam_actions: &["s3:GetObject", "s3:PutObject"],
        credentials: &[Credential::Vault],
        summary: "apply the restore point's raft snapshot to the DR region's Vault",
    },
    FunctionSpec {
        name: "scale-region",
        substitution: "ScaleRegionFunctionArn",
        requires: &[REGIONS, BUCKET],
        iam_actions: &["s3:PutObject"],
        credentials: &[Credential::Kubernetes],
        summary: "scale the region taking over (Kubernetes scale subresource)",
    },
    FunctionSpec {
        name: "shift-traffic",
        substitution: "ShiftTrafficFunctionArn",
        requires: &[BUCKET],
        iam_actions: &[
            "cloudwatch:DescribeAlarms",
            "cloudwatch:PutMetricData",
            "route53-recovery-cluster:GetRoutingControlState",
            "route53-recovery-cluster:UpdateRoutingControlStates",
            "s3:PutObject",
        ],
        credentials: &[],
        summary: "emergency move of the global name's traffic through the data plane (control metrics or routing controls; no Route53 API call)",
    },
    FunctionSpec {
        name: "shift-weights",
        substitution: "ShiftWeightsFunctionArn",
        requires: &[ZONE, RECORD, BUCKET],
        iam_actions: &[
            "cloudwatch:DescribeAlarms",
            "cloudwatch:PutMetricData",
            "route53-recovery-cluster:GetRoutingControlState",
            "route53-recovery-cluster:UpdateRoutingControlStates",
            "route53:ListResourceRecordSets",
            "route53:ChangeResourceRecordSets",
            "s3:PutObject",
        ],
        credentials: &[],
        summary: "planned move of the global name's weights (switchover, failback, compensation); turns the data-plane controls back on",
    },
    FunctionSpec {
        name: "snapshot-weights",
        substitution: "SnapshotWeightsFunctionArn",
        requires: &[ZONE, RECORD, BUCKET],
        iam_actions: &[
            "cloudwatch:DescribeAlarms",
            "route53-recovery-cluster:GetRoutingControlState",
            "route53:ListResourceRecordSets",
            "s3:PutObject",
        ],
        credentials: &[],
        summary: "read where the global name sends traffic before anything changes",
    },
    FunctionSpec {
        name: "start-run",
        substitution: "StartRunFunctionArn",
        requires: &[
            "HAPILOT_FAILOVER_STATE_MACHINE_ARN",
            "HAPILOT_FAILBACK_STATE_MACHINE_ARN",
        ],
        iam_actions: &["states:StartExecution"],
        credentials: &[],
        summary: "start a child run (the drill's failover or failback) through the API",
    },
    FunctionSpec {
        name: "tear-down-restore",
        substitution: "TearDownRestoreFunctionArn",
        requires: &[REGIONS, BUCKET],
        iam_actions: &["s3:PutObject"],
        credentials: &[Credential::Database, Credential::Kubernetes],
        summary: "remove what a restore test laid down (its scratch server or recovery cluster)",
    },
    FunctionSpec {
        name: "unfence-primary",
        substitution: "UnfencePrimaryFunctionArn",
        requires: &[REGIONS, BUCKET],
        iam_actions: &["s3:PutObject"],
        credentials: &[Credential::Database, Credential::Kubernetes],
        summary: "let the primary take writes again when a graceful switchover is called off",
    },
    FunctionSpec {
        name: "verify-restore-point",
        substitution: "VerifyRestorePointFunctionArn",
        requires: &[BUCKET],
        iam_actions: &["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
        credentials: &[],
        summary: "verify by content exactly the backups a restore will use, before anything is touched",
    },
    FunctionSpec {
        name: "watch-region",
        substitution: "WatchRegionFunctionArn",
        requires: &[REGIONS],
        iam_actions: &[],
        credentials: &[],
        summary: "every minute: this region's own probes of the others, as hapilot/RegionHealth Healthy (the vantage point's vote)",
    },
];

/// Finds a function by name.
pub fn find(name: &str) -> Option<&'static FunctionSpec> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_substitutions_are_unique_and_derived() {
        for (i, f) in FUNCTIONS.iter().enumerate() {
            let pascal: String = f
                .name
                .split('-')
                .map(|w| w[..1].to_uppercase() + &w[1..])
                .collect();
            assert_eq!(f.substitution, format!("{pascal}FunctionArn"));
            assert!(FUNCTIONS[i + 1..].iter().all(|g| g.name != f.name));
            let bin = format!("{}/src/bin/{}.rs", env!("CARGO_MANIFEST_DIR"), f.name);
            let main = std::fs::read_to_string(&bin).unwrap_or_else(|_| panic!("{bin} is missing"));
            let entry = format!(
                "lambda_main(\"{}\", entry::{})",
                f.name,
                f.name.replace('-', "_")
            );
            assert!(main.contains(&entry), "{bin} must call {entry}");
        }
    }

    #[test]
    fn only_planned_moves_may_change_route53_records() {
        // The emergency path must not depend on Route53's control plane (served from
        // us-east-1, outside its data-plane SLA): only the functions of planned moves
        // (switchover, failback, compensation by weights) get the grant.
        let changers: Vec<&str> = FUNCTIONS
            .iter()
            .filter(|f| f.iam_actions.contains(&"route53:ChangeResourceRecordSets"))
            .map(|f| f.name)
            .collect();
        assert_eq!(changers, ["fence-by-weights", "shift-weights"]);
        let failover = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../statemachines/failover.asl.json"
        ))
        .unwrap();
        let failover: serde_json::Value = serde_json::from_str(&failover).unwrap();
        // The data-plane functions are what the failover picks unless the plan says weights.
        let pick = &failover["States"]["UseDataPlaneFunctions"]["Result"];
        assert_eq!(pick["move"], "${ShiftTrafficFunctionArn}");
        assert_eq!(pick["fence"], "${FencePrimaryFunctionArn}");
    }
}
