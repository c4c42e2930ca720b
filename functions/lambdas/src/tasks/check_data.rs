//! Task `check-data`: the data check of the DR drill - the newest row time of a table in one
//! region's database (the HA document's `max(created_at)` on both sides). With `not_after`,
//! only rows written up to that moment count (what the new primary kept of the old one's).
//! Reads through the region's SQL connection string: the postgres backend's, a CloudNativePG
//! cluster's `-rw` service, a Patroni leader's when configured.
//! Input: `{"region", "data_check": {"table", "column"}, "not_after"?}`.

use hapilot_adapters::database::DataReader;
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
pub async fn check_data<D: DataReader>(
    settings: &Settings,
    reader: impl FnOnce(&hapilot_adapters::SecretText) -> D,
    input: Value,
) -> Result<Value, FunctionError> {
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
    let newest = reader(dsn)
        .newest_row(&data_check, not_after)
        .await
        .map_err(FunctionError::from_adapter(ErrorName::DatabaseUnreachable))?;
    Ok(json!({
        "region": region,
        "newest_epoch": newest.newest_epoch,
        "rows": newest.rows,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RegionConfig;
    use hapilot_adapters::database::{DatabaseTarget, MemoryDataReader, PostgresDatabase};

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
        let e = check_data(
            &settings(None),
            |dsn: &hapilot_adapters::SecretText| PostgresDatabase::new(dsn),
            input(),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("patroni database has no dsn"), "{e}");
        // With one, the check reads through it (here: nothing listens, so it is unreachable).
        let e = check_data(
            &settings(Some(
                "host=127.0.0.1 port=1 user=postgres connect_timeout=2",
            )),
            |dsn: &hapilot_adapters::SecretText| PostgresDatabase::new(dsn),
            input(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.error_type(), "hapilot.Transient", "{e}");
    }

    #[tokio::test]
    async fn only_rows_up_to_not_after_count_when_it_is_given() {
        let settings = settings(Some("host=east"));
        let reader = |_: &hapilot_adapters::SecretText| MemoryDataReader {
            rows: vec![100.0, 200.0, 300.0],
            ..MemoryDataReader::default()
        };
        let all = check_data(&settings, reader, input()).await.unwrap();
        assert_eq!(
            (all["newest_epoch"].as_f64(), all["rows"].as_i64()),
            (Some(300.0), Some(3))
        );
        let mut bounded = input();
        bounded["not_after"] = json!(250.0);
        let kept = check_data(&settings, reader, bounded).await.unwrap();
        assert_eq!(
            (kept["newest_epoch"].as_f64(), kept["rows"].as_i64()),
            (Some(200.0), Some(2))
        );
    }
}
