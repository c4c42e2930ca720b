//! Function name -> handler. [`invoke`] is the one dispatch that both the Lambda mains
//! ([`crate::lambda_main`]) and the local stack's Lambda host go through, so a function behaves
//! the same in AWS and locally.

use hapilot_core::switch_choice::{SwitchChoice, SwitchPath, switch_for};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use aws_config::SdkConfig;
use hapilot_adapters::HttpProber;
use hapilot_adapters::backups::S3BackupStore;
use hapilot_adapters::canary_metrics::TrafficProvider;
use hapilot_adapters::database::AnyDatabase;
use hapilot_adapters::journal::S3Journal;
use hapilot_adapters::monitoring::{CloudWatch, EmbeddedMetrics, MetricSink};
use hapilot_adapters::notifier::SnsNotifier;
use hapilot_adapters::orchestrator::StepFunctions;
use hapilot_adapters::scaler::KubernetesScaler;
use hapilot_adapters::traffic_switch::{AnyTrafficSwitch, TrafficSwitchConfig};
use serde_json::Value;

use crate::config::Settings;
use crate::{
    FunctionError, alarm_router, answer_approval, audit_backup_policy, canary_gate, check_catchup,
    check_data, check_dns_sync, check_health, check_redis_restore, check_restore, choose_standby,
    describe_run, evaluate_readiness, fence_primary, follow_new_primary, plan_backup_audit,
    plan_drill, plan_failback, plan_failover, plan_restore, promote_database, promote_vault,
    publish_replication_lag, read_replication, record_run, report_backup_audit, report_drill,
    reprotect_database, request_approval, restore_database, restore_vault, scale_region,
    shift_traffic, snapshot_weights, start_run, tear_down_restore, unfence_primary,
    verify_restore_point, watch_region,
};

/// The future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, FunctionError>> + Send>>;
/// A handler: JSON event in, JSON result or a named error out.
pub type Handler = Arc<dyn Fn(Value) -> HandlerFuture + Send + Sync>;

/// The configuration and adapters handlers need, built once per process (a Lambda's init).
#[derive(Debug, Clone)]
pub struct Adapters {
    /// The deployment's configuration.
    pub settings: Settings,
    /// HTTP client for Patroni and Kubernetes APIs.
    pub http: reqwest::Client,
    /// Health prober.
    pub prober: HttpProber,
    /// Journal and reports (audit bucket).
    pub journal: S3Journal,
    /// Notifications (SNS topic).
    pub notifier: SnsNotifier,
    /// Alarms (re-verifying an event).
    pub cloudwatch: CloudWatch,
    /// hapilot's own metrics (`HAPILOT_METRICS`).
    pub metrics: MetricSink,
    /// Step Functions.
    pub runs: StepFunctions,
    /// AWS configuration, for clients of other regions (traffic metrics).
    pub sdk: SdkConfig,
}

