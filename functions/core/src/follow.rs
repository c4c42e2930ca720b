//! The other secondaries follow the new primary. After a promotion, every candidate that was
//! not chosen still streams from (or waits for) the old primary: it must be pointed at the
//! promoted one, or it protects nothing and serves ever older reads.
//!
//! For plain PostgreSQL this means rewriting the standby's `primary_conninfo` (reloadable
//! since PostgreSQL 13: the WAL receiver restarts with the new setting) to the new primary's
//! host and port, keeping everything else the operator set there (user, `passfile`,
//! `sslmode`, `application_name`, ...). The standby then follows the promoted server's
//! timeline switch by itself (`recovery_target_timeline = 'latest'`, the default since 12),
//! unless it had already replayed WAL beyond the promotion point: then it never streams again
//! and must be rebuilt (re-protection). Patroni re-points its members itself.

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// What happened to one secondary that was not promoted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FollowState {
    /// It streams from the new primary on the new timeline.
    Following {
        /// The timeline it receives.
        timeline: i64,
    },
    /// Its cluster manager re-points it (Patroni follows the new leader by itself).
    ManagedByCluster,
    /// It did not follow in time: most likely it had WAL beyond the promotion point, and
    /// must be rebuilt from the new primary (the reprotect state machine).
    NotFollowing,
    /// It is not a standby: nothing was changed (a second primary is a split brain).
    NotAStandby,
    /// It could not be reached or refused the change.
    Unreachable,
    /// Its backend cannot be re-pointed by hapilot (a CloudNativePG replica cluster's
    /// `externalClusters` are edited by the operator).
    ByHand,
}

/// One secondary after the promotion, for the report and the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Follower {
    /// Its region.
    pub region: String,
    /// What happened.
    #[serde(flatten)]
    pub state: FollowState,
    /// The details (what the server said, what to do).
    pub detail: String,
}

impl Follower {
    /// Whether it needs a human or a re-protection run.
    pub fn needs_attention(&self) -> bool {
        !matches!(
            self.state,
            FollowState::Following { .. } | FollowState::ManagedByCluster
        )
    }
}

