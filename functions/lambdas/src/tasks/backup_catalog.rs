//! The one backup-catalog reader: listing a catalog's objects and verifying a base backup by
//! content, for every handler that reads backups (the audit, the restore planner, the
//! restore-point verifier). No handler reads a catalog its own way.

use hapilot_adapters::backups::BackupStore;
use hapilot_core::backup::audit::Verification;
use hapilot_core::backup::basebackup::verify_base_backup;
use hapilot_core::backup::catalog::{Item, Layout, classify, time_in_name};
use hapilot_core::backup::catalog::{StoredObject, is_base_data_tar};
use hapilot_core::backup::info::BackupInfo;
use hapilot_core::backup::verdicts::label_matches_info;
use hapilot_core::backup::wal::{self, WalFile};
use hapilot_core::restore::{CatalogWal, RestoreCatalog, base_backup_candidate};

/// Every object under each of `prefixes` in `bucket`.
pub(crate) async fn list_all<S: BackupStore>(
    store: &S,
    bucket: &str,
    prefixes: &[String],
) -> Result<Vec<StoredObject>, String> {
    let mut objects = Vec::new();
    for prefix in prefixes {
        objects.extend(
            store
                .list_tree(bucket, prefix)
                .await
                .map_err(|e| format!("s3://{bucket}/{prefix}: {e}"))?,
        );
    }
    Ok(objects)
}

/// What a restore is chosen from, read from `bucket`: the catalog (usable base backups, WAL
/// with archive times, timeline switches, Vault snapshots, Redis RDBs), the WAL segment size each usable
/// `backup.info` records (with its end time), and every object listed.
pub(crate) struct RestoreListing {
    /// The catalog.
    pub catalog: RestoreCatalog,
    /// (end time, segment size) of each usable base backup that records one.
    pub recorded_sizes: Vec<(i64, u64)>,
    /// Every object under the layout's prefixes.
    pub objects: Vec<StoredObject>,
}

/// Reads the restore catalog of `bucket` laid out as `layout`.
pub(crate) async fn read_restore_catalog<S: BackupStore>(
    store: &S,
    bucket: &str,
    layout: &Layout,
) -> Result<RestoreListing, String> {
    let objects = list_all(
        store,
        bucket,
        &[
            format!("{}base/", layout.postgres),
            format!("{}wals/", layout.postgres),
            format!("{}manifests/", layout.postgres),
            layout.vault.clone(),
            layout.redis.clone(),
        ],
    )
    .await?;
    let read = |key: String| async move {
        store
            .read_small(bucket, &key)
            .await
            .map(|b| String::from_utf8_lossy(&b.unwrap_or_default()).into_owned())
            .map_err(|e| e.to_string())
    };
    let mut listing = RestoreListing {
        catalog: RestoreCatalog::default(),
        recorded_sizes: Vec::new(),
        objects: Vec::new(),
    };
    for o in &objects {
        match classify(&o.key, layout) {
            Some((_, Item::BaseBackup(id))) => {
                if let Some((base, size)) =
                    base_backup_candidate(&id, &o.key, &read(o.key.clone()).await?)
                {
                    if let Some(size) = size {
                        listing.recorded_sizes.push((base.end_time, size));
                    }
                    listing.catalog.base_backups.push(base);
                }
            }
            Some((_, Item::Wal(segment))) => listing.catalog.wal.push(CatalogWal {
                segment,
                key: o.key.clone(),
                archived: o.time,
            }),
            Some((_, Item::Snapshot)) => listing
                .catalog
                .snapshots
                .push((o.key.clone(), time_in_name(&o.key).unwrap_or(o.time))),
            Some((_, Item::Rdb)) => listing
                .catalog
                .rdbs
                .push((o.key.clone(), time_in_name(&o.key).unwrap_or(o.time))),
            None if o.key.starts_with(&format!("{}manifests/", layout.postgres))
                && o.key.ends_with(".json") =>
            {
                listing
                    .catalog
                    .manifests
                    .push((o.key.clone(), time_in_name(&o.key).unwrap_or(o.time)));
            }
            _ => {
                if let Some(WalFile::History(tli)) = wal::classify(&o.key)
                    && let Ok(s) = wal::parse_history(tli, &read(o.key.clone()).await?)
                {
                    listing.catalog.switches.extend(s);
                }
            }
        }
    }
    listing.objects = objects;
    Ok(listing)
}

