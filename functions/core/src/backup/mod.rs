//! Backup verification: the domain rules of the backup audit (issue #4), pure and exhaustively
//! testable. Here so far: WAL segment names and chain continuity, barman's `backup.info`, the
//! backup policies of the HA document with the freshness and retention checks, and the streaming
//! content verifiers (PostgreSQL base backup tar + backup_manifest + pg_control, Vault snapshots,
//! Redis RDB, archived WAL segments), the listing audit (cross-region copies, encryption, Object
//! Lock, WAL chain, achievable RPO) and the audit's request, plan and report.

pub mod audit;
pub mod basebackup;
pub mod catalog;
pub mod config;
pub mod info;
pub mod policy;
pub mod rdb;
pub mod vault;
pub mod verdicts;
pub mod wal;
pub mod windows;