impl Adapters {
    /// Builds every adapter from AWS configuration and the deployment's settings.
    pub fn new(sdk: &SdkConfig, settings: Settings) -> Result<Self, FunctionError> {
        let sdk = &hapilot_adapters::sdk::one_attempt(sdk);
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| FunctionError::Setup(e.to_string()))?;
        Ok(Self {
            prober: HttpProber::new().map_err(|e| FunctionError::Setup(e.to_string()))?,
            journal: S3Journal::from_sdk(sdk, settings.audit_bucket.as_deref().unwrap_or_default()),
            notifier: SnsNotifier::from_sdk(sdk, settings.topic_arn.as_deref().unwrap_or_default()),
            cloudwatch: CloudWatch::from_sdk(sdk),
            metrics: if settings.embedded_metrics {
                MetricSink::Embedded(EmbeddedMetrics)
            } else {
                MetricSink::Api(CloudWatch::from_sdk(sdk))
            },
            runs: StepFunctions::from_sdk(sdk),
            sdk: sdk.clone(),
            http,
            settings,
        })
    }

    /// The traffic switch a planned move asks for (`shift-weights`, `fence-by-weights`):
    /// `weights`, or the deployment's own data-plane switch (`HAPILOT_TRAFFIC_SWITCH`), which a
    /// weights move turns back on. Any other is a setup error naming both
    /// ([`switch_for`] decides).
    pub fn planned_traffic_switch(&self, kind: &str) -> Result<AnyTrafficSwitch, FunctionError> {
        self.traffic_switch(SwitchPath::Planned, kind)
    }

    /// The traffic switch of the emergency path (`shift-traffic`, `fence-primary`): only the
    /// deployment's data-plane switch. Their roles may not call Route53's control plane, so a
    /// `weights` move is refused here by name rather than by IAM halfway through a failover
    /// ([`switch_for`] decides).
    pub fn emergency_traffic_switch(&self, kind: &str) -> Result<AnyTrafficSwitch, FunctionError> {
        self.traffic_switch(SwitchPath::Emergency, kind)
    }

    fn traffic_switch(
        &self,
        path: SwitchPath,
        kind: &str,
    ) -> Result<AnyTrafficSwitch, FunctionError> {
        let deployed = &self.settings.traffic_switch;
        match switch_for(path, kind, deployed.kind()).map_err(FunctionError::Setup)? {
            SwitchChoice::Weights => self.build_switch(&TrafficSwitchConfig::Weights {}),
            SwitchChoice::Deployed => self.build_switch(deployed),
        }
    }

    fn build_switch(
        &self,
        config: &TrafficSwitchConfig,
    ) -> Result<AnyTrafficSwitch, FunctionError> {
        let zone_and_name = match (&self.settings.hosted_zone_id, &self.settings.record_name) {
            (Some(z), Some(n)) => Some((z.as_str(), n.as_str())),
            _ => None,
        };
        AnyTrafficSwitch::new(config, &self.sdk, zone_and_name)
            .map_err(|e| FunctionError::Setup(e.to_string()))
    }

    /// Route53's records of the global name (read-only where the role allows only reads).
    pub fn dns(&self) -> hapilot_adapters::dns::Route53Dns {
        hapilot_adapters::dns::Route53Dns::from_sdk(&self.sdk)
    }

    /// The database of `region`.
    pub fn database(&self, region: &str) -> Result<AnyDatabase, FunctionError> {
        let target = self
            .settings
            .region(region)?
            .database
            .as_ref()
            .ok_or_else(|| {
                FunctionError::Setup(format!(
                    "HAPILOT_REGIONS has no database for region {region}"
                ))
            })?;
        let ca_file = match target {
            hapilot_adapters::database::DatabaseTarget::Patroni { ca_file, .. } => {
                ca_file.as_deref()
            }
            hapilot_adapters::database::DatabaseTarget::Cloudnativepg { kubernetes, .. } => {
                kubernetes.ca_file.as_deref()
            }
            hapilot_adapters::database::DatabaseTarget::Postgres { .. } => None,
        };
        Ok(AnyDatabase::new(target, self.http_for(ca_file)?))
    }

    /// The HTTP client for a system whose certificate `ca_file` signs (the shared client when
    /// none is given).
    pub fn http_for(&self, ca_file: Option<&str>) -> Result<reqwest::Client, FunctionError> {
        match ca_file {
            None => Ok(self.http.clone()),
            Some(_) => hapilot_adapters::http_client::client_trusting(
                ca_file,
                std::time::Duration::from_secs(30),
            )
            .map_err(|e| FunctionError::Setup(e.to_string())),
        }
    }

    /// The backup bucket store of `region` (`None`: this deployment's own region).
    pub fn backups(&self, region: Option<&str>) -> S3BackupStore {
        S3BackupStore::from_sdk(&self.sdk, region)
    }

    /// The store of the DR copy of the backups (what restores read).
    pub fn dr_backups(&self) -> S3BackupStore {
        self.backups(self.settings.dr_region.as_deref())
    }

    /// The Vault of `region`.
    pub fn vault(&self, region: &str) -> Result<hapilot_adapters::vault::HttpVault, FunctionError> {
        self.restore_vault_target(region, false)
            .map(|(vault, _)| vault)
    }

    /// The Vault a restore lays its snapshot into (with `scratch`, the restore tests' scratch
    /// Vault, `restore_test_vault`) and the KV secret to read through it.
    pub fn restore_vault_target(
        &self,
        region: &str,
        scratch: bool,
    ) -> Result<(hapilot_adapters::vault::HttpVault, Option<String>), FunctionError> {
        let config = self.settings.region(region)?;
        let (target, field) = match scratch {
            true => (&config.restore_test_vault, "restore_test_vault"),
            false => (&config.vault, "vault"),
        };
        let target = target.clone().ok_or_else(|| {
            FunctionError::Setup(format!(
                "HAPILOT_REGIONS has no {field} for region {region}"
            ))
        })?;
        let known_secret = target.known_secret.clone();
        let vault = hapilot_adapters::vault::HttpVault::new(
            self.http_for(target.ca_file.as_deref())?,
            target,
        );
        Ok((vault, known_secret))
    }

    /// The Vault of `region`, if it has one configured.
    pub fn vault_if_any(
        &self,
        region: &str,
    ) -> Result<Option<hapilot_adapters::vault::HttpVault>, FunctionError> {
        match self.settings.region(region)?.vault {
            Some(_) => self.vault(region).map(Some),
            None => Ok(None),
        }
    }

    /// The scratch host that loads a restore test's RDB: `restore_test`'s host agent.
    pub fn redis_scratch_host(
        &self,
        region: &str,
    ) -> Result<hapilot_adapters::restore::HttpRestoreAgent, FunctionError> {
        match &self.settings.region(region)?.restore_test {
            Some(hapilot_adapters::restore::RestoreDatabaseTarget::Postgres {
                agent_url, ..
            }) => Ok(hapilot_adapters::restore::HttpRestoreAgent::new(
                self.http_for(None)?,
                agent_url,
            )),
            _ => Err(FunctionError::Setup(format!(
                "HAPILOT_REGIONS has no restore_test host agent for {region} (restore_test.agent_url): RDBs are loaded there"
            ))),
        }
    }

    /// The restore agent of `region` (with `scratch`, its restore test target's) and the DSN of
    /// the server it restores.
    pub fn restore_agent(
        &self,
        region: &str,
        scratch: bool,
    ) -> Result<(hapilot_adapters::restore::AnyRestoreAgent, String), FunctionError> {
        let config = self.settings.region(region)?;
        let (target, field) = match scratch {
            true => (config.restore_test.clone(), "restore_test"),
            false => (config.restore.clone(), "restore"),
        };
        let target = target.ok_or_else(|| {
            FunctionError::Setup(format!(
                "HAPILOT_REGIONS has no {field} target for region {region}"
            ))
        })?;
        let ca_file = match &target {
            hapilot_adapters::restore::RestoreDatabaseTarget::Cloudnativepg {
                kubernetes, ..
            } => kubernetes.ca_file.as_deref(),
            hapilot_adapters::restore::RestoreDatabaseTarget::Postgres { .. } => None,
        };
        Ok((
            hapilot_adapters::restore::AnyRestoreAgent::new(self.http_for(ca_file)?, &target),
            target.dsn().to_string(),
        ))
    }

    /// The Kubernetes API of `region` for reading workloads, if it has one.
    pub fn cluster(
        &self,
        region: &str,
    ) -> Result<Option<hapilot_adapters::cluster::KubernetesCluster>, FunctionError> {
        match self.settings.region(region)?.kubernetes.clone() {
            Some(k) => Ok(Some(hapilot_adapters::cluster::KubernetesCluster::new(
                self.http_for(k.ca_file.as_deref())?,
                k,
            ))),
            None => Ok(None),
        }
    }

    /// The outside systems readiness looks at, each by region (`None` where not configured).
    pub fn readiness_sources(
        &self,
    ) -> crate::evaluate_readiness::RegionSources<
        hapilot_adapters::cluster::KubernetesCluster,
        AnyDatabase,
        hapilot_adapters::vault::HttpVault,
        hapilot_adapters::redis::TcpRedis,
    > {
        let (a, b, c, d) = (self.clone(), self.clone(), self.clone(), self.clone());
        crate::evaluate_readiness::RegionSources {
            cluster: Box::new(move |r| a.cluster(r)),
            database: Box::new(move |r| match b.settings.region(r)?.database {
                Some(_) => b.database(r).map(Some),
                None => Ok(None),
            }),
            vault: Box::new(move |r| c.vault_if_any(r)),
            redis: Box::new(move |r| d.redis(r)),
        }
    }

    /// The Redis of `region`, if it has one configured.
    pub fn redis(
        &self,
        region: &str,
    ) -> Result<Option<hapilot_adapters::redis::TcpRedis>, FunctionError> {
        Ok(self
            .settings
            .region(region)?
            .redis
            .clone()
            .map(hapilot_adapters::redis::TcpRedis::new))
    }

    /// The Kubernetes scaler of `region`, if it has a Kubernetes API configured.
    pub fn scaler(&self, region: &str) -> Result<Option<KubernetesScaler>, FunctionError> {
        match self.settings.region(region)?.kubernetes.clone() {
            Some(k) => Ok(Some(KubernetesScaler::new(
                self.http_for(k.ca_file.as_deref())?,
                k,
            ))),
            None => Ok(None),
        }
    }
}

