//! DR restore from backups: a real PostgreSQL primary archives WAL; its base backup and WAL
//! are stored in the barman-cloud layout in the DR bucket (moto S3) as they are produced, with
//! a Vault snapshot; the dr-restore state machine lays down a new server in the DR region
//! through its restore agent and a simulated Vault.

use std::collections::BTreeSet;
use std::time::Duration;

use hapilot::local::systems::postgres::PostgresPair;
use hapilot::local::world::deployment::{DR_BACKUP_BUCKET, DatabaseSetup, Databases};
use hapilot_adapters::database::PostgresDatabase;
use hapilot_core::backup::audit::epoch_text;
use hapilot_core::backup::vault::build_vault_snapshot;
use serde_json::{Value, json};

use crate::support::backups::put_all;
use crate::support::{FailoverWorld, assert_failed, cli_ok, entered};
use hapilot::local::systems::barman::{
    BackupObject as Object, compact_time as compact, psql, switch_and_archive, take_base_backup,
    wal_objects,
};

fn dr_dsn(world: &FailoverWorld) -> String {
    match &world.deployment.databases {
        Databases::Postgres { dr, .. } => dr.0.server.dsn(),
        Databases::Patroni { .. } => unreachable!(),
    }
}

fn dr_data_exists(world: &FailoverWorld) -> bool {
    match &world.deployment.databases {
        Databases::Postgres { dr, .. } => {
            std::fs::metadata(format!("{}/PG_VERSION", dr_dsn_dir(&dr.0))).is_ok()
        }
        Databases::Patroni { .. } => unreachable!(),
    }
}

fn dr_dsn_dir(node: &hapilot::local::systems::postgres::PostgresNode) -> String {
    node.data_dir().display().to_string()
}

/// What the test wrote, by phase.
struct History {
    /// Base backup objects.
    base: Vec<Object>,
    /// Archive file names uploaded after each phase, in order.
    phases: Vec<Vec<String>>,
    /// A moment between batch B and batch C (epoch seconds).
    mid: i64,
    /// Ids committed by then.
    ids_by_mid: BTreeSet<i64>,
    /// Every id.
    all_ids: BTreeSet<i64>,
    /// The Vault snapshot's key.
    vault_snapshot: String,
    /// The backup job's row-count manifest (100 rows up to a moment before the base backup).
    manifest: Object,
}

async fn upload_new(
    world: &FailoverWorld,
    pair: &PostgresPair,
    names: &[String],
    done: &mut BTreeSet<String>,
) -> Vec<String> {
    let new: Vec<String> = names
        .iter()
        .filter(|n| !done.contains(*n))
        .cloned()
        .collect();
    let objects = wal_objects(pair, &new).unwrap();
    let keys: Vec<String> = objects.iter().map(|o| o.key.clone()).collect();
    put_all(&world.stack.s3(), DR_BACKUP_BUCKET, &objects, &keys).await;
    done.extend(new.iter().cloned());
    new
}

