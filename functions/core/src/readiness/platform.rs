//! The platform's own HA managers, where a deployment uses them: Patroni's member list (the
//! failover's candidate is a streaming replica), Redis Sentinel's view of the master, and Vault
//! Enterprise performance replication.

use serde::{Deserialize, Serialize};

use super::{CheckStatus, ReadinessCheck, check};

/// One member of Patroni's `GET /cluster`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatroniMemberView {
    /// `name`.
    pub name: String,
    /// `role`: `leader`, `standby_leader`, `replica`, `sync_standby`, ...
    pub role: String,
    /// `state`: `running`, `streaming`, `in archive recovery`, `stopped`, ...
    pub state: String,
    /// `lag` in bytes, when Patroni reports one.
    pub lag_bytes: Option<u64>,
    /// `tags.nofailover`.
    pub nofailover: bool,
}

/// Patroni: the cluster has a leader, and the member the failover promotes (`candidate`) is a
/// healthy replica Patroni would accept as a failover candidate.
pub fn patroni_check(
    region: &str,
    candidate: &str,
    members: &[PatroniMemberView],
) -> ReadinessCheck {
    let leader = members.iter().find(|m| {
        matches!(
            m.role.as_str(),
            "leader" | "master" | "primary" | "standby_leader"
        )
    });
    let listed: Vec<String> = members
        .iter()
        .map(|m| format!("{} {} {}", m.name, m.role, m.state))
        .collect();
    let mine = members.iter().find(|m| m.name == candidate);
    let (status, seen) = match (leader, mine) {
        (None, _) => (CheckStatus::Fail, "no leader".to_string()),
        (_, None) => (
            CheckStatus::Fail,
            format!("the failover would promote {candidate}, which is not a member"),
        ),
        (Some(l), Some(m)) if l.name == m.name => (
            CheckStatus::Fail,
            format!("{candidate} is already the leader: this region is not a standby"),
        ),
        (_, Some(m)) if m.nofailover => (
            CheckStatus::Fail,
            format!("{candidate} is tagged nofailover: Patroni refuses to promote it"),
        ),
        (_, Some(m))
            if !matches!(m.role.as_str(), "replica" | "sync_standby")
                || !matches!(m.state.as_str(), "streaming" | "running") =>
        {
            (
                CheckStatus::Fail,
                format!(
                    "{candidate} is {} and {}, not a streaming replica",
                    m.role, m.state
                ),
            )
        }
        (Some(l), Some(m)) => (
            CheckStatus::Pass,
            format!(
                "leader {}; the failover's candidate {} is a {} ({}{})",
                l.name,
                m.name,
                m.role,
                m.state,
                m.lag_bytes
                    .map(|b| format!(", {b} bytes behind"))
                    .unwrap_or_default()
            ),
        ),
    };
    check(
        "database.patroni",
        region,
        candidate,
        status,
        format!("{seen} (members: {})", listed.join(", ")),
        "make the configured member a streaming replica of the leader (patronictl list; patronictl reinit), or point HAPILOT_REGIONS' member at the replica the failover should promote",
    )
}

/// `SENTINEL MASTER <name>` as one Sentinel answers it (`None` for one that did not answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentinelView {
    /// The Sentinel's address.
    pub sentinel: String,
    /// The master's `ip:port`, `flags` (`master`, `s_down`, `o_down`, ...), `num-slaves`,
    /// `num-other-sentinels`, `quorum`; or why it could not be read.
    pub answer: Result<SentinelMaster, String>,
}

/// One Sentinel's view of a master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentinelMaster {
    /// `ip:port`.
    pub address: String,
    /// `flags`, comma separated as Sentinel writes them.
    pub flags: String,
    /// `num-slaves`.
    pub replicas: i64,
    /// `num-other-sentinels`.
    pub other_sentinels: i64,
    /// `quorum`.
    pub quorum: i64,
}