/// Generates one entry point per function (what its Lambda main calls, so a binary links only
/// its own handler) and [`invoke`], the dispatch by name the local Lambda host uses.
macro_rules! functions {
    ($( $name:literal => $entry:ident (|$a:ident, $event:ident| $body:expr); )*) => {
        /// One entry point per function: `src/bin/<function>.rs` calls exactly one of these.
        pub mod entry {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[doc = concat!("Runs `", $name, "`.")]
                pub async fn $entry($a: &Adapters, $event: Value) -> Result<Value, FunctionError> {
                    $body
                }
            )*
        }

        /// Runs function `name` with `event`.
        pub async fn invoke(a: &Adapters, name: &str, event: Value) -> Result<Value, FunctionError> {
            match name {
                $( $name => entry::$entry(a, event).await, )*
                other => Err(FunctionError::Setup(format!("no function named {other}"))),
            }
        }
    };
}

functions! {
    "alarm-router" => alarm_router(|a, event| {
        alarm_router::alarm_router(&a.settings, &a.cloudwatch, &a.runs, (&a.journal, &a.notifier), event).await
    });
    "answer-approval" => answer_approval(|a, event| {
        answer_approval::answer_approval(&a.settings, &a.journal, &a.runs, event).await
    });
    "audit-backup-policy" => audit_backup_policy(|a, event| {
        let dr_region = event["target"]["dr_region"].as_str().map(str::to_string);
        audit_backup_policy::audit_backup_policy(&a.backups(None), &a.backups(dr_region.as_deref()), event).await
    });
    "canary-gate" => canary_gate(|a, event| match &a.settings.canary_provider {
        Some(source) => {
            let ca_file = match source {
                hapilot_adapters::canary_metrics::TrafficSource::Prometheus { ca_file, .. } => ca_file.as_deref(),
                _ => None,
            };
            let traffic = TrafficProvider::new(source.clone(), a.sdk.clone(), a.http_for(ca_file)?);
            canary_gate::canary_gate(&traffic, &a.journal, event).await
        }
        None => Err(FunctionError::Setup("HAPILOT_CANARY_PROVIDER is not set".into())),
    });
    "check-catchup" => check_catchup(|a, event| {
        let patroni = |r: &str| {
            a.settings.regions.get(r).is_some_and(|c| {
                matches!(c.database, Some(hapilot_adapters::database::DatabaseTarget::Patroni { .. }))
            })
        };
        check_catchup::check_catchup(|r| a.database(r), patroni, &a.journal, event).await
    });
    "check-restore" => check_restore(|a, event| {
        check_restore::check_restore(
            |r, scratch| {
                let (agent, dsn) = a.restore_agent(r, scratch)?;
                Ok((agent, hapilot_adapters::database::PostgresDatabase::new(dsn)))
            },
            &a.journal,
            event,
        )
        .await
    });
    "check-data" => check_data(|a, event| {
        check_data::check_data(&a.settings, |dsn: &hapilot_adapters::SecretText| hapilot_adapters::database::PostgresDatabase::new(dsn), event).await
    });
    "check-dns-sync" => check_dns_sync(|a, event| check_dns_sync::check_dns_sync(|k| a.planned_traffic_switch(k), event).await);
    "check-health" => check_health(|a, event| check_health::check_health(&a.prober, event).await);
    "choose-standby" => choose_standby(|a, event| {
        choose_standby::choose_standby(&a.prober, |r| a.database(r), |r| a.scaler(r), &a.settings, &a.journal, event).await
    });
    "describe-run" => describe_run(|a, event| describe_run::describe_run(&a.runs, event).await);
    "fence-by-weights" => fence_by_weights(|a, event| {
        fence_primary::fence_primary(|k| a.planned_traffic_switch(k), |r| a.database(r), &a.settings, &a.journal, event).await
    });
    "fence-primary" => fence_primary(|a, event| {
        fence_primary::fence_primary(|k| a.emergency_traffic_switch(k), |r| a.database(r), &a.settings, &a.journal, event).await
    });
    "follow-new-primary" => follow_new_primary(|a, event| {
        follow_new_primary::follow_new_primary(|r| a.database(r), &a.settings, &a.journal, event).await
    });
    "plan-backup-audit" => plan_backup_audit(|a, event| plan_backup_audit::plan_backup_audit(&a.settings, event).await);
    "plan-restore" => plan_restore(|a, event| {
        plan_restore::plan_restore(&a.dr_backups(), &a.settings, (&a.journal, &a.runs), event).await
    });
    "plan-drill" => plan_drill(|a, event| plan_drill::plan_drill(&a.settings, (&a.journal, &a.runs), event).await);
    "plan-failback" => plan_failback(|a, event| plan_failback::plan_failback(&a.settings, &a.dns(), &a.runs, &a.journal, event).await);
    "plan-failover" => plan_failover(|a, event| plan_failover::plan_failover(&a.settings, &a.dns(), &a.runs, &a.journal, event).await);
    "promote-database" => promote_database(|a, event| {
        promote_database::promote_database(|r| a.database(r), &a.settings, &a.journal, event).await
    });
    "publish-replication-lag" => publish_replication_lag(|a, event| {
        publish_replication_lag::publish_replication_lag(&a.settings, |r| a.database(r), (&a.metrics, &a.journal), event).await
    });
    "evaluate-readiness" => evaluate_readiness(|a, event| {
        let simulator = hapilot_adapters::permissions::IamSimulator::from_sdk(&a.sdk);
        let region = a.sdk.region().map(|r| r.to_string()).unwrap_or_default();
        let traffic = hapilot_adapters::route53_health::Route53Health::from_sdk(&a.sdk);
        let schedules = hapilot_adapters::schedules::Scheduler::from_sdk(&a.sdk);
        let global = evaluate_readiness::GlobalSources { alarms: &a.cloudwatch, simulator: &simulator, own_region: &region, traffic: &traffic, schedules: &schedules };
        evaluate_readiness::evaluate_readiness(&a.settings, &a.readiness_sources(), global, (&a.journal, &a.metrics, &a.notifier), event).await
    });
    "read-replication" => read_replication(|a, event| {
        let store = a.dr_backups();
        let archive = a.settings.dr_backup_bucket.as_deref().map(|bucket| read_replication::WalArchive { store: &store, bucket });
        read_replication::read_replication(|r| a.database(r), &a.journal, archive, event).await
    });
    "record-run" => record_run(|a, event| {
        record_run::record_run(&a.journal, &a.metrics, &a.notifier, &a.runs, event).await
    });
    "report-backup-audit" => report_backup_audit(|a, event| {
        report_backup_audit::report_backup_audit(&a.journal, &a.metrics, &a.notifier, event).await
    });
    "report-drill" => report_drill(|a, event| {
        report_drill::report_drill(&a.journal, &a.metrics, &a.notifier, event).await
    });
    "reprotect-database" => reprotect_database(|a, event| {
        reprotect_database::reprotect_database(|r| a.database(r), &a.settings, &a.journal, event).await
    });
    "restore-database" => restore_database(|a, event| {
        restore_database::restore_database(&a.dr_backups(), |r, scratch| a.restore_agent(r, scratch).map(|(agent, _)| agent), &a.journal, event).await
    });
    "promote-vault" => promote_vault(|a, event| {
        promote_vault::promote_vault(|r| a.vault_if_any(r), &a.settings, &a.journal, event).await
    });
    "restore-vault" => restore_vault(|a, event| {
        restore_vault::restore_vault(&a.dr_backups(), |r, scratch| a.restore_vault_target(r, scratch), &a.journal, event).await
    });
    "check-redis-restore" => check_redis_restore(|a, event| {
        check_redis_restore::check_redis_restore(&a.dr_backups(), |r| a.redis_scratch_host(r), &a.journal, event).await
    });
    "tear-down-restore" => tear_down_restore(|a, event| {
        tear_down_restore::tear_down_restore(|r| a.restore_agent(r, true).map(|(agent, _)| agent), &a.journal, event).await
    });
    "request-approval" => request_approval(|a, event| {
        let at = request_approval::AnswerAt {
            region: a.sdk.region().map(|r| r.to_string()),
            bucket: a.settings.audit_bucket.clone(),
        };
        request_approval::request_approval(&a.journal, &a.notifier, &at, event).await
    });
    "scale-region" => scale_region(|a, event| {
        scale_region::scale_region(|r| a.scaler(r), |r| a.redis(r), &a.settings, &a.journal, event).await
    });
    "shift-traffic" => shift_traffic(|a, event| {
        shift_traffic::shift_traffic(|k| a.emergency_traffic_switch(k), &a.settings, &a.journal, event).await
    });
    "shift-weights" => shift_weights(|a, event| {
        shift_traffic::shift_traffic(|k| a.planned_traffic_switch(k), &a.settings, &a.journal, event).await
    });
    "snapshot-weights" => snapshot_weights(|a, event| {
        snapshot_weights::snapshot_weights(|k| a.planned_traffic_switch(k), &a.journal, event).await
    });
    "verify-restore-point" => verify_restore_point(|a, event| {
        verify_restore_point::verify_restore_point(&a.dr_backups(), &a.journal, event).await
    });
    "start-run" => start_run(|a, event| start_run::start_run(&a.settings, &a.runs, event).await);
    "watch-region" => watch_region(|a, event| {
        let vantage = a.sdk.region().map(|r| r.to_string()).unwrap_or_default();
        watch_region::watch_region(&a.settings, &vantage, &a.prober, &a.metrics, event).await
    });
    "unfence-primary" => unfence_primary(|a, event| {
        unfence_primary::unfence_primary(|r| a.database(r), &a.journal, event).await
    });
}

