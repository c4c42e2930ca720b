//! Task `unfence-primary`: undo the database fence of a graceful switchover that did not
//! happen (the standby could not catch up in time): the primary accepts writes again. The
//! Route53 weights are put back by the run's compensation step.
//! Input: `{"region", "run"}`.

use hapilot_adapters::database::Database;
use hapilot_adapters::journal::Journal;
use hapilot_core::ErrorName;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    region: String,
    run: RunContext,
}

/// Lifts the fence of `region`'s database.
pub async fn unfence_primary<D: Database>(
    database: impl FnOnce(&str) -> Result<D, FunctionError>,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input { region, run } = parse_input(input)?;
    database(&region)?
        .unfence()
        .await
        .map_err(FunctionError::from_adapter(ErrorName::DatabaseUnreachable))?;
    let out = json!({ "region": region, "database": "read_write" });
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::database::MemoryDatabase;
    use hapilot_adapters::journal::MemoryJournal;

    #[tokio::test]
    async fn a_fenced_primary_takes_writes_again_and_the_step_is_journaled() {
        let primary = MemoryDatabase::new(Default::default());
        primary.fence(None).await;
        assert!(primary.is_read_only());
        let journal = MemoryJournal::default();
        let input = json!({
            "region": "us-east-1",
            "run": RunContext::fixture_json("failover", "UnfencePrimary"),
        });
        let db = primary.clone();
        let out = unfence_primary(
            |region: &str| {
                assert_eq!(region, "us-east-1");
                Ok(db)
            },
            &journal,
            input,
        )
        .await
        .unwrap();
        assert!(!primary.is_read_only());
        assert_eq!(
            out,
            json!({"region": "us-east-1", "database": "read_write"})
        );
        let step = RunContext::fixture("failover", "UnfencePrimary").key();
        assert_eq!(journal.get(&step).await.unwrap().unwrap()["after"], out);
    }

    #[tokio::test]
    async fn bad_input_lifts_no_fence() {
        let journal = MemoryJournal::default();
        let never = |_: &str| -> Result<MemoryDatabase, FunctionError> {
            panic!("no database is touched on bad input")
        };
        let err = unfence_primary(never, &journal, json!({"region": "us-east-1"}))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "hapilot.InvalidInput", "{err}");
    }
}
