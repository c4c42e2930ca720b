//! Which URLs a deployment may name for the systems hapilot talks to over HTTP (gateways,
//! Patroni, Kubernetes, Vault, Prometheus, the host agent, ARC's cluster endpoints).
//!
//! - No credentials in a URL (`https://user:pw@host`): they would travel into error messages,
//!   run histories, the journal and notifications. Credentials belong in the token settings and
//!   secrets. The refusal names the setting, never the URL.
//! - `https://` only, unless the deployment allows plain HTTP (`HAPILOT_ALLOW_PLAIN_HTTP`, which
//!   the local stack sets): a token sent over plain HTTP is a token given away.

use crate::CoreError;

/// The variable that allows `http://` URLs.
pub const ALLOW_PLAIN_HTTP: &str = "HAPILOT_ALLOW_PLAIN_HTTP";

/// Checks the URL `setting` holds.
pub fn check_url(setting: &str, url: &str, allow_plain_http: bool) -> Result<(), CoreError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(CoreError::invalid(
            setting,
            "is not a URL (expected https://host[:port]/path)",
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(CoreError::invalid(
            setting,
            "holds a user name or password in the URL: credentials there leak into errors, run \
             histories and notifications; give them as the system's token or secret setting",
        ));
    }
    if authority.is_empty() {
        return Err(CoreError::invalid(setting, "has no host"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if allow_plain_http => Ok(()),
        "http" => Err(CoreError::invalid(
            setting,
            format!(
                "is plain http://: use https://, or set {ALLOW_PLAIN_HTTP}=true where plain HTTP is \
                 acceptable (the local stack, a private network you trust)"
            ),
        )),
        other => Err(CoreError::invalid(
            setting,
            format!("has scheme {other:?}; use https://"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_passes_and_plain_http_only_when_allowed() {
        assert!(check_url("x", "https://patroni.internal:8008/", false).is_ok());
        assert!(check_url("x", "http://127.0.0.1:8008", true).is_ok());
        let e = check_url(
            "HAPILOT_REGIONS us-east-1.database.url",
            "http://p:8008",
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("us-east-1.database.url") && e.contains(ALLOW_PLAIN_HTTP),
            "{e}"
        );
    }

    #[test]
    fn credentials_in_a_url_are_refused_without_repeating_them() {
        for url in [
            "https://admin:hunter2@vault.internal:8200",
            "https://admin@vault.internal",
            "http://admin:hunter2@127.0.0.1/x",
        ] {
            let e = check_url("HAPILOT_REGIONS us-west-2.vault.url", url, true)
                .unwrap_err()
                .to_string();
            assert!(e.contains("us-west-2.vault.url"), "{e}");
            assert!(!e.contains("hunter2") && !e.contains("admin"), "{e}");
        }
        // An @ after the host is a path, not credentials.
        assert!(check_url("x", "https://host/api/v1/@me", false).is_ok());
    }

    #[test]
    fn other_schemes_and_non_urls_are_refused() {
        assert!(check_url("x", "ftp://host", true).is_err());
        assert!(check_url("x", "host:8008", true).is_err());
        assert!(check_url("x", "https:///path", true).is_err());
    }
}