/// Writes in phases a second apart (S3's LastModified has second resolution: it is the WAL's
/// archive time), uploading what was archived after each, as barman-cloud-wal-archive would.
async fn make_history(world: &FailoverWorld) -> History {
    let pair = world.postgres();
    let s3 = world.stack.s3();
    let run = |sql: &'static str| tokio::task::block_in_place(|| psql(pair, sql).unwrap());
    run(
        "CREATE TABLE spend (id bigserial PRIMARY KEY, team text, created_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    );
    run("INSERT INTO spend (team) SELECT 'a' FROM generate_series(1, 100)");
    // The backup job's row count up to a moment before the base backup ends: every restore
    // the window allows must hold exactly those rows.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let counted_at = chrono::Utc::now().timestamp();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let manifest = tokio::task::block_in_place(|| {
        hapilot::local::systems::barman::row_manifest(pair, ("spend", "created_at"), counted_at)
            .unwrap()
    });
    let base = tokio::task::block_in_place(|| take_base_backup(pair).unwrap());
    let keys: Vec<String> = base.iter().map(|o| o.key.clone()).collect();
    put_all(&s3, DR_BACKUP_BUCKET, &base, &keys).await;
    put_all(
        &s3,
        DR_BACKUP_BUCKET,
        std::slice::from_ref(&manifest),
        std::slice::from_ref(&manifest.key),
    )
    .await;
    let mut done = BTreeSet::new();
    let names = tokio::task::block_in_place(|| switch_and_archive(pair).unwrap());
    let phase0 = upload_new(world, pair, &names, &mut done).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    run("INSERT INTO spend (team) SELECT 'b' FROM generate_series(1, 50)");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let mid = chrono::Utc::now().timestamp();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    run("INSERT INTO spend (team) SELECT 'c' FROM generate_series(1, 50)");
    let names = tokio::task::block_in_place(|| switch_and_archive(pair).unwrap());
    let phase1 = upload_new(world, pair, &names, &mut done).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    run("INSERT INTO spend (team) SELECT 'd' FROM generate_series(1, 25)");
    // The archive reaches a second past the last commit (as with any quiet spell before an
    // archive_timeout): the window's tail holds no commit.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let names = tokio::task::block_in_place(|| switch_and_archive(pair).unwrap());
    let phase2 = upload_new(world, pair, &names, &mut done).await;

    // A Vault snapshot taken before the target, holding the gateway's secret.
    let secrets =
        json!({hapilot::local::systems::vault::GATEWAY_SECRET: {"master_key": "sk-restored"}});
    let snap = build_vault_snapshot(
        &json!({"Index": 4242, "Term": 3}),
        secrets.to_string().as_bytes(),
    )
    .unwrap();
    let key = format!("vault/{}.snap", compact(mid - 30));
    put_all(
        &s3,
        DR_BACKUP_BUCKET,
        &[Object {
            key: key.clone(),
            bytes: snap,
        }],
        std::slice::from_ref(&key),
    )
    .await;

    let primary = PostgresDatabase::new(pair.primary.dsn())
        .connect()
        .await
        .unwrap();
    let ids = |sql: &'static str| {
        let primary = &primary;
        async move {
            primary
                .query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, i64>(0))
                .collect::<BTreeSet<i64>>()
        }
    };
    let all_ids = ids("SELECT id FROM spend").await;
    let ids_by_mid: BTreeSet<i64> = primary
        .query(
            "SELECT id FROM spend WHERE created_at <= to_timestamp($1::float8)",
            &[&(mid as f64)],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    History {
        base,
        phases: vec![phase0, phase1, phase2],
        mid,
        ids_by_mid,
        all_ids,
        vault_snapshot: key,
        manifest,
    }
}

