//! The tasks: one file per Lambda function the state machines invoke (`check-catchup` is
//! [`check_catchup`]). Each parses its input, asks `hapilot-core` for the decision, calls
//! adapters for the effects, records the step in the run journal and returns the next state's
//! JSON. `plan_failover` is the one to imitate.

pub mod alarm_router;
pub mod answer_approval;
pub mod audit_backup_policy;
pub mod backup_catalog;
pub mod canary_gate;
pub mod check_catchup;
pub mod check_data;
pub mod check_dns_sync;
pub mod check_health;
pub mod check_redis_restore;
pub mod check_restore;
pub mod choose_standby;
pub mod describe_run;
pub mod evaluate_readiness;
pub mod fence_primary;
pub mod follow_new_primary;
pub mod plan_backup_audit;
pub mod plan_drill;
pub mod plan_failback;
pub mod plan_failover;
pub mod plan_restore;
pub mod promote_database;
pub mod promote_vault;
pub mod publish_replication_lag;
pub mod read_replication;
pub mod record_run;
pub mod report_backup_audit;
pub mod report_drill;
pub mod reprotect_database;
pub mod request_approval;
pub mod restore_database;
pub mod restore_vault;
pub mod scale_region;
pub mod shift_traffic;
pub mod snapshot_weights;
pub mod start_run;
pub mod tear_down_restore;
pub mod unfence_primary;
pub mod verify_restore_point;
pub mod watch_region;
