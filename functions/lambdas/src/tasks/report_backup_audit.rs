//! Task `report-backup-audit`: the last step of a backup audit. Aggregates the policies' results
//! into one report, writes it as JSON and Markdown (`reports/backup-audit/<time>.{json,md}`),
//! puts the `hapilot/Backups` metrics and, on critical findings, notifies the on-call. The state
//! machine fails the run after this step when `critical > 0`, so the report always exists.
//! Input: `{"now", "tier", "policies": [<audit-backup-policy results>]}`.

use hapilot_adapters::journal::Journal;
use hapilot_adapters::monitoring::{MetricValue, Metrics};
use hapilot_adapters::notifier::Notifier;
use hapilot_core::backup::audit::{AuditReport, AuditedPolicy, data_type_key, epoch_text};
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
    policies: Vec<AuditedPolicy>,
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
    let policies = policies
        .into_iter()
        .flat_map(AuditedPolicy::into_vec)
        .collect();
    let report = AuditReport::new(now, tier, policies);
    let stem = format!("reports/backup-audit/{}", epoch_text(now));
    let markdown = report.markdown();
    // Every value under DataType alone (the alarms' dimension: with many servers, the worst
    // decides through the alarm's Maximum) and, for a named server, under DataType + Server.
    let mut by_type: std::collections::BTreeMap<Vec<(String, String)>, Vec<MetricValue>> =
        Default::default();
    for (data_type, server, name, value, unit) in report.metrics_by_server() {
        let value = MetricValue {
            name: name.into(),
            value,
            unit: unit.into(),
            high_resolution: false,
        };
        let by_data_type = vec![("DataType".to_string(), data_type_key(data_type).to_string())];
        if let Some(server) = server {
            let mut dims = by_data_type.clone();
            dims.push(("Server".into(), server.into()));
            by_type.entry(dims).or_default().push(value.clone());
        }
        by_type.entry(by_data_type).or_default().push(value);
    }
    let publication = Publication {
        json_key: format!("{stem}.json"),
        report: serde_json::to_value(&report).map_err(|e| FunctionError::Setup(e.to_string()))?,
        markdown: Some((format!("{stem}.md"), markdown.clone())),
        metrics: by_type
            .into_iter()
            .map(|(dimensions, values)| MetricBatch {
                namespace: NAMESPACE.into(),
                dimensions,
                values,
            })
            .collect(),
        notification: (report.critical > 0).then(|| {
            (
                format!("hapilot backup audit FAILED: {} critical", report.critical),
                markdown,
            )
        }),
        // Sent only for what a human must fix.
        urgency: hapilot_core::paging::Urgency::ActNow,
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

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::journal::MemoryJournal;
    use hapilot_adapters::monitoring::MemoryMonitoring;
    use hapilot_adapters::notifier::MemoryNotifier;
    use hapilot_core::backup::audit::{PolicyAudit, Verification, integrity_finding};
    use hapilot_core::backup::catalog::DataTypeStatus;
    use hapilot_core::backup::policy::DataType;

    const NOW: i64 = 1_796_000_000;

    fn vault(server: Option<&str>, broken: bool) -> PolicyAudit {
        PolicyAudit {
            data_type: DataType::Vault,
            server: server.map(str::to_string),
            listed: 4,
            status: DataTypeStatus {
                data_type: DataType::Vault,
                backups: 4,
                newest_age_secs: Some(600),
                achievable_rpo_secs: Some(3_600),
                restore_windows: Vec::new(),
            },
            findings: if broken {
                vec![integrity_finding(
                    DataType::Vault,
                    "vault/x.snap",
                    "truncated",
                )]
            } else {
                Vec::new()
            },
            verified: vec![Verification {
                newest: true,
                ..match broken {
                    true => Verification::failed("vault/x.snap", "SHA256SUMS".into()),
                    false => Verification::verified("vault/x.snap", "SHA256SUMS".into()),
                }
            }],
        }
    }

    async fn report(policies: Value) -> (Value, MemoryJournal, MemoryMonitoring, MemoryNotifier) {
        let (journal, metrics, notifier) = Default::default();
        let out = report_backup_audit(
            &journal,
            &metrics,
            &notifier,
            json!({"now": NOW, "tier": "Critical", "policies": policies}),
        )
        .await
        .unwrap();
        (out, journal, metrics, notifier)
    }

    #[tokio::test]
    async fn a_clean_audit_writes_both_reports_and_metrics_and_pages_no_one() {
        let (out, journal, metrics, notifier) =
            report(json!([vault(None, false), [vault(Some("east"), false)]])).await;
        assert_eq!(
            (out["verdict"].as_str(), out["critical"].as_u64()),
            (Some("PASSED"), Some(0))
        );
        let json_key = out["report_key"].as_str().unwrap();
        assert!(json_key.starts_with("reports/backup-audit/"), "{json_key}");
        let written = journal.get(json_key).await.unwrap().unwrap();
        assert_eq!(written["policies"].as_array().unwrap().len(), 2);
        let markdown = journal.text(out["markdown_key"].as_str().unwrap()).unwrap();
        assert!(markdown.contains("PASSED"), "{markdown}");
        // Under DataType alone for both, and under DataType + Server for the named one.
        let dimensions: std::collections::BTreeSet<Vec<(String, String)>> =
            metrics.values().into_iter().map(|(_, d, _)| d).collect();
        let by_type = vec![("DataType".to_string(), "vault".to_string())];
        let mut by_server = by_type.clone();
        by_server.push(("Server".into(), "east".into()));
        assert_eq!(dimensions, [by_type, by_server].into_iter().collect());
        assert!(notifier.sent().is_empty());
    }

    #[tokio::test]
    async fn a_critical_finding_pages_with_the_report() {
        let (out, _, _, notifier) = report(json!([vault(None, true)])).await;
        assert!(out["critical"].as_u64().unwrap() > 0, "{out}");
        let sent = notifier.sent();
        assert_eq!(sent.len(), 1);
        assert!(
            sent[0].0.starts_with("hapilot backup audit FAILED"),
            "{}",
            sent[0].0
        );
        assert!(sent[0].1.contains("vault/x.snap"), "{}", sent[0].1);
    }
}
