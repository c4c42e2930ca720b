//! Traffic: the records and health checks the failover switches exist, are wired as the
//! deployment's traffic switch expects, and are healthy now (Route53's own `HealthCheckStatus`
//! metric, the signal its DNS answers follow).

use serde::{Deserialize, Serialize};

use super::{CheckStatus, ReadinessCheck, check};

/// What a region's record of the global name must be wired to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExpectedWiring {
    /// Weighted records moved through Route53's control plane: any health check.
    Weights,
    /// `CALCULATED` health checks (endpoint AND control alarm), flipped by `PutMetricData`.
    HealthCheck,
    /// A `RECOVERY_CONTROL` health check on this routing control.
    RoutingControl {
        /// The routing control's ARN.
        control_arn: String,
    },
}

/// A record of the global name and its health check, as Route53's API returns them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordView {
    /// `Weight` (weighted records) or None (latency records).
    pub weight: Option<i64>,
    /// `HealthCheckId`.
    pub health_check_id: Option<String>,
    /// The health check, when it exists: `Type`, `ChildHealthChecks`, `RoutingControlArn`.
    pub health_check: Option<HealthCheckView>,
}

/// One Route53 health check's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckView {
    /// `HTTP`, `HTTPS`, `CALCULATED`, `CLOUDWATCH_METRIC`, `RECOVERY_CONTROL`, ...
    pub kind: String,
    /// `ChildHealthChecks` of a `CALCULATED` check.
    pub children: Vec<String>,
    /// `RoutingControlArn` of a `RECOVERY_CONTROL` check (None when the API did not say).
    pub routing_control_arn: Option<String>,
}

/// `traffic.record`: the region's record exists, carries a health check that exists, wired
/// for the deployment's switch.
pub fn record_check(
    region: &str,
    set_identifier: &str,
    expected: &ExpectedWiring,
    record: Option<&RecordView>,
) -> ReadinessCheck {
    let fail = |seen: String| (CheckStatus::Fail, seen);
    let (status, seen) = match record {
        None => fail(format!(
            "no record of the global name with SetIdentifier {set_identifier}: the failover has nothing to switch"
        )),
        Some(RecordView {
            health_check_id: None,
            ..
        }) => fail(
            "the record has no health check: Route53 would keep answering with a dead region"
                .into(),
        ),
        Some(RecordView {
            health_check: None,
            health_check_id: Some(id),
            ..
        }) => fail(format!("its health check {id} does not exist")),
        Some(RecordView {
            health_check: Some(hc),
            health_check_id: Some(id),
            weight,
        }) => match expected {
            ExpectedWiring::HealthCheck if hc.kind != "CALCULATED" || hc.children.len() < 2 => {
                fail(format!(
                    "health check {id} is {} with {} child(ren); the health_check switch needs a CALCULATED check of the endpoint AND the control alarm",
                    hc.kind,
                    hc.children.len()
                ))
            }
            ExpectedWiring::RoutingControl { control_arn } if hc.kind != "RECOVERY_CONTROL" => {
                fail(format!(
                    "health check {id} is {}; the arc_routing_control switch needs a RECOVERY_CONTROL check on {control_arn}",
                    hc.kind
                ))
            }
            ExpectedWiring::RoutingControl { control_arn }
                if hc
                    .routing_control_arn
                    .as_ref()
                    .is_some_and(|a| a != control_arn) =>
            {
                fail(format!(
                    "health check {id} follows {}, but the switch sets {control_arn}",
                    hc.routing_control_arn.as_deref().unwrap_or_default()
                ))
            }
            _ => (
                CheckStatus::Pass,
                format!(
                    "{}health check {id} ({})",
                    weight.map(|w| format!("weight {w}, ")).unwrap_or_default(),
                    hc.kind
                ),
            ),
        },
    };
    check(
        "traffic.record",
        region,
        set_identifier,
        status,
        seen,
        "create or fix the region's record and health check as infra/template.yaml and the README's traffic-switch section describe",
    )
}

/// `traffic.health`: Route53's `HealthCheckStatus` (1 healthy, 0 not) of the record's health
/// check, its newest value in the last minutes; None when Route53 published nothing.
pub fn health_status_check(
    region: &str,
    set_identifier: &str,
    health_check_id: &str,
    latest: Option<f64>,
) -> ReadinessCheck {
    let (status, seen) = match latest {
        Some(v) if v >= 1.0 => (
            CheckStatus::Pass,
            format!("health check {health_check_id} healthy"),
        ),
        Some(_) => (
            CheckStatus::Fail,
            format!(
                "health check {health_check_id} is UNHEALTHY now: Route53 answers no client with this region"
            ),
        ),
        None => (
            CheckStatus::Warn,
            format!("no HealthCheckStatus of {health_check_id} in us-east-1 in the last 5 minutes"),
        ),
    };
    check(
        "traffic.health",
        region,
        set_identifier,
        status,
        seen,
        "find why the region's endpoint fails its health check (Route53 console: health checkers' last failure reason) before counting on it",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: &str, children: usize) -> RecordView {
        RecordView {
            weight: Some(0),
            health_check_id: Some("hc-1".into()),
            health_check: Some(HealthCheckView {
                kind: kind.into(),
                children: (0..children).map(|i| format!("c{i}")).collect(),
                routing_control_arn: None,
            }),
        }
    }

    #[test]
    fn records_are_wired_for_the_switch() {
        let pass = |e: &ExpectedWiring, r: Option<&RecordView>| {
            record_check("us-west-2", "us-west-2", e, r).status == CheckStatus::Pass
        };
        assert!(pass(&ExpectedWiring::Weights, Some(&record("HTTP", 0))));
        assert!(!pass(&ExpectedWiring::Weights, None));
        let mut unchecked = record("HTTP", 0);
        unchecked.health_check_id = None;
        assert!(!pass(&ExpectedWiring::Weights, Some(&unchecked)));
        let mut dangling = record("HTTP", 0);
        dangling.health_check = None;
        let c = record_check(
            "us-west-2",
            "us-west-2",
            &ExpectedWiring::Weights,
            Some(&dangling),
        );
        assert!(c.seen.contains("does not exist"), "{}", c.seen);
        assert!(pass(
            &ExpectedWiring::HealthCheck,
            Some(&record("CALCULATED", 2))
        ));
        assert!(!pass(
            &ExpectedWiring::HealthCheck,
            Some(&record("HTTP", 0))
        ));
        let arc = ExpectedWiring::RoutingControl {
            control_arn: "arn:rc/west".into(),
        };
        assert!(pass(&arc, Some(&record("RECOVERY_CONTROL", 0))));
        assert!(!pass(&arc, Some(&record("HTTP", 0))));
        let mut other = record("RECOVERY_CONTROL", 0);
        other.health_check.as_mut().unwrap().routing_control_arn = Some("arn:rc/east".into());
        assert!(!pass(&arc, Some(&other)));
    }

    #[test]
    fn health_follows_route53s_metric() {
        let s = |v| health_status_check("us-west-2", "us-west-2", "hc-1", v).status;
        assert_eq!(s(Some(1.0)), CheckStatus::Pass);
        assert_eq!(s(Some(0.0)), CheckStatus::Fail);
        assert_eq!(s(None), CheckStatus::Warn);
    }
}
