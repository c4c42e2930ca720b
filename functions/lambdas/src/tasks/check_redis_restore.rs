//! Task `check-redis-restore`: a restore test's Redis part. The RDB the plan chose (the newest
//! at or before the drawn moment, verified by `verify-restore-point`) is loaded by a scratch
//! redis-server on the region's scratch host, which counts its keys and removes it in the same
//! call; the count must be what the file announces (`RESIZEDB`, less keys already expired).
//! Input: `{"plan": <plan-restore output>, "expected": <verify-restore-point's "redis">, "run"}`.

use std::time::Duration;

use hapilot_adapters::backups::BackupStore;
use hapilot_adapters::restore::{FetchFile, RedisRestoreJob, RedisScratchHost};
use hapilot_core::ErrorName;
use hapilot_core::backup::rdb::RdbKeys;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::error::parse_input;
use crate::run::{RunContext, record};

#[derive(Deserialize)]
struct Plan {
    region: String,
    bucket: String,
    redis_rdb: String,
}

#[derive(Deserialize)]
struct Expected {
    /// The file's own claim, when its head carries one.
    keys: Option<RdbKeys>,
}

#[derive(Deserialize)]
struct Input {
    plan: Plan,
    expected: Expected,
    run: RunContext,
}

/// The scratch host fetches the RDB within this.
const URL_LIFETIME: Duration = Duration::from_secs(900);

/// Loads the RDB on the scratch host and compares the count.
pub async fn check_redis_restore<S: BackupStore, H: RedisScratchHost>(
    store: &S,
    host: impl FnOnce(&str) -> Result<H, FunctionError>,
    journal: &impl hapilot_adapters::journal::Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        plan,
        expected,
        run,
    } = parse_input(input)?;
    let failed = |detail: String| FunctionError::named(ErrorName::RedisRestoreFailed, detail);
    let key = &plan.redis_rdb;
    let job = RedisRestoreJob {
        rdb: FetchFile {
            name: key.rsplit('/').next().unwrap_or(key).to_string(),
            url: store
                .presigned_get(&plan.bucket, key, URL_LIFETIME)
                .await
                .map_err(FunctionError::from_adapter(ErrorName::RedisRestoreFailed))?,
        },
    };
    let loaded = host(&plan.region)?
        .load_rdb(&job)
        .await
        .map_err(|e| failed(format!("{key}: {e}")))?;
    let verdict = match expected.keys {
        Some(k) if k.accounts_for(loaded.keys) => format!(
            "{} key(s) loaded, as the file announces ({} in db {}, {} with an expiry)",
            loaded.keys, k.keys, k.db, k.expires
        ),
        Some(k) => {
            let out = json!({"key": key, "loaded": loaded, "announced": k});
            record(journal, &run, json!({ "after": out })).await?;
            return Err(failed(format!(
                "{key}: the scratch redis-server loaded {} key(s); the file announces {} in db {} ({} with an expiry)",
                loaded.keys, k.keys, k.db, k.expires
            )));
        }
        None => format!(
            "{} key(s) loaded; the file announces no count to compare with",
            loaded.keys
        ),
    };
    let out = json!({
        "key": key,
        "keys": loaded.keys,
        "announced": expected.keys,
        "verdict": verdict,
        "detail": loaded.detail,
    });
    record(journal, &run, json!({ "after": out })).await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::backups::MemoryBackupStore;
    use hapilot_adapters::journal::{Journal, MemoryJournal};
    use hapilot_adapters::restore::{MemoryRestoreAgent, RedisRestoreCheck};

    fn input(announced: Option<(u64, u64)>) -> Value {
        json!({
            "plan": {"region": "us-west-2", "bucket": "backups", "redis_rdb": "redis/dump-20261206T000000Z.rdb"},
            "expected": {"keys": announced.map(|(keys, expires)| json!({"db": 0, "keys": keys, "expires": expires}))},
            "run": RunContext::fixture_json("restore-test", "CheckRedisRestore"),
        })
    }

    fn host(keys: u64) -> MemoryRestoreAgent {
        let host = MemoryRestoreAgent::default();
        *host.redis.lock().unwrap() = Ok(RedisRestoreCheck {
            keys,
            detail: "loaded and removed".into(),
        });
        host
    }

    #[tokio::test]
    async fn the_loaded_count_must_be_what_the_file_announces_less_expiring_keys() {
        let (store, journal) = (MemoryBackupStore::default(), MemoryJournal::default());
        // 300 announced, 20 of them with an expiry: 290 loaded is a restore that works.
        let h = host(290);
        let out = check_redis_restore(
            &store,
            |_: &str| Ok(h.clone()),
            &journal,
            input(Some((300, 20))),
        )
        .await
        .unwrap();
        assert_eq!(out["keys"], 290);
        assert!(
            out["verdict"]
                .as_str()
                .unwrap()
                .contains("as the file announces"),
            "{out}"
        );
        let job = h.redis_jobs.lock().unwrap()[0].clone();
        assert_eq!(job.rdb.name, "dump-20261206T000000Z.rdb");
        assert_eq!(
            job.rdb.url,
            "memory://backups/redis/dump-20261206T000000Z.rdb"
        );

        // 250 is more than the expiring keys explain: the test fails, and says so in the journal.
        let h = host(250);
        let err = check_redis_restore(&store, |_: &str| Ok(h), &journal, input(Some((300, 20))))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "hapilot.RedisRestoreFailed", "{err}");
        assert!(err.to_string().contains("loaded 250 key(s)"), "{err}");
        let step = RunContext::fixture("restore-test", "CheckRedisRestore").key();
        assert_eq!(
            journal.get(&step).await.unwrap().unwrap()["after"]["loaded"]["keys"],
            250
        );
    }

    #[tokio::test]
    async fn an_rdb_redis_refuses_fails_the_test_with_what_redis_said() {
        let (store, journal) = (MemoryBackupStore::default(), MemoryJournal::default());
        let h = MemoryRestoreAgent::default();
        *h.redis.lock().unwrap() = Err("Short read or OOM loading DB".into());
        let err = check_redis_restore(&store, |_: &str| Ok(h), &journal, input(None))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "hapilot.RedisRestoreFailed", "{err}");
        assert!(err.to_string().contains("Short read"), "{err}");
    }
}
