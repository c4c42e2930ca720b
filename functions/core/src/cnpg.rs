//! CloudNativePG distributed topologies (operator 1.24+): which `Cluster` is primary, and the
//! demotion/promotion token that makes a switchover between two clusters lossless.
//!
//! In a distributed topology every `Cluster` names the primary in `spec.replica.primary`; the
//! cluster whose own name (`spec.replica.self`, default `metadata.name`) is named there is
//! primary, every other one is a replica cluster. A switchover first points the primary's
//! `Cluster` at the other one: the operator shuts PostgreSQL down cleanly and publishes
//! `status.demotionToken`, the base64 of a JSON object with fields of `pg_controldata` at that
//! shutdown checkpoint. Setting that token as the replica's `spec.replica.promotionToken` makes
//! its operator wait until it has replayed up to that checkpoint before promoting. The older,
//! non-distributed form has no `primary` field: `spec.replica.enabled: false` promotes.
//!
//! The token check here is the one both hapilot (before it asks for a promotion) and the local
//! operator stand-in (before it promotes) apply.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::CoreError;

/// The content of a demotion/promotion token: `pg_controldata` of the demoted primary at its
/// shutdown checkpoint, with CloudNativePG's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionToken {
    /// "Latest checkpoint's TimeLineID".
    #[serde(rename = "latestCheckpointTimelineID")]
    pub latest_checkpoint_timeline_id: String,
    /// "Latest checkpoint's REDO WAL file".
    pub redo_wal_file: String,
    /// "Database system identifier".
    pub database_system_identifier: String,
    /// "Latest checkpoint's REDO location", e.g. `0/3000028`.
    #[serde(rename = "latestCheckpointREDOLocation")]
    pub latest_checkpoint_redo_location: String,
    /// "Time of latest checkpoint".
    pub time_of_latest_checkpoint: String,
    /// The version of the operator that wrote it.
    #[serde(default)]
    pub operator_version: String,
}

impl PromotionToken {
    /// Decodes a token as `status.demotionToken` holds it (base64 of the JSON object).
    pub fn decode(token: &str) -> Result<Self, CoreError> {
        let bad = |why: String| CoreError::invalid("promotionToken", why);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .map_err(|e| bad(format!("is not base64: {e}")))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            bad(format!(
                "is not a CloudNativePG token (JSON with pg_controldata fields): {e}"
            ))
        })
    }

    /// The token of a cleanly shut down server, from its `pg_controldata` output (as the
    /// operator builds it); `None` when a field is missing.
    pub fn from_controldata(output: &str, operator_version: &str) -> Option<Self> {
        let field = |key: &str| {
            output.lines().find_map(|line| {
                let (k, v) = line.split_once(':')?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
        };
        Some(Self {
            latest_checkpoint_timeline_id: field("Latest checkpoint's TimeLineID")?,
            redo_wal_file: field("Latest checkpoint's REDO WAL file")?,
            database_system_identifier: field("Database system identifier")?,
            latest_checkpoint_redo_location: field("Latest checkpoint's REDO location")?,
            time_of_latest_checkpoint: field("Time of latest checkpoint")?,
            operator_version: operator_version.to_string(),
        })
    }

    /// The token text (base64 of the JSON object).
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a token always serializes");
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    /// The REDO location as a byte position.
    pub fn redo_lsn(&self) -> Result<u64, CoreError> {
        parse_lsn(&self.latest_checkpoint_redo_location).ok_or_else(|| {
            CoreError::invalid(
                "promotionToken",
                format!(
                    "latestCheckpointREDOLocation {:?} is not an LSN",
                    self.latest_checkpoint_redo_location
                ),
            )
        })
    }
}

/// What the standby itself reports, to check a token against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandbyControl {
    /// `pg_control_system().system_identifier`.
    pub system_identifier: String,
    /// The timeline it is replaying.
    pub timeline: u32,
}