/// Sentinel: enough Sentinels answer to reach the quorum, they agree on a master that is up,
/// and it has a replica to promote.
pub fn sentinel_check(region: &str, master_name: &str, views: &[SentinelView]) -> ReadinessCheck {
    let answers: Vec<&SentinelMaster> = views
        .iter()
        .filter_map(|v| v.answer.as_ref().ok())
        .collect();
    let silent: Vec<String> = views
        .iter()
        .filter_map(|v| {
            v.answer
                .as_ref()
                .err()
                .map(|e| format!("{}: {e}", v.sentinel))
        })
        .collect();
    let quorum = answers.iter().map(|a| a.quorum).max().unwrap_or(0);
    let mut masters: Vec<&str> = answers.iter().map(|a| a.address.as_str()).collect();
    masters.sort();
    masters.dedup();
    let down: Vec<&str> = answers
        .iter()
        .flat_map(|a| a.flags.split(','))
        .filter(|f| matches!(*f, "s_down" | "o_down" | "disconnected"))
        .collect();
    let replicas = answers.iter().map(|a| a.replicas).min().unwrap_or(0);
    let (status, seen) = if answers.is_empty() {
        (CheckStatus::Fail, "no Sentinel answered".to_string())
    } else if (answers.len() as i64) < quorum {
        (
            CheckStatus::Fail,
            format!(
                "{} Sentinel(s) answered, quorum is {quorum}: no failover could be agreed",
                answers.len()
            ),
        )
    } else if masters.len() > 1 {
        (
            CheckStatus::Fail,
            format!(
                "the Sentinels disagree on the master: {}",
                masters.join(", ")
            ),
        )
    } else if !down.is_empty() {
        (
            CheckStatus::Fail,
            format!("master {} is flagged {}", masters[0], down.join(",")),
        )
    } else if replicas < 1 {
        (
            CheckStatus::Fail,
            format!("master {} has no replica to promote", masters[0]),
        )
    } else if !silent.is_empty() {
        (
            CheckStatus::Warn,
            format!(
                "master {} up with {replicas} replica(s); {} of {} Sentinel(s) silent",
                masters[0],
                silent.len(),
                views.len()
            ),
        )
    } else {
        (
            CheckStatus::Pass,
            format!(
                "{} Sentinel(s) (quorum {quorum}) see master {} up with {replicas} replica(s)",
                answers.len(),
                masters[0]
            ),
        )
    };
    let seen = if silent.is_empty() || status == CheckStatus::Warn {
        seen
    } else {
        format!("{seen}; silent: {}", silent.join("; "))
    };
    check(
        "redis.sentinel",
        region,
        master_name,
        status,
        seen,
        "run at least 3 Sentinels watching the master with a replica (redis-cli -p 26379 sentinel master <name>)",
    )
}

/// Vault Enterprise's `GET /v1/sys/replication/performance/status` `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultReplicationView {
    /// `mode`: `primary`, `secondary`, `disabled`, `bootstrapping`.
    pub mode: String,
    /// `state`: `running`, `stream-wals`, `merkle-sync`, `idle`, ...
    pub state: String,
    /// Each connected peer's `connection_status` (`secondaries` of a primary, `primaries` of a
    /// secondary).
    pub connections: Vec<String>,
    /// A primary's `known_secondaries`: the ids it issued activation tokens for.
    #[serde(default)]
    pub known_secondaries: Vec<String>,
    /// A secondary's primary (`primaries[0].api_address`), if it follows one.
    #[serde(default)]
    pub primary: Option<String>,
}

