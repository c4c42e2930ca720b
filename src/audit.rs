//! `hapilot audit`: the backup audit from the CLI, against any endpoint (the local stack or real
//! AWS), through exactly the handlers the backup-audit state machine's Lambdas run: plan, one
//! audit per policy (concurrently, like the Map), then the report.

use std::sync::Arc;
use std::time::Instant;

use aws_config::SdkConfig;
use hapilot_core::backup::audit::{AuditPlan, AuditReport, AuditedPolicy, data_type_key};
use hapilot_functions::FunctionError;
use hapilot_functions::config::Settings;
use hapilot_functions::registry::{Adapters, entry};
use serde_json::{Value, json};

use crate::HapilotError;

/// What an audit run produced.
#[derive(Debug)]
pub struct AuditRun {
    /// The report (also what the state machine writes).
    pub report: AuditReport,
    /// Where it was recorded (`report_key`, `markdown_key`), when asked to record.
    pub recorded: Option<Value>,
}

fn failed(function: &'static str) -> impl FnOnce(FunctionError) -> HapilotError {
    move |e| HapilotError::Function {
        function,
        error_type: e.error_type(),
        message: e.to_string(),
    }
}

/// Runs the audit of `request` (the state machine's input shape). With `record`, also writes
/// the report to the audit bucket, puts the metrics and notifies, as the state machine does.
pub async fn run_audit(
    sdk: &SdkConfig,
    settings: Settings,
    request: Value,
    record: bool,
    progress: impl Fn(&str),
) -> Result<AuditRun, HapilotError> {
    let adapters = Arc::new(Adapters::new(sdk, settings).map_err(failed("audit set-up"))?);
    let plan = entry::plan_backup_audit(&adapters, request)
        .await
        .map_err(failed("plan-backup-audit"))?;
    let plan: AuditPlan = serde_json::from_value(plan).map_err(|e| HapilotError::Function {
        function: "plan-backup-audit",
        error_type: "hapilot.InvalidInput",
        message: e.to_string(),
    })?;
    progress(&format!(
        "auditing {} polic{} in s3://{} (DR copy: {})",
        plan.items.len(),
        if plan.items.len() == 1 { "y" } else { "ies" },
        plan.items.first().map_or("", |i| i.target.bucket.as_str()),
        plan.items
            .first()
            .and_then(|i| i.target.dr_bucket.as_deref())
            .unwrap_or("none")
    ));
    let mut running = tokio::task::JoinSet::new();
    for item in &plan.items {
        let (adapters, item) = (
            adapters.clone(),
            serde_json::to_value(item).unwrap_or_default(),
        );
        running.spawn(async move {
            let started = Instant::now();
            let result = entry::audit_backup_policy(&adapters, item).await;
            (result, started.elapsed())
        });
    }
    let mut policies = Vec::new();
    while let Some(done) = running.join_next().await {
        let (result, took) = done.map_err(|e| HapilotError::Function {
            function: "audit-backup-policy",
            error_type: "hapilot.SetupFailed",
            message: e.to_string(),
        })?;
        let value = result.map_err(failed("audit-backup-policy"))?;
        let audited: AuditedPolicy =
            serde_json::from_value(value).map_err(|e| HapilotError::Function {
                function: "audit-backup-policy",
                error_type: "hapilot.InvalidInput",
                message: e.to_string(),
            })?;
        for audit in audited.into_vec() {
            progress(&format!(
                "  {:<13} {:<14} {:>7} objects, {} finding(s), {} verified, {:.2} s",
                data_type_key(audit.data_type),
                audit.server.as_deref().unwrap_or("-"),
                audit.listed,
                audit.findings.len(),
                audit.verified.len(),
                took.as_secs_f64()
            ));
            policies.push(audit);
        }
    }
    let recorded = if record {
        let input = json!({"now": plan.now, "tier": plan.tier, "policies": policies});
        Some(
            entry::report_backup_audit(&adapters, input)
                .await
                .map_err(failed("report-backup-audit"))?,
        )
    } else {
        None
    };
    Ok(AuditRun {
        report: AuditReport::new(plan.now, plan.tier, policies),
        recorded,
    })
}
