//! Standby capacity: can the standby's nodes schedule the replicas the failover scales the
//! gateway to? Kubernetes quantities (`500m`, `2Gi`, `1e3`) and a first-fit placement of the
//! missing pods on the nodes' free allocatable, as the scheduler would at best do it.

use serde::{Deserialize, Serialize};

use super::{CheckStatus, ReadinessCheck, check};

/// CPU and memory, as requests or allocatable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU in millicores.
    pub cpu_millis: i64,
    /// Memory in bytes.
    pub memory_bytes: i64,
}

impl Resources {
    fn plus(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis + other.cpu_millis,
            memory_bytes: self.memory_bytes + other.memory_bytes,
        }
    }

    fn minus(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis - other.cpu_millis,
            memory_bytes: self.memory_bytes - other.memory_bytes,
        }
    }

    fn holds(self, other: Resources) -> bool {
        self.cpu_millis >= other.cpu_millis && self.memory_bytes >= other.memory_bytes
    }

    /// `1.5 CPU / 2.0 GiB`.
    pub fn text(self) -> String {
        format!(
            "{:.1} CPU / {:.1} GiB",
            self.cpu_millis as f64 / 1000.0,
            self.memory_bytes as f64 / (1u64 << 30) as f64
        )
    }
}

/// A Kubernetes resource quantity (`resource.Quantity`'s text form) as a number: decimal
/// suffixes `n u m k M G T P E`, binary `Ki Mi Gi Ti Pi Ei`, or a decimal exponent (`1e3`).
/// `None` for text Kubernetes would refuse.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let multiplier = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => {
            let digits = exponent
                .strip_prefix('e')
                .or_else(|| exponent.strip_prefix('E'))?;
            10f64.powi(digits.parse().ok()?)
        }
    };
    Some(value * multiplier)
}

/// CPU quantity text as millicores (rounded up, as the scheduler counts a fraction of a
/// millicore as one).
pub fn cpu_millis(text: &str) -> Option<i64> {
    parse_quantity(text).map(|v| (v * 1000.0 - 1e-9).ceil() as i64)
}

/// Memory quantity text as bytes.
pub fn memory_bytes(text: &str) -> Option<i64> {
    parse_quantity(text).map(|v| v.ceil() as i64)
}

/// One schedulable node: its allocatable and what its pods already request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCapacity {
    /// Node name.
    pub name: String,
    /// `status.allocatable`.
    pub allocatable: Resources,
    /// Sum of the requests of the pods bound to it (not Succeeded or Failed).
    pub requested: Resources,
}

/// What the failover adds to one workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleNeed {
    /// The Deployment.
    pub workload: String,
    /// Replicas it has now (`spec.replicas`).
    pub current: i64,
    /// Replicas the failover scales it to.
    pub target: i64,
    /// One pod's requests (the sum over its containers).
    pub per_pod: Resources,
}

/// Places the missing pods first-fit, largest first, on the nodes' free allocatable; returns
/// the pods that found no node, per workload.
pub fn unplaced_pods(nodes: &[NodeCapacity], needs: &[ScaleNeed]) -> Vec<(String, i64)> {
    let mut free: Vec<Resources> = nodes
        .iter()
        .map(|n| n.allocatable.minus(n.requested))
        .collect();
    let mut pods: Vec<(&str, Resources)> = needs
        .iter()
        .flat_map(|n| {
            std::iter::repeat_n(
                (n.workload.as_str(), n.per_pod),
                (n.target - n.current).max(0) as usize,
            )
        })
        .collect();
    pods.sort_by_key(|(_, r)| std::cmp::Reverse((r.cpu_millis, r.memory_bytes)));
    let mut unplaced: Vec<(String, i64)> = Vec::new();
    for (workload, pod) in pods {
        match free.iter_mut().find(|f| f.holds(pod)) {
            Some(slot) => *slot = slot.minus(pod),
            None => match unplaced.iter_mut().find(|(w, _)| w == workload) {
                Some((_, count)) => *count += 1,
                None => unplaced.push((workload.to_string(), 1)),
            },
        }
    }
    unplaced
}

