//! Who is woken by what: every notification hapilot sends is either "act now" (a human must
//! look: approval needed, a run failed, a backup broken, readiness lost, an outage hapilot will
//! not act on) or "for your information" (a run did what it should). The pager's subscriptions
//! take only the first; e-mail and chat take both.
//!
//! The urgency travels as the SNS message attribute `urgency`, and the template's pager
//! subscriptions filter on it with [`PAGER_FILTER_POLICY`]. CloudWatch alarms publish to the
//! same topic without message attributes, and an alarm always means act now, so the policy
//! also passes messages that carry no `urgency` (SNS's `exists: false` operator; the values of
//! one key are alternatives).

/// How urgent a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// A human must act: it pages.
    ActNow,
    /// Nothing to do: mail and chat only.
    Fyi,
}

impl Urgency {
    /// The SNS message attribute's value.
    pub fn attribute(self) -> &'static str {
        match self {
            Urgency::ActNow => "act-now",
            Urgency::Fyi => "fyi",
        }
    }

    /// The end of a run of `machine`: a failure needs a human; so does a failover that
    /// succeeded (the platform now runs in the standby, unprotected until the old primary is
    /// re-protected: the notice lists what to do). Any other success is for information.
    pub fn of_run_end(machine: &str, succeeded: bool) -> Self {
        if succeeded && machine != "failover" {
            Urgency::Fyi
        } else {
            Urgency::ActNow
        }
    }
}

/// The SNS message attribute carrying the urgency.
pub const URGENCY_ATTRIBUTE: &str = "urgency";

/// The filter policy (scope `MessageAttributes`) of the pager subscriptions: "act now" and
/// messages without an urgency (CloudWatch alarms).
pub const PAGER_FILTER_POLICY: &str = r#"{"urgency": ["act-now", {"exists": false}]}"#;

/// Whether a message with `urgency` (None: no attribute, as an alarm) reaches the pager under
/// [`PAGER_FILTER_POLICY`], as SNS evaluates it.
pub fn pages(urgency: Option<Urgency>) -> bool {
    !matches!(urgency, Some(Urgency::Fyi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pager_gets_act_now_and_alarms_never_fyi() {
        assert!(pages(Some(Urgency::ActNow)));
        assert!(
            pages(None),
            "a CloudWatch alarm carries no attribute and must page"
        );
        assert!(!pages(Some(Urgency::Fyi)));
        assert_eq!(Urgency::of_run_end("failback", true), Urgency::Fyi);
        assert_eq!(Urgency::of_run_end("dr-drill", true), Urgency::Fyi);
        assert_eq!(Urgency::of_run_end("failback", false), Urgency::ActNow);
        assert_eq!(
            Urgency::of_run_end("failover", true),
            Urgency::ActNow,
            "after a failover the platform is unprotected until someone acts"
        );
    }

    #[test]
    fn the_filter_policy_names_exactly_what_pages() {
        let policy: serde_json::Value = serde_json::from_str(PAGER_FILTER_POLICY).unwrap();
        let allowed = policy[URGENCY_ATTRIBUTE].as_array().unwrap();
        assert!(allowed.contains(&serde_json::json!(Urgency::ActNow.attribute())));
        assert!(!allowed.contains(&serde_json::json!(Urgency::Fyi.attribute())));
        assert!(allowed.contains(&serde_json::json!({"exists": false})));
    }
}
