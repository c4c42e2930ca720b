//! Starting a run and following it to its end, as `start`, `failback`, `reprotect`, `restore`,
//! `restore-test`, `readiness` and `watch` do; the input checked against the machine's schema
//! before anything is asked of AWS.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use hapilot::config::CliConfig;
use hapilot::runs;

use super::Output;

/// How a started run is named and followed.
pub(crate) struct Follow {
    /// The execution name; `None` gives `<prefix>-<uuid>`.
    pub name: Option<String>,
    /// The fresh name's prefix.
    pub prefix: &'static str,
    /// Seconds to follow; 0: return at once (detached).
    pub timeout: u64,
}

/// Starts `machine` with `--with` JSON plus `fields` (which win) and follows it to its end.
pub(crate) async fn start_with(
    config: &CliConfig,
    machine: &str,
    with: Option<String>,
    fields: impl IntoIterator<Item = (&'static str, serde_json::Value)>,
    follow: Follow,
    out: Output,
) -> anyhow::Result<()> {
    let mut input = match with {
        Some(text) => serde_json::from_str(&text).context("--with is not a JSON object")?,
        None => serde_json::json!({}),
    };
    let Some(object) = input.as_object_mut() else {
        bail!("--with must be a JSON object");
    };
    for (k, v) in fields {
        object.insert(k.into(), v);
    }
    start_and_follow(config, machine, &input, follow, out).await
}

/// Checks `input` against `machine`'s schema, starts it and follows it to its end.
pub(crate) async fn start_and_follow(
    config: &CliConfig,
    machine: &str,
    input: &serde_json::Value,
    follow: Follow,
    out: Output,
) -> anyhow::Result<()> {
    check_input(machine, input)?;
    let sfn = aws_sdk_sfn::Client::new(&config.aws_answering().await?);
    let arn = resolve_machine(&sfn, machine).await?;
    let name = follow
        .name
        .unwrap_or_else(|| format!("{}-{}", follow.prefix, uuid::Uuid::new_v4().simple()));
    let execution = runs::start(&sfn, &arn, &name, input).await?;
    out.started(&execution);
    finish(&sfn, &execution, follow.timeout, out).await
}

/// The ARN of the state machine `machine` names: an ARN as given, else the machine of that
/// name, or the one deployed as `<stack>-<machine>` when exactly one is.
pub(crate) async fn resolve_machine(
    sfn: &aws_sdk_sfn::Client,
    machine: &str,
) -> anyhow::Result<String> {
    if machine.starts_with("arn:") {
        return Ok(machine.to_string());
    }
    let mut suffixed = Vec::new();
    let mut pages = sfn.list_state_machines().into_paginator().items().send();
    while let Some(item) = pages.next().await {
        let item = item
            .context("ListStateMachines failed (is AWS_ENDPOINT_URL or your AWS profile set?)")?;
        if item.name() == machine {
            return Ok(item.state_machine_arn().to_string());
        }
        // A SAM deployment names it `<stack>-<machine>`.
        if item.name().ends_with(&format!("-{machine}")) {
            suffixed.push(item.state_machine_arn().to_string());
        }
    }
    if let [only] = suffixed.as_slice() {
        return Ok(only.clone());
    }
    bail!("no state machine named {machine:?} in this account and region")
}

/// Refuses an input that does not fit `machine`'s schema (one of hapilot's), before any AWS
/// call, naming every field that is wrong.
pub(crate) fn check_input(machine: &str, input: &serde_json::Value) -> anyhow::Result<()> {
    let Some(schema) = hapilot::schema::schema_of(machine) else {
        return Ok(());
    };
    let problems = hapilot::schema::problems(&schema, input);
    if !problems.is_empty() {
        let name = machine.rsplit(':').next().unwrap_or(machine);
        let short = hapilot::schema::SCHEMAS
            .iter()
            .map(|(m, _)| *m)
            .find(|m| name == *m || name.ends_with(&format!("-{m}")))
            .unwrap_or(name);
        bail!(
            "the input does not fit statemachines/schemas/{short}.input.json: {}",
            problems.join("; ")
        );
    }
    Ok(())
}

/// The JSON input of `--input` (a file, or `-` for stdin); `{}` without one.
pub(crate) fn read_input(input: Option<PathBuf>) -> anyhow::Result<serde_json::Value> {
    let text = match input {
        None => return Ok(serde_json::json!({})),
        Some(p) if p.as_os_str() == "-" => {
            std::io::read_to_string(std::io::stdin()).context("reading stdin")?
        }
        Some(p) => {
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?
        }
    };
    serde_json::from_str(&text).context("the input is not valid JSON")
}

/// `--data-check table.column` as the state machines take it: `{"table", "column"}`.
pub(crate) fn data_check(check: &str) -> anyhow::Result<serde_json::Value> {
    let Some((table, column)) = check.rsplit_once('.') else {
        bail!("--data-check must be table.column, e.g. LiteLLM_SpendLogs.startTime");
    };
    Ok(serde_json::json!({"table": table, "column": column}))
}

/// The audit bucket of `--bucket`, HAPILOT_AUDIT_BUCKET or the settings file; `holding` says
/// what the command looks for there (in the error that asks for it).
pub(crate) fn audit_bucket(
    config: &CliConfig,
    bucket: Option<String>,
    holding: &str,
) -> anyhow::Result<String> {
    match bucket.or_else(|| config.setting("HAPILOT_AUDIT_BUCKET")) {
        Some(bucket) => Ok(bucket),
        None => bail!(
            "which audit bucket holds the {holding}? Use --bucket, HAPILOT_AUDIT_BUCKET or audit_bucket in hapilot.toml"
        ),
    }
}

/// Follows `execution` to its end and prints its output; `timeout` 0 means detached: return at
/// once. Under `--json` the result is one document: `{"execution_arn", "status", "output",
/// "error", "cause", "duration_s"}`.
pub(crate) async fn finish(
    sfn: &aws_sdk_sfn::Client,
    execution: &str,
    timeout: u64,
    out: Output,
) -> anyhow::Result<()> {
    if timeout == 0 {
        if out.json {
            say!(
                "{}",
                serde_json::json!({"execution_arn": execution, "status": "RUNNING"})
            );
        } else {
            say!("follow it with: hapilot watch {execution}");
        }
        return Ok(());
    }
    let outcome = runs::follow_with(
        sfn,
        execution,
        Duration::from_secs(timeout),
        runs::Polling::OPERATOR,
        |l| out.state(l),
    )
    .await?;
    if out.json {
        say!("{}", serde_json::to_string_pretty(&outcome.summary())?);
    } else if let Some(output) = &outcome.output {
        say!("{}", serde_json::to_string_pretty(output)?);
    }
    if !outcome.succeeded() {
        bail!(
            "run ended {}: {} {}",
            outcome.status,
            outcome.error.as_deref().unwrap_or(""),
            outcome.cause.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
