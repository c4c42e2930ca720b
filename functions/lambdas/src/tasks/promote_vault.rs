//! Task `promote-vault`: make `region`'s Vault the performance primary and `old_region`'s a
//! secondary of it ([`hapilot_core::vault::plan_promotion`] decides the calls from both
//! clusters' status), then prove the promoted cluster serves: it reports itself primary and
//! reads the deployment's known secret. An old cluster that does not answer (a dark region) is
//! left for re-protection, which runs this same task. A region without Vault configured is
//! skipped and says so. Every call made is journaled, also when one fails.
//!
//! Then every other secondary (of `candidates` when given, else every other region with a
//! Vault) re-joins the new primary ([`hapilot_core::vault::plan_follow`]): a performance
//! secondary keeps following the old primary otherwise, and forwards its writes into the dark.
//! What one of them needs is reported in `followers`; it does not fail the step.
//!
//! Input: `{"region", "old_region", "candidates"?: [RegionSite], "run"}`.

use hapilot_adapters::journal::Journal;
use hapilot_adapters::vault::Vault;
use hapilot_core::ErrorName;
use hapilot_core::failover::RegionSite;
use hapilot_core::vault::{VaultStep, plan_follow, plan_promotion};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::FunctionError;
use crate::config::Settings;
use crate::error::parse_input;
use crate::run::{RunContext, record};

/// How long the old region's Vault has to answer before it counts as dark.
const OLD_CLUSTER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Deserialize)]
struct Input {
    region: String,
    old_region: String,
    #[serde(default)]
    candidates: Option<Vec<RegionSite>>,
    run: RunContext,
}

/// The old cluster's replication status, or why there is none. The old region may be dark: a
/// connection that hangs must not hold the failover up.
async fn old_cluster<V: Vault>(
    old: Option<&V>,
) -> (
    Option<hapilot_core::readiness::VaultReplicationView>,
    Option<String>,
) {
    let Some(old) = old else {
        return (
            None,
            Some("no Vault configured for this region".to_string()),
        );
    };
    match tokio::time::timeout(OLD_CLUSTER_WAIT, old.replication_status()).await {
        Ok(Ok(view)) => (Some(view), None),
        Ok(Err(e)) => (None, Some(e.to_string())),
        Err(_) => (
            None,
            Some(format!("no answer within {} s", OLD_CLUSTER_WAIT.as_secs())),
        ),
    }
}

/// One step of the promotion plan, on the new cluster or the old one.
async fn take_step<V: Vault>(
    step: &VaultStep,
    new: &V,
    (old, old_region): (Option<&V>, &str),
) -> Result<(), hapilot_adapters::AdapterError> {
    match (step, old) {
        (VaultStep::PromoteNew, _) => new.promote().await,
        (VaultStep::RevokeOld, _) => new.revoke_secondary(old_region).await,
        (VaultStep::DemoteOld, Some(old)) => old.demote().await,
        (VaultStep::RejoinOld, Some(old)) => {
            let token = new.secondary_token(old_region).await?;
            old.update_primary(&token).await
        }
        // Passed over by the caller: the plan only names the old cluster when it answered.
        (VaultStep::DemoteOld | VaultStep::RejoinOld, None) => Ok(()),
    }
}

/// Promotes `region`'s Vault.
pub async fn promote_vault<V: Vault>(
    vaults: impl Fn(&str) -> Result<Option<V>, FunctionError>,
    settings: &Settings,
    journal: &impl Journal,
    input: Value,
) -> Result<Value, FunctionError> {
    let Input {
        region,
        old_region,
        candidates,
        run,
    } = parse_input(input)?;
    let Some(new) = vaults(&region)? else {
        let out = json!({"region": region, "skipped": "no Vault configured for this region"});
        record(journal, &run, json!({ "after": out })).await?;
        return Ok(out);
    };
    let refused = |e: hapilot_adapters::AdapterError| -> FunctionError {
        FunctionError::from_adapter(ErrorName::VaultNotPromoted)(e)
    };
    let new_view = new.replication_status().await.map_err(refused)?;
    let old = vaults(&old_region)?;
    let (old_view, old_error) = old_cluster(old.as_ref()).await;
    let plan = plan_promotion(&new_view, old_view.as_ref(), &old_region)
        .map_err(|e| FunctionError::named(ErrorName::VaultNotPromoted, e))?;
    let mut out = json!({
        "region": region,
        "old_region": old_region,
        "before": {"new": new_view, "old": old_view, "old_error": old_error},
        "plan": plan,
        "done": [],
    });
    for step in &plan.steps {
        // The plan only names the old cluster when it answered.
        if old.is_none() && matches!(step, VaultStep::DemoteOld | VaultStep::RejoinOld) {
            continue;
        }
        if let Err(e) = take_step(step, &new, (old.as_ref(), &old_region)).await {
            let e = refused(e);
            out["error"] = json!({"step": step, "message": e.to_string()});
            record(journal, &run, json!({ "after": out })).await?;
            return Err(e);
        }
        out["done"]
            .as_array_mut()
            .expect("done is an array")
            .push(json!(step));
    }
    let verified = verify(&new, settings, &region).await;
    out["after"] = verified.as_ref().map_or(Value::Null, |v| v.clone());
    out["summary"] = plan.summary.clone().into();
    if let Err(e) = &verified {
        out["error"] = json!({"step": "verify", "message": e.to_string()});
    }
    if verified.is_ok() {
        let others =
            settings.other_regions(candidates, &region, &old_region, |c| c.vault.is_some());
        let mut followers = Vec::new();
        for other in &others {
            if let Some(vault) = vaults(other)? {
                followers.push(rejoin_other(&new, &vault, other).await);
            }
        }
        out["followers"] = json!(followers);
    }
    record(journal, &run, json!({ "after": out })).await?;
    verified?;
    Ok(out)
}

