//! The rules the local stack plays for AWS where moto plays none: Route53's health-check
//! evaluation and DNS routing (its data plane); CloudWatch's alarm evaluation is
//! [`crate::aws::alarm_rules`]. Pure
//! functions over what was observed; the loop that observes is [`crate::aws::data_plane`].
//!
//! Each rule follows AWS's documentation:
//! - An endpoint check changes status after `FailureThreshold` consecutive probes that disagree
//!   with its current status; a new check starts healthy.
//! - A `CLOUDWATCH_METRIC` check is healthy when its alarm is `OK`, unhealthy in `ALARM`, and in
//!   `INSUFFICIENT_DATA` follows `InsufficientDataHealthStatus` (`Healthy`, `Unhealthy` or
//!   `LastKnownStatus`; with no last status, healthy).
//! - A `CALCULATED` check is healthy when at least `HealthThreshold` of its children are.
//! - A `RECOVERY_CONTROL` check is healthy while its ARC routing control is `On` (a control
//!   not known to the cluster is `Off`, as a new routing control is).
//! - `Inverted` flips a check's status; a `Disabled` check is always healthy (inversion aside).
//! - Weighted routing answers among healthy records of nonzero weight; when none is healthy,
//!   among healthy zero-weight ones; when no record is healthy, as if all were.
//! - Latency routing answers the healthy record of the lowest latency from the client's region;
//!   when none is healthy, as if all were.
//! - Failover routing answers PRIMARY when healthy, else SECONDARY when healthy, else PRIMARY.

use std::collections::BTreeMap;

/// What a check looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// An HTTP(S) endpoint, probed by Route53's health checkers.
    Endpoint {
        /// Consecutive probes needed to change status.
        failure_threshold: u32,
    },
    /// A CloudWatch alarm's state.
    Metric {
        /// The alarm's region.
        alarm_region: String,
        /// The alarm's name.
        alarm_name: String,
        /// `Healthy`, `Unhealthy` or `LastKnownStatus`.
        insufficient_data: String,
    },
    /// An ARC routing control's state.
    RoutingControl {
        /// The routing control's ARN.
        arn: String,
    },
    /// Other checks.
    Calculated {
        /// The child check ids.
        children: Vec<String>,
        /// Healthy children needed.
        health_threshold: u32,
    },
}

/// One health check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    /// What it looks at.
    pub kind: CheckKind,
    /// Status flipped.
    pub inverted: bool,
    /// Always healthy (before inversion).
    pub disabled: bool,
}

/// What the data plane knows at one moment.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Endpoint check id -> its tracked status.
    pub endpoints: BTreeMap<String, bool>,
    /// (region, alarm name) -> state (`OK`, `ALARM`, `INSUFFICIENT_DATA`).
    pub alarms: BTreeMap<(String, String), String>,
    /// Check id -> the last status it had (for `LastKnownStatus`).
    pub last_known: BTreeMap<String, bool>,
    /// ARC routing control ARN -> `On`.
    pub routing_controls: BTreeMap<String, bool>,
}

/// Whether check `id` is healthy now. An unknown id (or a loop of calculated checks) is healthy:
/// Route53 refuses both at creation, so they only appear when the local world is wrong.
pub fn check_healthy(id: &str, checks: &BTreeMap<String, CheckSpec>, observed: &Observed) -> bool {
    healthy_at(id, checks, observed, 0)
}

fn healthy_at(
    id: &str,
    checks: &BTreeMap<String, CheckSpec>,
    observed: &Observed,
    depth: u32,
) -> bool {
    let Some(spec) = checks.get(id) else {
        return true;
    };
    if depth > 8 {
        return true;
    }
    let raw = if spec.disabled {
        true
    } else {
        match &spec.kind {
            CheckKind::Endpoint { .. } => observed.endpoints.get(id).copied().unwrap_or(true),
            CheckKind::Metric {
                alarm_region,
                alarm_name,
                insufficient_data,
            } => match observed
                .alarms
                .get(&(alarm_region.clone(), alarm_name.clone()))
                .map(String::as_str)
            {
                Some("OK") => true,
                Some("ALARM") => false,
                _ => match insufficient_data.as_str() {
                    "Unhealthy" => false,
                    "Healthy" => true,
                    _ => observed.last_known.get(id).copied().unwrap_or(true),
                },
            },
            CheckKind::RoutingControl { arn } => {
                observed.routing_controls.get(arn).copied().unwrap_or(false)
            }
            CheckKind::Calculated {
                children,
                health_threshold,
            } => {
                let healthy = children
                    .iter()
                    .filter(|c| healthy_at(c, checks, observed, depth + 1))
                    .count();
                healthy as u32 >= *health_threshold
            }
        }
    };
    raw != spec.inverted
}