/// One line for the report: who follows, who needs what.
pub fn summarize(followers: &[Follower]) -> String {
    if followers.is_empty() {
        return "no other secondary to re-point".to_string();
    }
    followers
        .iter()
        .map(|f| match &f.state {
            FollowState::Following { timeline } => {
                format!("{} follows the new primary (timeline {timeline})", f.region)
            }
            FollowState::ManagedByCluster => {
                format!("{} is re-pointed by its cluster manager", f.region)
            }
            FollowState::NotFollowing => format!("{} did not follow: {}", f.region, f.detail),
            FollowState::NotAStandby => format!("{} is not a standby: {}", f.region, f.detail),
            FollowState::Unreachable => format!("{} unreachable: {}", f.region, f.detail),
            FollowState::ByHand => format!("{} to re-point by hand: {}", f.region, f.detail),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `conninfo` (libpq's `keyword = value` form, as `primary_conninfo` holds it) with `host`
/// and `port` set to the new primary's, every other keyword kept in its order. `hostaddr`
/// is dropped: it would override the new host. Refuses what it cannot parse (a URI, an
/// unterminated quote) rather than guess.
pub fn repoint_conninfo(conninfo: &str, host: &str, port: u16) -> Result<String, CoreError> {
    let mut pairs = parse_conninfo(conninfo)?;
    pairs.retain(|(k, _)| k != "hostaddr");
    for (key, value) in [("host", host.to_string()), ("port", port.to_string())] {
        match pairs.iter_mut().find(|(k, _)| k == key) {
            Some(pair) => pair.1 = value,
            None => pairs.push((key.to_string(), value)),
        }
    }
    Ok(pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect::<Vec<_>>()
        .join(" "))
}

/// libpq's quoting: single quotes when empty or holding spaces, quotes or backslashes, which
/// are escaped with a backslash.
fn quote(value: &str) -> String {
    if !value.is_empty() && !value.contains([' ', '\'', '\\', '\t', '\n']) {
        return value.to_string();
    }
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The `keyword = value` pairs of a libpq connection string (spaces around `=` allowed,
/// values single-quoted with backslash escapes or bare).
fn parse_conninfo(conninfo: &str) -> Result<Vec<(String, String)>, CoreError> {
    let invalid = |why: &str| {
        CoreError::invalid(
            "primary_conninfo",
            format!(
                "is not a keyword=value connection string ({why}); re-point this standby by hand"
            ),
        )
    };
    if conninfo.trim_start().starts_with("postgres") && conninfo.contains("://") {
        return Err(invalid("a URI"));
    }
    let mut chars = conninfo.chars().peekable();
    let mut pairs = Vec::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            return Err(invalid("a keyword without '='"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => {
                        value.push(chars.next().ok_or_else(|| invalid("a trailing '\\'"))?)
                    }
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(invalid("an unterminated quote")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    value.push(chars.next().ok_or_else(|| invalid("a trailing '\\'"))?);
                    continue;
                }
                value.push(c);
                chars.next();
            }
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn what_pg_basebackup_writes_is_repointed_and_keeps_the_rest() {
        // pg_basebackup -R's primary_conninfo (PostgreSQL 15).
        let written = "user=postgres passfile='/var/lib/postgresql/.pgpass' channel_binding=prefer host=127.0.0.1 port=5433 sslmode=prefer sslcompression=0 sslcertmode=allow krbsrvname=postgres target_session_attrs=any";
        let new = repoint_conninfo(written, "10.2.0.7", 6432).unwrap();
        assert_eq!(
            new,
            "user=postgres passfile=/var/lib/postgresql/.pgpass channel_binding=prefer host=10.2.0.7 port=6432 sslmode=prefer sslcompression=0 sslcertmode=allow krbsrvname=postgres target_session_attrs=any"
        );
    }

    #[test]
    fn a_missing_host_or_port_is_added_and_hostaddr_dropped() {
        assert_eq!(
            repoint_conninfo("user=rep hostaddr=10.0.0.1", "db.eu", 5432).unwrap(),
            "user=rep host=db.eu port=5432"
        );
    }

    #[test]
    fn quoted_values_with_spaces_and_quotes_survive() {
        let new = repoint_conninfo(
            "application_name = 'pg west' password='it\\'s' host=old",
            "new",
            1,
        )
        .unwrap();
        assert_eq!(
            new,
            "application_name='pg west' password='it\\'s' host=new port=1"
        );
        assert_eq!(
            parse_conninfo(&new).unwrap()[1],
            ("password".to_string(), "it's".to_string())
        );
    }

    #[test]
    fn what_cannot_be_parsed_is_refused() {
        for bad in [
            "postgresql://rep@old:5432/postgres",
            "host",
            "host='unterminated",
            "=x",
        ] {
            let e = repoint_conninfo(bad, "new", 1).unwrap_err();
            assert!(e.to_string().contains("by hand"), "{bad}: {e}");
        }
    }

    #[test]
    fn followers_that_need_attention_are_named_in_the_summary() {
        let followers = [
            Follower {
                region: "eu-west-1".into(),
                state: FollowState::Following { timeline: 2 },
                detail: String::new(),
            },
            Follower {
                region: "ap-south-1".into(),
                state: FollowState::NotFollowing,
                detail: "rebuild it".into(),
            },
        ];
        assert!(!followers[0].needs_attention());
        assert!(followers[1].needs_attention());
        assert_eq!(
            summarize(&followers),
            "eu-west-1 follows the new primary (timeline 2); ap-south-1 did not follow: rebuild it"
        );
        assert_eq!(summarize(&[]), "no other secondary to re-point");
    }

    proptest! {
        /// Whatever the values, the rewritten string parses back to the same keywords with
        /// only host and port changed.
        #[test]
        fn repointing_keeps_every_other_value(
            values in proptest::collection::vec("[ -~]{0,12}", 1..6),
            port in 1u16..,
        ) {
            let keys = ["user", "passfile", "sslmode", "application_name", "options", "krbsrvname"];
            let original: Vec<(String, String)> = values
                .iter()
                .enumerate()
                .map(|(i, v)| (keys[i].to_string(), v.clone()))
                .collect();
            let conninfo = original
                .iter()
                .map(|(k, v)| format!("{k}={}", quote(v)))
                .collect::<Vec<_>>()
                .join(" ");
            let new = repoint_conninfo(&conninfo, "db.example", port).unwrap();
            let mut expected = original.clone();
            expected.push(("host".into(), "db.example".into()));
            expected.push(("port".into(), port.to_string()));
            prop_assert_eq!(parse_conninfo(&new).unwrap(), expected);
        }
    }
}
