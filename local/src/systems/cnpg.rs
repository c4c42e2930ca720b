//! A CloudNativePG operator stand-in for the local world: it watches the `Cluster` resources
//! of a simulated Kubernetes API and acts on **real PostgreSQL** servers as the operator's
//! documentation for replica clusters and distributed topologies (1.24+) describes:
//!
//! - `spec.replica.primary` naming the cluster itself (or `enabled: false`) promotes it; with a
//!   `promotionToken`, only once the token fits (same database system, same timeline: the
//!   check in `hapilot_core::cnpg`) and the server has replayed past the token's REDO
//!   location; a token that does not fit is refused in `status` and nothing changes;
//! - `spec.replica.primary` naming another cluster, on a running primary whose peer is still a
//!   replica, demotes it: clean shutdown, `status.demotionToken` from `pg_controldata` (the
//!   real operator's fields), restart as a standby of the peer;
//! - the same on a primary that lost its role (the peer was promoted without a token while it
//!   was down or cut off) does **not** rejoin: CloudNativePG's replica-cluster documentation
//!   ("Promoting a Replica to a Primary Cluster") says a promotion without the token is a
//!   failover "necessitating a rebuild of the former primary". Its designated primary cannot
//!   stream from a timeline it diverged from, so the cluster stays down, phase "Waiting for
//!   the instances to become active", `phaseReason` naming the rebuild;
//! - a former primary is rebuilt by re-creating it: deleting the `Cluster` deletes its
//!   instances and PVCs (the data directory goes); a `Cluster` created again under the name
//!   (a new `metadata.uid`) with `bootstrap.pg_basebackup.source` naming an external cluster
//!   is bootstrapped for real with `pg_basebackup` from that cluster and streams from it
//!   (`bootstrap.recovery` from an object store is not played here, and says so);
//! - `cnpg.io/fencedInstances` stops PostgreSQL; removing it starts it again.
//!
//! `status.timelineID` is kept as the operator reports it (the primary's timeline).
//!
//! What to do is decided by [`next_step`], a pure function with tests; [`CnpgOperator`] runs
//! the steps.

use std::collections::BTreeMap;
use std::time::Duration;

use hapilot_core::cnpg::{DesiredRole, PromotionToken, StandbyControl, check_promotion_token};
use serde_json::{Value, json};

use crate::LocalError;
use crate::systems::kubernetes::CnpgResources;
use crate::systems::postgres::{PostgresNode, PostgresServer};

/// The version the stand-in writes into its tokens.
pub const OPERATOR_VERSION: &str = "hapilot-local-cnpg";
/// The phase of a healthy cluster, as the operator reports it.
pub const HEALTHY: &str = "Cluster in healthy state";

/// The phase of a cluster whose instances cannot start (a former primary that lost its role).
pub const WAITING: &str = "Waiting for the instances to become active";

/// The role the operator has put a cluster's instances in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Its designated instance is a primary.
    Primary,
    /// Its designated instance streams from another cluster.
    Replica,
    /// A former primary told to follow a cluster promoted without a token: it cannot, and
    /// stays down until it is rebuilt.
    Diverged,
    /// The `Cluster` was deleted: no instances, no data.
    Absent,
}

/// What the operator remembers of one cluster between reconciliations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Role applied.
    pub role: Applied,
    /// Whether its instances are fenced (stopped).
    pub fenced: bool,
    /// A promotion token already refused (not tried again until the spec changes it).
    pub refused_token: Option<String>,
    /// The `metadata.uid` of the object reconciled (a new uid is a re-created `Cluster`);
    /// `None` until first seen.
    pub uid: Option<String>,
}

