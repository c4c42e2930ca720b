//! How hapilot reaches a PostgreSQL server from a DSN: parsed by `tokio_postgres::Config` in
//! both forms libpq takes (`postgres://user@host:port/db?opt=v` and `host=h port=p ...`), a
//! 5-second connect timeout unless the DSN sets one, and TLS as libpq's `sslmode` says, with
//! `sslrootcert` (a PEM bundle such as RDS's) or the system's roots.
//!
//! `sslmode`, as libpq defines it:
//! - `disable`: plain text.
//! - `prefer` (libpq's default): TLS when the server offers it, no certificate check.
//! - `require`: TLS or nothing; the certificate is checked against `sslrootcert` when one is
//!   given (libpq does the same when a root file exists), not otherwise.
//! - `verify-ca`: TLS, and the server's chain must lead to a trusted root.
//! - `verify-full`: `verify-ca`, and the certificate must name the host connected to.
//!
//! tokio-postgres knows only the first three and no `sslrootcert`, so both are taken out of the
//! DSN here before it parses the rest.
//!
//! `sslrootcert` is a PEM file (libpq), `system` (libpq 16: the system's roots), or, hapilot's
//! extension for Lambda functions that have no file to point at, the PEM text itself (it
//! starts with `-----BEGIN`; in a secret's JSON, the key=value form quotes it:
//! `sslrootcert='-----BEGIN CERTIFICATE-----\n...'`, the URI form percent-encodes it).
//! Unlike libpq, whose default `prefer` checks nothing, a DSN that names a CA and no
//! `sslmode` is `verify-full`: a deployment that gave a CA wants it used.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::AdapterError;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain text.
    Disable,
    /// TLS when offered, unchecked.
    Prefer,
    /// TLS or nothing; checked against `sslrootcert` only when given.
    Require,
    /// TLS with a trusted chain.
    VerifyCa,
    /// TLS with a trusted chain naming the host.
    VerifyFull,
}

impl TlsMode {
    fn parse(value: &str) -> Result<Self, AdapterError> {
        Ok(match value {
            "disable" => Self::Disable,
            "allow" | "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(AdapterError::Database {
                    target: "DSN".into(),
                    detail: format!(
                        "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                    ),
                });
            }
        })
    }
}

/// A parsed DSN: what to connect to and how.
#[derive(Debug, Clone)]
pub struct PostgresDsn {
    /// Everything tokio-postgres understands (host, port, user, password, dbname, timeouts).
    pub config: tokio_postgres::Config,
    /// The TLS mode.
    pub tls: TlsMode,
    /// `sslrootcert`: the trusted roots (`None`: the system's).
    pub root_cert: Option<RootCert>,
}

/// Where the trusted roots of a DSN come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file.
    File(PathBuf),
    /// PEM text given in the DSN itself.
    Pem(String),
    /// `system`: the system's roots.
    System,
}

impl RootCert {
    fn parse(value: &str) -> Self {
        if value.trim_start().starts_with("-----BEGIN") {
            RootCert::Pem(value.to_string())
        } else if value == "system" {
            RootCert::System
        } else {
            RootCert::File(PathBuf::from(value))
        }
    }

    fn describe(&self) -> String {
        match self {
            RootCert::File(path) => path.display().to_string(),
            RootCert::Pem(_) => "(PEM text)".into(),
            RootCert::System => "system".into(),
        }
    }
}

