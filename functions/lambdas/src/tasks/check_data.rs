//! Task `check-data`: the data check of the DR drill - the newest row time of a table in one
//! region's database (the HA document's `max(created_at)` on both sides). With `not_after`,
//! only rows written up to that moment count (what the new primary kept of the old one's).
//! Reads through the region's SQL connection string: the postgres backend's, a CloudNativePG
//! cluster's `-rw` service, a Patroni leader's when configured.
//! Input: `{"region", "data_check": {"table", "column"}, "not_after"?}`.

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
    let target = settings.region(&region)?.database.as_ref().ok_or_else(|| {
        FunctionError::Setup(format!("HAPILOT_REGIONS has no database for {region}"))
    })?;
    let Some(dsn) = target.sql_dsn() else {
        return Err(FunctionError::Setup(format!(
            "the data check needs SQL access: {region}'s {} database has no dsn (a Patroni region: set database.dsn to its leader's connection string, or give it in HAPILOT_DATABASE_SECRET)",
            target.backend()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RegionConfig;
    use hapilot_adapters::database::DatabaseTarget;

    fn settings(dsn: Option<&str>) -> Settings {
        let mut settings = Settings::with_defaults();
        settings.regions.insert(
            "us-east-1".into(),
            RegionConfig {
                health_url: "http://east/health".into(),
                set_identifier: "primary".into(),
                database: Some(DatabaseTarget::Patroni {
                    url: "http://127.0.0.1:1".into(),
                    member: "pg-east".into(),
                    ca_file: None,
                    auth: None,
                    dsn: dsn.map(Into::into),
                }),
                kubernetes: None,
                vault: None,
                redis: None,
                restore: None,
                restore_test: None,
                restore_test_vault: None,
            },
        );
        settings
    }

    fn input() -> Value {
        json!({"region": "us-east-1", "data_check": {"table": "LiteLLM_SpendLogs", "column": "startTime"}})
    }

    #[tokio::test]
    async fn a_patroni_region_is_checked_through_its_leaders_dsn_when_one_is_configured() {
        let e = check_data(&settings(None), input()).await.unwrap_err();
        assert!(e.to_string().contains("patroni database has no dsn"), "{e}");
        // With one, the check reads through it (here: nothing listens, so it is unreachable).
        let e = check_data(
            &settings(Some(
                "host=127.0.0.1 port=1 user=postgres connect_timeout=2",
            )),
            input(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.error_type(), "hapilot.Transient", "{e}");
    }
}