/// Vault performance replication: the standby's cluster is a secondary streaming from the
/// primary (the `idle` state means communication has stopped).
pub fn vault_replication_check(region: &str, view: &VaultReplicationView) -> ReadinessCheck {
    let connected = view
        .connections
        .iter()
        .filter(|c| *c == "connected")
        .count();
    let (status, seen) = match (view.mode.as_str(), view.state.as_str()) {
        ("disabled", _) => (
            CheckStatus::Fail,
            "performance replication is disabled".to_string(),
        ),
        (_, "idle") => (
            CheckStatus::Fail,
            format!("{}: state idle (replication stopped talking)", view.mode),
        ),
        (_, _) if connected == 0 => (
            CheckStatus::Fail,
            format!("{}, state {}, no peer connected", view.mode, view.state),
        ),
        (_, "stream-wals" | "running") => (
            CheckStatus::Pass,
            format!(
                "{}, state {}, {connected} peer(s) connected",
                view.mode, view.state
            ),
        ),
        (_, state) => (
            CheckStatus::Warn,
            format!(
                "{}, state {state} (catching up), {connected} peer(s) connected",
                view.mode
            ),
        ),
    };
    check(
        "vault.replication",
        region,
        "vault",
        status,
        seen,
        "restore performance replication between the regions' Vault clusters (vault read sys/replication/performance/status on both)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, role: &str, state: &str) -> PatroniMemberView {
        PatroniMemberView {
            name: name.into(),
            role: role.into(),
            state: state.into(),
            lag_bytes: Some(0),
            nofailover: false,
        }
    }

    #[test]
    fn patroni_candidate_must_be_a_streaming_replica() {
        let healthy = [
            member("pg-east", "leader", "running"),
            member("pg-west", "replica", "streaming"),
        ];
        let ok = patroni_check("us-west-2", "pg-west", &healthy);
        assert_eq!(ok.status, CheckStatus::Pass, "{}", ok.seen);
        let fail = |members: &[PatroniMemberView], candidate: &str, text: &str| {
            let c = patroni_check("us-west-2", candidate, members);
            assert_eq!(c.status, CheckStatus::Fail, "{}", c.seen);
            assert!(c.seen.contains(text), "{}", c.seen);
        };
        fail(&healthy, "pg-other", "not a member");
        fail(&healthy[1..], "pg-west", "no leader");
        fail(&healthy, "pg-east", "already the leader");
        fail(
            &[healthy[0].clone(), member("pg-west", "replica", "stopped")],
            "pg-west",
            "not a streaming replica",
        );
        let mut tagged = healthy.clone();
        tagged[1].nofailover = true;
        fail(&tagged, "pg-west", "nofailover");
    }

    fn sentinel(address: &str, flags: &str, replicas: i64) -> SentinelView {
        SentinelView {
            sentinel: "127.0.0.1:26379".into(),
            answer: Ok(SentinelMaster {
                address: address.into(),
                flags: flags.into(),
                replicas,
                other_sentinels: 2,
                quorum: 2,
            }),
        }
    }

    #[test]
    fn sentinels_must_agree_on_a_master_that_is_up_with_a_replica() {
        let up = sentinel("10.0.0.1:6379", "master", 1);
        let status = |views: &[SentinelView]| sentinel_check("us-east-1", "gateway", views);
        assert_eq!(
            status(&[up.clone(), up.clone(), up.clone()]).status,
            CheckStatus::Pass
        );
        let silent = SentinelView {
            sentinel: "127.0.0.1:26381".into(),
            answer: Err("connection refused".into()),
        };
        assert_eq!(
            status(&[up.clone(), up.clone(), silent.clone()]).status,
            CheckStatus::Warn
        );
        let below = status(&[up.clone(), silent.clone(), silent]);
        assert_eq!(below.status, CheckStatus::Fail);
        assert!(below.seen.contains("quorum is 2"), "{}", below.seen);
        let split = status(&[up.clone(), sentinel("10.0.0.2:6379", "master", 1)]);
        assert!(split.seen.contains("disagree"), "{}", split.seen);
        let down = status(&[sentinel("10.0.0.1:6379", "master,s_down", 1), up.clone()]);
        assert!(down.seen.contains("s_down"), "{}", down.seen);
        let lonely = status(&[sentinel("10.0.0.1:6379", "master", 0), up]);
        assert!(lonely.seen.contains("no replica"), "{}", lonely.seen);
        assert_eq!(status(&[]).status, CheckStatus::Fail);
    }

    #[test]
    fn vault_replication_must_stream() {
        let view = |mode: &str, state: &str, connected: bool| VaultReplicationView {
            known_secondaries: Vec::new(),
            primary: None,
            mode: mode.into(),
            state: state.into(),
            connections: vec![
                if connected {
                    "connected"
                } else {
                    "disconnected"
                }
                .into(),
            ],
        };
        let c = |v| vault_replication_check("us-west-2", &v).status;
        assert_eq!(c(view("secondary", "stream-wals", true)), CheckStatus::Pass);
        assert_eq!(c(view("primary", "running", true)), CheckStatus::Pass);
        assert_eq!(c(view("secondary", "merkle-sync", true)), CheckStatus::Warn);
        assert_eq!(c(view("secondary", "idle", true)), CheckStatus::Fail);
        assert_eq!(
            c(view("secondary", "stream-wals", false)),
            CheckStatus::Fail
        );
        assert_eq!(c(view("disabled", "", false)), CheckStatus::Fail);
    }
}
