//! Backup verification: the domain rules of the backup audit (issue #4), pure and exhaustively
//! testable. First pieces: WAL segment names and chain continuity, barman's `backup.info`, the
//! backup policies of the HA document with the freshness and retention checks, and the Redis RDB
//! verifier. Still to come: tar/backup_manifest/pg_control and Vault snapshot verifiers, the
//! adapters (S3 catalog) and the backup-audit state machine.

pub mod info;
pub mod policy;
pub mod rdb;
pub mod vault;
pub mod wal;