/// One reconciliation step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The spec is applied.
    Nothing,
    /// Stop PostgreSQL (fencing).
    Fence,
    /// Start PostgreSQL again (fence lifted, role unchanged).
    Unfence,
    /// Promote, with the token when the spec gives one.
    Promote {
        /// `spec.replica.promotionToken`.
        token: Option<String>,
    },
    /// Become a replica of `primary`: a graceful demotion when this is a running primary and
    /// `primary` is still a replica; else the cluster cannot follow (it is [`Applied::Diverged`]).
    Follow {
        /// The cluster named primary.
        primary: String,
    },
    /// The `Cluster` is gone (or replaced by a new object): stop its instance, delete its data.
    Remove,
    /// A new `Cluster`: bootstrap its instance.
    Bootstrap(Bootstrap),
}

/// How a new `Cluster` is bootstrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// `bootstrap.pg_basebackup.source`: a base backup of this external cluster, then
    /// streaming from it.
    BaseBackup {
        /// The external cluster's name.
        source: String,
    },
    /// What the stand-in does not play (why).
    Unsupported(String),
}

/// How `resource` asks to be bootstrapped.
pub fn bootstrap_of(resource: &Value) -> Bootstrap {
    let spec = &resource["spec"];
    let external = |name: &str| {
        spec["externalClusters"]
            .as_array()
            .is_some_and(|list| list.iter().any(|c| c["name"] == name))
    };
    match spec["bootstrap"]["pg_basebackup"]["source"].as_str() {
        Some(source) if external(source) => Bootstrap::BaseBackup {
            source: source.to_string(),
        },
        Some(source) => Bootstrap::Unsupported(format!(
            "bootstrap.pg_basebackup.source {source} is not in spec.externalClusters"
        )),
        None if spec["bootstrap"]["recovery"].is_object() => Bootstrap::Unsupported(
            "bootstrap.recovery (from an object store) is not played by the local stand-in: use bootstrap.pg_basebackup".into(),
        ),
        None => Bootstrap::Unsupported(
            "a new Cluster under this name needs bootstrap.pg_basebackup (a replica cluster of the new primary)".into(),
        ),
    }
}

