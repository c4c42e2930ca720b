//! The local world `hapilot local up` builds and keeps running for people to play with: the
//! three-region deployment the drill builds (gateways, the real PostgreSQL pair with an
//! application writing to it, records, health checks, alarms, buckets with a first backup,
//! topics, Kubernetes, Vault), AWS's data plane running, and a control endpoint on loopback
//! through which `hapilot local kill|revive <region>` and `hapilot status` reach it.
//!
//! The CLI finds the world through the settings file it writes (`.hapilot/local/hapilot-<port>.toml`,
//! exported as `HAPILOT_CONFIG`) and `HAPILOT_LOCAL_CONTROL`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hapilot_adapters::database::PostgresDatabase;
use hapilot_functions::config::Settings;
use serde_json::{Value, json};

use crate::LocalError;
use crate::http::{answer, serve};
use crate::systems::gateway::GatewayMode;
use crate::world::deployment::{
    AUDIT_BUCKET, BACKUP_BUCKET, DR_BACKUP_BUCKET, DatabaseSetup, Databases, LocalDeployment,
    PRIMARY_REGION, RECORD_NAME, RecordRouting, STANDBY_REGION, WITNESS_REGION, WorldOptions,
};
use crate::{LocalStack, StackOptions};

/// The settings a person may tune on the local world (`[settings]` of hapilot.toml, flags):
/// how hapilot behaves. Everything else names the world (regions, buckets, zone, topics) and
/// comes from the world itself.
pub const TUNABLE: [&str; 5] = [
    "HAPILOT_AUTOMATIC_FAILOVER",
    "HAPILOT_COOLDOWN_SECONDS",
    "HAPILOT_TIER",
    "HAPILOT_SCALE_TARGETS",
    "HAPILOT_FAILOVER_INPUT_DEFAULTS",
];

/// Applies the tunable settings `get` holds onto `settings`; returns the variables applied.
/// A value that does not parse is refused naming the variable, and nothing is applied.
pub fn apply_tuning(
    settings: &mut Settings,
    get: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, LocalError> {
    let given: BTreeMap<&str, String> = TUNABLE
        .iter()
        .filter_map(|var| get(var).map(|v| (*var, v)))
        .collect();
    let parsed = Settings::from_lookup(|k| given.get(k).cloned())
        .map_err(|e| LocalError::Invalid(e.to_string()))?;
    for var in given.keys() {
        match *var {
            "HAPILOT_AUTOMATIC_FAILOVER" => settings.automatic_failover = parsed.automatic_failover,
            "HAPILOT_COOLDOWN_SECONDS" => settings.cooldown_secs = parsed.cooldown_secs,
            "HAPILOT_TIER" => settings.tier = parsed.tier,
            "HAPILOT_SCALE_TARGETS" => settings.scale_targets = parsed.scale_targets.clone(),
            _ => settings.failover_input_defaults = parsed.failover_input_defaults.clone(),
        }
    }
    Ok(given.keys().map(|k| k.to_string()).collect())
}

/// What to try once the world is up, printed by `hapilot local up` (the README's "Play with the
/// local world" runs the same commands in a test).
pub const WHAT_TO_TRY: &str = "\
what to try (after evaluating the lines above):
  hapilot status                                  where the world stands (--json too)
  hapilot local kill us-east-1                    the primary region goes dark: watch the alarm-driven failover
  hapilot status                                  ... in progress, then finished
  hapilot audit                                   the backup audit of the DR bucket
  hapilot restore --region us-west-2 --data-check LiteLLM_SpendLogs.startTime
  hapilot local revive us-east-1                  its APIs come back; its database stays down
  hapilot reprotect --region us-east-1 --primary-region us-west-2
  hapilot failback --primary-region us-east-1 --standby-region us-west-2   asks for approval first:
  hapilot status                                  shows the pending approval and how to answer
  hapilot approve <execution> --machine failback --yes
  hapilot report <execution>                      a run's report (or its journal as a timeline)";

/// Asks the running local world (`HAPILOT_LOCAL_CONTROL`) to `kill` or `revive` a region;
/// returns what it did.
pub async fn control(region: &str, verb: &str) -> Result<String, LocalError> {
    control_request(
        reqwest::Method::POST,
        &format!("/regions/{region}/{verb}"),
        None,
    )
    .await
}

/// Arms a fault in the running local world (`None`: lists the armed faults and the calls they
/// hit; `clear`: disarms every fault).
pub async fn fault(
    spec: Option<&crate::aws::faults::FaultSpec>,
    clear: bool,
) -> Result<String, LocalError> {
    match (spec, clear) {
        (_, true) => control_request(reqwest::Method::DELETE, "/faults", None).await,
        (Some(spec), false) => {
            let body =
                serde_json::to_string(spec).map_err(|e| LocalError::Invalid(e.to_string()))?;
            control_request(reqwest::Method::POST, "/faults", Some(body)).await
        }
        (None, false) => control_request(reqwest::Method::GET, "/faults", None).await,
    }
}

/// One request to the running local world's control endpoint; its answer's text.
async fn control_request(
    method: reqwest::Method,
    path: &str,
    body: Option<String>,
) -> Result<String, LocalError> {
    let Some(url) = std::env::var("HAPILOT_LOCAL_CONTROL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        return Err(LocalError::Invalid(
            "no local world: HAPILOT_LOCAL_CONTROL is not set. Start one with `hapilot local up` and evaluate the lines it prints".into(),
        ));
    };
    let mut request = reqwest::Client::new().request(method, format!("{url}{path}"));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request.send().await.map_err(|e| {
        LocalError::Invalid(format!(
            "the local world at {url} does not answer ({e}); is `hapilot local up` still running?"
        ))
    })?;
    let ok = response.status().is_success();
    let text = response.text().await.unwrap_or_default();
    if ok {
        Ok(text)
    } else {
        Err(LocalError::Invalid(text))
    }
}