/// Why a token cannot promote this standby.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRefusal {
    /// The token is not a CloudNativePG token at all.
    Malformed(String),
    /// It comes from another database system (a different `initdb`): a wrong token.
    OtherSystem {
        /// The token's system identifier.
        token: String,
        /// The standby's.
        standby: String,
    },
    /// Its timeline is one the standby has not reached yet (it has not followed the demoted
    /// primary's last promotion): wait, or refuse when waiting is over.
    Ahead {
        /// The token's timeline.
        token: u32,
        /// The standby's.
        standby: u32,
    },
    /// Its timeline is older than the one the standby replays: a token from an earlier
    /// switchover.
    Stale {
        /// The token's timeline.
        token: u32,
        /// The standby's.
        standby: u32,
    },
}

impl std::fmt::Display for TokenRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenRefusal::Malformed(why) => write!(f, "the token is malformed: {why}"),
            TokenRefusal::OtherSystem { token, standby } => write!(
                f,
                "wrong token: it is from database system {token}, the standby is {standby}"
            ),
            TokenRefusal::Ahead { token, standby } => write!(
                f,
                "the standby replays timeline {standby} and has not reached the token's timeline {token}: it is behind the demoted primary"
            ),
            TokenRefusal::Stale { token, standby } => write!(
                f,
                "stale token: it is from timeline {token}, the standby replays timeline {standby} \
                 (demote the primary again and use its new status.demotionToken)"
            ),
        }
    }
}

/// Whether `token` may promote the standby described by `standby`: same database system, same
/// timeline. A standby behind the token's timeline ([`TokenRefusal::Ahead`]) may still get
/// there; whether it has replayed up to the token's REDO location is likewise a matter of
/// waiting, not of refusing.
pub fn check_promotion_token(
    token: &str,
    standby: &StandbyControl,
) -> Result<PromotionToken, TokenRefusal> {
    let parsed =
        PromotionToken::decode(token).map_err(|e| TokenRefusal::Malformed(e.to_string()))?;
    if parsed.database_system_identifier != standby.system_identifier {
        return Err(TokenRefusal::OtherSystem {
            token: parsed.database_system_identifier,
            standby: standby.system_identifier.clone(),
        });
    }
    let timeline: u32 = parsed
        .latest_checkpoint_timeline_id
        .trim()
        .parse()
        .map_err(|_| {
            TokenRefusal::Malformed(format!(
                "latestCheckpointTimelineID {:?} is not a number",
                parsed.latest_checkpoint_timeline_id
            ))
        })?;
    if timeline > standby.timeline {
        return Err(TokenRefusal::Ahead {
            token: timeline,
            standby: standby.timeline,
        });
    }
    if timeline < standby.timeline {
        return Err(TokenRefusal::Stale {
            token: timeline,
            standby: standby.timeline,
        });
    }
    parsed
        .redo_lsn()
        .map_err(|e| TokenRefusal::Malformed(e.to_string()))?;
    Ok(parsed)
}

/// The role a `Cluster`'s spec gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DesiredRole {
    /// Primary: no replica stanza, `enabled: false`, or `primary` naming itself.
    Primary,
    /// A replica cluster of `primary` (`None` in the older form, which names only a source).
    Replica {
        /// The cluster named primary.
        primary: Option<String>,
    },
}

/// The role `spec` (a `Cluster`'s `spec`, as JSON) gives cluster `name`.
pub fn desired_role(name: &str, spec: &serde_json::Value) -> DesiredRole {
    let replica = &spec["replica"];
    if replica.is_null() {
        return DesiredRole::Primary;
    }
    let own = replica["self"].as_str().unwrap_or(name);
    match replica["primary"].as_str() {
        Some(p) if p == own => DesiredRole::Primary,
        Some(p) => DesiredRole::Replica {
            primary: Some(p.to_string()),
        },
        None if replica["enabled"].as_bool() == Some(true) => {
            DesiredRole::Replica { primary: None }
        }
        None => DesiredRole::Primary,
    }
}