async fn restored_ids(world: &FailoverWorld) -> BTreeSet<i64> {
    let c = PostgresDatabase::new(dr_dsn(world))
        .connect()
        .await
        .unwrap();
    c.query("SELECT id FROM spend", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn request(target: &str) -> Value {
    json!({
        "region": "us-west-2",
        "target": target,
        "data_check": {"table": "spend", "column": "created_at"},
        "readiness_timeout_seconds": 120
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restores_latest_and_a_point_in_time_row_by_row() {
    let world = FailoverWorld::start(DatabaseSetup::Postgres).await;
    let history = make_history(&world).await;
    assert_eq!(history.all_ids.len(), 225);
    assert_eq!(
        history.ids_by_mid.len(),
        150,
        "batches a and b were committed before the target"
    );

    // Latest: everything archived.
    let out = world.stack.run_ok("dr-restore", request("latest")).await;
    assert_eq!(
        restored_ids(&world).await,
        history.all_ids,
        "latest restores every archived row"
    );
    assert_eq!(out["readiness"]["data_check"]["rows"], 225, "{out:#}");
    assert_eq!(world.deployment.vault.restored(), vec![4242]);

    // The same from the CLI, as an operator runs it.
    let stdout = cli_ok(world.cli().args([
        "restore",
        "--region",
        "us-west-2",
        "--data-check",
        "spend.created_at",
    ]))
    .await;
    assert!(stdout.contains("\"rows\": 225"), "{stdout}");

    // A point in time between batch b and batch c: exactly the rows committed before it.
    let target = epoch_text(history.mid);
    let outcome = world.stack.run("dr-restore", request(&target)).await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    let out = outcome.output.clone().unwrap();
    let execution = outcome.execution_arn.rsplit(':').next().unwrap();
    let report = world
        .object(&format!("reports/dr-restore/{execution}.json"))
        .await
        .expect("the restore report");
    assert_eq!(report["outcome"], "restored");
    assert!(
        report["duration_secs"].as_f64().unwrap() > 0.0,
        "RTO measured: {report}"
    );
    assert_eq!(
        report["restore"]["readiness"]["data_check"]["rows"], 150,
        "{report}"
    );
    let got = restored_ids(&world).await;
    assert_eq!(
        got, history.ids_by_mid,
        "PITR to {target} must hold exactly the rows committed before it"
    );
    let rpo = out["readiness"]["data_check"]["rpo_secs"].as_f64().unwrap();
    assert!(
        rpo > 0.0 && rpo < 3.0,
        "the newest restored row is about a second before the target: {rpo}"
    );
    assert_eq!(
        out["plan"]["restore_point"]["base_backup"]["id"]
            .as_str()
            .map(str::len),
        Some(16)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refuses_what_cannot_be_restored_before_touching_anything() {
    let world = FailoverWorld::start(DatabaseSetup::Postgres).await;
    let history = make_history(&world).await;
    let s3 = world.stack.s3();

    // Target in a WAL gap: the segment of batches b and c is lost.
    let gap_key = format!(
        "postgres/gateway-db/wals/{}/{}.gz",
        &history.phases[1][0][..16],
        history.phases[1][0]
    );
    let segment = s3
        .get_object()
        .bucket(DR_BACKUP_BUCKET)
        .key(&gap_key)
        .send()
        .await
        .unwrap();
    let segment = segment.body.collect().await.unwrap().into_bytes().to_vec();
    s3.delete_object()
        .bucket(DR_BACKUP_BUCKET)
        .key(&gap_key)
        .send()
        .await
        .unwrap();
    let outcome = world
        .stack
        .run(
            "dr-restore",
            request(&epoch_text(chrono::Utc::now().timestamp())),
        )
        .await;
    assert_failed(&outcome, "hapilot.RestoreTargetUnreachable");
    let cause = outcome.cause.clone().unwrap_or_default();
    assert!(
        cause.contains("gap at") && cause.contains("closest reachable point: 20"),
        "{cause}"
    );
    put_all(
        &s3,
        DR_BACKUP_BUCKET,
        &[Object {
            key: gap_key.clone(),
            bytes: segment,
        }],
        &[gap_key],
    )
    .await;

    // A corrupted base backup: refused by verification, nothing restored.
    let tar = history
        .base
        .iter()
        .find(|o| o.key.ends_with("base.tar.gz"))
        .unwrap();
    let mut broken = tar.clone();
    let at = broken.bytes.len() / 2;
    broken.bytes[at] ^= 0x08;
    put_all(
        &s3,
        DR_BACKUP_BUCKET,
        std::slice::from_ref(&broken),
        &[broken.key.clone()],
    )
    .await;
    let outcome = world.stack.run("dr-restore", request("latest")).await;
    assert_failed(&outcome, "hapilot.RestorePointCorrupt");
    assert!(!entered(&outcome, "RestoreVault") && !entered(&outcome, "RestorePostgres"));
    assert!(
        world.deployment.vault.restored().is_empty(),
        "Vault untouched"
    );
    assert!(!dr_data_exists(&world), "no data directory laid down");
    put_all(
        &s3,
        DR_BACKUP_BUCKET,
        std::slice::from_ref(tar),
        std::slice::from_ref(&tar.key),
    )
    .await;

    // Vault refuses the snapshot: the run fails there, PostgreSQL is not restored.
    world.deployment.vault.refuse(true);
    let outcome = world.stack.run("dr-restore", request("latest")).await;
    assert_failed(&outcome, "hapilot.VaultRestoreFailed");
    assert!(
        outcome.cause.as_deref().unwrap_or("").contains("sealed"),
        "{:?}",
        outcome.cause
    );
    assert!(!entered(&outcome, "RestorePostgres"));
    assert!(!dr_data_exists(&world), "no data directory laid down");
    assert!(
        !format!("{:?}", outcome.cause).contains(hapilot::local::world::deployment::VAULT_TOKEN),
        "the token never appears in errors"
    );

    // Another run holds the platform's run lock (a failover waiting for a human): the restore
    // is refused before anything is verified or touched, naming that run.
    world.deployment.vault.refuse(false);
    world
        .deployment
        .primary
        .set_mode(hapilot::local::systems::gateway::GatewayMode::Failing);
    let holder = world
        .start_failover(
            "holds-the-lock",
            world.console_input(serde_json::json!({"needs_approval": true})),
        )
        .await;
    world.wait_for_approval("holds-the-lock").await;
    let outcome = world.stack.run("dr-restore", request("latest")).await;
    assert_failed(&outcome, "hapilot.RunInProgress");
    assert!(
        outcome
            .cause
            .as_deref()
            .unwrap_or_default()
            .contains("holds-the-lock"),
        "{:?}",
        outcome.cause
    );
    assert!(!entered(&outcome, "VerifyRestorePoint"));
    assert!(world.deployment.vault.restored().is_empty());
    assert!(!dr_data_exists(&world), "no data directory laid down");
    hapilot::approvals::answer(
        world.stack.stack().sdk_config(),
        "hapilot-audit",
        "failover",
        "holds-the-lock",
        false,
        "the test is done with it",
    )
    .await
    .unwrap();
    assert!(!world.follow(&holder).await.succeeded());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloudnativepg_backend_creates_a_recovery_cluster_and_follows_it() {
    use hapilot_adapters::restore::{
        AnyRestoreAgent, FetchFile, RestoreAgent, RestoreDatabaseTarget, RestoreJob,
    };
    let kube = hapilot::local::systems::kubernetes::SimulatedKubernetes::start(
        "k8s-token",
        "ai-gateway",
        &[],
    )
    .await
    .unwrap();
    let target = RestoreDatabaseTarget::Cloudnativepg {
        kubernetes: hapilot_adapters::scaler::KubernetesTarget {
            ca_file: None,
            url: kube.url(),
            token: "k8s-token".into(),
            namespace: "ai-gateway".into(),
        },
        cluster: "postgres-restored".into(),
        destination_path: "s3://hapilot-backups-dr/postgres/".into(),
        server_name: "gateway-db".into(),
        dsn: "host=postgres-restored-rw".into(),
    };
    let agent = AnyRestoreAgent::new(reqwest::Client::new(), &target);
    assert_eq!(agent.progress().await.unwrap().state, "idle");
    let job = RestoreJob {
        base: FetchFile {
            name: "base.tar.gz".into(),
            url: "unused by CloudNativePG".into(),
        },
        wal: vec![],
        target_time: Some("2026-11-25 09:30:00+00".into()),
        backup_id: Some("20261125T090000".into()),
    };
    agent.start(&job).await.unwrap();
    let cluster = kube
        .cnpg_cluster("postgres-restored")
        .expect("the Cluster was created");
    assert_eq!(cluster["kind"], "Cluster");
    let recovery = &cluster["spec"]["bootstrap"]["recovery"];
    assert_eq!(recovery["source"], "origin");
    assert_eq!(
        recovery["recoveryTarget"]["targetTime"],
        "2026-11-25 09:30:00+00"
    );
    assert_eq!(recovery["recoveryTarget"]["backupID"], "20261125T090000");
    let store = &cluster["spec"]["externalClusters"][0]["barmanObjectStore"];
    assert_eq!(
        store["destinationPath"],
        "s3://hapilot-backups-dr/postgres/"
    );
    assert_eq!(store["serverName"], "gateway-db");
    let mut state = String::new();
    for _ in 0..50 {
        state = agent.progress().await.unwrap().state;
        if state == "started" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, "started");
    // Never reuses a cluster.
    let again = agent.start(&job).await.unwrap_err().to_string();
    assert!(
        again.contains("409") && again.contains("never reuses"),
        "{again}"
    );
}

fn scratch_data_exists(world: &FailoverWorld) -> bool {
    match &world.deployment.databases {
        Databases::Postgres { scratch, .. } => scratch.0.data_dir().join("PG_VERSION").exists(),
        Databases::Patroni { .. } => unreachable!(),
    }
}

/// The restore test: a moment drawn inside the restore window (from a seed kept in the
/// report), PostgreSQL restored onto the scratch host and checked by content, then torn
/// down; the DR restore's target is never touched, and the same seed draws the same moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restore_test_restores_a_random_moment_checks_it_and_tears_it_down() {
    let world = FailoverWorld::start(DatabaseSetup::Postgres).await;
    let rdb_key = put_rdb(&world, 25).await;
    let history = make_history(&world).await;
    let input = json!({
        "region": "us-west-2",
        "seed": 7,
        "data_check": {"table": "spend", "column": "created_at"},
        "readiness_timeout_seconds": 120
    });
    // A restore with amcheck over every index: minutes, not seconds, on a busy machine.
    let outcome = world
        .stack
        .run_within("restore-test", input.clone(), Duration::from_secs(900))
        .await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    assert!(entered(&outcome, "TearDown"));
    let out = outcome.output.clone().unwrap();
    let random = &out["plan"]["random"];
    assert_eq!(random["seed"], 7, "{random}");
    let (earliest, latest, chosen) = (
        random["earliest"].as_i64().unwrap(),
        random["latest"].as_i64().unwrap(),
        random["chosen"].as_i64().unwrap(),
    );
    assert!(earliest <= chosen && chosen <= latest, "{random}");
    assert_eq!(out["plan"]["scratch"], true);
    // By content: the rows committed at the drawn moment (a second either side: the moment
    // is whole seconds, a batch's rows carry their own clock times).
    let primary = PostgresDatabase::new(world.postgres().primary.dsn())
        .connect()
        .await
        .unwrap();
    let count_until = |at: i64| {
        let primary = &primary;
        async move {
            primary
                .query_one(
                    "SELECT count(*) FROM spend WHERE created_at <= to_timestamp($1::float8)",
                    &[&(at as f64)],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    let rows = out["readiness"]["data_check"]["rows"].as_i64().unwrap();
    let (low, high) = (count_until(chosen - 1).await, count_until(chosen + 1).await);
    assert!(
        (low..=high).contains(&rows),
        "restored {rows} rows at {chosen}, committed by then {low}..{high}: {out:#}"
    );
    assert!(rows >= 100, "the base backup's rows at least: {out:#}");
    // Exactly the rows the backup job counted up to its manifest's moment.
    let counted = &out["readiness"]["row_manifest"];
    assert_eq!(counted["expected"], 100, "{out:#}");
    assert_eq!(counted["restored"], 100, "{out:#}");
    // amcheck over every B-tree index of the catalog and the data table.
    let amcheck = &out["readiness"]["amcheck"];
    assert!(amcheck["checked"].as_u64().unwrap() > 50, "{amcheck}");
    assert_eq!(amcheck["corrupt"], json!([]), "{amcheck}");
    // Torn down, and the DR restore's target never touched.
    assert!(!scratch_data_exists(&world), "the scratch server is gone");
    assert!(
        !dr_data_exists(&world),
        "the DR restore's target is untouched"
    );
    let report = restore_test_report(&world, &outcome).await;
    assert_eq!(report["outcome"], "passed", "{report:#}");
    assert_eq!(report["restore"]["random"]["chosen"], chosen);
    assert_eq!(
        report["restore"]["teardown"]["torn_down"], true,
        "{report:#}"
    );
    assert_eq!(report["restore"]["rto_target_secs"], 120.0, "{report:#}");
    // Redis: the RDB written by a real redis-server, loaded by a scratch one, 25 keys as the
    // file announces.
    let redis = &report["restore"]["redis"];
    assert_eq!(redis["key"], rdb_key.as_str(), "{report:#}");
    assert_eq!(redis["keys"], 25, "{redis}");
    assert_eq!(redis["announced"]["keys"], 25, "{redis}");
    // Vault: the snapshot restored into the scratch Vault (never the DR Vault), its secret
    // read through it.
    let vault = &report["restore"]["vault"];
    assert_eq!(vault["known_secret"]["keys"], 1, "{report:#}");
    assert_eq!(world.deployment.scratch_vault.restored(), [4242]);
    assert!(
        world.deployment.vault.restored().is_empty(),
        "the DR Vault untouched"
    );
    assert!(report["duration_secs"].as_f64().unwrap() > 0.0);
    // The same seed from the CLI draws the same moment.
    let stdout = cli_ok(world.cli().args([
        "restore-test",
        "--region",
        "us-west-2",
        "--seed",
        "7",
        "--data-check",
        "spend.created_at",
    ]))
    .await;
    assert!(
        stdout.contains(&format!("\"chosen\": {chosen}")),
        "{stdout}"
    );
    assert!(!scratch_data_exists(&world));
    assert!(rows as usize <= history.all_ids.len());

    // The window's very end, after the last commit: PostgreSQL finds no commit past it and
    // would refuse; the end of the archive is the state at that moment, with every row.
    let mut at_the_end = input.clone();
    at_the_end["target"] = json!(epoch_text(latest));
    let outcome = world
        .stack
        .run_within("restore-test", at_the_end, Duration::from_secs(900))
        .await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    let out = outcome.output.clone().unwrap();
    assert_eq!(
        out["readiness"]["data_check"]["rows"].as_u64(),
        Some(history.all_ids.len() as u64),
        "{out:#}"
    );
    assert!(!scratch_data_exists(&world));
}

/// amcheck's verdicts are what the restore test trusts: a clean server passes, an index whose
/// page was overwritten on disk is named as corrupt (and only amcheck's own SQLSTATEs count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amcheck_names_a_corrupt_index_and_passes_a_clean_one() {
    use std::io::{Seek, SeekFrom, Write};
    let pair = tokio::task::spawn_blocking(PostgresPair::start)
        .await
        .unwrap()
        .unwrap();
    let db = PostgresDatabase::new(pair.primary.dsn());
    let client = db.connect().await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text); \
             INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g; CHECKPOINT",
        )
        .await
        .unwrap();
    let clean = db.check_indexes().await.unwrap();
    assert!(clean.checked > 50 && clean.corrupt.is_empty(), "{clean:?}");
    let file: String = client
        .query_one("SELECT pg_relation_filepath('t_pkey')", &[])
        .await
        .unwrap()
        .get(0);
    drop(client);
    let (node, _) = pair.nodes();
    tokio::task::block_in_place(|| node.stop_cleanly());
    // Scramble the keys in the middle of the index's first leaf page (block 1).
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(node.data_dir().join(&file))
        .unwrap();
    f.seek(SeekFrom::Start(8192 + 3000)).unwrap();
    f.write_all(&[0x7f; 2000]).unwrap();
    drop(f);
    tokio::task::block_in_place(|| node.start_server()).unwrap();
    let corrupt = db.check_indexes().await.unwrap();
    assert!(
        corrupt
            .corrupt
            .iter()
            .any(|(index, _)| index == "public.t_pkey"),
        "{corrupt:?}"
    );
}

/// An RDB of `keys` keys, written by a real redis-server, in the DR bucket's `redis/` folder
/// with a time (in its name) before any moment a test draws; its key.
async fn put_rdb(world: &FailoverWorld, keys: usize) -> String {
    let rdb = hapilot::local::systems::redis::redis_rdb(keys)
        .await
        .unwrap();
    let key = format!(
        "redis/dump-{}.rdb",
        compact(chrono::Utc::now().timestamp() - 600)
    );
    replace(world, &key, rdb).await;
    key
}

/// Puts `bytes` at `key` of the DR bucket (a new version; no Object Lock on it).
async fn replace(world: &FailoverWorld, key: &str, bytes: Vec<u8>) {
    let key = key.to_string();
    put_all(
        &world.stack.s3(),
        DR_BACKUP_BUCKET,
        &[Object {
            key: key.clone(),
            bytes,
        }],
        &[key],
    )
    .await;
}

/// `snapshot` with one letter of its secret changed inside `state.bin` (a valid gzip and tar
/// whose SHA256SUMS no longer match).
fn rot_secret(snapshot: &[u8]) -> Vec<u8> {
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(snapshot), &mut tar).unwrap();
    let at = tar
        .windows(11)
        .position(|w| w == b"sk-restored")
        .expect("the secret in state.bin");
    tar[at + 3] = b'R';
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap()
}

/// The report a restore test left in the audit bucket.
async fn restore_test_report(world: &FailoverWorld, outcome: &hapilot::runs::RunOutcome) -> Value {
    let execution = outcome.execution_arn.rsplit(':').next().unwrap();
    world
        .object(&format!("reports/restore-test/{execution}.json"))
        .await
        .expect("the restore test's report")
}

/// A restore test that fails says why and leaves nothing behind: a WAL segment corrupted after
/// the base backup is named before anything is laid down; a content check that fails after
/// the restore still tears the scratch server down. Both are reported as failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_restore_test_names_why_and_tears_the_scratch_server_down() {
    let world = FailoverWorld::start(DatabaseSetup::Postgres).await;
    let rdb_key = put_rdb(&world, 10).await;
    let history = make_history(&world).await;
    let input = |table: &str| {
        json!({
            "region": "us-west-2",
            "seed": 7,
            "data_check": {"table": table, "column": "created_at"},
            "readiness_timeout_seconds": 120
        })
    };

    // Runs a test that verification refuses, naming `named`, before anything is laid down.
    let refused_naming = |named: String| {
        let (world, input) = (&world, input("spend"));
        async move {
            let outcome = world
                .stack
                .run_within("restore-test", input, Duration::from_secs(900))
                .await;
            assert_failed(&outcome, "hapilot.RestorePointCorrupt");
            let cause = outcome.cause.clone().unwrap_or_default();
            assert!(cause.contains(&named), "names {named}: {cause}");
            assert!(!entered(&outcome, "RestorePostgres"));
            assert!(!scratch_data_exists(world), "nothing laid down");
            let report = restore_test_report(world, &outcome).await;
            assert_eq!(report["outcome"], "failed", "{report:#}");
        }
    };

    // A Vault snapshot whose state no longer matches its SHA256SUMS.
    let snap_key = history.vault_snapshot.clone();
    let snap = world.stack.bytes(DR_BACKUP_BUCKET, &snap_key).await;
    replace(&world, &snap_key, rot_secret(&snap)).await;
    refused_naming(snap_key.clone()).await;
    // A whole snapshot without the secret: Vault takes it, the secret is not there.
    let empty = build_vault_snapshot(&json!({"Index": 4243, "Term": 3}), b"{}").unwrap();
    replace(&world, &snap_key, empty).await;
    let outcome = world
        .stack
        .run_within("restore-test", input("spend"), Duration::from_secs(900))
        .await;
    assert_failed(&outcome, "hapilot.VaultRestoreFailed");
    let cause = outcome.cause.clone().unwrap_or_default();
    assert!(
        cause.contains(hapilot::local::systems::vault::GATEWAY_SECRET),
        "{cause}"
    );
    assert!(
        entered(&outcome, "TearDown"),
        "PostgreSQL passed and was torn down"
    );
    assert!(!scratch_data_exists(&world));
    replace(&world, &snap_key, snap).await;

    // A truncated RDB.
    let rdb = world.stack.bytes(DR_BACKUP_BUCKET, &rdb_key).await;
    replace(&world, &rdb_key, rdb[..rdb.len() - 20].to_vec()).await;
    refused_naming(rdb_key.clone()).await;
    replace(&world, &rdb_key, rdb).await;

    // The segment the DR base backup began in (the newest `.backup` history file names it;
    // the standby's own base backup came first): every moment in the window replays it.
    let segment = history.phases[0]
        .iter()
        .filter(|n| n.ends_with(".backup"))
        .max()
        .map(|n| n[..24].to_string())
        .expect("the base backup's history file");
    let key = format!("postgres/gateway-db/wals/{}/{segment}.gz", &segment[..16]);
    let good = world.stack.bytes(DR_BACKUP_BUCKET, &key).await;

    // Rot in the stored object (its gzip checksum no longer matches).
    let mut rotten = good.clone();
    let crc_at = rotten.len() - 8;
    rotten[crc_at] ^= 0x08;
    replace(&world, &key, rotten).await;
    refused_naming(segment.clone()).await;

    // A WAL record corrupted before it was compressed (a whole gzip, a valid page header):
    // only replaying it finds it. The restore fails naming the segment, and is torn down.
    let mut wal = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&good[..]), &mut wal).unwrap();
    // The first record's back-link (xl_prev, right after the 40-byte long page header).
    for b in &mut wal[48..56] {
        *b ^= 0x5a;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &wal).unwrap();
    replace(&world, &key, gz.finish().unwrap()).await;
    let outcome = world
        .stack
        .run_within("restore-test", input("spend"), Duration::from_secs(900))
        .await;
    assert_failed(&outcome, "hapilot.DatabaseRestoreFailed");
    assert!(entered(&outcome, "TearDownAfterFailure"));
    let cause = outcome.cause.clone().unwrap_or_default();
    assert!(
        cause.contains(&segment) && cause.contains("FATAL"),
        "names the segment and why: {cause}"
    );
    assert!(!scratch_data_exists(&world), "the scratch server is gone");
    let report = restore_test_report(&world, &outcome).await;
    assert_eq!(report["outcome"], "failed", "{report:#}");
    replace(&world, &key, good).await;

    // Restored, but not the rows the backup job counted (its manifest says one more): the
    // content check fails, naming both counts, and the copy is torn down anyway.
    let manifest = &history.manifest;
    let mut claimed: Value = serde_json::from_slice(&manifest.bytes).unwrap();
    assert_eq!(claimed["tables"]["spend"]["rows"], 100);
    claimed["tables"]["spend"]["rows"] = json!(101);
    replace(&world, &manifest.key, claimed.to_string().into_bytes()).await;
    let outcome = world
        .stack
        .run_within("restore-test", input("spend"), Duration::from_secs(900))
        .await;
    assert_failed(&outcome, "hapilot.DatabaseRestoreFailed");
    assert!(entered(&outcome, "RestorePostgres"));
    assert!(entered(&outcome, "TearDownAfterFailure"));
    let cause = outcome.cause.clone().unwrap_or_default();
    assert!(
        cause.contains("holds 100 rows of spend") && cause.contains("counted 101"),
        "{cause}"
    );
    assert!(!scratch_data_exists(&world), "the scratch server is gone");
    assert!(
        !dr_data_exists(&world),
        "the DR restore's target is untouched"
    );
    let report = restore_test_report(&world, &outcome).await;
    assert_eq!(report["outcome"], "failed", "{report:#}");
}

/// A restore test to a moment after a promotion: the base backup is on timeline 1, the moment
/// on timeline 2, so the restore follows `00000002.history` across the switch. Every row
/// committed by then, on either side of the switch, is in the scratch copy; nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restore_test_replays_across_a_timeline_switch() {
    use hapilot::local::systems::barman::{psql_on, switch_and_archive_on};
    let world = FailoverWorld::start(DatabaseSetup::Postgres).await;
    let pair = world.postgres();
    let replica = pair.replica.port();
    let on =
        |port: u16, sql: &str| tokio::task::block_in_place(|| psql_on(pair, port, sql).unwrap());
    on(
        pair.primary.port(),
        "CREATE TABLE spend (id bigserial PRIMARY KEY, team text, created_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    );
    on(
        pair.primary.port(),
        "INSERT INTO spend (team) SELECT 'before' FROM generate_series(1, 100)",
    );
    let base = tokio::task::block_in_place(|| take_base_backup(pair).unwrap());
    let keys: Vec<String> = base.iter().map(|o| o.key.clone()).collect();
    put_all(&world.stack.s3(), DR_BACKUP_BUCKET, &base, &keys).await;
    let mut done = BTreeSet::new();
    let names = tokio::task::block_in_place(|| switch_and_archive(pair).unwrap());
    upload_new(&world, pair, &names, &mut done).await;
    // The replica has it all, the primary dies, the replica is promoted: timeline 2.
    for _ in 0..300 {
        if on(replica, "SELECT count(*) FROM spend") == "100" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::task::block_in_place(|| pair.primary.kill()).unwrap();
    on(replica, "SELECT pg_promote(true, 60)");
    on(
        replica,
        "INSERT INTO spend (team) SELECT 'after' FROM generate_series(1, 40)",
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let target = chrono::Utc::now().timestamp();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    on(
        replica,
        "INSERT INTO spend (team) SELECT 'later' FROM generate_series(1, 30)",
    );
    let names = tokio::task::block_in_place(|| switch_and_archive_on(pair, replica).unwrap());
    let uploaded = upload_new(&world, pair, &names, &mut done).await;
    assert!(
        uploaded.iter().any(|n| n == "00000002.history")
            && uploaded
                .iter()
                .any(|n| n.len() == 24 && n.starts_with("00000002")),
        "timeline 2 archived: {uploaded:?}"
    );
    let outcome = world
        .stack
        .run_within(
            "restore-test",
            json!({
                "region": "us-west-2",
                "target": epoch_text(target),
                "redis": false,
                "vault": false,
                "data_check": {"table": "spend", "column": "created_at"},
                "readiness_timeout_seconds": 120
            }),
            Duration::from_secs(900),
        )
        .await;
    assert!(outcome.succeeded(), "{}", outcome.history_text());
    let out = outcome.output.clone().unwrap();
    let replayed: Vec<&str> = out["plan"]["restore_point"]["wal"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["key"].as_str())
        .collect();
    assert!(
        replayed.iter().any(|k| k.contains("/00000001"))
            && replayed.iter().any(|k| k.contains("/00000002")),
        "the restore replays both timelines: {replayed:?}"
    );
    assert_eq!(
        out["readiness"]["data_check"]["rows"], 140,
        "every row committed by the moment, on both sides of the switch: {out:#}"
    );
    assert!(!scratch_data_exists(&world), "the scratch server is gone");
    let report = restore_test_report(&world, &outcome).await;
    assert_eq!(report["outcome"], "passed", "{report:#}");
}