struct Inner {
    stack: LocalStack,
    deployment: LocalDeployment,
}

/// A running local world. [`LocalWorld::shutdown`] (or dropping it) stops everything.
pub struct LocalWorld {
    inner: Arc<Inner>,
    data_plane: Option<crate::aws::data_plane::DataPlane>,
    writer: tokio::task::JoinHandle<()>,
    stop_writer: Arc<AtomicBool>,
    control: tokio::task::JoinHandle<()>,
    lag_schedule: tokio::task::JoinHandle<()>,
    control_url: String,
    settings_file: PathBuf,
}

impl LocalWorld {
    /// Starts the stack and builds the world; `tuning` is applied to every region's functions.
    pub async fn start(
        options: StackOptions,
        tuning: impl Fn(&str) -> Option<String>,
        tick: Duration,
        say: impl Fn(&str) + Send + Sync + Clone + 'static,
    ) -> Result<Self, LocalError> {
        let log_dir = options.log_dir.clone();
        // The deployment below brings the product's machines with its templates.
        let stack = LocalStack::start(options.leaving_machines_to_templates(), say.clone()).await?;
        say(
            "building the world: three regions, the PostgreSQL pair, records, health checks, alarms, buckets, topics, Kubernetes, Vault ...",
        );
        let mut deployment = LocalDeployment::create_with(
            &stack,
            WorldOptions::regional(DatabaseSetup::Postgres, RecordRouting::Weighted),
        )
        .await?;
        let mut tuned = deployment.settings.clone();
        let applied = apply_tuning(&mut tuned, &tuning)?;
        deployment.reconfigure(&stack, |s| {
            // Checked above: the same values parse for every region.
            let _ = apply_tuning(s, &tuning);
        })?;
        if !applied.is_empty() {
            say(&format!("settings applied: {}", applied.join(", ")));
        }
        // The gateways' request and error rates the canary gate reads (0.2 % errors).
        deployment.primary.traffic().set(400.0, 0.002);
        deployment.standby.traffic().set(400.0, 0.002);
        let data_plane = deployment.start_data_plane(&stack, tick);
        let deadline = Instant::now() + tick * 30;
        while !deployment.vantage_points_see_primary_up(&stack).await? {
            if Instant::now() > deadline {
                return Err(LocalError::Invalid(
                    "the local data plane never saw us-east-1 up".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let Databases::Postgres { pair, .. } = &deployment.databases else {
            unreachable!("the local world runs the PostgreSQL backend")
        };
        let dsns = [pair.primary.dsn(), pair.replica.dsn()];
        let first = PostgresDatabase::new(&dsns[0])
            .connect()
            .await
            .map_err(|e| LocalError::Invalid(format!("the local primary does not answer: {e}")))?;
        // LiteLLM's spend log table, under the names the deployed template's DR drill reads.
        let (table, column) = deployment.drill_data_check()?;
        first
            .batch_execute(&crate::systems::litellm::create_spend_logs(&table, &column))
            .await
            .map_err(|e| LocalError::Invalid(format!("creating {table}: {e}")))?;
        drop(first);
        let stop_writer = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(write_forever(
            dsns.to_vec(),
            crate::systems::litellm::insert_spend_log(&table, &column),
            stop_writer.clone(),
        ));
        say(
            "backup job: base backup, archived WAL and a Vault snapshot into s3://hapilot-backups-dr ...",
        );
        let s3 = hapilot_adapters::sdk::s3(stack.sdk_config());
        crate::systems::barman::back_up_once(
            &s3,
            pair,
            (
                &[BACKUP_BUCKET, DR_BACKUP_BUCKET],
                Some((table.as_str(), column.as_str())),
            ),
            Duration::from_millis(500),
        )
        .await?;
        match crate::systems::redis::redis_rdb(200).await {
            Ok(rdb) => {
                let object = [crate::systems::barman::BackupObject {
                    key: format!(
                        "redis/{}.rdb",
                        crate::systems::barman::compact_time(chrono::Utc::now().timestamp())
                    ),
                    bytes: rdb,
                }];
                for bucket in [BACKUP_BUCKET, DR_BACKUP_BUCKET] {
                    crate::systems::barman::upload(&s3, bucket, &object).await?;
                }
            }
            Err(e) => say(&format!(
                "no Redis RDB backup ({e}): the backup audit will say Redis has none"
            )),
        }
        // The table's last two rows: the deployed configuration as a Git bundle beside the
        // deployment's deployed.json, and today's export of Vault's secret metadata.
        let now = chrono::Utc::now().timestamp();
        let template = std::fs::read("infra/template.yaml").unwrap_or_default();
        let settings = format!("[settings]\nrecord_name = {RECORD_NAME:?}\n");
        let sources: [(&str, &[u8]); 2] = [
            ("infra/template.yaml", &template),
            ("hapilot.toml", settings.as_bytes()),
        ];
        let bundle = tokio::task::block_in_place(|| {
            crate::systems::config_backup::bundle_configuration(&sources)
        });
        let mut objects = vec![crate::systems::config_backup::secrets_metadata_export(
            &[(crate::systems::vault::GATEWAY_SECRET, 1)],
            now,
        )];
        match bundle {
            Ok((commit, bytes)) => {
                objects.extend(crate::systems::config_backup::configuration_objects(
                    (&commit, bytes),
                    now,
                    now - 60,
                    &["infra/template.yaml", "hapilot.toml"],
                ))
            }
            Err(e) => say(&format!(
                "no configuration bundle ({e}): the backup audit will say the configuration has none"
            )),
        }
        crate::systems::barman::upload(&s3, BACKUP_BUCKET, &objects).await?;
        // Scheduler's every-minute publish-replication-lag in the standby (6 periods here).
        let lag_schedule = tokio::spawn({
            let handle = stack.handle();
            async move {
                loop {
                    let _ = handle
                        .deliver(STANDBY_REGION, "publish-replication-lag", json!({}))
                        .await;
                    tokio::time::sleep(tick * 6).await;
                }
            }
        });
        let inner = Arc::new(Inner { stack, deployment });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(LocalError::io("binding the local control endpoint"))?;
        let control_url = format!(
            "http://{}",
            listener
                .local_addr()
                .map_err(LocalError::io("the control endpoint's address"))?
        );
        let control = serve(listener, {
            let inner = inner.clone();
            move |req| control_answer(inner.clone(), req)
        });
        // One file per world (named after its endpoint's port): two worlds never share one.
        let port = inner
            .stack
            .endpoint_url()
            .rsplit(':')
            .next()
            .unwrap_or("0")
            .to_string();
        let settings_file = log_dir
            .parent()
            .unwrap_or(Path::new("."))
            .join("local")
            .join(format!("hapilot-{port}.toml"));
        let world = Self {
            inner,
            data_plane: Some(data_plane),
            writer,
            stop_writer,
            control,
            lag_schedule,
            control_url,
            settings_file,
        };
        world.write_settings_file()?;
        Ok(world)
    }

    /// The stack under the world.
    pub fn stack(&self) -> &LocalStack {
        &self.inner.stack
    }

    /// The world's deployment.
    pub fn deployment(&self) -> &LocalDeployment {
        &self.inner.deployment
    }

    /// The control endpoint (`HAPILOT_LOCAL_CONTROL`).
    pub fn control_url(&self) -> &str {
        &self.control_url
    }

    /// The CLI settings file describing this world (`HAPILOT_CONFIG`).
    pub fn settings_file(&self) -> &Path {
        &self.settings_file
    }

    /// The environment a shell needs to use the world: the stack's, the settings file and the
    /// control endpoint. The failover runs in the standby's deployment, so the CLI talks to
    /// us-west-2 by default: it keeps answering when us-east-1 goes dark.
    pub fn env_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .inner
            .stack
            .env_lines()
            .into_iter()
            .filter(|l| {
                // The operator's own login below replaces the stack's placeholder keys.
                !l.starts_with("export AWS_ACCESS_KEY_ID=")
                    && !l.starts_with("export AWS_SECRET_ACCESS_KEY=")
            })
            .map(|l| {
                if let Some(var @ ("AWS_REGION" | "AWS_DEFAULT_REGION")) = l
                    .strip_prefix("export ")
                    .and_then(|l| l.split_once('=').map(|(k, _)| k))
                {
                    format!("export {var}={STANDBY_REGION}")
                } else {
                    l
                }
            })
            .collect();
        // Signed in as the on-call operator: approvals go through the standby's approval
        // function URL, which knows the answerer from the signature.
        for (var, value) in self.inner.deployment.operator_env(STANDBY_REGION) {
            lines.push(format!("export {var}={value}"));
        }
        lines.push(format!(
            "export HAPILOT_CONFIG={}",
            self.settings_file.display()
        ));
        lines.push(format!("export HAPILOT_LOCAL_CONTROL={}", self.control_url));
        lines
    }

    /// Writes the CLI settings file: where the world's AWS is, and the settings that name it
    /// (no credential: the CLI never needs one).
    fn write_settings_file(&self) -> Result<(), LocalError> {
        // The CLI works from the standby, as an on-call engineer does with the primary dark:
        // the standby stack's settings (its audit bucket, its quorum of vantage alarms).
        let deployment = &self.inner.deployment;
        let s = deployment
            .region_settings
            .get(STANDBY_REGION)
            .unwrap_or(&deployment.settings);
        let regions: BTreeMap<&String, Value> = s
            .regions
            .iter()
            .map(|(name, r)| {
                (
                    name,
                    json!({"health_url": r.health_url, "set_identifier": r.set_identifier}),
                )
            })
            .collect();
        let quote = |v: &str| toml::Value::String(v.to_string()).to_string();
        let mut text = format!(
            "# Written by `hapilot local up`: the local world, for the CLI. Rewritten at each start.\n\
             [aws]\nregion = {region}\nendpoint_url = {endpoint}\n\n[settings]\n",
            region = quote(STANDBY_REGION),
            endpoint = quote(&self.inner.stack.endpoint_url()),
        );
        let mut line = |key: &str, value: String| text.push_str(&format!("{key} = {value}\n"));
        let or = |v: &Option<String>, default: &str| quote(v.as_deref().unwrap_or(default));
        line("audit_bucket", or(&s.audit_bucket, AUDIT_BUCKET));
        line("backup_bucket", or(&s.backup_bucket, BACKUP_BUCKET));
        line(
            "dr_backup_bucket",
            or(&s.dr_backup_bucket, DR_BACKUP_BUCKET),
        );
        line("dr_region", or(&s.dr_region, STANDBY_REGION));
        line("allow_plain_http", "true".into());
        line("record_name", quote(RECORD_NAME));
        line("hosted_zone_id", quote(&self.inner.deployment.zone_id));
        line("automatic_failover", s.automatic_failover.to_string());
        line("cooldown_seconds", s.cooldown_secs.to_string());
        if let Some(tier) = s.tier {
            line("tier", quote(tier.as_str()));
        }
        line("regions", quote(&json!(regions).to_string()));
        line(
            "failover_triggers",
            quote(&serde_json::to_string(&s.triggers).unwrap_or_default()),
        );
        if let Some(dir) = self.settings_file.parent() {
            std::fs::create_dir_all(dir)
                .map_err(LocalError::io(format!("creating {}", dir.display())))?;
        }
        std::fs::write(&self.settings_file, text).map_err(LocalError::io(format!(
            "writing {}",
            self.settings_file.display()
        )))
    }

    /// Stops the writer, the data plane, the control endpoint and the stack.
    pub async fn shutdown(mut self) {
        self.stop_writer.store(true, Ordering::Relaxed);
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.writer).await;
        self.control.abort();
        self.lag_schedule.abort();
        drop(self.data_plane.take());
        let _ = std::fs::remove_file(&self.settings_file);
        if let Ok(inner) = Arc::try_unwrap(self.inner) {
            drop(inner.deployment);
            inner.stack.shutdown().await;
        }
    }
}

/// The application: commits a row every 200 ms to whichever server takes writes (the promoted
/// one after a failover; a fenced or dead one refuses), so replication lag and RPO are real.
async fn write_forever(dsns: Vec<String>, insert: String, stop: Arc<AtomicBool>) {
    let mut clients: Vec<Option<tokio_postgres::Client>> = dsns.iter().map(|_| None).collect();
    let mut request: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        request += 1;
        let id = format!("local-{request}");
        for (dsn, client) in dsns.iter().zip(clients.iter_mut()) {
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                *client = PostgresDatabase::new(dsn).connect().await.ok();
            }
            let Some(c) = client.as_ref() else { continue };
            if c.query_one(insert.as_str(), &[&id]).await.is_ok() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A region the world has.
fn known_region(region: &str) -> bool {
    [PRIMARY_REGION, STANDBY_REGION, WITNESS_REGION].contains(&region)
}

async fn control_answer(
    inner: Arc<Inner>,
    req: hyper::Request<hyper::body::Incoming>,
) -> crate::http::Answer {
    use hyper::{Method, StatusCode};
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let text = |status, body: String| answer(status, "text/plain", body);
    match (req.method(), parts.as_slice()) {
        (&Method::GET, ["dns"]) => {
            let mut answers = BTreeMap::new();
            for region in [PRIMARY_REGION, STANDBY_REGION, WITNESS_REGION] {
                let seen = inner.deployment.dns_answer(&inner.stack, region).await;
                answers.insert(
                    region,
                    match seen {
                        Ok(Some(set)) => json!(set),
                        Ok(None) => Value::Null,
                        Err(e) => json!(format!("unreadable: {e}")),
                    },
                );
            }
            answer(StatusCode::OK, "application/json", json!(answers).to_string())
        }
        (&Method::GET, ["regions"]) => {
            let regions: BTreeMap<&str, bool> = [PRIMARY_REGION, STANDBY_REGION, WITNESS_REGION]
                .into_iter()
                .map(|r| (r, inner.stack.is_dark(r)))
                .collect();
            answer(StatusCode::OK, "application/json", json!({"dark": regions}).to_string())
        }
        (&Method::POST, ["regions", region, verb @ ("kill" | "revive")]) => {
            if !known_region(region) {
                return text(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no region {region:?} in the local world (it has {PRIMARY_REGION}, {STANDBY_REGION}, {WITNESS_REGION})"
                    ),
                );
            }
            let result = if *verb == "kill" {
                kill(&inner, region)
            } else {
                revive(&inner, region)
            };
            match result {
                Ok(said) => text(StatusCode::OK, said),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        (&Method::GET, ["faults"]) => {
            let faults = inner.stack.faults();
            answer(
                StatusCode::OK,
                "application/json",
                json!({"armed": faults.armed(), "injected": faults.injected()}).to_string(),
            )
        }
        (&Method::DELETE, ["faults"]) => {
            inner.stack.faults().clear();
            text(StatusCode::OK, "every fault disarmed".into())
        }
        (&Method::POST, ["faults"]) => {
            let body = crate::http::body_bytes(req).await;
            let spec = match crate::aws::faults::FaultSpec::from_json(&body) {
                Ok(spec) => spec,
                Err(e) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        format!("not a fault ({e}); send {{\"region\", \"service\", \"kind\": unavailable|throttle|timeout|latency, \"millis\", \"count\", \"matching\"}}"),
                    );
                }
            };
            let said = format!(
                "armed: the next {} call(s) of {} in {}{} get {:?}",
                spec.count,
                spec.service,
                spec.region,
                spec.matching
                    .as_deref()
                    .map(|m| format!(" matching {m:?}"))
                    .unwrap_or_default(),
                spec.kind
            );
            match inner.stack.faults().inject(spec) {
                Ok(()) => text(StatusCode::OK, said),
                Err(e) => text(StatusCode::BAD_REQUEST, e),
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "the local control endpoint serves GET /dns, GET /regions, POST /regions/<region>/kill|revive, GET|POST|DELETE /faults".into(),
        ),
    }
}

/// The region goes dark: every API signed for it refused, its gateway failing, its Kubernetes
/// API and Vault down, its PostgreSQL stopped `-m immediate`.
fn kill(inner: &Inner, region: &str) -> Result<String, LocalError> {
    let deployment = &inner.deployment;
    inner.stack.black_out(region);
    let Databases::Postgres { pair, .. } = &deployment.databases else {
        unreachable!("the local world runs the PostgreSQL backend")
    };
    let (gateway, kube, server, vault) = match region {
        PRIMARY_REGION => (
            &deployment.primary,
            &deployment.primary_kube,
            &pair.primary,
            &deployment.primary_vault,
        ),
        STANDBY_REGION => (
            &deployment.standby,
            &deployment.standby_kube,
            &pair.replica,
            &deployment.vault,
        ),
        _ => return Ok(format!("{region} is dark: its APIs refuse every call")),
    };
    kube.set_down(true);
    vault.set_down(true);
    gateway.set_mode(GatewayMode::Failing);
    tokio::task::block_in_place(|| server.kill())?;
    Ok(format!(
        "{region} is dark: its APIs refuse every call, its gateway fails, its PostgreSQL is stopped (immediate)"
    ))
}

/// The region comes back: its APIs answer, its gateway is healthy, its Kubernetes API and
/// Vault up (a Vault that was the primary comes back still a primary: re-protection demotes it). Its
/// database stays as it was: a stopped old primary comes back only through re-protection.
fn revive(inner: &Inner, region: &str) -> Result<String, LocalError> {
    let deployment = &inner.deployment;
    inner.stack.revive(region);
    let (gateway, kube, vault) = match region {
        PRIMARY_REGION => (
            &deployment.primary,
            &deployment.primary_kube,
            &deployment.primary_vault,
        ),
        STANDBY_REGION => (
            &deployment.standby,
            &deployment.standby_kube,
            &deployment.vault,
        ),
        _ => return Ok(format!("{region} is back: its APIs answer")),
    };
    kube.set_down(false);
    vault.set_down(false);
    gateway.set_mode(GatewayMode::Healthy);
    let other = if region == PRIMARY_REGION {
        STANDBY_REGION
    } else {
        PRIMARY_REGION
    };
    Ok(format!(
        "{region} is back: its APIs answer, its gateway is healthy. Its database stays down until \
         `hapilot reprotect --region {region} --primary-region {other}` rebuilds it as a replica"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuning_applies_only_what_is_given_and_refuses_bad_values() {
        let mut settings = Settings::with_defaults();
        settings.audit_bucket = Some("kept".into());
        let given = |k: &str| match k {
            "HAPILOT_AUTOMATIC_FAILOVER" => Some("false".to_string()),
            "HAPILOT_COOLDOWN_SECONDS" => Some("60".to_string()),
            "HAPILOT_AUDIT_BUCKET" => Some("ignored".to_string()),
            _ => None,
        };
        let applied = apply_tuning(&mut settings, given).unwrap();
        assert_eq!(
            applied,
            ["HAPILOT_AUTOMATIC_FAILOVER", "HAPILOT_COOLDOWN_SECONDS"]
        );
        assert!(!settings.automatic_failover);
        assert_eq!(settings.cooldown_secs, 60);
        assert_eq!(settings.audit_bucket.as_deref(), Some("kept"));
        let before = settings.clone();
        let bad = apply_tuning(&mut settings, |k| {
            (k == "HAPILOT_TIER").then(|| "Gold".to_string())
        });
        assert!(bad.unwrap_err().to_string().contains("HAPILOT_TIER"));
        assert_eq!(settings, before, "nothing applied on bad input");
    }
}
