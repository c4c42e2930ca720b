//! Secrets Manager: the deployment's private settings (database DSNs, Kubernetes and Vault
//! tokens), read by the function at start instead of being resolved into its environment at
//! deploy time, where anyone allowed `lambda:GetFunctionConfiguration` could read them.

use std::future::Future;

use aws_config::SdkConfig;

use crate::AdapterError;

/// Reads a secret's value.
pub trait SecretReader: Send + Sync {
    /// The `SecretString` of secret `id` (name or ARN).
    fn secret_string(&self, id: &str) -> impl Future<Output = Result<String, AdapterError>> + Send;
}

/// [`SecretReader`] on AWS Secrets Manager.
#[derive(Debug, Clone)]
pub struct SecretsManager {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManager {
    /// A client from `config`.
    pub fn from_sdk(config: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_secretsmanager::Client::new(config),
        }
    }
}

impl SecretReader for SecretsManager {
    async fn secret_string(&self, id: &str) -> Result<String, AdapterError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(AdapterError::aws("GetSecretValue"))?;
        out.secret_string()
            .map(str::to_string)
            .ok_or_else(|| AdapterError::NotFound(format!("secret {id} has no SecretString")))
    }
}

/// In-memory [`SecretReader`]: secret id -> `SecretString`.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone, Default)]
pub struct MemorySecrets {
    /// Id -> text.
    pub secrets: std::collections::BTreeMap<String, String>,
}

#[cfg(any(test, feature = "fakes"))]
impl SecretReader for MemorySecrets {
    async fn secret_string(&self, id: &str) -> Result<String, AdapterError> {
        self.secrets
            .get(id)
            .cloned()
            .ok_or_else(|| AdapterError::NotFound(format!("no secret {id}")))
    }
}
