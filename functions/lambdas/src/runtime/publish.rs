//! What the last step of a run publishes, in one place: the report in the journal (JSON for
//! machines, Markdown for people), its metrics and the message to the on-call. Any failure is
//! `hapilot.RecordFailed`: what the run did stands, its record did not get written.

use hapilot_adapters::journal::Journal;
use hapilot_adapters::monitoring::{MetricValue, Metrics};
use hapilot_adapters::notifier::Notifier;
use hapilot_core::ErrorName;
use hapilot_core::paging::Urgency;
use serde_json::Value;

use crate::FunctionError;

/// Metric values put together under one namespace and set of dimensions.
#[derive(Debug, Clone)]
pub struct MetricBatch {
    /// CloudWatch namespace, e.g. `hapilot/Backups`.
    pub namespace: String,
    /// Dimension name/value pairs.
    pub dimensions: Vec<(String, String)>,
    /// The values.
    pub values: Vec<MetricValue>,
}

/// A run's report and everything sent with it.
#[derive(Debug, Clone)]
pub struct Publication {
    /// Journal key of the JSON report.
    pub json_key: String,
    /// The report.
    pub report: Value,
    /// Journal key and text of the Markdown rendering, when there is one.
    pub markdown: Option<(String, String)>,
    /// Metrics, in order.
    pub metrics: Vec<MetricBatch>,
    /// Subject and body of the notification, when one is due.
    pub notification: Option<(String, String)>,
    /// Whether the notification pages or only informs.
    pub urgency: Urgency,
}

/// Writes the report (JSON, then Markdown), puts the metrics, then notifies: the report comes
/// first so that whoever the notification wakes finds it.
pub async fn publish(
    journal: &impl Journal,
    metrics: &impl Metrics,
    notifier: &impl Notifier,
    publication: &Publication,
) -> Result<(), FunctionError> {
    let failed = || FunctionError::from_adapter(ErrorName::RecordFailed);
    journal
        .put(&publication.json_key, &publication.report)
        .await
        .map_err(failed())?;
    if let Some((key, text)) = &publication.markdown {
        journal
            .put_text(key, text, "text/markdown")
            .await
            .map_err(failed())?;
    }
    for batch in &publication.metrics {
        metrics
            .put(&batch.namespace, &batch.dimensions, &batch.values)
            .await
            .map_err(failed())?;
    }
    if let Some((subject, body)) = &publication.notification {
        notifier
            .send(subject, body, publication.urgency)
            .await
            .map_err(failed())?;
    }
    Ok(())
}
