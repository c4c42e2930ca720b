//! Availability tiers and their recovery targets (the HA document's table, section 1).

use serde::{Deserialize, Serialize};

/// An availability tier. RPO/RTO targets come from the HA document:
///
/// | tier | RPO | RTO |
/// | --- | --- | --- |
/// | Standard | 1 hour | 4 hours |
/// | High | 15 min | 1 hour |
/// | Critical | 5 min | 15 min |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Tier {
    /// 99.9 %.
    Standard,
    /// 99.95 %.
    High,
    /// 99.99 %.
    Critical,
}

impl Tier {
    /// Most data (in seconds of writes) a failover may lose without a human's approval.
    pub fn rpo_secs(self) -> u64 {
        match self {
            Tier::Standard => 3_600,
            Tier::High => 900,
            Tier::Critical => 300,
        }
    }

    /// Longest an outage may last, from detection to verified recovery.
    pub fn rto_secs(self) -> u64 {
        match self {
            Tier::Standard => 14_400,
            Tier::High => 3_600,
            Tier::Critical => 900,
        }
    }

    /// The tier's name as the HA document writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Standard => "Standard",
            Tier::High => "High",
            Tier::Critical => "Critical",
        }
    }
}

impl std::str::FromStr for Tier {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "standard" => Ok(Tier::Standard),
            "high" => Ok(Tier::High),
            "critical" => Ok(Tier::Critical),
            _ => Err(format!(
                "unknown tier {s:?}: use Standard, High or Critical"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_match_the_ha_document() {
        assert_eq!(
            (Tier::Critical.rpo_secs(), Tier::Critical.rto_secs()),
            (300, 900)
        );
        assert_eq!((Tier::High.rpo_secs(), Tier::High.rto_secs()), (900, 3_600));
        assert_eq!(
            (Tier::Standard.rpo_secs(), Tier::Standard.rto_secs()),
            (3_600, 14_400)
        );
        assert_eq!("critical".parse::<Tier>(), Ok(Tier::Critical));
        assert!("gold".parse::<Tier>().is_err());
    }
}