/// The checklist's "the standby can schedule the failover replica counts".
pub fn capacity_check(region: &str, nodes: &[NodeCapacity], needs: &[ScaleNeed]) -> ReadinessCheck {
    // An over-committed node has nothing free; it does not take from the others.
    let free = nodes.iter().fold(Resources::default(), |sum, n| {
        let left = n.allocatable.minus(n.requested);
        sum.plus(Resources {
            cpu_millis: left.cpu_millis.max(0),
            memory_bytes: left.memory_bytes.max(0),
        })
    });
    let growing: Vec<String> = needs
        .iter()
        .filter(|n| n.target > n.current)
        .map(|n| {
            format!(
                "{} {} -> {} ({} each)",
                n.workload,
                n.current,
                n.target,
                n.per_pod.text()
            )
        })
        .collect();
    let unplaced = unplaced_pods(nodes, needs);
    let (status, seen) = if growing.is_empty() {
        (
            CheckStatus::Pass,
            "already runs the failover's replica counts".to_string(),
        )
    } else if nodes.is_empty() {
        (
            CheckStatus::Fail,
            format!("no schedulable node for {}", growing.join(", ")),
        )
    } else if unplaced.is_empty() {
        (
            CheckStatus::Pass,
            format!(
                "{} fit: {} free on {} node(s)",
                growing.join(", "),
                free.text(),
                nodes.len()
            ),
        )
    } else {
        let missing: Vec<String> = unplaced
            .iter()
            .map(|(w, n)| format!("{n} {w} pod(s)"))
            .collect();
        (
            CheckStatus::Fail,
            format!(
                "{} would not schedule: {} free on {} node(s) for {}",
                missing.join(" and "),
                free.text(),
                nodes.len(),
                growing.join(", ")
            ),
        )
    };
    check(
        "kubernetes.capacity",
        region,
        "failover scale",
        status,
        seen,
        "add nodes to the standby (or a cluster autoscaler with headroom) so the failover's replica counts (HAPILOT_SCALE_TARGETS) schedule at once",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn res(cpu_millis: i64, gib: i64) -> Resources {
        Resources {
            cpu_millis,
            memory_bytes: gib << 30,
        }
    }

    fn node(name: &str, allocatable: Resources, requested: Resources) -> NodeCapacity {
        NodeCapacity {
            name: name.into(),
            allocatable,
            requested,
        }
    }

    #[test]
    fn quantities_as_kubernetes_writes_them() {
        assert_eq!(cpu_millis("500m"), Some(500));
        assert_eq!(cpu_millis("2"), Some(2000));
        assert_eq!(cpu_millis("1.5"), Some(1500));
        assert_eq!(
            cpu_millis("100u"),
            Some(1),
            "a fraction of a millicore counts as one"
        );
        assert_eq!(memory_bytes("1Gi"), Some(1 << 30));
        assert_eq!(memory_bytes("512Mi"), Some(512 << 20));
        assert_eq!(memory_bytes("1G"), Some(1_000_000_000));
        assert_eq!(memory_bytes("128974848"), Some(128_974_848));
        assert_eq!(memory_bytes("129e6"), Some(129_000_000));
        assert_eq!(memory_bytes("1E"), Some(1_000_000_000_000_000_000));
        assert_eq!(parse_quantity("12 apples"), None);
        assert_eq!(parse_quantity("Gi"), None);
        assert_eq!(parse_quantity("1Zi"), None);
    }

    proptest! {
        #[test]
        fn every_suffix_multiplies(n in 0i64..100_000, i in 0usize..8) {
            let (suffix, factor) = [("", 1i64), ("k", 1000), ("M", 1_000_000), ("Ki", 1024),
                ("Mi", 1 << 20), ("Gi", 1 << 30), ("e3", 1000), ("E", 1)][i];
            let text = format!("{n}{suffix}");
            let expected = if suffix == "E" { n as f64 * 1e18 } else { (n * factor) as f64 };
            prop_assert_eq!(parse_quantity(&text), Some(expected));
        }

        /// Whatever first-fit places fits the free total (so a total shortage always leaves
        /// pods unplaced), and a node free enough for every pod alone places them all.
        #[test]
        fn placement_is_sound(
            frees in prop::collection::vec((0i64..8000, 0i64..32), 1..6),
            needs in prop::collection::vec((0i64..6, 0i64..8, 100i64..4000, 1i64..8), 1..4),
        ) {
            let mut nodes: Vec<NodeCapacity> = frees.iter().enumerate()
                .map(|(i, (c, m))| node(&format!("n{i}"), res(*c, *m), Resources::default()))
                .collect();
            let needs: Vec<ScaleNeed> = needs.iter().enumerate()
                .map(|(i, (cur, add, c, m))| ScaleNeed { workload: format!("w{i}"), current: *cur,
                    target: cur + add, per_pod: res(*c, *m) })
                .collect();
            let total_need = needs.iter().fold(Resources::default(), |s, n| {
                (0..n.target - n.current).fold(s, |s, _| s.plus(n.per_pod))
            });
            let total_free = nodes.iter().fold(Resources::default(), |s, n| s.plus(n.allocatable));
            if !total_free.holds(total_need) {
                prop_assert!(!unplaced_pods(&nodes, &needs).is_empty());
            }
            nodes.push(node("big", total_need, Resources::default()));
            nodes.rotate_right(1);
            prop_assert!(unplaced_pods(&nodes, &needs).is_empty());
        }
    }

    #[test]
    fn the_failover_scale_fits_or_says_what_does_not() {
        let nodes = [
            node("a", res(4000, 16), res(1000, 2)),
            node("b", res(4000, 16), res(1000, 2)),
        ];
        let needs = [
            ScaleNeed {
                workload: "litellm".into(),
                current: 2,
                target: 5,
                per_pod: res(1000, 2),
            },
            ScaleNeed {
                workload: "agentgateway".into(),
                current: 1,
                target: 3,
                per_pod: res(500, 1),
            },
        ];
        let ok = capacity_check("us-west-2", &nodes, &needs);
        assert_eq!(ok.status, CheckStatus::Pass, "{}", ok.seen);
        assert!(ok.seen.contains("litellm 2 -> 5"), "{}", ok.seen);
        let small = [
            node("a", res(1000, 16), res(1000, 2)),
            node("b", res(1500, 16), res(0, 2)),
        ];
        let short = capacity_check("us-west-2", &small, &needs);
        assert_eq!(short.status, CheckStatus::Fail);
        assert!(
            short
                .seen
                .starts_with("2 litellm pod(s) and 1 agentgateway pod(s) would not schedule"),
            "{}",
            short.seen
        );
        assert!(short.fix.contains("HAPILOT_SCALE_TARGETS"));
        let already = capacity_check(
            "us-west-2",
            &small,
            &[ScaleNeed {
                workload: "litellm".into(),
                current: 5,
                target: 5,
                per_pod: res(1000, 2),
            }],
        );
        assert_eq!(already.status, CheckStatus::Pass);
        assert_eq!(
            capacity_check("us-west-2", &[], &needs).status,
            CheckStatus::Fail
        );
    }
}