/// The merge patch (RFC 7386) that makes cluster `name` primary: in the distributed form its
/// own name in `spec.replica.primary` (with `token` as `promotionToken` for a switchover), in
/// the older form `spec.replica.enabled: false`.
pub fn promote_patch(
    name: &str,
    spec: &serde_json::Value,
    token: Option<&str>,
) -> serde_json::Value {
    let replica = &spec["replica"];
    if replica["primary"].is_string() {
        let own = replica["self"].as_str().unwrap_or(name);
        let mut patch = serde_json::json!({"spec": {"replica": {"primary": own}}});
        if let Some(t) = token {
            patch["spec"]["replica"]["promotionToken"] = t.into();
        }
        patch
    } else {
        serde_json::json!({"spec": {"replica": {"enabled": false}}})
    }
}

/// The merge patch that makes cluster `name` a replica cluster of `new_primary` (demotion in a
/// switchover, re-protection after a failover). The older form has no way to name a primary:
/// it turns `enabled` back on and keeps its `source`.
pub fn follow_patch(spec: &serde_json::Value, new_primary: &str) -> serde_json::Value {
    if spec["replica"]["primary"].is_string() {
        serde_json::json!({"spec": {"replica": {"primary": new_primary}}})
    } else {
        serde_json::json!({"spec": {"replica": {"enabled": true}}})
    }
}

/// The `Cluster` that rebuilds `resource` (a former primary that lost its role) as a replica
/// cluster of `new_primary`: the same name, namespace, labels and spec, bootstrapped with
/// `pg_basebackup` from `new_primary` and following it; no fence; a fresh `serverName` for
/// its WAL archive when it has one (CloudNativePG refuses to archive a new cluster into a
/// server name that already holds another's WAL). Refused when `new_primary` is not one of
/// its `spec.externalClusters` (the new cluster could not reach it).
pub fn rebuild_resource(
    resource: &serde_json::Value,
    new_primary: &str,
    fresh_server_name: &str,
) -> Result<serde_json::Value, CoreError> {
    let name = resource["metadata"]["name"].as_str().unwrap_or_default();
    let mut spec = resource["spec"].clone();
    let known = spec["externalClusters"]
        .as_array()
        .is_some_and(|list| list.iter().any(|c| c["name"] == new_primary));
    if !known {
        return Err(CoreError::invalid(
            "primary_region",
            format!(
                "Cluster {name} has no spec.externalClusters entry named {new_primary}: a rebuilt replica cluster could not reach it; add it, then run reprotect again"
            ),
        ));
    }
    let Some(fields) = spec.as_object_mut() else {
        return Err(CoreError::invalid(
            "spec",
            format!("Cluster {name} has no spec"),
        ));
    };
    fields.insert(
        "bootstrap".into(),
        serde_json::json!({"pg_basebackup": {"source": new_primary}}),
    );
    let replica = fields
        .entry("replica")
        .or_insert_with(|| serde_json::json!({}));
    if replica["primary"].is_string() {
        replica["primary"] = new_primary.into();
    } else {
        replica["enabled"] = true.into();
    }
    replica["source"] = new_primary.into();
    if let Some(replica) = replica.as_object_mut() {
        replica.remove("promotionToken");
    }
    if spec["backup"]["barmanObjectStore"].is_object() {
        spec["backup"]["barmanObjectStore"]["serverName"] = fresh_server_name.into();
    }
    let mut metadata = serde_json::json!({"name": name});
    for field in ["namespace", "labels"] {
        if !resource["metadata"][field].is_null() {
            metadata[field] = resource["metadata"][field].clone();
        }
    }
    if let Some(annotations) = resource["metadata"]["annotations"].as_object() {
        let kept: serde_json::Map<String, serde_json::Value> = annotations
            .iter()
            .filter(|(k, _)| k.as_str() != "cnpg.io/fencedInstances")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        metadata["annotations"] = kept.into();
    }
    Ok(serde_json::json!({
        "apiVersion": resource["apiVersion"].as_str().unwrap_or("postgresql.cnpg.io/v1"),
        "kind": "Cluster",
        "metadata": metadata,
        "spec": spec,
    }))
}

