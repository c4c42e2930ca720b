//! The deployment's configuration, as the Lambdas read it from their environment (set by
//! `infra/template.yaml`) and as the local stack passes it in process.
//!
//! Every variable is parsed once, at start; a bad value stops the function at init with a
//! message that names the variable. Each function then checks that the variables it needs are
//! there ([`Settings::require`]).

use std::collections::BTreeMap;

use hapilot_adapters::SecretText;
use hapilot_adapters::canary_metrics::TrafficSource;
use hapilot_adapters::database::DatabaseTarget;
use hapilot_adapters::scaler::KubernetesTarget;
use hapilot_adapters::secrets::SecretReader;
use hapilot_adapters::traffic_switch::TrafficSwitchConfig;
use hapilot_core::alarm::FailoverTrigger;
use hapilot_core::failover::RegionSite;
use hapilot_core::tier::Tier;
use serde::{Deserialize, Serialize};

use crate::FunctionError;

/// One region of the deployment (an entry of `HAPILOT_REGIONS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// The regional gateway's `/health` URL.
    pub health_url: String,
    /// `SetIdentifier` of this region's weighted record of the global name.
    pub set_identifier: String,
    /// This region's PostgreSQL.
    #[serde(default)]
    pub database: Option<DatabaseTarget>,
    /// This region's Kubernetes API.
    #[serde(default)]
    pub kubernetes: Option<KubernetesTarget>,
    /// This region's Vault (DR restore of raft snapshots, readiness; the token is a secret).
    #[serde(default)]
    pub vault: Option<hapilot_adapters::vault::VaultTarget>,
    /// This region's Redis (readiness reads `INFO replication`).
    #[serde(default)]
    pub redis: Option<hapilot_adapters::redis::RedisTarget>,
    /// Where a DR restore lays down PostgreSQL in this region (host agent + DSN).
    #[serde(default)]
    pub restore: Option<hapilot_adapters::restore::RestoreDatabaseTarget>,
    /// Where a restore test lays down PostgreSQL (a scratch host or cluster, never the DR
    /// restore's: a DR restore must find its target free), torn down after every test.
    #[serde(default)]
    pub restore_test: Option<hapilot_adapters::restore::RestoreDatabaseTarget>,
    /// A scratch Vault a restore test restores the snapshot of its moment into (never the
    /// region's own: a snapshot replaces everything a Vault serves), then reads `known_secret`
    /// through it. Its token: inline, or `<region>.restore_test` in `HAPILOT_VAULT_SECRET`.
    #[serde(default)]
    pub restore_test_vault: Option<hapilot_adapters::vault::VaultTarget>,
}

/// Everything a hapilot function may need to know about its deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// `HAPILOT_HOSTED_ZONE_ID`: the zone of the global name.
    pub hosted_zone_id: Option<String>,
    /// `HAPILOT_RECORD_NAME`: the global name, e.g. `gateway.example.com`.
    pub record_name: Option<String>,
    /// `HAPILOT_GLOBAL_HEALTH_URL`: `/health` through the global name.
    pub global_health_url: Option<String>,
    /// `HAPILOT_REGIONS`: JSON object, region name -> [`RegionConfig`].
    pub regions: BTreeMap<String, RegionConfig>,
    /// `HAPILOT_REGIONS_SECRET`: a Secrets Manager secret (name or ARN) whose `SecretString` is
    /// the `HAPILOT_REGIONS` JSON, read at start by the functions that need the regions (what
    /// the template sets: DSNs and tokens stay out of the functions' configuration).
    pub regions_secret: Option<String>,
    /// `HAPILOT_DATABASE_SECRET`: a secret whose `SecretString` is JSON `{"<region>": {"dsn",
    /// "restore_dsn"?}}`: the database credentials, read only by the functions that use them.
    #[serde(default)]
    pub database_secret: Option<String>,
    /// `HAPILOT_KUBERNETES_SECRET`: JSON `{"<region>": "<bearer token>"}`.
    #[serde(default)]
    pub kubernetes_secret: Option<String>,
    /// `HAPILOT_VAULT_SECRET`: JSON `{"<region>": "<Vault token>"}`.
    #[serde(default)]
    pub vault_secret: Option<String>,
    /// `HAPILOT_CANARY_SECRET`: the Prometheus canary provider's authentication, JSON
    /// `{"kind": "bearer", "token"}` or `{"kind": "basic", "username", "password"}`.
    #[serde(default)]
    pub canary_secret: Option<String>,
    /// `HAPILOT_TIER`: default tier (`Critical` unless set).
    pub tier: Option<Tier>,
    /// `HAPILOT_AUDIT_BUCKET`: bucket for journals and reports.
    pub audit_bucket: Option<String>,
    /// `HAPILOT_TOPIC_ARN`: SNS topic for notifications and approval requests.
    pub topic_arn: Option<String>,
    /// `HAPILOT_FAILOVER_STATE_MACHINE_ARN`: the failover state machine (for the alarm router).
    pub failover_state_machine_arn: Option<String>,
    /// `HAPILOT_FAILOVER_TRIGGERS`: JSON array of [`FailoverTrigger`].
    pub triggers: Vec<FailoverTrigger>,
    /// `HAPILOT_AUTOMATIC_FAILOVER`: `true` (default) or `false` (the kill switch).
    pub automatic_failover: bool,
    /// `HAPILOT_COOLDOWN_SECONDS`: minimum time between failover runs (default 1800).
    pub cooldown_secs: u64,
    /// `HAPILOT_APPROVERS`: who may answer a run that waits for a human (ARNs, comma separated).
    #[serde(default)]
    pub approvers: Vec<String>,
    /// `HAPILOT_APPROVAL_URL`: answer-approval's function URL (the stack output `ApprovalUrl`).
    #[serde(default)]
    pub approval_url: Option<String>,
    /// `HAPILOT_SCALE_TARGETS`: JSON object, deployment -> replicas (default: the HA document's
    /// `{"litellm": 5, "agentgateway": 3}`).
    pub scale_targets: BTreeMap<String, i64>,
    /// `HAPILOT_EMERGENCY_ROLES`: JSON object, emergency-path function -> its role's ARN
    /// (readiness simulates each role's calls with IAM's policy simulator).
    pub emergency_roles: BTreeMap<String, String>,
    /// `HAPILOT_READINESS_WORKLOADS`: JSON array of the gateway Deployments readiness checks in
    /// each region (default `["litellm", "agentgateway", "vllm"]`).
    pub readiness_workloads: Vec<String>,
    /// `HAPILOT_DRILL_SCHEDULE`: the EventBridge Scheduler schedule that runs the DR drill
    /// (readiness checks that it exists and is enabled).
    #[serde(default)]
    pub drill_schedule: Option<String>,
    /// `HAPILOT_CANARY_PROVIDER`: JSON [`TrafficSource`], where the canary gate reads traffic.
    pub canary_provider: Option<TrafficSource>,
    /// `HAPILOT_FAILOVER_INPUT_DEFAULTS`: JSON object merged under every alarm-started run's
    /// input (probe counts, timeouts).
    pub failover_input_defaults: serde_json::Map<String, serde_json::Value>,
    /// `HAPILOT_FAILBACK_STATE_MACHINE_ARN`: the failback state machine (the DR drill's child).
    pub failback_state_machine_arn: Option<String>,
    /// `HAPILOT_BACKUP_BUCKET`: where this region's backups are (the backup audit).
    pub backup_bucket: Option<String>,
    /// `HAPILOT_DR_BACKUP_BUCKET`: the DR region's copy of them.
    pub dr_backup_bucket: Option<String>,
    /// `HAPILOT_DR_REGION`: the DR bucket's region.
    pub dr_region: Option<String>,
    /// `HAPILOT_METRICS`: `api` (default: `PutMetricData`) or `emf` (embedded metric format log
    /// lines, what the template sets for the Lambdas).
    pub embedded_metrics: bool,
    /// `HAPILOT_TRAFFIC_SWITCH`: JSON [`TrafficSwitchConfig`], how the emergency path moves
    /// traffic (default `{"kind": "weights"}`).
    pub traffic_switch: TrafficSwitchConfig,
    /// `HAPILOT_ALLOW_PLAIN_HTTP`: whether `http://` URLs are accepted (the local stack;
    /// default false: every URL must be `https://`).
    #[serde(default)]
    pub allow_plain_http: bool,
}

