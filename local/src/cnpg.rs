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
//! - the same on a primary that lost its role (the peer was promoted without it, or it is
//!   down) rejoins it with pg_rewind (a fresh base backup when rewinding is impossible);
//! - `cnpg.io/fencedInstances` stops PostgreSQL; removing it starts it again.
//!
//! What to do is decided by [`next_step`], a pure function with tests; [`CnpgOperator`] runs
//! the steps.

use std::collections::BTreeMap;
use std::time::Duration;

use hapilot_core::cnpg::{DesiredRole, PromotionToken, StandbyControl, check_promotion_token};
use serde_json::{Value, json};

use super::kubernetes::CnpgResources;
use super::postgres::{PostgresNode, PostgresServer};
use crate::LocalError;

/// The version the stand-in writes into its tokens.
pub const OPERATOR_VERSION: &str = "hapilot-local-cnpg";
/// The phase of a healthy cluster, as the operator reports it.
pub const HEALTHY: &str = "Cluster in healthy state";

/// The role the operator has put a cluster's instances in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Its designated instance is a primary.
    Primary,
    /// Its designated instance streams from another cluster.
    Replica,
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
    /// `primary` is still a replica, else a rejoin (pg_rewind).
    Follow {
        /// The cluster named primary.
        primary: String,
    },
}

/// What to do next for cluster `name`, given its resource and what was applied.
pub fn next_step(name: &str, resource: &Value, observed: &Observed) -> Step {
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
    resource["metadata"]["annotations"][hapilot_adapters::cnpg::FENCED_INSTANCES]
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
                .map(|c| Observed {
                    role: c.role.clone(),
                    fenced: false,
                    refused_token: None,
                })
                .collect();
            loop {
                for (cluster, seen) in clusters.iter().zip(observed.iter_mut()) {
                    let Some(resource) = cluster.resources.get(&cluster.name) else {
                        continue;
                    };
                    let step = next_step(&cluster.name, &resource, seen);
                    if step == Step::Nothing {
                        continue;
                    }
                    if let Err(e) = apply(cluster, &servers, step, seen).await {
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
) -> Result<(), LocalError> {
    let name = cluster.name.clone();
    let node = cluster.node.clone();
    match step {
        Step::Nothing => {}
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
                    .query_one(hapilot_adapters::cnpg::STANDBY_CONTROL_SQL, &[])
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
            cluster.resources.update_status(&name, |s| {
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
            } else {
                // It lost its role without a clean handover: rewind it onto the new primary.
                let dsn = source.dsn();
                let rebuilt = blocking(move || node.rebuild_from(&dsn)).await?;
                cluster.resources.update_status(&name, |s| {
                    s["phase"] = json!(HEALTHY);
                    s["readyInstances"] = json!(1);
                    s["rejoinedWith"] = json!(rebuilt.method);
                });
            }
            seen.role = Applied::Replica;
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
            next_step("pg-west", &r, &seen),
            Step::Promote {
                token: Some("tok".into())
            }
        );
        seen.refused_token = Some("tok".into());
        assert_eq!(next_step("pg-west", &r, &seen), Step::Nothing);
        let r = cluster("pg-west", Some("other"), None);
        assert!(matches!(
            next_step("pg-west", &r, &seen),
            Step::Promote { .. }
        ));
        let r = cluster("pg-west", None, None);
        assert_eq!(
            next_step("pg-west", &r, &observed(Applied::Replica, false)),
            Step::Promote { token: None }
        );
    }

    #[test]
    fn a_primary_named_replica_follows_and_the_fence_comes_first() {
        let r = cluster("pg-east", None, None);
        assert_eq!(
            next_step("pg-west", &r, &observed(Applied::Primary, false)),
            Step::Follow {
                primary: "pg-east".into()
            }
        );
        let fenced = cluster("pg-east", None, Some("[\"*\"]"));
        assert_eq!(
            next_step("pg-west", &fenced, &observed(Applied::Primary, false)),
            Step::Fence
        );
        assert_eq!(
            next_step("pg-west", &fenced, &observed(Applied::Primary, true)),
            Step::Nothing
        );
        // Fence lifted together with the rejoin: the rejoin, never a restart as primary.
        assert_eq!(
            next_step("pg-west", &r, &observed(Applied::Primary, true)),
            Step::Follow {
                primary: "pg-east".into()
            }
        );
        let steady = cluster("pg-west", None, None);
        assert_eq!(
            next_step("pg-west", &steady, &observed(Applied::Primary, true)),
            Step::Unfence
        );
        assert_eq!(
            next_step("pg-west", &steady, &observed(Applied::Primary, false)),
            Step::Nothing
        );
        let one = cluster("pg-west", None, Some("[\"pg-west-1\"]"));
        assert_eq!(
            next_step("pg-west", &one, &observed(Applied::Primary, false)),
            Step::Fence
        );
        let other = cluster("pg-west", None, Some("[\"pg-east-1\"]"));
        assert_eq!(
            next_step("pg-west", &other, &observed(Applied::Primary, false)),
            Step::Nothing
        );
    }
}