/// Makes `other`'s Vault (a secondary the run did not promote) follow `new`, the performance
/// primary now; says what was done or why it was left.
async fn rejoin_other(new: &impl Vault, other: &impl Vault, id: &str) -> Value {
    let status = match tokio::time::timeout(OLD_CLUSTER_WAIT, other.replication_status()).await {
        Ok(Ok(view)) => view,
        Ok(Err(e)) => {
            return json!({"region": id, "pending": format!("{e}: re-join it when it answers (hapilot reprotect)")});
        }
        Err(_) => {
            return json!({"region": id, "pending": format!("no answer within {} s: re-join it when it answers (hapilot reprotect)", OLD_CLUSTER_WAIT.as_secs())});
        }
    };
    let new_status = match new.replication_status().await {
        Ok(view) => view,
        Err(e) => return json!({"region": id, "error": e.to_string()}),
    };
    let steps = match plan_follow(&new_status, &status, id) {
        Ok(steps) => steps,
        Err(why) => return json!({"region": id, "left": why}),
    };
    let mut done = Vec::new();
    for step in &steps {
        let result = match step {
            VaultStep::RevokeOld => new.revoke_secondary(id).await,
            VaultStep::RejoinOld => match new.secondary_token(id).await {
                Ok(token) => other.update_primary(&token).await,
                Err(e) => Err(e),
            },
            VaultStep::DemoteOld | VaultStep::PromoteNew => continue,
        };
        if let Err(e) = result {
            return json!({"region": id, "done": done, "error": {"step": step, "message": e.to_string()}});
        }
        done.push(*step);
    }
    json!({"region": id, "done": done, "follows": true})
}