/// One configuration variable: its name, what it means (the README's table is made from
/// these), its default, how it is parsed into [`Settings`] and whether it is set. The one place
/// a variable is declared: parsing, `require`, `hapilot.toml`'s `[settings]` keys, the README
/// and the template's consistency test all read this table.
pub struct Variable {
    /// `HAPILOT_...`.
    pub name: &'static str,
    /// The README's text.
    pub doc: &'static str,
    /// The default, as the README says it (empty: none).
    pub default: &'static str,
    parse: fn(&mut Settings, &str) -> Result<(), FunctionError>,
    is_set: fn(&Settings) -> bool,
}

fn json<T: serde::de::DeserializeOwned>(var: &str, text: &str) -> Result<T, FunctionError> {
    serde_json::from_str(text).map_err(|e| FunctionError::Setup(format!("{var} is not valid: {e}")))
}

fn flag(var: &str, text: &str) -> Result<bool, FunctionError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "1" => Ok(true),
        "false" | "off" | "0" => Ok(false),
        other => Err(FunctionError::Setup(format!(
            "{var} is not valid: {other:?} (use true or false)"
        ))),
    }
}

/// A variable that is plain text into an `Option<String>` field.
macro_rules! text_variable {
    ($name:literal, $field:ident, $doc:literal) => {
        Variable {
            name: $name,
            doc: $doc,
            default: "",
            parse: |s, v| {
                s.$field = Some(v.to_string());
                Ok(())
            },
            is_set: |s| s.$field.is_some(),
        }
    };
}

