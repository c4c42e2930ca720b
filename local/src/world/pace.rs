//! How fast the local world runs against AWS's own clock. AWS's timings (Route53 health checks
//! every 10 s, CloudWatch alarm periods, DNS answers kept for the record's TTL, Scheduler's
//! one-minute `rate`) are each multiplied by one factor: at [`Pace::AWS`] the rehearsal takes
//! as long as it would in AWS; compressed, everything is faster by the same factor, so what
//! fails at AWS's pace also fails compressed.

use std::time::Duration;

/// Local seconds per AWS second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    scale: f64,
}

/// The compressed pace's factor: one local second stands for ten of AWS's.
pub const COMPRESSED_SCALE: f64 = 0.1;

impl Pace {
    /// AWS's own pace.
    pub const AWS: Pace = Pace { scale: 1.0 };

    /// The default, compressed pace.
    pub fn compressed() -> Self {
        Pace {
            scale: COMPRESSED_SCALE,
        }
    }

    /// A pace of `scale` local seconds per AWS second (0 < scale <= 1).
    pub fn scaled(scale: f64) -> Option<Self> {
        (scale > 0.0 && scale <= 1.0).then_some(Pace { scale })
    }

    /// The factor.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Whether this is AWS's own pace.
    pub fn is_aws(&self) -> bool {
        (self.scale - 1.0).abs() < f64::EPSILON
    }

    /// How long `aws_seconds` of AWS's time take locally.
    pub fn local(&self, aws_seconds: f64) -> Duration {
        Duration::from_secs_f64((aws_seconds * self.scale).max(0.0))
    }

    /// The AWS time `local` stands for, in seconds.
    pub fn aws_seconds(&self, local: Duration) -> f64 {
        local.as_secs_f64() / self.scale
    }

    /// Route53's health-check interval (10 s, the template's `RequestInterval`) at this pace:
    /// the local data plane's tick.
    pub fn health_check_interval(&self) -> Duration {
        self.local(10.0)
    }

    /// The failover's run defaults (the template's `FailoverInputDefaults`): empty at AWS's
    /// pace (the state machine's own defaults, made for it); compressed, probes as fast as
    /// the simulated gateways answer and waits that fit the compressed clock.
    pub fn failover_input_defaults(&self) -> String {
        if self.is_aws() {
            return String::new();
        }
        // The window resolvers need to drop the old answer, at this pace (the product's 90 s).
        let verify_window = (hapilot_core::failover::DEFAULT_VERIFY_WINDOW_SECS as f64 * self.scale)
            .ceil()
            .max(1.0) as u64;
        // The wait for the standby's pods, at this pace (the product's 300 s for Critical).
        let capacity_wait = (hapilot_core::capacity::default_wait_secs(900) as f64 * self.scale)
            .ceil()
            .max(1.0) as u64;
        serde_json::json!({
            "probe_samples": 2, "probe_timeout_ms": 500, "probe_interval_ms": 50,
            "dns_sync_timeout_seconds": 10, "approval_timeout_seconds": 60,
            "verify_window_seconds": verify_window, "capacity_wait_seconds": capacity_wait
        })
        .to_string()
    }
}

impl Default for Pace {
    fn default() -> Self {
        Self::compressed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_factor_for_every_timing() {
        let p = Pace::compressed();
        assert_eq!(p.health_check_interval(), Duration::from_secs(1));
        assert_eq!(p.local(60.0), Duration::from_secs(6));
        assert!((p.aws_seconds(Duration::from_secs(6)) - 60.0).abs() < 1e-9);
        assert_eq!(Pace::AWS.health_check_interval(), Duration::from_secs(10));
        assert!(Pace::AWS.failover_input_defaults().is_empty());
        let defaults: serde_json::Value =
            serde_json::from_str(&p.failover_input_defaults()).unwrap();
        assert_eq!(defaults["verify_window_seconds"], 9, "90 s at a tenth");
        assert!(Pace::scaled(0.0).is_none() && Pace::scaled(2.0).is_none());
    }
}
