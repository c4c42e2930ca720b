//! A real PostgreSQL seen as an application sees it: a client, its rows of `writes`, a writer
//! that keeps committing through a switchover.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hapilot_adapters::database::PostgresDatabase;
use tokio_postgres::error::SqlState;

/// A client of the server at `dsn` (TLS as the DSN asks).
pub async fn connect(dsn: &str) -> tokio_postgres::Client {
    PostgresDatabase::new(dsn).connect().await.unwrap()
}

/// Whether the server is a replica (in recovery).
pub async fn in_recovery(c: &tokio_postgres::Client) -> bool {
    c.query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0)
}

/// The ids in `writes`.
pub async fn ids(c: &tokio_postgres::Client) -> BTreeSet<i64> {
    c.query("SELECT id FROM writes", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// What a continuous writer saw: committed ids, and the errors it got.
#[derive(Default)]
pub struct Seen {
    pub committed: Vec<i64>,
    pub read_only_errors: u64,
    pub other_errors: Vec<String>,
}

/// Writes to `dsn` every few ms until `stop`, reconnecting after errors (a fenced session is
/// terminated), as an application would.
pub fn start_writer(
    dsn: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let task = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut client: Option<tokio_postgres::Client> = None;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if client.as_ref().is_none_or(|c| c.is_closed()) {
                    client = PostgresDatabase::new(&dsn).connect().await.ok();
                }
                if let Some(c) = &client {
                    match c
                        .query_one("INSERT INTO writes DEFAULT VALUES RETURNING id", &[])
                        .await
                    {
                        Ok(row) => seen.lock().unwrap().committed.push(row.get(0)),
                        Err(e) if e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) => {
                            seen.lock().unwrap().read_only_errors += 1
                        }
                        Err(e) => {
                            seen.lock().unwrap().other_errors.push(e.to_string());
                            client = None;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    (seen, task)
}

/// Waits until `replica` holds exactly the rows of `primary` (asserts it does in 15 s).
pub async fn rows_arrive(
    primary: &tokio_postgres::Client,
    replica: &tokio_postgres::Client,
) -> BTreeSet<i64> {
    let want = ids(primary).await;
    let mut got = BTreeSet::new();
    for _ in 0..150 {
        // Until the replica has replayed the table's creation, the query fails: not yet.
        if let Ok(rows) = replica.query("SELECT id FROM writes", &[]).await {
            got = rows.iter().map(|r| r.get(0)).collect();
            if got == want {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got, want, "the replica streams every row of the primary");
    got
}
