//! Backup verification: the domain rules of the backup audit (issue #4), pure and exhaustively
//! testable. This session laid the first pieces: WAL segment names and chain continuity,
//! barman's `backup.info`, and the backup policies of the HA document with the freshness and
//! retention checks. The verifiers of content (tar, backup_manifest, RDB, Vault snapshots), the
//! adapters and the state machine come next.

pub mod info;
pub mod policy;
pub mod wal;