/// An endpoint check's status over consecutive probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointTracker {
    /// The status now.
    pub healthy: bool,
    /// Consecutive probes that disagree with it.
    pub against: u32,
}

impl Default for EndpointTracker {
    fn default() -> Self {
        Self {
            healthy: true,
            against: 0,
        }
    }
}

impl EndpointTracker {
    /// Takes one probe's result.
    pub fn observe(&mut self, probe_ok: bool, failure_threshold: u32) {
        if probe_ok == self.healthy {
            self.against = 0;
            return;
        }
        self.against += 1;
        if self.against >= failure_threshold.max(1) {
            self.healthy = probe_ok;
            self.against = 0;
        }
    }
}

/// How a record is routed.
#[derive(Debug, Clone, PartialEq)]
pub enum Routing {
    /// Weighted, with its weight.
    Weighted(i64),
    /// Latency, in its region.
    Latency(String),
    /// Failover, `true` for PRIMARY.
    Failover(bool),
}

/// One record of the global name.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedRecord {
    /// `SetIdentifier`.
    pub set_identifier: String,
    /// How it is routed.
    pub routing: Routing,
    /// Its health check, if any (none: always healthy).
    pub health_check_id: Option<String>,
}

/// Round-trip latency between regions, ms (a fixed table; the same region is 0).
pub fn latency_ms(from: &str, to: &str) -> u32 {
    if from == to {
        return 0;
    }
    let mut pair = [from, to];
    pair.sort();
    match pair {
        ["us-east-1", "us-west-2"] => 65,
        ["eu-west-1", "us-east-1"] => 75,
        ["eu-west-1", "us-west-2"] => 140,
        _ => 200,
    }
}

/// The record Route53 answers to a client in `client_region`; `None` when there is no record.
pub fn resolve<'a>(
    records: &'a [RoutedRecord],
    client_region: &str,
    healthy: impl Fn(&str) -> bool,
) -> Option<&'a RoutedRecord> {
    let is_healthy = |r: &RoutedRecord| r.health_check_id.as_deref().is_none_or(&healthy);
    let first = records.first()?;
    match &first.routing {
        Routing::Weighted(_) => {
            let weight = |r: &RoutedRecord| match r.routing {
                Routing::Weighted(w) => w,
                _ => 0,
            };
            // Deterministic stand-in for a weighted draw: the heaviest (ties by SetIdentifier).
            let heaviest = |it: Vec<&'a RoutedRecord>| {
                it.into_iter().max_by(|a, b| {
                    weight(a)
                        .cmp(&weight(b))
                        .then(b.set_identifier.cmp(&a.set_identifier))
                })
            };
            let healthy_nonzero: Vec<_> = records
                .iter()
                .filter(|r| weight(r) > 0 && is_healthy(r))
                .collect();
            if !healthy_nonzero.is_empty() {
                return heaviest(healthy_nonzero);
            }
            let healthy_zero: Vec<_> = records
                .iter()
                .filter(|r| weight(r) == 0 && is_healthy(r))
                .collect();
            if !healthy_zero.is_empty() {
                return heaviest(healthy_zero);
            }
            let nonzero: Vec<_> = records.iter().filter(|r| weight(r) > 0).collect();
            if nonzero.is_empty() {
                heaviest(records.iter().collect())
            } else {
                heaviest(nonzero)
            }
        }
        Routing::Latency(_) => {
            let nearest = |it: Vec<&'a RoutedRecord>| {
                it.into_iter().min_by_key(|r| match &r.routing {
                    Routing::Latency(region) => latency_ms(client_region, region),
                    _ => u32::MAX,
                })
            };
            let healthy: Vec<_> = records.iter().filter(|r| is_healthy(r)).collect();
            if healthy.is_empty() {
                nearest(records.iter().collect())
            } else {
                nearest(healthy)
            }
        }
        Routing::Failover(_) => {
            let primary = records
                .iter()
                .find(|r| r.routing == Routing::Failover(true));
            let secondary = records
                .iter()
                .find(|r| r.routing == Routing::Failover(false));
            match (primary, secondary) {
                (Some(p), _) if is_healthy(p) => Some(p),
                (_, Some(s)) if is_healthy(s) => Some(s),
                (Some(p), _) => Some(p),
                (None, s) => s,
            }
        }
    }
}

