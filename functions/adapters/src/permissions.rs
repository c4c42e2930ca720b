//! IAM's policy simulator, for readiness: can the emergency path's roles make every call the
//! failover makes (`iam:SimulatePrincipalPolicy`, evaluated by IAM itself, so permission
//! boundaries and managed policies count as they will at 3 a.m.).

use std::future::Future;

use crate::AdapterError;

/// Asks whether a principal may perform actions.
pub trait PermissionSimulator: Send + Sync {
    /// The actions of `actions` that `role_arn` may not perform (any resource), with the
    /// request context the calls carry (`(key, value)`, e.g. `cloudwatch:namespace`): IAM
    /// judges a statement with a `Condition` on a key the simulation lacks as not matching.
    fn denied(
        &self,
        role_arn: &str,
        actions: &[&str],
        context: &[(String, String)],
    ) -> impl Future<Output = Result<Vec<String>, AdapterError>> + Send;
}

/// [`PermissionSimulator`] on IAM's `SimulatePrincipalPolicy`.
#[derive(Debug, Clone)]
pub struct IamSimulator {
    client: aws_sdk_iam::Client,
}

impl IamSimulator {
    /// A simulator using `config`.
    pub fn from_sdk(config: &aws_config::SdkConfig) -> Self {
        Self {
            client: aws_sdk_iam::Client::new(config),
        }
    }
}

impl PermissionSimulator for IamSimulator {
    async fn denied(
        &self,
        role_arn: &str,
        actions: &[&str],
        context: &[(String, String)],
    ) -> Result<Vec<String>, AdapterError> {
        let mut denied = Vec::new();
        let entries = context
            .iter()
            .map(|(key, value)| {
                aws_sdk_iam::types::ContextEntry::builder()
                    .context_key_name(key)
                    .context_key_values(value)
                    .context_key_type(aws_sdk_iam::types::ContextKeyTypeEnum::String)
                    .build()
            })
            .collect();
        let mut pages = self
            .client
            .simulate_principal_policy()
            .policy_source_arn(role_arn)
            .set_action_names(Some(actions.iter().map(|a| a.to_string()).collect()))
            .set_context_entries(Some(entries))
            .into_paginator()
            .items()
            .send();
        while let Some(result) = pages.next().await {
            let result = result.map_err(|e| AdapterError::Aws {
                operation: "SimulatePrincipalPolicy",
                detail: crate::error::error_chain(&e),
            })?;
            if result.eval_decision().as_str() != "allowed" {
                denied.push(result.eval_action_name().to_string());
            }
        }
        Ok(denied)
    }
}

/// In-memory [`PermissionSimulator`]: each role's allowed actions; everything else is denied.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone, Default)]
pub struct MemoryPermissions {
    /// Role ARN -> the actions it may perform.
    pub allowed: std::collections::BTreeMap<String, Vec<String>>,
}

#[cfg(any(test, feature = "fakes"))]
impl PermissionSimulator for MemoryPermissions {
    async fn denied(
        &self,
        role_arn: &str,
        actions: &[&str],
        _context: &[(String, String)],
    ) -> Result<Vec<String>, AdapterError> {
        let allowed = self.allowed.get(role_arn).cloned().unwrap_or_default();
        Ok(actions
            .iter()
            .filter(|a| !allowed.iter().any(|x| x == *a))
            .map(|a| a.to_string())
            .collect())
    }
}
