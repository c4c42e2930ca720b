//! Which traffic switch a traffic-moving task may build: the rule that keeps the emergency path
//! on Route53's data plane. The failover's `shift-traffic` and `fence-primary` run while a region
//! may be dark and their roles may not call Route53's control plane, so they move traffic only
//! through the deployment's own data-plane switch; a planned move (`shift-weights`,
//! `fence-by-weights`) may also edit weights, the control-plane move.

/// Which path of a run is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchPath {
    /// The failover's emergency path: the data plane only.
    Emergency,
    /// A planned move (failback, switchover, a weights failover plan): weights or the deployed
    /// switch.
    Planned,
}

/// The switch the task builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchChoice {
    /// Route53 record weights (control plane).
    Weights,
    /// The deployment's own switch (`HAPILOT_TRAFFIC_SWITCH`).
    Deployed,
}

/// The switch `path` may build when the run asks for `asked` and the deployment's switch is
/// `deployed` (both by kind name, e.g. `weights`, `health_check`, `arc_routing_control`).
/// Refused with the sentence the on-call reads: the emergency path never uses weights, and
/// no path builds a switch the deployment does not have.
pub fn switch_for(path: SwitchPath, asked: &str, deployed: &str) -> Result<SwitchChoice, String> {
    match path {
        SwitchPath::Emergency if asked == "weights" || asked != deployed => Err(format!(
            "the emergency path moves traffic through the data plane only \
             (HAPILOT_TRAFFIC_SWITCH is {deployed}); the run asked for {asked}: weights moves \
             go through shift-weights and fence-by-weights, which the failover state machine \
             picks when the plan's traffic_switch is weights"
        )),
        SwitchPath::Emergency => Ok(SwitchChoice::Deployed),
        SwitchPath::Planned if asked == "weights" => Ok(SwitchChoice::Weights),
        SwitchPath::Planned if asked == deployed => Ok(SwitchChoice::Deployed),
        SwitchPath::Planned => Err(format!(
            "the run asks for the {asked} traffic switch, but HAPILOT_TRAFFIC_SWITCH is {deployed}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_emergency_path_never_uses_weights() {
        // Not even when weights are the deployment's own switch.
        for deployed in ["weights", "health_check", "arc_routing_control"] {
            let refused = switch_for(SwitchPath::Emergency, "weights", deployed).unwrap_err();
            assert!(refused.contains("data plane only"), "{refused}");
        }
        assert_eq!(
            switch_for(SwitchPath::Emergency, "health_check", "health_check"),
            Ok(SwitchChoice::Deployed)
        );
        assert!(switch_for(SwitchPath::Emergency, "health_check", "arc_routing_control").is_err());
    }

    #[test]
    fn a_planned_move_takes_weights_or_the_deployed_switch_only() {
        assert_eq!(
            switch_for(SwitchPath::Planned, "weights", "health_check"),
            Ok(SwitchChoice::Weights)
        );
        assert_eq!(
            switch_for(
                SwitchPath::Planned,
                "arc_routing_control",
                "arc_routing_control"
            ),
            Ok(SwitchChoice::Deployed)
        );
        assert_eq!(
            switch_for(SwitchPath::Planned, "arc_routing_control", "health_check"),
            Err(
                "the run asks for the arc_routing_control traffic switch, but HAPILOT_TRAFFIC_SWITCH is health_check"
                    .into()
            )
        );
    }

    proptest! {
        #[test]
        fn whatever_is_asked_the_emergency_path_builds_only_the_deployed_data_plane_switch(
            asked in "[a-z_]{1,20}|weights", deployed in "[a-z_]{1,20}|weights",
        ) {
            match switch_for(SwitchPath::Emergency, &asked, &deployed) {
                Ok(choice) => {
                    prop_assert_eq!(choice, SwitchChoice::Deployed);
                    prop_assert_ne!(asked.as_str(), "weights");
                    prop_assert_eq!(asked, deployed);
                }
                Err(_) => prop_assert!(asked == "weights" || asked != deployed),
            }
        }
    }
}
