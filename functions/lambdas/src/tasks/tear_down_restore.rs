//! Task `tear-down-restore`: the end of every restore test, passed or failed: the scratch
//! server (or recovery cluster) it laid down is stopped and removed, so the next test starts
//! clean and nothing restored lingers with data in it. Nothing there is success.
//! Input: `{"region", "run"}`; output: `{"region", "torn_down": true, "detail"}`.

use hapilot_adapters::restore::RestoreAgent;
use hapilot_core::ErrorName;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
struct Input {
    region: String,
    run: RunContext,
}

/// Tears the restore test's target down.
pub async fn tear_down_restore<A: RestoreAgent>(
    agent: impl FnOnce(&str) -> Result<A, FunctionError>,
    journal: &impl hapilot_adapters::journal::Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { region, run } = parse_input(input)?;
    let detail = agent(&region)?
        .tear_down()
        .await
        .map_err(FunctionError::from_adapter(
            ErrorName::DatabaseRestoreFailed,
        ))?;
    let out = json!({"region": region, "torn_down": true, "detail": detail});
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::journal::{Journal, MemoryJournal};
    use hapilot_adapters::restore::MemoryRestoreAgent;

    fn input() -> Value {
        json!({"region": "us-west-2", "run": RunContext::fixture_json("restore-test", "TearDown")})
    }

    #[tokio::test]
    async fn the_scratch_server_is_removed_and_again_is_still_success() {
        let agent = MemoryRestoreAgent::default();
        agent.set_progress("started", "the restored server runs");
        let journal = MemoryJournal::default();
        let a = agent.clone();
        let out = tear_down_restore(|_: &str| Ok(a), &journal, input())
            .await
            .unwrap();
        assert_eq!(out["torn_down"], true);
        assert_eq!(agent.progress().await.unwrap().state, "idle");
        let step = RunContext::fixture("restore-test", "TearDown").key();
        assert_eq!(journal.get(&step).await.unwrap().unwrap()["after"], out);
        // A retried step finds nothing: nothing there is success.
        let a = agent.clone();
        let again = tear_down_restore(|_: &str| Ok(a), &journal, input())
            .await
            .unwrap();
        assert_eq!(again["detail"], "nothing to tear down");
        assert_eq!(
            agent.tear_downs.load(std::sync::atomic::Ordering::SeqCst),
            2
        );
    }
}
