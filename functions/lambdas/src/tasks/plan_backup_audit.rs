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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> Settings {
        Settings {
            backup_bucket: Some("backups".into()),
            dr_backup_bucket: Some("backups-dr".into()),
            dr_region: Some("us-west-2".into()),
            ..Settings::default()
        }
    }

    #[tokio::test]
    async fn the_hourly_schedules_empty_request_audits_every_default_policy_from_the_settings() {
        let plan = plan_backup_audit(&settings(), Value::Null).await.unwrap();
        let items = plan["items"].as_array().unwrap();
        assert!(items.len() >= 4, "{plan:#}");
        for item in items {
            assert_eq!(item["target"]["bucket"], "backups");
            assert_eq!(item["target"]["dr_bucket"], "backups-dr");
            assert_eq!(item["target"]["dr_region"], "us-west-2");
            assert_eq!(item["now"], plan["now"]);
        }
    }

    #[tokio::test]
    async fn an_operators_request_wins_over_the_settings_and_a_bad_one_names_its_field() {
        let plan = plan_backup_audit(
            &settings(),
            json!({"bucket": "other", "now": 1_796_000_000}),
        )
        .await
        .unwrap();
        assert_eq!(plan["now"], 1_796_000_000);
        assert_eq!(plan["items"][0]["target"]["bucket"], "other");

        let err = plan_backup_audit(&Settings::default(), json!({}))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("HAPILOT_BACKUP_BUCKET is not set"),
            "{err}"
        );
        let err = plan_backup_audit(&settings(), json!({"wal_segment_size": 1000}))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("wal_segment_size"), "{err}");
    }
}