#[cfg(test)]
/// The conformance cases of Route53's data plane. Sources: Route 53 Developer Guide, "How
/// Amazon Route 53 determines whether a health check is healthy" (thresholds, calculated,
/// CloudWatch-alarm and ARC checks, inverted, disabled) and "Choosing a routing policy"
/// (weighted, latency and failover answers when records are unhealthy). The record rules of
/// the control plane are `super::route53_records` and `tests/e2e/conformance_route53.rs`.
mod tests {
    use super::*;

    fn endpoint() -> CheckSpec {
        CheckSpec {
            kind: CheckKind::Endpoint {
                failure_threshold: 3,
            },
            inverted: false,
            disabled: false,
        }
    }

    fn metric(insufficient: &str) -> CheckSpec {
        CheckSpec {
            kind: CheckKind::Metric {
                alarm_region: "us-west-2".into(),
                alarm_name: "control-primary".into(),
                insufficient_data: insufficient.into(),
            },
            inverted: false,
            disabled: false,
        }
    }

    fn world(endpoint_ok: bool, alarm: Option<&str>) -> (BTreeMap<String, CheckSpec>, Observed) {
        let checks = BTreeMap::from([
            ("ep".to_string(), endpoint()),
            ("cw".to_string(), metric("LastKnownStatus")),
            (
                "calc".to_string(),
                CheckSpec {
                    kind: CheckKind::Calculated {
                        children: vec!["ep".into(), "cw".into()],
                        health_threshold: 2,
                    },
                    inverted: false,
                    disabled: false,
                },
            ),
        ]);
        let mut observed = Observed::default();
        observed.endpoints.insert("ep".into(), endpoint_ok);
        if let Some(state) = alarm {
            observed
                .alarms
                .insert(("us-west-2".into(), "control-primary".into()), state.into());
        }
        (checks, observed)
    }

    #[test]
    fn an_endpoint_changes_status_after_the_threshold_of_consecutive_probes() {
        let mut t = EndpointTracker::default();
        assert!(t.healthy, "a new check starts healthy");
        t.observe(false, 3);
        t.observe(false, 3);
        t.observe(true, 3);
        t.observe(false, 3);
        t.observe(false, 3);
        assert!(t.healthy, "a success in between resets the count");
        t.observe(false, 3);
        assert!(!t.healthy);
        t.observe(true, 3);
        t.observe(true, 3);
        assert!(!t.healthy);
        t.observe(true, 3);
        assert!(t.healthy);
    }

    #[test]
    fn a_calculated_check_is_the_and_of_endpoint_and_control_alarm() {
        for (ep, alarm, want) in [
            (true, Some("OK"), true),
            (true, Some("ALARM"), false),
            (false, Some("OK"), false),
            (true, None, true),
            (true, Some("INSUFFICIENT_DATA"), true),
        ] {
            let (checks, observed) = world(ep, alarm);
            assert_eq!(
                check_healthy("calc", &checks, &observed),
                want,
                "{ep} {alarm:?}"
            );
        }
    }

    #[test]
    fn a_routing_control_check_follows_its_control_and_an_unknown_control_is_off() {
        let checks = BTreeMap::from([
            ("ep".to_string(), endpoint()),
            (
                "rc".to_string(),
                CheckSpec {
                    kind: CheckKind::RoutingControl {
                        arn: "arn:rc".into(),
                    },
                    inverted: false,
                    disabled: false,
                },
            ),
            (
                "calc".to_string(),
                CheckSpec {
                    kind: CheckKind::Calculated {
                        children: vec!["ep".into(), "rc".into()],
                        health_threshold: 2,
                    },
                    inverted: false,
                    disabled: false,
                },
            ),
        ]);
        let mut observed = Observed::default();
        observed.endpoints.insert("ep".into(), true);
        assert!(!check_healthy("rc", &checks, &observed), "unknown is Off");
        observed.routing_controls.insert("arn:rc".into(), true);
        assert!(check_healthy("calc", &checks, &observed));
        observed.routing_controls.insert("arn:rc".into(), false);
        assert!(!check_healthy("calc", &checks, &observed));
    }

