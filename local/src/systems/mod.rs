//! The systems hapilot drives, simulated or real on loopback: the regional gateways and the
//! traffic they serve, real PostgreSQL (with its host agent, Patroni and CloudNativePG
//! stand-ins, LiteLLM's table and the backup jobs), Kubernetes, Vault, a real Redis and a real
//! Prometheus.

pub mod agent;
pub mod barman;
pub mod cnpg;
pub mod config_backup;
pub mod gateway;
pub mod kubernetes;
pub mod litellm;
pub mod patroni;
pub mod postgres;
pub mod prometheus;
pub mod redis;
pub mod user_traffic;
pub mod vault;
pub mod vault_rules;
