//! Task `check-data`: the data check of the DR drill - the newest row time of a table in one
//! region's database (the HA document's `max(created_at)` on both sides). With `not_after`,
//! only rows written up to that moment count (what the new primary kept of the old one's).
//! Input: `{"region", "data_check": {"table", "column"}, "not_after"?}`.

use hapilot_adapters::database::DatabaseTarget;
use hapilot_core::ErrorName;
use hapilot_core::restore::DataCheck;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::config::Settings;
use crate::error::parse_input;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    region: String,
    data_check: DataCheck,
    #[serde(default)]
    not_after: Option<f64>,
}

/// Reads the newest row time.
pub async fn check_data(settings: &Settings, input: Value) -> Result<Value, FunctionError> {
    let Input {
        region,
        data_check,
        not_after,
    } = parse_input(input)?;
    data_check.validate()?;
    let Some(DatabaseTarget::Postgres { dsn, .. }) = &settings.region(&region)?.database else {
        return Err(FunctionError::Setup(format!(
            "the data check needs SQL access: {region}'s database is not the postgres backend"
        )));
    };
    let client = hapilot_adapters::database::PostgresDatabase::new(dsn)
        .connect()
        .await
        .map_err(FunctionError::from_adapter(ErrorName::DatabaseUnreachable))?;
    // `not_after` is an instant: a `timestamp without time zone` column (Prisma's, LiteLLM's)
    // holds UTC and is compared as UTC whatever the server's default time zone.
    let failed = |e: &dyn std::fmt::Display| {
        FunctionError::named(
            ErrorName::DatabaseUnreachable,
            format!("data check on {region}: {e}"),
        )
    };
    client
        .batch_execute("SET TIME ZONE 'UTC'")
        .await
        .map_err(|e| failed(&e))?;
    let sql = data_check.newest_row_sql(true)?;
    let row = client
        .query_one(sql.as_str(), &[&not_after])
        .await
        .map_err(|e| failed(&e))?;
    Ok(json!({
        "region": region,
        "newest_epoch": row.get::<_, Option<f64>>(0),
        "rows": row.get::<_, i64>(1),
    }))
}