    #[test]
    fn insufficient_data_follows_the_setting_and_inverted_and_disabled_apply() {
        let (mut checks, mut observed) = world(true, Some("INSUFFICIENT_DATA"));
        checks.insert("cw".into(), metric("Unhealthy"));
        assert!(!check_healthy("cw", &checks, &observed));
        checks.insert("cw".into(), metric("Healthy"));
        assert!(check_healthy("cw", &checks, &observed));
        checks.insert("cw".into(), metric("LastKnownStatus"));
        observed.last_known.insert("cw".into(), false);
        assert!(!check_healthy("cw", &checks, &observed));
        let (mut checks, observed) = world(false, Some("OK"));
        checks.get_mut("ep").unwrap().inverted = true;
        assert!(check_healthy("ep", &checks, &observed));
        checks.get_mut("ep").unwrap().inverted = false;
        checks.get_mut("ep").unwrap().disabled = true;
        assert!(check_healthy("ep", &checks, &observed));
        let (mut checks, observed) = world(false, Some("ALARM"));
        if let CheckKind::Calculated {
            health_threshold, ..
        } = &mut checks.get_mut("calc").unwrap().kind
        {
            *health_threshold = 0;
        }
        assert!(check_healthy("calc", &checks, &observed));
    }

    fn weighted(set: &str, w: i64, check: &str) -> RoutedRecord {
        RoutedRecord {
            set_identifier: set.into(),
            routing: Routing::Weighted(w),
            health_check_id: Some(check.into()),
        }
    }

    #[test]
    fn weighted_routing_prefers_healthy_nonzero_then_healthy_zero_then_all() {
        let records = [weighted("primary", 100, "p"), weighted("secondary", 0, "s")];
        let answer = |p: bool, s: bool| {
            resolve(&records, "us-east-1", |id| if id == "p" { p } else { s })
                .unwrap()
                .set_identifier
                .clone()
        };
        assert_eq!(answer(true, true), "primary");
        assert_eq!(answer(false, true), "secondary");
        assert_eq!(answer(false, false), "primary");
        let records = [weighted("primary", 0, "p"), weighted("secondary", 100, "s")];
        assert_eq!(
            resolve(&records, "us-east-1", |_| true)
                .unwrap()
                .set_identifier,
            "secondary"
        );
    }

    #[test]
    fn latency_routing_answers_the_nearest_healthy_region() {
        let records = [
            RoutedRecord {
                set_identifier: "us-east-1".into(),
                routing: Routing::Latency("us-east-1".into()),
                health_check_id: Some("east".into()),
            },
            RoutedRecord {
                set_identifier: "us-west-2".into(),
                routing: Routing::Latency("us-west-2".into()),
                health_check_id: Some("west".into()),
            },
        ];
        let from = |client: &str, east_ok: bool| {
            resolve(&records, client, |id| id != "east" || east_ok)
                .unwrap()
                .set_identifier
                .clone()
        };
        assert_eq!(from("us-east-1", true), "us-east-1");
        assert_eq!(from("eu-west-1", true), "us-east-1");
        assert_eq!(from("us-west-2", true), "us-west-2");
        assert_eq!(from("us-east-1", false), "us-west-2");
        assert_eq!(
            resolve(&records, "us-east-1", |_| false)
                .unwrap()
                .set_identifier,
            "us-east-1",
            "none healthy: as if all were"
        );
    }

    #[test]
    fn failover_routing_answers_primary_unless_it_is_unhealthy_and_secondary_is_not() {
        let records = [
            RoutedRecord {
                set_identifier: "p".into(),
                routing: Routing::Failover(true),
                health_check_id: Some("p".into()),
            },
            RoutedRecord {
                set_identifier: "s".into(),
                routing: Routing::Failover(false),
                health_check_id: Some("s".into()),
            },
        ];
        let answer = |p: bool, s: bool| {
            resolve(&records, "x", |id| if id == "p" { p } else { s })
                .unwrap()
                .set_identifier
                .clone()
        };
        assert_eq!(answer(true, false), "p");
        assert_eq!(answer(false, true), "s");
        assert_eq!(answer(false, false), "p");
    }
}
