//! The application's data as LiteLLM keeps it: its spend log table, created as LiteLLM's Prisma
//! schema creates it (`model LiteLLM_SpendLogs`: a quoted, mixed-case table, `request_id` the
//! primary key, `"startTime"` / `"endTime"` as `TIMESTAMP(3)` in UTC, an index on
//! `"startTime"`). The DR drill's data check (the template's `DrillDataTable` /
//! `DrillDataColumn`) reads this table in the rehearsal, so a check that does not quote what
//! LiteLLM quoted fails here as it would against the real database.

pub use hapilot_core::restore::quoted_name as quoted;

/// The table's DDL, named `table` with its time column named `column` (LiteLLM's own names are
/// `LiteLLM_SpendLogs` and `startTime`).
pub fn create_spend_logs(table: &str, column: &str) -> String {
    let index = format!("{}_{}_idx", table.replace('.', "_"), column);
    format!(
        "CREATE TABLE IF NOT EXISTS {t} (\
           \"request_id\" TEXT NOT NULL, \
           \"call_type\" TEXT NOT NULL DEFAULT 'acompletion', \
           \"api_key\" TEXT NOT NULL DEFAULT '', \
           \"spend\" DOUBLE PRECISION NOT NULL DEFAULT 0.0, \
           \"total_tokens\" INTEGER NOT NULL DEFAULT 0, \
           {c} TIMESTAMP(3) NOT NULL, \
           \"model\" TEXT NOT NULL DEFAULT '', \
           CONSTRAINT {pk} PRIMARY KEY (\"request_id\")); \
         CREATE INDEX IF NOT EXISTS {i} ON {t} ({c});",
        t = quoted(table),
        c = quoted(column),
        pk = quoted(&format!("{}_pkey", table.replace('.', "_"))),
        i = quoted(&index),
    )
}

/// One spend log row for request `$1` at the server's clock (UTC, as Prisma writes it),
/// returning its time as epoch seconds.
pub fn insert_spend_log(table: &str, column: &str) -> String {
    format!(
        "INSERT INTO {t} (\"request_id\", {c}) VALUES ($1, clock_timestamp() AT TIME ZONE 'UTC') \
         RETURNING extract(epoch FROM {c})::float8",
        t = quoted(table),
        c = quoted(column),
    )
}

/// The request ids in the table.
pub fn request_ids(table: &str) -> String {
    format!("SELECT \"request_id\" FROM {}", quoted(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn litellm_names_stay_quoted_and_mixed_case() {
        let ddl = create_spend_logs("LiteLLM_SpendLogs", "startTime");
        assert!(ddl.contains("CREATE TABLE IF NOT EXISTS \"LiteLLM_SpendLogs\""));
        assert!(ddl.contains("\"startTime\" TIMESTAMP(3) NOT NULL"));
        assert!(ddl.contains("ON \"LiteLLM_SpendLogs\" (\"startTime\")"));
        assert_eq!(
            quoted("public.LiteLLM_SpendLogs"),
            "\"public\".\"LiteLLM_SpendLogs\""
        );
    }
}