impl PostgresDsn {
    /// Parses `dsn`; an error names what is wrong and never contains the DSN (it may hold a
    /// password).
    pub fn parse(dsn: &str) -> Result<Self, AdapterError> {
        let (rest, ssl_mode, root_cert) = take_tls_options(dsn);
        let mut config =
            tokio_postgres::Config::from_str(&rest).map_err(|e| AdapterError::Database {
                target: "DSN".into(),
                detail: format!("not a PostgreSQL connection string: {e}"),
            })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let root_cert = root_cert.as_deref().map(RootCert::parse);
        let tls = match (ssl_mode, &root_cert) {
            (Some(mode), _) => TlsMode::parse(&mode)?,
            (None, Some(_)) => TlsMode::VerifyFull,
            (None, None) => TlsMode::Prefer,
        };
        config.ssl_mode(match tls {
            TlsMode::Disable => tokio_postgres::config::SslMode::Disable,
            TlsMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        Ok(Self {
            config,
            tls,
            root_cert,
        })
    }

    /// The first host and port it names (libpq's defaults: `localhost`, 5432).
    pub fn host_and_port(&self) -> (String, u16) {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        (
            host,
            self.config.get_ports().first().copied().unwrap_or(5432),
        )
    }

    /// `host:port` for messages (never the password).
    pub fn target(&self) -> String {
        let (host, port) = self.host_and_port();
        format!("{host}:{port}")
    }

    /// The TLS client configuration its mode asks for (`None`: plain text).
    pub fn tls_config(&self) -> Result<Option<rustls::ClientConfig>, AdapterError> {
        if self.tls == TlsMode::Disable {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.tls_error(e.to_string()))?;
        let checked = matches!(
            (self.tls, &self.root_cert),
            (TlsMode::VerifyCa | TlsMode::VerifyFull, _) | (TlsMode::Require, Some(_))
        );
        let config = if checked {
            let roots = Arc::new(self.roots()?);
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots,
                provider.clone(),
            )
            .build()
            .map_err(|e| self.tls_error(e.to_string()))?;
            let verifier: Arc<dyn ServerCertVerifier> = if self.tls == TlsMode::VerifyFull {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
                .with_no_client_auth()
        };
        Ok(Some(config))
    }

    fn roots(&self) -> Result<rustls::RootCertStore, AdapterError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.root_cert {
            Some(root @ (RootCert::File(_) | RootCert::Pem(_))) => {
                for cert in read_pem(root).map_err(|e| self.tls_error(e))? {
                    roots
                        .add(cert)
                        .map_err(|e| self.tls_error(format!("{}: {e}", root.describe())))?;
                }
            }
            Some(RootCert::System) | None => {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
            }
        }
        if roots.is_empty() {
            return Err(self.tls_error(
                "no trusted root certificate: set sslrootcert to a PEM bundle (e.g. the RDS CA bundle)"
                    .into(),
            ));
        }
        Ok(roots)
    }

    fn tls_error(&self, detail: String) -> AdapterError {
        AdapterError::Database {
            target: self.target(),
            detail: format!("TLS setup: {detail}"),
        }
    }
}

fn read_pem(root: &RootCert) -> Result<Vec<CertificateDer<'static>>, String> {
    let name = root.describe();
    let certs: Result<Vec<_>, _> = match root {
        RootCert::File(path) => CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("sslrootcert {name}: {e}"))?
            .collect(),
        RootCert::Pem(text) => CertificateDer::pem_slice_iter(text.as_bytes()).collect(),
        RootCert::System => Ok(Vec::new()),
    };
    let certs = certs.map_err(|e| format!("sslrootcert {name}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("sslrootcert {name} holds no certificate"));
    }
    Ok(certs)
}

/// Takes `sslmode` and `sslrootcert` out of a DSN of either form, giving the rest.
fn take_tls_options(dsn: &str) -> (String, Option<String>, Option<String>) {
    let dsn = dsn.trim();
    let (mut mode, mut root) = (None, None);
    if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        let Some((base, query)) = dsn.split_once('?') else {
            return (dsn.to_string(), None, None);
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sslmode", v)) => mode = Some(percent_decode(v)),
                Some(("sslrootcert", v)) => root = Some(percent_decode(v)),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, mode, root);
    }
    let mut kept = Vec::new();
    for (key, value, raw) in key_values(dsn) {
        match key.as_str() {
            "sslmode" => mode = Some(value),
            "sslrootcert" => root = Some(value),
            _ => kept.push(raw),
        }
    }
    (kept.join(" "), mode, root)
}

fn percent_decode(v: &str) -> String {
    percent_encoding::percent_decode_str(v)
        .decode_utf8_lossy()
        .into_owned()
}

