//! HTTP clients for the systems hapilot calls over HTTPS (Kubernetes, Vault, Patroni,
//! Prometheus): trusting a deployment's own CA when one is given (`ca_file`, PEM), and the
//! authentication those APIs take.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::AdapterError;

/// A client that trusts the system's roots and, when given, the CAs in `ca_file` (PEM: a
/// private CA, the EKS cluster CA, the RDS bundle). `ca_file` is a file's path, or the PEM
/// text itself (it starts with `-----BEGIN`): a deployed Lambda has no file to point at, so the
/// CA travels in the regions' secret.
pub fn client_trusting(
    ca_file: Option<&str>,
    timeout: Duration,
) -> Result<reqwest::Client, AdapterError> {
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(given) = ca_file {
        let is_text = given.trim_start().starts_with("-----BEGIN");
        let path = if is_text { "(PEM text)" } else { given };
        let pem = if is_text {
            given.as_bytes().to_vec()
        } else {
            std::fs::read(path)
                .map_err(|e| AdapterError::HttpClient(format!("ca_file {path}: {e}")))?
        };
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| AdapterError::HttpClient(format!("ca_file {path}: {e}")))?;
        if certs.is_empty() {
            return Err(AdapterError::HttpClient(format!(
                "ca_file {path} holds no PEM certificate"
            )));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| AdapterError::HttpClient(e.to_string()))
}

/// How a request authenticates (the secret parts never appear in `Debug`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpAuth {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: crate::SecretText,
    },
    /// HTTP basic authentication (Prometheus behind a reverse proxy, Patroni's REST API).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: crate::SecretText,
    },
}

impl HttpAuth {
    /// Adds the authentication to `request`.
    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            HttpAuth::Bearer { token } => request.bearer_auth(token.expose()),
            HttpAuth::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_file_is_named_and_secrets_never_show() {
        let e = client_trusting(Some("/nonexistent/ca.pem"), Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let empty = std::env::temp_dir().join(format!("hapilot-empty-ca-{}", std::process::id()));
        std::fs::write(&empty, "not a certificate").unwrap();
        assert!(client_trusting(empty.to_str(), Duration::from_secs(1)).is_err());
        let _ = std::fs::remove_file(&empty);
        assert!(client_trusting(None, Duration::from_secs(1)).is_ok());
        let auth = HttpAuth::Basic {
            username: "grafana".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        let auth: HttpAuth = serde_json::from_str(r#"{"kind": "bearer", "token": "t0k"}"#).unwrap();
        assert!(!format!("{auth:?}").contains("t0k"));
    }
}