/// The promoted cluster says it is the primary and serves the known secret (its keys only).
async fn verify(
    vault: &impl Vault,
    settings: &Settings,
    region: &str,
) -> Result<Value, FunctionError> {
    let status = vault
        .replication_status()
        .await
        .map_err(FunctionError::from_adapter(ErrorName::VaultNotPromoted))?;
    if status.mode != "primary" {
        return Err(FunctionError::named(
            ErrorName::VaultNotPromoted,
            format!(
                "{region}'s Vault reports mode {} after the promotion",
                status.mode
            ),
        ));
    }
    let path = settings
        .regions
        .get(region)
        .and_then(|r| r.vault.as_ref())
        .as_ref()
        .and_then(|v| v.known_secret.clone());
    let secret = match path {
        Some(path) => {
            let keys = vault.read_secret(&path).await.map_err(|e| {
                FunctionError::named(
                    ErrorName::VaultNotPromoted,
                    format!("{region}'s Vault is the primary but does not serve {path}: {e}"),
                )
            })?;
            json!({"path": path, "keys": keys.len()})
        }
        None => json!({"skipped": "no known_secret configured for this region's Vault"}),
    };
    Ok(json!({"mode": status.mode, "known_secret": secret}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hapilot_adapters::journal::MemoryJournal;
    use hapilot_adapters::vault::MemoryVault;

    /// us-west-2 with a Vault whose known secret is the gateway's.
    fn settings() -> Settings {
        let mut settings = Settings::with_defaults();
        settings.regions.insert(
            "us-west-2".into(),
            crate::config::RegionConfig {
                health_url: "http://west/health".into(),
                set_identifier: "secondary".into(),
                database: None,
                kubernetes: None,
                vault: Some(hapilot_adapters::vault::VaultTarget {
                    url: "http://127.0.0.1:1".into(),
                    token: Default::default(),
                    ca_file: None,
                    performance_replication: true,
                    known_secret: Some("secret/data/gateway/litellm".into()),
                }),
                redis: None,
                restore: None,
                restore_test: None,
                restore_test_vault: None,
            },
        );
        settings
    }

    fn input() -> Value {
        json!({"region": "us-west-2", "old_region": "us-east-1",
               "run": {"machine": "failover", "execution": "f-1", "state": "PromoteVault",
                       "entered": "2026-12-01T09:00:00Z"}})
    }

    /// The other secondary (eu-west-1, still following the dark old primary) re-joins the
    /// promoted one with a fresh token; run again, nothing more is called on it.
    #[tokio::test]
    async fn another_secondary_rejoins_the_new_primary_once() {
        let mut settings = settings();
        let mut eu = settings.regions["us-west-2"].clone();
        eu.set_identifier = "tertiary".into();
        settings.regions.insert("eu-west-1".into(), eu);
        let journal = MemoryJournal::default();
        let standby = MemoryVault::in_mode("secondary", Some("east"));
        let other = MemoryVault::in_mode("secondary", Some("east"));
        let vaults = |r: &str| {
            Ok(match r {
                "us-west-2" => Some(standby.clone()),
                "eu-west-1" => Some(other.clone()),
                _ => None,
            })
        };
        let out = promote_vault(vaults, &settings, &journal, input())
            .await
            .unwrap();
        assert_eq!(
            out["followers"],
            json!([{"region": "eu-west-1", "done": ["rejoin_old"], "follows": true}]),
            "{out:#}"
        );
        assert!(
            standby
                .calls()
                .contains(&"secondary-token eu-west-1".to_string()),
            "{:?}",
            standby.calls()
        );
        assert_eq!(other.calls(), ["update-primary"]);
        let again = promote_vault(vaults, &settings, &journal, input())
            .await
            .unwrap();
        assert_eq!(again["followers"][0]["done"], json!([]), "{again:#}");
        assert_eq!(other.calls(), ["update-primary"]);
    }

    /// The emergency: the old region's Vault does not answer; the standby's is promoted and
    /// verified, the re-join left for re-protection, and twice is once.
    #[tokio::test]
    async fn the_standby_is_promoted_and_verified_with_the_old_region_dark() {
        let settings = settings();
        let journal = MemoryJournal::default();
        let standby = MemoryVault::in_mode("secondary", Some("east"));
        let vaults = |r: &str| Ok((r == "us-west-2").then(|| standby.clone()));
        let out = promote_vault(vaults, &settings, &journal, input())
            .await
            .unwrap();
        assert_eq!(out["done"], json!(["promote_new"]), "{out:#}");
        assert_eq!(out["plan"]["rejoin_pending"], true);
        assert_eq!(out["after"]["mode"], "primary");
        assert_eq!(out["after"]["known_secret"]["keys"], 1, "{out:#}");
        assert_eq!(standby.mode().as_deref(), Some("primary"));
        let again = promote_vault(vaults, &settings, &journal, input())
            .await
            .unwrap();
        assert_eq!(again["done"], json!([]), "{again:#}");
        assert_eq!(
            standby.calls(),
            [
                "promote",
                "read secret/data/gateway/litellm",
                "read secret/data/gateway/litellm"
            ],
            "promoted once, verified each time"
        );
    }

    /// A planned move: the old primary answers, is demoted first and re-joins the new one.
    #[tokio::test]
    async fn an_answering_old_primary_is_demoted_then_rejoined() {
        let settings = Settings::with_defaults();
        let journal = MemoryJournal::default();
        let standby = MemoryVault::in_mode("secondary", Some("east"));
        let old = MemoryVault::in_mode("primary", None);
        let vaults = |r: &str| {
            Ok(Some(if r == "us-west-2" {
                standby.clone()
            } else {
                old.clone()
            }))
        };
        let out = promote_vault(vaults, &settings, &journal, input())
            .await
            .unwrap();
        assert_eq!(
            out["done"],
            json!(["demote_old", "promote_new", "rejoin_old"]),
            "{out:#}"
        );
        assert_eq!(old.calls(), ["demote", "update-primary"]);
        assert_eq!(
            standby.calls(),
            ["promote", "secondary-token us-east-1"],
            "no known secret configured: no read"
        );
        assert_eq!(old.mode().as_deref(), Some("secondary"));
        let entries = journal.list("runs/failover/f-1/").await.unwrap();
        assert_eq!(entries.len(), 1, "one step, one entry");
    }

    /// A region without Vault is skipped; one outside performance replication is refused with
    /// the name the state machine catches, nothing called.
    #[tokio::test]
    async fn no_vault_is_skipped_and_a_disabled_one_refused() {
        let settings = Settings::with_defaults();
        let journal = MemoryJournal::default();
        let out = promote_vault(|_| Ok(None::<MemoryVault>), &settings, &journal, input())
            .await
            .unwrap();
        assert!(out["skipped"].as_str().unwrap().contains("no Vault"));
        let disabled = MemoryVault::in_mode("disabled", None);
        let e = promote_vault(|_| Ok(Some(disabled.clone())), &settings, &journal, input())
            .await
            .unwrap_err();
        assert_eq!(e.error_type(), "hapilot.VaultNotPromoted", "{e}");
        assert!(disabled.calls().is_empty());
    }
}