/// The `key=value` pairs of a libpq keyword DSN: (key, unquoted value, the pair as written).
fn key_values(dsn: &str) -> Vec<(String, String, String)> {
    let chars: Vec<char> = dsn.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() || chars[i] != '=' {
            if !key.is_empty() {
                out.push((key.clone(), String::new(), key));
            }
            continue;
        }
        i += 1;
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < chars.len() && chars[i] == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
        }
        let raw: String = chars[start..i.min(chars.len())].iter().collect();
        out.push((key, value, raw));
    }
    out
}

/// `verify-ca`: the chain must lead to a trusted root; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root: encrypted, the certificate not checked (libpq's
/// meaning of these modes); the handshake's signatures still are.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_dsns_keep_their_database_and_get_a_timeout() {
        let dsn = PostgresDsn::parse("postgres://app:secret@db.example.com:6543/app").unwrap();
        assert_eq!(dsn.config.get_dbname(), Some("app"));
        assert_eq!(dsn.target(), "db.example.com:6543");
        assert_eq!(
            dsn.config.get_connect_timeout(),
            Some(&Duration::from_secs(5))
        );
        assert_eq!(dsn.tls, TlsMode::Prefer);
    }

    #[test]
    fn tls_options_come_out_of_both_forms_and_the_rest_stays() {
        let uri = PostgresDsn::parse(
            "postgresql://app@db:5432/app?connect_timeout=9&sslmode=verify-full&sslrootcert=%2Fetc%2Frds.pem",
        )
        .unwrap();
        assert_eq!(uri.tls, TlsMode::VerifyFull);
        assert_eq!(uri.root_cert, Some(RootCert::File("/etc/rds.pem".into())));
        assert_eq!(
            uri.config.get_connect_timeout(),
            Some(&Duration::from_secs(9))
        );
        let kv = PostgresDsn::parse(
            r"host=db port=5433 user=app password='it\'s' dbname=app sslmode=verify-ca sslrootcert='/etc/my ca.pem'",
        )
        .unwrap();
        assert_eq!(kv.tls, TlsMode::VerifyCa);
        assert_eq!(kv.root_cert, Some(RootCert::File("/etc/my ca.pem".into())));
        assert_eq!(kv.target(), "db:5433");
        assert_eq!(kv.config.get_password(), Some(&b"it's"[..]));
    }

    #[test]
    fn a_bad_sslmode_is_refused_by_name_without_the_dsn() {
        let e = PostgresDsn::parse("host=db password=hunter2 sslmode=verify-everything")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sslmode") && e.contains("verify-everything"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        let e = PostgresDsn::parse("host=db password=hunter2 nonsense=1")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn verify_modes_need_a_readable_root() {
        let dsn =
            PostgresDsn::parse("host=db sslmode=verify-full sslrootcert=/nonexistent.pem").unwrap();
        let e = dsn.tls_config().unwrap_err().to_string();
        assert!(e.contains("/nonexistent.pem"), "{e}");
        assert!(
            PostgresDsn::parse("host=db sslmode=disable")
                .unwrap()
                .tls_config()
                .unwrap()
                .is_none()
        );
        assert!(
            PostgresDsn::parse("host=db sslmode=require")
                .unwrap()
                .tls_config()
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_ca_given_as_pem_text_or_system_makes_verify_full_the_default() {
        let pem = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
        let kv = PostgresDsn::parse(&format!("host=db user=app sslrootcert='{pem}'")).unwrap();
        assert_eq!(
            kv.tls,
            TlsMode::VerifyFull,
            "a CA and no sslmode: verify-full"
        );
        assert_eq!(kv.root_cert, Some(RootCert::Pem(pem.to_string())));
        let e = kv.tls_config().unwrap_err().to_string();
        assert!(e.contains("sslrootcert (PEM text)"), "{e}");
        assert!(!e.contains("not base64"), "the PEM is not echoed: {e}");
        let uri = PostgresDsn::parse("postgresql://app@db/app?sslrootcert=system").unwrap();
        assert_eq!(
            (uri.tls, uri.root_cert),
            (TlsMode::VerifyFull, Some(RootCert::System))
        );
        // An explicit sslmode still wins.
        let chosen = PostgresDsn::parse("host=db sslmode=require sslrootcert=system").unwrap();
        assert_eq!(chosen.tls, TlsMode::Require);
    }
}