/// Every variable, in the order `hapilot.toml`'s errors and the README list them.
pub const VARIABLES: &[Variable] = &[
    text_variable!(
        "HAPILOT_HOSTED_ZONE_ID",
        hosted_zone_id,
        "the global name's zone (weighted records, one SetIdentifier per region)"
    ),
    text_variable!("HAPILOT_RECORD_NAME", record_name, "the global name"),
    text_variable!(
        "HAPILOT_GLOBAL_HEALTH_URL",
        global_health_url,
        "`/health` through the global name (the final verification)"
    ),
    Variable {
        name: "HAPILOT_REGIONS",
        doc: "JSON: region -> `{\"health_url\", \"set_identifier\", \"database\": {\"backend\": \"postgres\", \"dsn\", \"agent_url\"?} or {\"backend\": \"patroni\", \"url\", \"member\"} or {\"backend\": \"cloudnativepg\", \"kubernetes\": {\"url\", \"token\", \"namespace\", \"ca_file\"?}, \"cluster\", \"dsn\"}, \"kubernetes\": {\"url\", \"token\", \"namespace\"}, \"vault\"?: {\"url\", \"token\", \"performance_replication\"?, \"known_secret\"?}, \"redis\"?: {\"address\": \"host:port\" or \"rediss://host:port\" (TLS), \"ca_pem\"?, \"password\"?, \"sentinel\"?: {\"addresses\", \"master_name\", \"password\"?}}, \"restore\"?: {\"backend\": \"postgres\", \"agent_url\", \"dsn\"} or {\"backend\": \"cloudnativepg\", \"kubernetes\", \"cluster\", \"destination_path\", \"server_name\", \"dsn\"}}` (`agent_url`: re-protection; `vault`: readiness, the failover's Vault promotion (every region's, with `known_secret` a KV v2 path read after it) and the DR restore; `restore`: DR restore into that region; `restore_test`?: the same shape, a scratch target the restore test lays down and tears down; `restore_test_vault`?: a scratch Vault (`vault`'s shape) the restore test restores the snapshot into and reads `known_secret` through). A `dsn` is libpq's URI (`postgresql://user@host:5432/db?sslmode=verify-full&sslrootcert=system`) or key=value form; `sslmode` is honoured as libpq defines it (`disable`, `prefer` (default without a CA), `require`, `verify-ca`, `verify-full` (default when `sslrootcert` is given)), `sslrootcert` is a PEM file, `system`, or the PEM text itself (quoted, in the database secret: a Lambda has no file to point at), and a `connect_timeout` of 5 s applies unless the DSN sets one",
        default: "",
        parse: |s, v| {
            s.regions = regions_json("HAPILOT_REGIONS", v)?;
            Ok(())
        },
        is_set: |s| !s.regions.is_empty(),
    },
    text_variable!(
        "HAPILOT_REGIONS_SECRET",
        regions_secret,
        "instead of `HAPILOT_REGIONS`: a Secrets Manager secret (name or ARN) holding that JSON, read at start by the functions that need the regions (the template's way: DSNs and tokens stay out of the functions' configuration). Setting both is refused"
    ),
    Variable {
        name: "HAPILOT_TIER",
        doc: "default tier (`Standard`, `High`, `Critical`)",
        default: "Critical",
        parse: |s, v| {
            s.tier =
                Some(v.parse().map_err(|e| {
                    FunctionError::Setup(format!("HAPILOT_TIER is not valid: {e}"))
                })?);
            Ok(())
        },
        is_set: |s| s.tier.is_some(),
    },
    text_variable!(
        "HAPILOT_AUDIT_BUCKET",
        audit_bucket,
        "journal and reports bucket"
    ),
    text_variable!("HAPILOT_TOPIC_ARN", topic_arn, "notification topic"),
    text_variable!(
        "HAPILOT_FAILOVER_STATE_MACHINE_ARN",
        failover_state_machine_arn,
        "for the alarm router: what to start"
    ),
    Variable {
        name: "HAPILOT_FAILOVER_TRIGGERS",
        doc: "for the alarm router: `[{\"alarm_name\", \"primary_region\", \"standby_region\", \"tier\", \"vantage_alarms\"?, \"quorum\"?, \"standby_candidates\"?}]` (`standby_candidates`: other secondaries the run may choose instead, in order)",
        default: "",
        parse: |s, v| {
            s.triggers = json("HAPILOT_FAILOVER_TRIGGERS", v)?;
            Ok(())
        },
        is_set: |s| !s.triggers.is_empty(),
    },
    Variable {
        name: "HAPILOT_AUTOMATIC_FAILOVER",
        doc: "the kill switch: `false` and no alarm starts a failover",
        default: "true",
        parse: |s, v| {
            s.automatic_failover = flag("HAPILOT_AUTOMATIC_FAILOVER", v)?;
            Ok(())
        },
        is_set: |_| true,
    },
    Variable {
        name: "HAPILOT_COOLDOWN_SECONDS",
        doc: "anti ping-pong: no alarm-started failover within this long of the last traffic move",
        default: "1800",
        parse: |s, v| {
            s.cooldown_secs = v.trim().parse().map_err(|e| {
                FunctionError::Setup(format!("HAPILOT_COOLDOWN_SECONDS is not valid: {e}"))
            })?;
            Ok(())
        },
        is_set: |_| true,
    },
    Variable {
        name: "HAPILOT_SCALE_TARGETS",
        doc: "JSON deployment -> replicas the failover scales the standby to (readiness checks they fit)",
        default: "{\"litellm\": 5, \"agentgateway\": 3}",
        parse: |s, v| {
            s.scale_targets = json("HAPILOT_SCALE_TARGETS", v)?;
            Ok(())
        },
        is_set: |_| true,
    },
    Variable {
        name: "HAPILOT_READINESS_WORKLOADS",
        doc: "JSON array of the gateway Deployments readiness checks in each region",
        default: "[\"litellm\", \"agentgateway\", \"vllm\"]",
        parse: |s, v| {
            s.readiness_workloads = json("HAPILOT_READINESS_WORKLOADS", v)?;
            Ok(())
        },
        is_set: |_| true,
    },
    text_variable!(
        "HAPILOT_DRILL_SCHEDULE",
        drill_schedule,
        "the EventBridge Scheduler schedule that runs the DR drill (the template's `DrDrillSchedule`); readiness checks that it exists and is enabled"
    ),
    Variable {
        name: "HAPILOT_APPROVERS",
        doc: "who may answer an approval through answer-approval's function URL: IAM user or role ARNs (a role covers its sessions; a trailing `*` matches a prefix), comma separated",
        default: "",
        parse: |s, v| {
            s.approvers = hapilot_core::approval::parse_approvers(v);
            Ok(())
        },
        is_set: |s| !s.approvers.is_empty(),
    },
    Variable {
        name: "HAPILOT_APPROVAL_URL",
        doc: "answer-approval's function URL (the stack output ApprovalUrl): `hapilot approve/deny` sign their answer for it, so the approver is who AWS authenticated",
        default: "",
        parse: |s, v| {
            s.approval_url = Some(v.trim().to_string());
            Ok(())
        },
        is_set: |s| s.approval_url.is_some(),
    },
    Variable {
        name: "HAPILOT_EMERGENCY_ROLES",
        doc: "JSON emergency-path function -> its role's ARN; readiness simulates each role's calls (the template fills it)",
        default: "",
        parse: |s, v| {
            s.emergency_roles = json("HAPILOT_EMERGENCY_ROLES", v)?;
            Ok(())
        },
        is_set: |s| !s.emergency_roles.is_empty(),
    },
    Variable {
        name: "HAPILOT_CANARY_PROVIDER",
        doc: "JSON: `{\"kind\": \"cloudwatch\", \"namespace\", \"request_metric\", \"error_metric\", \"dimensions\": {region: {name: value}}}` or `{\"kind\": \"prometheus\", \"url\", \"request_query\", \"error_query\", \"latency\"?: {\"preset\"?, \"queries\"?, \"rate_window_ms\"?, \"samples\"?}}` (latency: the canary judge's series)",
        default: "",
        parse: |s, v| {
            s.canary_provider = Some(json("HAPILOT_CANARY_PROVIDER", v)?);
            Ok(())
        },
        is_set: |s| s.canary_provider.is_some(),
    },
    Variable {
        name: "HAPILOT_FAILOVER_INPUT_DEFAULTS",
        doc: "JSON merged under alarm-started runs' input (probe counts, timeouts)",
        default: "{}",
        parse: |s, v| {
            s.failover_input_defaults = json("HAPILOT_FAILOVER_INPUT_DEFAULTS", v)?;
            Ok(())
        },
        is_set: |_| true,
    },
    text_variable!(
        "HAPILOT_FAILBACK_STATE_MACHINE_ARN",
        failback_state_machine_arn,
        "the DR drill's fail-back child"
    ),
    text_variable!(
        "HAPILOT_BACKUP_BUCKET",
        backup_bucket,
        "the backups (the audit)"
    ),
    text_variable!(
        "HAPILOT_DR_BACKUP_BUCKET",
        dr_backup_bucket,
        "their DR region's copy (the audit, DR restore)"
    ),
    text_variable!("HAPILOT_DR_REGION", dr_region, "the DR copy's region"),
    Variable {
        name: "HAPILOT_METRICS",
        doc: "`api` (`PutMetricData`; the local stack and the CLI) or `emf` (embedded metric format lines on stdout, which CloudWatch Logs turns into the same metrics; the template sets it, so no function needs `cloudwatch:PutMetricData`)",
        default: "api",
        parse: |s, v| {
            s.embedded_metrics = match v.trim().to_ascii_lowercase().as_str() {
                "emf" => true,
                "api" => false,
                other => {
                    return Err(FunctionError::Setup(format!(
                        "HAPILOT_METRICS is not valid: {other:?} (use emf or api)"
                    )));
                }
            };
            Ok(())
        },
        is_set: |_| true,
    },
    Variable {
        name: "HAPILOT_TRAFFIC_SWITCH",
        doc: "JSON: how ungraceful failovers move traffic: `{\"kind\": \"weights\"}`, `{\"kind\": \"health_check\", ...}` or `{\"kind\": \"arc_routing_control\", ...}` (see \"With the primary region dark\")",
        default: "{\"kind\": \"weights\"}",
        parse: |s, v| {
            s.traffic_switch = json("HAPILOT_TRAFFIC_SWITCH", v)?;
            Ok(())
        },
        is_set: |_| true,
    },
    Variable {
        name: "HAPILOT_ALLOW_PLAIN_HTTP",
        doc: "`true` to accept `http://` URLs (the local stack sets it); otherwise every URL a function is given must be `https://`, and a URL holding a user name or password is refused at start, the error naming the setting and never the URL",
        default: "false",
        parse: |s, v| {
            s.allow_plain_http = flag("HAPILOT_ALLOW_PLAIN_HTTP", v)?;
            Ok(())
        },
        is_set: |_| true,
    },
    text_variable!(
        "HAPILOT_DATABASE_SECRET",
        database_secret,
        "Secrets Manager secret `{\"<region>\": {\"dsn\"?, \"restore_dsn\"?, \"patroni_auth\"?}}`: the database credentials, read only by the functions that use them"
    ),
    text_variable!(
        "HAPILOT_KUBERNETES_SECRET",
        kubernetes_secret,
        "Secrets Manager secret `{\"<region>\": \"<bearer token>\"}`"
    ),
    text_variable!(
        "HAPILOT_VAULT_SECRET",
        vault_secret,
        "Secrets Manager secret `{\"<region>\": \"<Vault token>\"}`"
    ),
    text_variable!(
        "HAPILOT_CANARY_SECRET",
        canary_secret,
        "Secrets Manager secret: the Prometheus canary provider's `{\"kind\": \"bearer\", \"token\"}` or `{\"kind\": \"basic\", \"username\", \"password\"}`"
    ),
];

