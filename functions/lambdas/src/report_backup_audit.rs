//! Task `report-backup-audit`: the last step of a backup audit. Aggregates the policies' results
//! into one report, writes it as JSON and Markdown (`reports/backup-audit/<time>.{json,md}`),
//! puts the `hapilot/Backups` metrics and, on critical findings, notifies the on-call. The state
//! machine fails the run after this step when `critical > 0`, so the report always exists.
//! Input: `{"now", "tier", "policies": [<audit-backup-policy results>]}`.

use hapilot_aws::journal::Journal;
use hapilot_aws::monitoring::{MetricValue, Metrics};
use hapilot_aws::notifier::Notifier;
use hapilot_core::backup::audit::{AuditReport, PolicyAudit, data_type_key, epoch_text};
use hapilot_core::tier::Tier;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::publish::{MetricBatch, Publication, publish};

#[derive(Deserialize)]
struct Input {
    now: i64,
    tier: Tier,
    policies: Vec<PolicyAudit>,
}

/// Metrics namespace of the backup audit.
pub const NAMESPACE: &str = "hapilot/Backups";

/// Writes the report, metrics and (on critical findings) a notification.
pub async fn report_backup_audit(
    journal: &impl Journal,
    metrics: &impl Metrics,
    notifier: &impl Notifier,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        now,
        tier,
        policies,
    } = parse_input(input)?;
    let report = AuditReport::new(now, tier, policies);
    let stem = format!("reports/backup-audit/{}", epoch_text(now));
    let markdown = report.markdown();
    let mut by_type: std::collections::BTreeMap<&str, Vec<MetricValue>> = Default::default();
    for (data_type, name, value, unit) in report.metrics() {
        by_type
            .entry(data_type_key(data_type))
            .or_default()
            .push(MetricValue {
                name: name.into(),
                value,
                unit: unit.into(),
                high_resolution: false,
            });
    }
    let publication = Publication {
        json_key: format!("{stem}.json"),
        report: serde_json::to_value(&report).map_err(|e| FunctionError::Setup(e.to_string()))?,
        markdown: Some((format!("{stem}.md"), markdown.clone())),
        metrics: by_type
            .into_iter()
            .map(|(data_type, values)| MetricBatch {
                namespace: NAMESPACE.into(),
                dimensions: vec![("DataType".into(), data_type.into())],
                values,
            })
            .collect(),
        notification: (report.critical > 0).then(|| {
            (
                format!("hapilot backup audit FAILED: {} critical", report.critical),
                markdown,
            )
        }),
    };
    publish(journal, metrics, notifier, &publication).await?;
    Ok(json!({
        "verdict": report.verdict,
        "critical": report.critical,
        "warnings": report.warnings,
        "summary": report.summary,
        "report_key": format!("{stem}.json"),
        "markdown_key": format!("{stem}.md"),
    }))
}