/// Whether `resource` is already the rebuild of a former primary from `new_primary` (a
/// re-run of reprotect must not delete it again).
pub fn is_rebuild_from(resource: &serde_json::Value, new_primary: &str) -> bool {
    resource["spec"]["bootstrap"]["pg_basebackup"]["source"] == new_primary
        && resource["status"]["phaseReason"].is_null()
}

/// `X/Y` (hex) as a byte position.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token(system: &str, timeline: &str, redo: &str) -> PromotionToken {
        PromotionToken {
            latest_checkpoint_timeline_id: timeline.into(),
            redo_wal_file: "000000010000000000000003".into(),
            database_system_identifier: system.into(),
            latest_checkpoint_redo_location: redo.into(),
            time_of_latest_checkpoint: "Tue 01 Dec 2026 01:00:00 AM UTC".into(),
            operator_version: "1.27.0".into(),
        }
    }

    #[test]
    fn a_token_round_trips_with_cloudnativepg_field_names() {
        let t = token("7311111111111111111", "1", "0/3000028");
        let text = t.encode();
        let json: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(&text)
                .unwrap(),
        )
        .unwrap();
        for field in [
            "latestCheckpointTimelineID",
            "redoWalFile",
            "databaseSystemIdentifier",
            "latestCheckpointREDOLocation",
            "timeOfLatestCheckpoint",
            "operatorVersion",
        ] {
            assert!(json.get(field).is_some(), "{field} in {json}");
        }
        assert_eq!(PromotionToken::decode(&text).unwrap(), t);
        assert_eq!(t.redo_lsn().unwrap(), 0x3000028);
    }

    #[test]
    fn wrong_stale_and_malformed_tokens_are_refused_by_kind() {
        let standby = StandbyControl {
            system_identifier: "7311111111111111111".into(),
            timeline: 2,
        };
        let ok = token("7311111111111111111", "2", "0/5000028").encode();
        assert_eq!(
            check_promotion_token(&ok, &standby)
                .unwrap()
                .redo_lsn()
                .unwrap(),
            0x5000028
        );
        let other = token("7399999999999999999", "2", "0/5000028").encode();
        let e = check_promotion_token(&other, &standby).unwrap_err();
        assert!(matches!(e, TokenRefusal::OtherSystem { .. }));
        assert!(e.to_string().starts_with("wrong token"), "{e}");
        let stale = token("7311111111111111111", "1", "0/3000028").encode();
        let e = check_promotion_token(&stale, &standby).unwrap_err();
        assert_eq!(
            e,
            TokenRefusal::Stale {
                token: 1,
                standby: 2
            }
        );
        assert!(e.to_string().starts_with("stale token"), "{e}");
        for bad in ["", "not base64!", "eyJmb28iOiAxfQ=="] {
            assert!(matches!(
                check_promotion_token(bad, &standby),
                Err(TokenRefusal::Malformed(_))
            ));
        }
    }

    #[test]
    fn a_token_is_read_from_pg_controldata_output() {
        let out = "pg_control version number:            1700\n\
Database system identifier:           7443567890123456789\n\
Database cluster state:               shut down\n\
Latest checkpoint location:           0/3000028\n\
Latest checkpoint's REDO location:    0/3000028\n\
Latest checkpoint's REDO WAL file:    000000010000000000000003\n\
Latest checkpoint's TimeLineID:       1\n\
Time of latest checkpoint:            Tue 01 Dec 2026 01:00:00 AM UTC\n";
        let t = PromotionToken::from_controldata(out, "stand-in").unwrap();
        assert_eq!(t.database_system_identifier, "7443567890123456789");
        assert_eq!(t.latest_checkpoint_timeline_id, "1");
        assert_eq!(t.redo_wal_file, "000000010000000000000003");
        assert_eq!(t.redo_lsn().unwrap(), 0x3000028);
        assert!(PromotionToken::from_controldata("nothing: here", "x").is_none());
    }

    #[test]
    fn roles_and_patches_follow_both_forms() {
        let distributed = json!({"replica": {"primary": "pg-east", "source": "pg-east"}});
        assert_eq!(desired_role("pg-east", &distributed), DesiredRole::Primary);
        assert_eq!(
            desired_role("pg-west", &distributed),
            DesiredRole::Replica {
                primary: Some("pg-east".into())
            }
        );
        assert_eq!(
            promote_patch("pg-west", &distributed, Some("tok")),
            json!({"spec": {"replica": {"primary": "pg-west", "promotionToken": "tok"}}})
        );
        assert_eq!(
            follow_patch(&distributed, "pg-west"),
            json!({"spec": {"replica": {"primary": "pg-west"}}})
        );
        let older = json!({"replica": {"enabled": true, "source": "pg-east"}});
        assert_eq!(
            desired_role("pg-west", &older),
            DesiredRole::Replica { primary: None }
        );
        assert_eq!(
            promote_patch("pg-west", &older, None),
            json!({"spec": {"replica": {"enabled": false}}})
        );
        assert_eq!(desired_role("x", &json!({})), DesiredRole::Primary);
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(parse_lsn("nope"), None);
    }

    #[test]
    fn a_rebuilt_former_primary_follows_the_new_one_from_a_base_backup() {
        let old = json!({
            "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
            "metadata": {"name": "pg-east", "namespace": "ai-gateway", "uid": "u-1",
                         "resourceVersion": "7", "labels": {"team": "gw"},
                         "annotations": {"cnpg.io/fencedInstances": "[\"*\"]", "keep": "me"}},
            "spec": {"instances": 3, "storage": {"size": "500Gi"},
                     "bootstrap": {"initdb": {"database": "litellm"}},
                     "replica": {"self": "pg-east", "primary": "pg-east", "source": "pg-west"},
                     "externalClusters": [{"name": "pg-west"}],
                     "backup": {"barmanObjectStore": {"destinationPath": "s3://b/", "serverName": "pg-east"}}},
            "status": {"phase": "Waiting for the instances to become active"}
        });
        let new = rebuild_resource(&old, "pg-west", "pg-east-20261206").unwrap();
        assert_eq!(
            new["spec"]["bootstrap"],
            json!({"pg_basebackup": {"source": "pg-west"}})
        );
        assert_eq!(new["spec"]["replica"]["primary"], "pg-west");
        assert_eq!(new["spec"]["replica"]["source"], "pg-west");
        assert_eq!(new["spec"]["storage"]["size"], "500Gi");
        assert_eq!(
            new["spec"]["backup"]["barmanObjectStore"]["serverName"],
            "pg-east-20261206"
        );
        assert_eq!(
            new["metadata"],
            json!({"name": "pg-east", "namespace": "ai-gateway",
            "labels": {"team": "gw"}, "annotations": {"keep": "me"}})
        );
        assert!(new["status"].is_null());
        let mut unknown = old.clone();
        unknown["spec"]["externalClusters"] = json!([]);
        assert!(rebuild_resource(&unknown, "pg-west", "x").is_err());
        let mut rebuilding = new.clone();
        assert!(is_rebuild_from(&rebuilding, "pg-west"));
        rebuilding["status"]["phaseReason"] = json!("cannot follow");
        assert!(!is_rebuild_from(&rebuilding, "pg-west"));
        assert!(!is_rebuild_from(&old, "pg-west"));
    }
}