/// The variable named `name`.
pub fn variable(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.name == name)
}

/// The README's table of variables, made from [`VARIABLES`].
pub fn variables_markdown() -> String {
    let mut out = String::from("| variable | meaning | default |\n| --- | --- | --- |\n");
    for v in VARIABLES {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            v.name,
            v.doc,
            if v.default.is_empty() {
                "-".to_string()
            } else {
                format!("`{}`", v.default)
            }
        ));
    }
    out
}

impl Settings {
    /// Defaults for everything optional.
    pub fn with_defaults() -> Self {
        Settings {
            automatic_failover: true,
            cooldown_secs: 1_800,
            scale_targets: [("litellm".to_string(), 5), ("agentgateway".to_string(), 3)].into(),
            readiness_workloads: ["litellm", "agentgateway", "vllm"]
                .map(str::to_string)
                .to_vec(),
            ..Settings::default()
        }
    }

    /// Reads every `HAPILOT_*` variable; a malformed one is an error naming it.
    pub fn from_env() -> Result<Self, FunctionError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`Settings::from_env`], from any key -> value lookup.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, FunctionError> {
        let mut s = Settings::with_defaults();
        for v in VARIABLES {
            if let Some(text) = get(v.name).filter(|t| !t.trim().is_empty()) {
                (v.parse)(&mut s, &text)?;
            }
        }
        if s.regions_secret.is_some() && !s.regions.is_empty() {
            return Err(FunctionError::Setup(
                "HAPILOT_REGIONS and HAPILOT_REGIONS_SECRET are both set: keep one".into(),
            ));
        }
        s.check_urls()?;
        Ok(s)
    }

    /// The region a DR restore goes into, refused when it lacks what the restore asks for
    /// (a restore target for PostgreSQL, a Vault for Vault).
    pub fn restore_region(
        &self,
        region: &str,
        postgres: bool,
        vault: bool,
    ) -> Result<&RegionConfig, FunctionError> {
        let config = self.region(region)?;
        if postgres && config.restore.is_none() {
            return Err(FunctionError::Setup(format!(
                "HAPILOT_REGIONS has no restore target for {region} (restore.agent_url, restore.dsn)"
            )));
        }
        if vault && config.vault.is_none() {
            return Err(FunctionError::Setup(format!(
                "HAPILOT_REGIONS has no vault for {region} (vault.url, vault.token)"
            )));
        }
        Ok(config)
    }

    /// `region`'s configuration when it has a restore test target.
    pub fn restore_test_region(&self, region: &str) -> Result<&RegionConfig, FunctionError> {
        let config = self.region(region)?;
        if config.restore_test.is_none() {
            return Err(FunctionError::Setup(format!(
                "HAPILOT_REGIONS has no restore_test target for {region} (a scratch host: restore_test.agent_url, restore_test.dsn)"
            )));
        }
        Ok(config)
    }

    /// Every URL the settings name, by the setting that names it.
    pub fn urls(&self) -> Vec<(String, &str)> {
        use hapilot_adapters::database::DatabaseTarget;
        use hapilot_adapters::restore::RestoreDatabaseTarget;
        let mut out: Vec<(String, &str)> = Vec::new();
        if let Some(url) = &self.global_health_url {
            out.push(("HAPILOT_GLOBAL_HEALTH_URL".into(), url));
        }
        for (region, r) in &self.regions {
            let at = |field: &str| format!("HAPILOT_REGIONS {region}.{field}");
            out.push((at("health_url"), &r.health_url));
            match &r.database {
                Some(DatabaseTarget::Postgres {
                    agent_url: Some(url),
                    ..
                }) => out.push((at("database.agent_url"), url)),
                Some(DatabaseTarget::Patroni { url, .. }) => out.push((at("database.url"), url)),
                Some(DatabaseTarget::Cloudnativepg { kubernetes, .. }) => {
                    out.push((at("database.kubernetes.url"), &kubernetes.url))
                }
                _ => {}
            }
            if let Some(k) = &r.kubernetes {
                out.push((at("kubernetes.url"), &k.url));
            }
            if let Some(v) = &r.restore_test_vault {
                out.push((at("restore_test_vault.url"), &v.url));
            }
            if let Some(v) = &r.vault {
                out.push((at("vault.url"), &v.url));
            }
            for (field, target) in [("restore", &r.restore), ("restore_test", &r.restore_test)] {
                match target {
                    Some(RestoreDatabaseTarget::Postgres { agent_url, .. }) => {
                        out.push((at(&format!("{field}.agent_url")), agent_url))
                    }
                    Some(RestoreDatabaseTarget::Cloudnativepg { kubernetes, .. }) => {
                        out.push((at(&format!("{field}.kubernetes.url")), &kubernetes.url))
                    }
                    None => {}
                }
            }
        }
        if let Some(hapilot_adapters::canary_metrics::TrafficSource::Prometheus { url, .. }) =
            &self.canary_provider
        {
            out.push(("HAPILOT_CANARY_PROVIDER url".into(), url));
        }
        if let TrafficSwitchConfig::ArcRoutingControl { endpoints, .. } = &self.traffic_switch {
            for e in endpoints {
                out.push((
                    format!("HAPILOT_TRAFFIC_SWITCH endpoint {}", e.region),
                    &e.url,
                ));
            }
        }
        out
    }

    /// Refuses a URL with credentials in it, and `http://` unless `HAPILOT_ALLOW_PLAIN_HTTP`;
    /// the error names the setting, never the URL.
    pub fn check_urls(&self) -> Result<(), FunctionError> {
        for (setting, url) in self.urls() {
            hapilot_core::endpoint::check_url(&setting, url, self.allow_plain_http)
                .map_err(|e| FunctionError::Setup(e.to_string()))?;
        }
        Ok(())
    }

    /// Reads the regions from `HAPILOT_REGIONS_SECRET` when that is how they are given, then
    /// the `credentials` the function uses, each from its own secret when one is configured.
    /// Called at start by the functions that need the regions (and only those, so only their
    /// roles may read the secrets, each role only its own).
    pub async fn read_secrets(
        &mut self,
        secrets: &impl SecretReader,
        credentials: &[crate::catalog::Credential],
    ) -> Result<(), FunctionError> {
        self.read_regions_secret(secrets).await?;
        for credential in credentials {
            let id = match credential {
                crate::catalog::Credential::Database => &self.database_secret,
                crate::catalog::Credential::Kubernetes => &self.kubernetes_secret,
                crate::catalog::Credential::Vault => &self.vault_secret,
                crate::catalog::Credential::Canary => &self.canary_secret,
            };
            let Some(id) = id.clone() else {
                continue;
            };
            let var = credential.variable();
            let text = secrets
                .secret_string(&id)
                .await
                .map_err(|e| FunctionError::Setup(format!("{var}: {e}")))?;
            self.merge_credentials(*credential, &text)
                .map_err(|e| FunctionError::Setup(format!("{var} {id} {e}")))?;
        }
        Ok(())
    }

    /// Puts a credentials secret's values into the regions they name.
    fn merge_credentials(
        &mut self,
        credential: crate::catalog::Credential,
        text: &str,
    ) -> Result<(), String> {
        use crate::catalog::Credential;
        use hapilot_adapters::database::DatabaseTarget;
        use hapilot_adapters::restore::RestoreDatabaseTarget;
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct DatabaseCredentials {
            #[serde(default)]
            dsn: Option<SecretText>,
            #[serde(default)]
            restore_dsn: Option<SecretText>,
            #[serde(default)]
            restore_test_dsn: Option<SecretText>,
            /// Patroni's `restapi.authentication`.
            #[serde(default)]
            patroni_auth: Option<hapilot_adapters::http_client::HttpAuth>,
        }
        // Never echo the secret's text: a parse error says where, not what.
        let invalid =
            |e: serde_json::Error| format!("is not valid: line {} column {}", e.line(), e.column());
        let unknown = |r: &str| format!("names region {r}, which HAPILOT_REGIONS does not have");
        match credential {
            Credential::Database => {
                let map: BTreeMap<String, DatabaseCredentials> =
                    serde_json::from_str(text).map_err(invalid)?;
                for (r, c) in map {
                    let region = self.regions.get_mut(&r).ok_or_else(|| unknown(&r))?;
                    if let (
                        Some(dsn),
                        Some(
                            DatabaseTarget::Postgres { dsn: d, .. }
                            | DatabaseTarget::Cloudnativepg { dsn: d, .. },
                        ),
                    ) = (c.dsn.clone(), region.database.as_mut())
                    {
                        *d = dsn;
                    }
                    if let Some(DatabaseTarget::Patroni { auth, dsn, .. }) =
                        region.database.as_mut()
                    {
                        if let Some(a) = c.patroni_auth {
                            *auth = Some(a);
                        }
                        if let Some(d) = c.dsn {
                            *dsn = Some(d);
                        }
                    }
                    for (dsn, target) in [
                        (c.restore_dsn, region.restore.as_mut()),
                        (c.restore_test_dsn, region.restore_test.as_mut()),
                    ] {
                        if let (
                            Some(dsn),
                            Some(
                                RestoreDatabaseTarget::Postgres { dsn: d, .. }
                                | RestoreDatabaseTarget::Cloudnativepg { dsn: d, .. },
                            ),
                        ) = (dsn, target)
                        {
                            *d = dsn;
                        }
                    }
                }
            }
            Credential::Kubernetes => {
                let map: BTreeMap<String, SecretText> =
                    serde_json::from_str(text).map_err(invalid)?;
                for (r, token) in map {
                    let region = self.regions.get_mut(&r).ok_or_else(|| unknown(&r))?;
                    if let Some(k) = region.kubernetes.as_mut() {
                        k.token = token.clone();
                    }
                    if let Some(DatabaseTarget::Cloudnativepg { kubernetes, .. }) =
                        region.database.as_mut()
                    {
                        kubernetes.token = token.clone();
                    }
                    for target in [region.restore.as_mut(), region.restore_test.as_mut()] {
                        if let Some(RestoreDatabaseTarget::Cloudnativepg { kubernetes, .. }) =
                            target
                        {
                            kubernetes.token = token.clone();
                        }
                    }
                }
            }
            Credential::Vault => {
                let map: BTreeMap<String, SecretText> =
                    serde_json::from_str(text).map_err(invalid)?;
                for (r, token) in map {
                    // `<region>.restore_test`: the scratch Vault's own (root) token.
                    let (name, scratch) = match r.strip_suffix(".restore_test") {
                        Some(name) => (name.to_string(), true),
                        None => (r.clone(), false),
                    };
                    let region = self.regions.get_mut(&name).ok_or_else(|| unknown(&r))?;
                    let vault = match scratch {
                        true => region.restore_test_vault.as_mut(),
                        false => region.vault.as_mut(),
                    };
                    if let Some(v) = vault {
                        v.token = token;
                    }
                }
            }
            Credential::Canary => {
                let given: hapilot_adapters::http_client::HttpAuth =
                    serde_json::from_str(text).map_err(invalid)?;
                match self.canary_provider.as_mut() {
                    Some(TrafficSource::Prometheus { auth, .. }) => *auth = Some(given),
                    _ => {
                        return Err(
                            "authenticates the canary provider, but HAPILOT_CANARY_PROVIDER is not prometheus: unset one"
                                .into(),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    async fn read_regions_secret(
        &mut self,
        secrets: &impl SecretReader,
    ) -> Result<(), FunctionError> {
        let Some(id) = &self.regions_secret else {
            return Ok(());
        };
        let text = secrets
            .secret_string(id)
            .await
            .map_err(|e| FunctionError::Setup(format!("HAPILOT_REGIONS_SECRET: {e}")))?;
        self.regions = regions_json(&format!("HAPILOT_REGIONS_SECRET {id}"), &text)?;
        self.check_urls()?;
        Ok(())
    }

    /// Fails naming the first variable in `vars` that is not set.
    pub fn require(&self, vars: &[&str]) -> Result<(), FunctionError> {
        for var in vars {
            let v = variable(var).ok_or_else(|| {
                FunctionError::Setup(format!("{var} is no hapilot variable (a catalog bug)"))
            })?;
            if !(v.is_set)(self) {
                return Err(FunctionError::Setup(format!("{var} is not set")));
            }
        }
        Ok(())
    }

    /// The regions as sites for planning.
    pub fn sites(&self) -> Vec<RegionSite> {
        self.regions
            .iter()
            .map(|(region, c)| RegionSite {
                region: region.clone(),
                health_url: c.health_url.clone(),
                set_identifier: c.set_identifier.clone(),
            })
            .collect()
    }

    /// One region's configuration, or an input error naming the region.
    pub fn region(&self, region: &str) -> Result<&RegionConfig, FunctionError> {
        self.regions.get(region).ok_or_else(|| {
            FunctionError::Core(hapilot_core::CoreError::invalid(
                "region",
                format!("{region:?} is not in HAPILOT_REGIONS"),
            ))
        })
    }

    /// The regions a step points at a new primary besides `new` and `old`: the run's
    /// candidates when it names them, else every configured region with what `has` asks for
    /// (a database, a Vault).
    pub fn other_regions(
        &self,
        candidates: Option<Vec<hapilot_core::failover::RegionSite>>,
        new: &str,
        old: &str,
        has: impl Fn(&RegionConfig) -> bool,
    ) -> Vec<String> {
        let regions: Vec<String> = match candidates {
            Some(sites) => sites.into_iter().map(|s| s.region).collect(),
            None => self
                .regions
                .iter()
                .filter(|(_, c)| has(c))
                .map(|(r, _)| r.clone())
                .collect(),
        };
        regions
            .into_iter()
            .filter(|r| r != new && r != old)
            .collect()
    }

    /// A required string setting (already checked by [`Settings::require`] at init).
    pub fn get<'a>(&self, value: &'a Option<String>, var: &str) -> Result<&'a str, FunctionError> {
        value
            .as_deref()
            .ok_or_else(|| FunctionError::Setup(format!("{var} is not set")))
    }
}

/// Parses the regions JSON. It holds DSNs and tokens, so a parse error says where and what
/// kind, with every quoted value taken out (serde quotes the offending value).
fn regions_json(source: &str, text: &str) -> Result<BTreeMap<String, RegionConfig>, FunctionError> {
    serde_json::from_str(text).map_err(|e| {
        // Everything from the first quote on is dropped, not just the quoted part: a value
        // with a quote inside would otherwise end the redaction early.
        let full = e.to_string();
        let message = match full.find('"') {
            Some(i) => format!(
                "{}\"...\" at line {} column {}",
                &full[..i],
                e.line(),
                e.column()
            ),
            None => full,
        };
        FunctionError::Setup(format!("{source} is not valid: {message}"))
    })
}

#[cfg(test)]
impl Settings {
    /// Settings whose `regions` each have a health URL, a set identifier named after the region
    /// and a PostgreSQL database: the deployment handler unit tests start from.
    pub(crate) fn fixture(regions: &[&str]) -> Self {
        let mut settings = Settings::default();
        for r in regions {
            settings.regions.insert(
                r.to_string(),
                RegionConfig {
                    health_url: format!("http://{r}/health"),
                    set_identifier: r.to_string(),
                    database: Some(DatabaseTarget::Postgres {
                        dsn: format!("host={r}").into(),
                        agent_url: None,
                    }),
                    kubernetes: None,
                    vault: None,
                    redis: None,
                    restore: None,
                    restore_test: None,
                    restore_test_vault: None,
                },
            );
        }
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_table_of_variables_is_made_from_the_table() {
        let readme = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/configuration.md"
        ))
        .unwrap();
        let table = variables_markdown();
        assert!(
            readme.contains(&table),
            "docs/configuration.md's table of variables differs from config::VARIABLES; it should read:\n{table}"
        );
    }

    #[test]
    fn require_refuses_a_name_that_is_no_variable() {
        let s = Settings::with_defaults();
        assert!(s.require(&["HAPILOT_AUTOMATIC_FAILOVER"]).is_ok());
        let e = s.require(&["HAPILOT_NO_SUCH"]).unwrap_err().to_string();
        assert!(e.contains("HAPILOT_NO_SUCH is no hapilot variable"), "{e}");
        assert!(s.require(&["HAPILOT_TOPIC_ARN"]).is_err(), "unset");
    }

    #[test]
    fn variables_lists_exactly_what_is_read() {
        let asked = std::sync::Mutex::new(std::collections::BTreeSet::new());
        Settings::from_lookup(|k| {
            asked.lock().unwrap().insert(k.to_string());
            None
        })
        .unwrap();
        let listed: std::collections::BTreeSet<String> =
            VARIABLES.iter().map(|v| v.name.to_string()).collect();
        assert_eq!(asked.into_inner().unwrap(), listed);
    }

    #[test]
    fn metrics_go_through_the_api_unless_emf_is_asked_for() {
        let with = |v: &'static str| {
            Settings::from_lookup(move |k| (k == "HAPILOT_METRICS").then(|| v.to_string()))
        };
        assert!(!Settings::from_lookup(|_| None).unwrap().embedded_metrics);
        assert!(with("emf").unwrap().embedded_metrics);
        assert!(!with("api").unwrap().embedded_metrics);
        let e = with("statsd").unwrap_err();
        assert!(
            e.to_string().starts_with("HAPILOT_METRICS is not valid"),
            "{e}"
        );
    }

    struct OneSecret(&'static str);

    impl SecretReader for OneSecret {
        async fn secret_string(&self, id: &str) -> Result<String, hapilot_adapters::AdapterError> {
            assert_eq!(id, "hapilot/regions");
            Ok(self.0.to_string())
        }
    }

    #[tokio::test]
    async fn regions_come_from_the_secret_and_its_values_never_reach_an_error() {
        let secret = |k: &str| (k == "HAPILOT_REGIONS_SECRET").then(|| "hapilot/regions".into());
        let mut settings = Settings::from_lookup(secret).unwrap();
        settings
            .read_secrets(
                &OneSecret(
                    r#"{"us-east-1": {"health_url": "https://e/health", "set_identifier": "primary",
                   "database": {"backend": "postgres", "dsn": "postgres://app:hunter2@db/app"}}}"#,
                ),
                &[],
            )
            .await
            .unwrap();
        assert!(settings.region("us-east-1").is_ok());

        let mut settings = Settings::from_lookup(secret).unwrap();
        let e = settings
            .read_secrets(
                &OneSecret(
                    r#"{"us-east-1": {"health_url": "https://e/health", "set_identifier": 7,
                   "database": {"backend": "postgres", "dsn": "postgres://app:hunter2@db/app"}}}"#,
                ),
                &[],
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("HAPILOT_REGIONS_SECRET hapilot/regions is not valid: invalid type"),
            "{e}"
        );
        // A DSN where a table belongs: serde would quote it in its message.
        let e = Settings::from_lookup(|k| {
            (k == "HAPILOT_REGIONS").then(|| {
                r#"{"r": {"health_url": "h", "set_identifier": "s",
                          "database": "postgres://app:hun\"ter2@db/app"}}"#
                    .into()
            })
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("invalid type: string \"...\""), "{e}");
        assert!(!e.contains("hun") && !e.contains("ter2"), "{e}");

        let both = Settings::from_lookup(|k| match k {
            "HAPILOT_REGIONS" => Some("{}".into()),
            "HAPILOT_REGIONS_SECRET" => Some("hapilot/regions".into()),
            _ => None,
        });
        // `{}` leaves the regions empty, which is "not set": only a real conflict is refused.
        assert!(both.is_ok());
    }

    struct CanarySecret;

    impl SecretReader for CanarySecret {
        async fn secret_string(&self, _id: &str) -> Result<String, hapilot_adapters::AdapterError> {
            Ok(r#"{"kind": "bearer", "token": "hunter2"}"#.into())
        }
    }

    #[tokio::test]
    async fn a_canary_secret_without_a_prometheus_provider_is_refused_without_its_text() {
        let mut settings = Settings::from_lookup(|k| match k {
            "HAPILOT_CANARY_SECRET" => Some("hapilot/canary".into()),
            "HAPILOT_CANARY_PROVIDER" => Some(
                r#"{"kind": "cloudwatch", "namespace": "AWS/ApplicationELB", "request_metric": "RequestCount",
                    "error_metric": "HTTPCode_Target_5XX_Count", "dimensions": {}}"#
                    .into(),
            ),
            _ => None,
        })
        .unwrap();
        let e = settings
            .read_secrets(&CanarySecret, &[crate::catalog::Credential::Canary])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("HAPILOT_CANARY_SECRET hapilot/canary")
                && e.contains("is not prometheus")
                && !e.contains("hunter2"),
            "{e}"
        );
    }

    #[test]
    fn malformed_variables_are_named() {
        let e =
            Settings::from_lookup(|k| (k == "HAPILOT_REGIONS").then(|| "{not json".to_string()))
                .unwrap_err();
        assert!(
            e.to_string().starts_with("HAPILOT_REGIONS is not valid"),
            "{e}"
        );
        let e = Settings::from_lookup(|k| {
            (k == "HAPILOT_AUTOMATIC_FAILOVER").then(|| "maybe".to_string())
        })
        .unwrap_err();
        assert!(e.to_string().contains("HAPILOT_AUTOMATIC_FAILOVER"), "{e}");
        let s = Settings::from_lookup(|_| None).unwrap();
        assert!(s.automatic_failover);
        assert_eq!(s.scale_targets["litellm"], 5);
        assert_eq!(
            s.require(&["HAPILOT_HOSTED_ZONE_ID"])
                .unwrap_err()
                .to_string(),
            "HAPILOT_HOSTED_ZONE_ID is not set"
        );
    }

    #[test]
    fn regions_parse_with_both_database_backends() {
        let regions = r#"{
            "us-east-1": {"health_url": "https://a/health", "set_identifier": "primary",
                          "database": {"backend": "postgres", "dsn": "host=127.0.0.1 port=5432"}},
            "us-west-2": {"health_url": "https://b/health", "set_identifier": "standby",
                          "database": {"backend": "patroni", "url": "https://b:8008", "member": "pg-1"}}
        }"#;
        let s = Settings::from_lookup(|k| (k == "HAPILOT_REGIONS").then(|| regions.to_string()))
            .unwrap();
        assert_eq!(s.sites().len(), 2);
        assert!(matches!(
            s.regions["us-west-2"].database,
            Some(DatabaseTarget::Patroni { .. })
        ));
    }

    #[test]
    fn plain_http_needs_the_setting_and_credentials_in_urls_never_load() {
        let regions = |patroni: &str| {
            format!(
                r#"{{"us-west-2": {{"health_url": "https://b/health", "set_identifier": "standby",
                     "database": {{"backend": "patroni", "url": "{patroni}", "member": "pg-1"}}}}}}"#
            )
        };
        let load = |regions: String, allow: Option<&str>| {
            Settings::from_lookup(move |k| match k {
                "HAPILOT_REGIONS" => Some(regions.clone()),
                "HAPILOT_ALLOW_PLAIN_HTTP" => allow.map(str::to_string),
                _ => None,
            })
        };
        let e = load(regions("http://b:8008"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("HAPILOT_REGIONS us-west-2.database.url")
                && e.contains("HAPILOT_ALLOW_PLAIN_HTTP"),
            "{e}"
        );
        assert!(load(regions("http://b:8008"), Some("true")).is_ok());
        let e = load(regions("https://patroni:s3cret@b:8008"), Some("true"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("us-west-2.database.url") && !e.contains("s3cret"),
            "{e}"
        );
    }

    #[test]
    fn no_credential_shows_in_the_settings_debug_output() {
        let regions = r#"{
            "us-east-1": {"health_url": "https://a/health", "set_identifier": "primary",
                          "database": {"backend": "postgres", "dsn": "postgres://app:pg-s3cret@db/app"},
                          "kubernetes": {"url": "https://k", "token": "kube-s3cret", "namespace": "ai-gateway"},
                          "vault": {"url": "https://v", "token": "vault-s3cret"},
                          "restore": {"backend": "postgres", "agent_url": "https://agent", "dsn": "host=r password=restore-s3cret"}},
            "us-west-2": {"health_url": "https://b/health", "set_identifier": "standby",
                          "database": {"backend": "patroni", "url": "https://b:8008", "member": "pg-1",
                                       "auth": {"kind": "basic", "username": "patroni", "password": "patroni-s3cret"}}}
        }"#;
        let provider = r#"{"kind": "prometheus", "url": "https://prom", "request_query": "q", "error_query": "e",
                           "auth": {"kind": "bearer", "token": "prom-s3cret"}}"#;
        let s = Settings::from_lookup(|k| match k {
            "HAPILOT_REGIONS" => Some(regions.to_string()),
            "HAPILOT_CANARY_PROVIDER" => Some(provider.to_string()),
            _ => None,
        })
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("https://k") && shown.contains("pg-1"),
            "{shown}"
        );
    }
}
