//! `hapilot report <execution>`: a run's report as Markdown, from the audit bucket. A run with
//! no report yet (still running, or it could not record) is shown as its journal: one line per
//! step it entered, in order.

use serde_json::Value;

use crate::HapilotError;

/// The execution's name, given its name or ARN (`arn:aws:states:...:execution:<machine>:<name>`).
pub fn execution_name(execution: &str) -> &str {
    execution.rsplit(':').next().unwrap_or(execution)
}

async fn keys_under(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, HapilotError> {
    let mut keys = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(HapilotError::aws("ListObjectsV2"))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
    }
    Ok(keys)
}

async fn text_of(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<String, HapilotError> {
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(HapilotError::aws("GetObject"))?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| HapilotError::Aws {
            operation: "GetObject",
            detail: e.to_string(),
        })?
        .into_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The run's JSON report (`reports/<machine>/<name>.json`) with its key, when there is one.
async fn json_report(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    reports: &[String],
    name: &str,
) -> Result<Option<(String, Value)>, HapilotError> {
    let Some(key) = reports
        .iter()
        .find(|k| k.ends_with(&format!("/{name}.json")))
    else {
        return Ok(None);
    };
    let text = text_of(s3, bucket, key).await?;
    let report = serde_json::from_str(&text)
        .map_err(|e| HapilotError::Invalid(format!("s3://{bucket}/{key} is not JSON: {e}")))?;
    Ok(Some((key.clone(), report)))
}

/// The run's journal entries (key, entry), refused when there are none: then the bucket is
/// not the run's.
async fn journal_of(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    name: &str,
) -> Result<Vec<(String, Value)>, HapilotError> {
    let mut entries = Vec::new();
    for key in keys_under(s3, bucket, "runs/").await? {
        if key.contains(&format!("/{name}/")) {
            let text = text_of(s3, bucket, &key).await?;
            entries.push((key, serde_json::from_str(&text).unwrap_or(Value::Null)));
        }
    }
    if entries.is_empty() {
        return Err(HapilotError::Invalid(format!(
            "no report and no journal for {name} in s3://{bucket}: is it the run's audit bucket (--bucket, HAPILOT_AUDIT_BUCKET, audit_bucket in hapilot.toml)?"
        )));
    }
    Ok(entries)
}

/// The report of `execution` (name or ARN) as Markdown, else its journal as a timeline.
pub async fn report(
    sdk: &aws_config::SdkConfig,
    bucket: &str,
    execution: &str,
) -> Result<String, HapilotError> {
    let name = execution_name(execution);
    let s3 = hapilot_adapters::sdk::s3(sdk);
    let reports = keys_under(&s3, bucket, "reports/").await?;
    if let Some(key) = reports.iter().find(|k| k.ends_with(&format!("/{name}.md"))) {
        return text_of(&s3, bucket, key).await;
    }
    if let Some((key, report)) = json_report(&s3, bucket, &reports, name).await? {
        return Ok(markdown_of(&report, &key));
    }
    Ok(timeline(name, &journal_of(&s3, bucket, name).await?))
}

/// The report of `execution` (name or ARN) as JSON (`hapilot report --json`): the run's JSON
/// report as recorded, else `{"execution", "report": null, "journal": [{"key", "entry"}]}`.
pub async fn report_json(
    sdk: &aws_config::SdkConfig,
    bucket: &str,
    execution: &str,
) -> Result<Value, HapilotError> {
    let name = execution_name(execution);
    let s3 = hapilot_adapters::sdk::s3(sdk);
    let reports = keys_under(&s3, bucket, "reports/").await?;
    if let Some((_, report)) = json_report(&s3, bucket, &reports, name).await? {
        return Ok(report);
    }
    let journal: Vec<Value> = journal_of(&s3, bucket, name)
        .await?
        .into_iter()
        .map(|(key, entry)| serde_json::json!({"key": key, "entry": entry}))
        .collect();
    Ok(serde_json::json!({"execution": name, "report": null, "journal": journal}))
}

/// A JSON run report as Markdown: its scalar fields as a table, then each structured field.
pub fn markdown_of(report: &Value, key: &str) -> String {
    let mut out = format!(
        "# {} run {}: {}\n\n(s3 key `{key}`)\n\n| field | value |\n| --- | --- |\n",
        report["machine"].as_str().unwrap_or("hapilot"),
        report["execution"].as_str().unwrap_or("?"),
        report["outcome"].as_str().unwrap_or("?"),
    );
    let Some(object) = report.as_object() else {
        return out;
    };
    let mut structured = Vec::new();
    for (field, value) in object {
        match value {
            Value::Null => {}
            Value::Object(_) | Value::Array(_) => structured.push((field, value)),
            Value::String(s) => out.push_str(&format!("| {field} | {s} |\n")),
            other => out.push_str(&format!("| {field} | {other} |\n")),
        }
    }
    for (field, value) in structured {
        out.push_str(&format!(
            "\n## {field}\n\n```json\n{}\n```\n",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ));
    }
    out
}

/// A run's journal (keys `runs/<machine>/<execution>/<entered>-<state>.json`) as a timeline.
pub fn timeline(execution: &str, entries: &[(String, Value)]) -> String {
    let mut out = format!(
        "# run {execution}: no report yet, its journal\n\n| entered | step | what it wrote |\n| --- | --- | --- |\n"
    );
    let mut sorted: Vec<&(String, Value)> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in sorted {
        let file = key
            .rsplit('/')
            .next()
            .unwrap_or(key)
            .trim_end_matches(".json");
        let (entered, step) = file.split_once('-').unwrap_or(("", file));
        let fields: Vec<&str> = value
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        out.push_str(&format!("| {entered} | {step} | {} |\n", fields.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_come_from_names_or_arns() {
        assert_eq!(execution_name("failover-1"), "failover-1");
        assert_eq!(
            execution_name("arn:aws:states:us-west-2:1:execution:failover:failover-1"),
            "failover-1"
        );
    }

    #[test]
    fn a_report_renders_its_fields_and_sections() {
        let text = markdown_of(
            &json!({"machine": "failover", "execution": "f-1", "outcome": "succeeded",
                    "duration_secs": 4.5, "weights_after": {"primary": 0}, "error": null}),
            "reports/failover/f-1.json",
        );
        assert!(text.starts_with("# failover run f-1: succeeded"));
        assert!(text.contains("| duration_secs | 4.5 |"));
        assert!(text.contains("## weights_after"));
        assert!(!text.contains("| error |"));
    }

    #[test]
    fn a_journal_reads_in_the_order_steps_were_entered() {
        let entries = vec![
            (
                "runs/failover/f/20261201T0400010-ShiftTraffic.json".to_string(),
                json!({"after": {}}),
            ),
            (
                "runs/failover/f/20261201T0400000-PlanFailover.json".to_string(),
                json!({"plan": {}, "request": {}}),
            ),
        ];
        let text = timeline("f", &entries);
        let plan = text.find("PlanFailover").unwrap();
        let shift = text.find("ShiftTraffic").unwrap();
        assert!(plan < shift, "{text}");
        assert!(text.contains("| 20261201T0400000 | PlanFailover | plan, request |"));
    }
}
