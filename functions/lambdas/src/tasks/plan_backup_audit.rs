//! Task `plan-backup-audit`: the first step of a backup audit. Reads the request (empty from the
//! hourly schedule; anything of [`BackupAuditRequest`] from an operator), fills the gaps from the
//! deployment's settings and splits it into one item per policy for the Map.

use hapilot_core::backup::audit::{AuditDefaults, BackupAuditRequest, plan_audit};
use serde_json::Value;

use crate::FunctionError;
use crate::config::Settings;
use crate::error::parse_input;

/// Plans the audit. Nothing is read or written: a bad request fails here, naming the field.
pub async fn plan_backup_audit(settings: &Settings, input: Value) -> Result<Value, FunctionError> {
    let request: BackupAuditRequest = match input {
        Value::Null => BackupAuditRequest::default(),
        other => parse_input(other)?,
    };
    let defaults = AuditDefaults {
        bucket: settings.backup_bucket.clone(),
        dr_bucket: settings.dr_backup_bucket.clone(),
        dr_region: settings.dr_region.clone(),
        tier: settings.tier,
    };
    let plan = plan_audit(request, &defaults, chrono::Utc::now().timestamp())?;
    serde_json::to_value(plan).map_err(|e| FunctionError::Setup(e.to_string()))
}