/// Function name -> handler.
#[derive(Clone, Default)]
pub struct FunctionRegistry {
    handlers: BTreeMap<String, Handler>,
}

impl FunctionRegistry {
    /// Every function of [`crate::catalog::FUNCTIONS`], wired to `adapters`.
    pub fn new(adapters: Adapters) -> Self {
        let adapters = Arc::new(adapters);
        let mut registry = Self::default();
        for spec in crate::catalog::FUNCTIONS {
            let a = adapters.clone();
            registry.insert(spec.name, move |event| {
                let a = a.clone();
                Box::pin(async move { invoke(&a, spec.name, event).await })
            });
        }
        registry
    }

    /// Adds or replaces a handler (tests use this for handlers that misbehave on purpose).
    pub fn insert<F>(&mut self, name: &str, handler: F)
    where
        F: Fn(Value) -> HandlerFuture + Send + Sync + 'static,
    {
        self.handlers.insert(name.to_string(), Arc::new(handler));
    }

    /// The handler of `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<Handler> {
        self.handlers.get(name).cloned()
    }

    /// Every registered function name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }
}

impl std::fmt::Debug for FunctionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.handlers.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registry_serves_exactly_the_catalog() {
        let sdk = hapilot_adapters::sdk::local("http://127.0.0.1:9", "us-east-1");
        let registry =
            FunctionRegistry::new(Adapters::new(&sdk, Settings::with_defaults()).unwrap());
        let names: Vec<_> = registry.names().collect();
        let catalog: Vec<_> = crate::catalog::FUNCTIONS.iter().map(|f| f.name).collect();
        assert_eq!(names, catalog);
    }
}