/// A base backup: its main data tar (`data.tar[.gz]` from barman-cloud, `base.tar[.gz]` from
/// `pg_basebackup -Ft`) against its manifest (a member, or a `backup_manifest` object beside it),
/// and its `backup_label` against `backup.info`.
pub(crate) async fn verify_base<S: BackupStore>(
    store: &S,
    bucket: &str,
    info_key: &str,
    id: &str,
    info: Option<&BackupInfo>,
) -> Verification {
    let dir = info_key.trim_end_matches("backup.info");
    let listing = match store.list_tree(bucket, dir).await {
        Ok(l) => l,
        Err(e) => return Verification::failed(info_key, format!("could not list {dir}: {e}")),
    };
    let data = listing.iter().find(|o| is_base_data_tar(&o.key));
    let Some(data) = data else {
        return Verification::failed(
            info_key,
            format!("base backup {id} has no data tar (data.tar[.gz] or base.tar[.gz])"),
        );
    };
    let manifest = match store
        .read_small(bucket, &format!("{dir}backup_manifest"))
        .await
    {
        Ok(m) => m.map(|b| String::from_utf8_lossy(&b).into_owned()),
        Err(e) => {
            return Verification::failed(
                info_key,
                format!("could not read its backup_manifest: {e}"),
            );
        }
    };
    let result = store
        .verify(bucket, &data.key, move |r| {
            verify_base_backup(r, manifest.as_deref())
        })
        .await;
    let summary = match result {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let member = match &e {
                hapilot_core::backup::basebackup::BaseBackupProblem::File { path, .. } => {
                    Some(path.clone())
                }
                _ => None,
            };
            return Verification {
                member,
                ..Verification::failed(&data.key, e.to_string())
            };
        }
        Err(e) => return Verification::failed(&data.key, format!("could not read it: {e}")),
    };
    if let Some(info) = info
        && let Err(disagreement) =
            label_matches_info(summary.start_wal.as_deref(), summary.start_timeline, info)
    {
        return Verification::failed(&data.key, disagreement);
    }
    Verification::verified(
        &data.key,
        format!(
            "{} files, {} bytes; tar and compression sound, pg_control CRC ok, backup_label matches backup.info{}",
            summary.files,
            summary.bytes,
            if summary.manifest_verified {
                ", every file matches backup_manifest (SHA-256)"
            } else {
                " (no backup_manifest: file checksums not available)"
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::backups::MemoryBackupStore;

    const PG: &str = "postgres/gateway-db/";
    const INFO: &str = "backup_label=None\nbackup_id=20261125T090000\n\
        begin_time=2026-11-25 09:00:00+00:00\nbegin_wal=000000010000000000000002\n\
        begin_xlog=0/2000028\nend_time=2026-11-25 09:00:04+00:00\n\
        end_wal=000000010000000000000003\nend_xlog=0/3000100\nstatus=DONE\ntimeline=1\n\
        version=160000\nxlog_segment_size=16777216\n";

    fn store() -> MemoryBackupStore {
        let store = MemoryBackupStore::default();
        let put = |key: String, bytes: &[u8], time: i64| {
            store.insert_at("backups", &key, bytes.to_vec(), time)
        };
        put(
            format!("{PG}base/20261125T090000/backup.info"),
            INFO.as_bytes(),
            100,
        );
        put(format!("{PG}base/20261125T090000/data.tar"), b"tar", 100);
        // A base backup still running: not usable.
        put(
            format!("{PG}base/20261125T100000/backup.info"),
            INFO.replace("status=DONE", "status=STARTED").as_bytes(),
            200,
        );
        for (seg, time) in [(2, 110), (3, 120)] {
            put(
                format!("{PG}wals/0000000100000000/00000001000000000000000{seg}.gz"),
                b"wal",
                time,
            );
        }
        put(
            format!("{PG}wals/00000002.history"),
            b"1\t0/3000100\tno recovery target specified\n",
            130,
        );
        put(format!("{PG}manifests/20261125T093000Z.json"), b"{}", 140);
        put("vault/raft-20261125T080000Z.snap".into(), b"snap", 150);
        put("redis/dump.rdb".into(), b"rdb", 160);
        store
    }

    #[tokio::test]
    async fn the_catalog_holds_usable_bases_wal_switches_snapshots_rdbs_and_manifests() {
        let listing = read_restore_catalog(&store(), "backups", &Layout::default())
            .await
            .unwrap();
        let catalog = &listing.catalog;
        let bases: Vec<&str> = catalog.base_backups.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(bases, ["20261125T090000"], "the running one is passed over");
        assert_eq!(
            listing.recorded_sizes,
            [(catalog.base_backups[0].end_time, 16_777_216)]
        );
        let wal: Vec<(u32, i64)> = catalog
            .wal
            .iter()
            .map(|w| (w.segment.seg, w.archived))
            .collect();
        assert_eq!(
            wal,
            [(2, 110), (3, 120)],
            "archive times are the objects' times"
        );
        assert_eq!(catalog.switches.len(), 1, "{:?}", catalog.switches);
        // A time in the name wins over the object's; none in the name, the object's.
        assert_eq!(catalog.snapshots[0].1, 1_795_593_600);
        assert_eq!(catalog.rdbs, [("redis/dump.rdb".to_string(), 160)]);
        assert_eq!(catalog.manifests.len(), 1);
        assert_eq!(listing.objects.len(), 9);
    }
}