/// What to do next for cluster `name`, given its resource (`None`: deleted) and what was
/// applied.
pub fn next_step(name: &str, resource: Option<&Value>, observed: &Observed) -> Step {
    let Some(resource) = resource else {
        return if observed.role == Applied::Absent {
            Step::Nothing
        } else {
            Step::Remove
        };
    };
    let uid = resource["metadata"]["uid"].as_str();
    let replaced = observed
        .uid
        .as_deref()
        .is_some_and(|seen| uid.is_some_and(|uid| uid != seen));
    match (&observed.role, replaced) {
        (Applied::Absent, _) => return Step::Bootstrap(bootstrap_of(resource)),
        (_, true) => return Step::Remove,
        _ => {}
    }
    let fenced = fenced(name, resource);
    let desired = hapilot_core::cnpg::desired_role(name, &resource["spec"]);
    let role_step = match (&desired, &observed.role) {
        (DesiredRole::Primary, Applied::Replica) => {
            let token = resource["spec"]["replica"]["promotionToken"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if token.is_some() && token == observed.refused_token {
                None
            } else {
                Some(Step::Promote { token })
            }
        }
        (
            DesiredRole::Replica {
                primary: Some(primary),
            },
            Applied::Primary,
        ) => Some(Step::Follow {
            primary: primary.clone(),
        }),
        // Named primary again: its own data, started as the primary it was.
        (DesiredRole::Primary, Applied::Diverged) => Some(Step::Unfence),
        _ => None,
    };
    match (fenced, observed.fenced, role_step) {
        (true, false, _) => Step::Fence,
        // Fenced: nothing moves until the fence is lifted.
        (true, true, _) => Step::Nothing,
        // A role change on a fenced cluster starts it in its new role (a rejoin starts it as a
        // replica): starting it first would bring back a primary that lost its role.
        (false, _, Some(step)) => step,
        (false, true, None) => Step::Unfence,
        (false, false, None) => Step::Nothing,
    }
}

/// Whether the fencing annotation covers the cluster's instance(s).
fn fenced(name: &str, resource: &Value) -> bool {
    resource["metadata"]["annotations"][hapilot_adapters::database::cnpg::FENCED_INSTANCES]
        .as_str()
        .and_then(|list| serde_json::from_str::<Vec<String>>(list).ok())
        .is_some_and(|list| {
            list.iter()
                .any(|i| i == "*" || i.starts_with(&format!("{name}-")))
        })
}

/// One cluster the stand-in manages: its resource's name and its single instance.
#[derive(Clone)]
pub struct ManagedCluster {
    /// `metadata.name`.
    pub name: String,
    /// The instance (a real server).
    pub node: PostgresNode,
    /// Where its resource lives (its region's Kubernetes API).
    pub resources: CnpgResources,
    /// Role at start.
    pub role: Applied,
}

/// The running stand-in; stops when dropped.
pub struct CnpgOperator {
    task: tokio::task::JoinHandle<()>,
}

impl CnpgOperator {
    /// Starts reconciling `clusters` (each may name any other as its primary).
    pub fn start(clusters: Vec<ManagedCluster>) -> Self {
        let servers: BTreeMap<String, PostgresServer> = clusters
            .iter()
            .map(|c| (c.name.clone(), c.node.server.clone()))
            .collect();
        let task = tokio::spawn(async move {
            let mut observed: Vec<Observed> = clusters
                .iter()
                .map(|c| {
                    c.resources.manage(&c.name);
                    Observed {
                        role: c.role.clone(),
                        fenced: false,
                        refused_token: None,
                        uid: None,
                    }
                })
                .collect();
            loop {
                for (cluster, seen) in clusters.iter().zip(observed.iter_mut()) {
                    let resource = cluster.resources.get(&cluster.name);
                    if seen.uid.is_none()
                        && seen.role != Applied::Absent
                        && let Some(r) = &resource
                    {
                        seen.uid = r["metadata"]["uid"].as_str().map(str::to_string);
                        let timeline = timeline(&cluster.node.server).await;
                        cluster.resources.update_status(&cluster.name, |s| {
                            if let Some(t) = timeline {
                                s["timelineID"] = json!(t);
                            }
                        });
                    }
                    let step = next_step(&cluster.name, resource.as_ref(), seen);
                    if step == Step::Nothing {
                        continue;
                    }
                    let uid = resource
                        .as_ref()
                        .and_then(|r| r["metadata"]["uid"].as_str().map(str::to_string));
                    if let Err(e) = apply(cluster, &servers, step, seen, uid).await {
                        cluster.resources.update_status(&cluster.name, |s| {
                            s["phase"] = json!("Cluster cannot proceed");
                            s["phaseReason"] = json!(e.to_string());
                        });
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { task }
    }
}

impl Drop for CnpgOperator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, LocalError> + Send + 'static,
) -> Result<T, LocalError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| LocalError::io("the operator stand-in")(std::io::Error::other(e)))?
}

/// The timeline a server is on, if it answers.
async fn timeline(server: &PostgresServer) -> Option<i64> {
    hapilot_adapters::database::PostgresDatabase::new(server.dsn())
        .timeline()
        .await
        .ok()
}

async fn sql(server: &PostgresServer) -> Option<tokio_postgres::Client> {
    hapilot_adapters::database::PostgresDatabase::new(server.dsn())
        .connect()
        .await
        .ok()
}

fn failed(what: &str, e: impl std::fmt::Display) -> LocalError {
    LocalError::Aws {
        operation: "CloudNativePG stand-in",
        detail: format!("{what}: {e}"),
    }
}

async fn apply(
    cluster: &ManagedCluster,
    servers: &BTreeMap<String, PostgresServer>,
    step: Step,
    seen: &mut Observed,
    uid: Option<String>,
) -> Result<(), LocalError> {
    let name = cluster.name.clone();
    let node = cluster.node.clone();
    match step {
        Step::Nothing => {}
        Step::Remove => {
            blocking(move || node.wipe()).await?;
            seen.role = Applied::Absent;
            seen.fenced = false;
            seen.uid = None;
            seen.refused_token = None;
        }
        Step::Bootstrap(Bootstrap::Unsupported(why)) => {
            // Reported once per object: the next try comes with a new object.
            seen.uid = uid;
            seen.role = Applied::Diverged;
            cluster.resources.update_status(&name, |s| {
                s["phase"] = json!("Cluster cannot proceed");
                s["phaseReason"] = json!(why);
                s["readyInstances"] = json!(0);
            });
        }
        Step::Bootstrap(Bootstrap::BaseBackup { source }) => {
            let from = servers
                .get(&source)
                .cloned()
                .ok_or_else(|| failed("bootstrap", format!("no cluster named {source}")))?;
            let dsn = from.dsn();
            let copy = node.clone();
            blocking(move || copy.bootstrap_from(&dsn)).await?;
            seen.uid = uid;
            seen.role = Applied::Replica;
            let timeline = timeline(&node.server).await;
            cluster.resources.update_status(&name, |s| {
                *s = json!({"phase": HEALTHY, "currentPrimary": format!("{name}-1"),
                            "readyInstances": 1, "bootstrappedFrom": source});
                if let Some(t) = timeline {
                    s["timelineID"] = json!(t);
                }
            });
        }
        Step::Fence => {
            blocking(move || {
                node.stop_cleanly();
                Ok(())
            })
            .await?;
            seen.fenced = true;
            cluster.resources.update_status(&name, |s| {
                s["phase"] = json!("Cluster is fenced");
                s["readyInstances"] = json!(0);
            });
        }
        Step::Unfence => {
            blocking(move || node.start_server()).await?;
            seen.fenced = false;
            cluster.resources.update_status(&name, |s| {
                s["phase"] = json!(HEALTHY);
                s["readyInstances"] = json!(1);
            });
        }
        Step::Promote { token } => {
            let client = sql(&node.server)
                .await
                .ok_or_else(|| failed("promote", "the instance does not answer"))?;
            if let Some(token) = &token {
                let row = client
                    .query_one(hapilot_adapters::database::cnpg::STANDBY_CONTROL_SQL, &[])
                    .await
                    .map_err(|e| failed("reading the control data", e))?;
                let standby = StandbyControl {
                    system_identifier: row.get(0),
                    timeline: row.get::<_, i32>(1) as u32,
                };
                let parsed = match check_promotion_token(token, &standby) {
                    Ok(t) => t,
                    // Not on the token's timeline yet: try again at the next reconciliation.
                    Err(hapilot_core::cnpg::TokenRefusal::Ahead { .. }) => return Ok(()),
                    Err(refusal) => {
                        seen.refused_token = Some(token.clone());
                        cluster.resources.update_status(&name, |s| {
                            s["phase"] = json!("Promotion token refused");
                            s["phaseReason"] = json!(refusal.to_string());
                        });
                        return Ok(());
                    }
                };
                // Replayed past the demoted primary's shutdown checkpoint: nothing it
                // committed is missing here.
                let redo = parsed.redo_lsn().map_err(|e| failed("token", e))? as f64;
                let mut replayed = false;
                for _ in 0..600 {
                    let at: Option<f64> = client
                        .query_one(
                            "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::float8",
                            &[],
                        )
                        .await
                        .ok()
                        .and_then(|r| r.get(0));
                    if at.is_some_and(|at| at > redo) {
                        replayed = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if !replayed {
                    return Err(failed(
                        "promote",
                        "the replica did not replay up to the promotion token's REDO location within 60 s",
                    ));
                }
            }
            client
                .query_one("SELECT pg_promote(true, 60)", &[])
                .await
                .map_err(|e| failed("pg_promote", e))?;
            seen.role = Applied::Primary;
            seen.refused_token = None;
            let timeline = timeline(&node.server).await;
            cluster.resources.update_status(&name, |s| {
                if let Some(t) = timeline {
                    s["timelineID"] = json!(t);
                }
                s["phase"] = json!(HEALTHY);
                s["currentPrimary"] = json!(format!("{name}-1"));
                s["readyInstances"] = json!(1);
                if let Some(o) = s.as_object_mut() {
                    o.remove("demotionToken");
                    o.remove("phaseReason");
                }
            });
        }
        Step::Follow { primary } => {
            let source = servers
                .get(&primary)
                .cloned()
                .ok_or_else(|| failed("follow", format!("no cluster named {primary}")))?;
            let own_running = match sql(&node.server).await {
                Some(c) => c
                    .query_one("SELECT pg_is_in_recovery()", &[])
                    .await
                    .map(|r| !r.get::<_, bool>(0))
                    .unwrap_or(false),
                None => false,
            };
            let peer_is_replica = match sql(&source).await {
                Some(c) => c
                    .query_one("SELECT pg_is_in_recovery()", &[])
                    .await
                    .map(|r| r.get::<_, bool>(0))
                    .unwrap_or(false),
                None => false,
            };
            if own_running && peer_is_replica {
                // Graceful demotion: clean shutdown, the token, restart as a standby.
                let token = blocking(move || {
                    node.stop_cleanly();
                    let control = node.controldata()?;
                    let token = PromotionToken::from_controldata(&control, OPERATOR_VERSION)
                        .ok_or_else(|| failed("demote", "pg_controldata lacks a token field"))?;
                    node.start_as_standby_of(&source)?;
                    Ok(token.encode())
                })
                .await?;
                cluster.resources.update_status(&name, |s| {
                    s["phase"] = json!(HEALTHY);
                    s["demotionToken"] = json!(token);
                });
                seen.role = Applied::Replica;
            } else {
                // It lost its role without a clean handover: its timeline diverged from the
                // one promoted without it, which its instance cannot stream from. It stays
                // down (never back as a primary) until it is rebuilt.
                blocking(move || {
                    node.stop_cleanly();
                    Ok(())
                })
                .await?;
                cluster.resources.update_status(&name, |s| {
                    s["phase"] = json!(WAITING);
                    s["readyInstances"] = json!(0);
                    s["phaseReason"] = json!(format!(
                        "{name}-1 cannot follow {primary}: {primary} was promoted without a promotion token while {name} was primary, so their timelines diverged. \
                         Rebuild {name}: delete the Cluster (and its PVCs) and create it again as a replica cluster bootstrapped from {primary}"
                    ));
                });
                seen.role = Applied::Diverged;
            }
            seen.fenced = false;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(role: Applied, fenced: bool) -> Observed {
        Observed {
            role,
            fenced,
            refused_token: None,
            uid: None,
        }
    }

    fn cluster(primary: &str, token: Option<&str>, fence: Option<&str>) -> Value {
        let mut r = json!({"metadata": {"name": "pg-west"},
                           "spec": {"replica": {"primary": primary, "source": "pg-east"}}});
        if let Some(t) = token {
            r["spec"]["replica"]["promotionToken"] = json!(t);
        }
        if let Some(f) = fence {
            r["metadata"]["annotations"] = json!({"cnpg.io/fencedInstances": f});
        }
        r
    }

    #[test]
    fn a_replica_named_primary_is_promoted_with_its_token_once() {
        let r = cluster("pg-west", Some("tok"), None);
        let mut seen = observed(Applied::Replica, false);
        assert_eq!(
            next_step("pg-west", Some(&r), &seen),
            Step::Promote {
                token: Some("tok".into())
            }
        );
        seen.refused_token = Some("tok".into());
        assert_eq!(next_step("pg-west", Some(&r), &seen), Step::Nothing);
        let r = cluster("pg-west", Some("other"), None);
        assert!(matches!(
            next_step("pg-west", Some(&r), &seen),
            Step::Promote { .. }
        ));
        let r = cluster("pg-west", None, None);
        assert_eq!(
            next_step("pg-west", Some(&r), &observed(Applied::Replica, false)),
            Step::Promote { token: None }
        );
    }

    #[test]
    fn a_primary_named_replica_follows_and_the_fence_comes_first() {
        let r = cluster("pg-east", None, None);
        assert_eq!(
            next_step("pg-west", Some(&r), &observed(Applied::Primary, false)),
            Step::Follow {
                primary: "pg-east".into()
            }
        );
        let fenced = cluster("pg-east", None, Some("[\"*\"]"));
        assert_eq!(
            next_step("pg-west", Some(&fenced), &observed(Applied::Primary, false)),
            Step::Fence
        );
        assert_eq!(
            next_step("pg-west", Some(&fenced), &observed(Applied::Primary, true)),
            Step::Nothing
        );
        // Fence lifted together with the rejoin: the rejoin, never a restart as primary.
        assert_eq!(
            next_step("pg-west", Some(&r), &observed(Applied::Primary, true)),
            Step::Follow {
                primary: "pg-east".into()
            }
        );
        let steady = cluster("pg-west", None, None);
        assert_eq!(
            next_step("pg-west", Some(&steady), &observed(Applied::Primary, true)),
            Step::Unfence
        );
        assert_eq!(
            next_step("pg-west", Some(&steady), &observed(Applied::Primary, false)),
            Step::Nothing
        );
        let one = cluster("pg-west", None, Some("[\"pg-west-1\"]"));
        assert_eq!(
            next_step("pg-west", Some(&one), &observed(Applied::Primary, false)),
            Step::Fence
        );
        let other = cluster("pg-west", None, Some("[\"pg-east-1\"]"));
        assert_eq!(
            next_step("pg-west", Some(&other), &observed(Applied::Primary, false)),
            Step::Nothing
        );
    }

    #[test]
    fn a_diverged_former_primary_waits_for_its_rebuild() {
        // Told to follow: the apply step decides graceful or diverged; once diverged, a spec
        // naming another primary changes nothing, naming itself starts it again.
        let follow = cluster("pg-east", None, None);
        assert_eq!(
            next_step(
                "pg-west",
                Some(&follow),
                &observed(Applied::Diverged, false)
            ),
            Step::Nothing
        );
        let own = cluster("pg-west", None, None);
        assert_eq!(
            next_step("pg-west", Some(&own), &observed(Applied::Diverged, false)),
            Step::Unfence
        );
    }

    #[test]
    fn deleting_and_recreating_a_cluster_rebuilds_it_from_its_bootstrap() {
        let mut seen = observed(Applied::Diverged, false);
        seen.uid = Some("uid-1".into());
        assert_eq!(next_step("pg-west", None, &seen), Step::Remove);
        // Re-created before the operator looked: a new uid is a new object all the same.
        let mut again = cluster("pg-east", None, None);
        again["metadata"]["uid"] = json!("uid-2");
        again["spec"]["bootstrap"] = json!({"pg_basebackup": {"source": "pg-east"}});
        again["spec"]["externalClusters"] = json!([{"name": "pg-east"}]);
        assert_eq!(next_step("pg-west", Some(&again), &seen), Step::Remove);
        let gone = observed(Applied::Absent, false);
        assert_eq!(next_step("pg-west", None, &gone), Step::Nothing);
        assert_eq!(
            next_step("pg-west", Some(&again), &gone),
            Step::Bootstrap(Bootstrap::BaseBackup {
                source: "pg-east".into()
            })
        );
        // The same object: nothing to rebuild.
        let mut same = observed(Applied::Replica, false);
        same.uid = Some("uid-2".into());
        assert_eq!(next_step("pg-west", Some(&again), &same), Step::Nothing);
    }

    #[test]
    fn a_bootstrap_names_a_known_external_cluster() {
        let mut r = cluster("pg-east", None, None);
        r["spec"]["bootstrap"] = json!({"pg_basebackup": {"source": "pg-east"}});
        assert!(
            matches!(bootstrap_of(&r), Bootstrap::Unsupported(why) if why.contains("externalClusters"))
        );
        r["spec"]["bootstrap"] = json!({"recovery": {"source": "origin"}});
        assert!(
            matches!(bootstrap_of(&r), Bootstrap::Unsupported(why) if why.contains("pg_basebackup"))
        );
    }
}
