//! Systems behind a private CA (Vault, Kubernetes, Patroni, Prometheus in production) are
//! reached over HTTPS with the `ca_file` setting, through the same adapters the functions
//! build, and refused without it.

use hapilot::local::http::tls_front;
use hapilot::local::systems::vault::SimulatedVault;
use hapilot_adapters::vault::{Vault, VaultTarget};
use hapilot_functions::config::{RegionConfig, Settings};
use hapilot_functions::registry::Adapters;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_behind_a_private_ca_is_trusted_with_ca_file_and_refused_without() {
    let dir = std::env::temp_dir().join(format!("hapilot-https-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    hapilot::local::systems::postgres::make_tls_files(&dir).unwrap();
    let tls = dir.join("tls");
    let vault = SimulatedVault::start("vault-token").await.unwrap();
    let backend = vault.url().trim_start_matches("http://").parse().unwrap();
    let (front, task) = tls_front(backend, &tls.join("server.pem"), &tls.join("server.key"))
        .await
        .unwrap();
    let url = format!("https://localhost:{}", front.port());

    let adapters = |ca_file: Option<String>| {
        let mut settings = Settings::with_defaults();
        settings.regions.insert(
            "us-west-2".into(),
            RegionConfig {
                health_url: "https://west.example.com/health".into(),
                set_identifier: "secondary".into(),
                database: None,
                kubernetes: None,
                vault: Some(VaultTarget {
                    url: url.clone(),
                    token: "vault-token".into(),
                    ca_file,
                    performance_replication: false,
                    known_secret: None,
                }),
                redis: None,
                restore: None,
                restore_test: None,
                restore_test_vault: None,
            },
        );
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        Adapters::new(&sdk, settings).unwrap()
    };
    let trusted = adapters(Some(tls.join("ca.pem").display().to_string()));
    assert!(
        trusted.vault("us-west-2").unwrap().healthy().await.unwrap(),
        "over TLS, verified against the private CA"
    );
    let e = adapters(None)
        .vault("us-west-2")
        .unwrap()
        .healthy()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    // The same CA as PEM text (how a deployed function gets it: inside the regions' secret).
    let pem = std::fs::read_to_string(tls.join("ca.pem")).unwrap();
    assert!(
        adapters(Some(pem))
            .vault("us-west-2")
            .unwrap()
            .healthy()
            .await
            .unwrap(),
        "verified against the CA given as PEM text"
    );
    // A ca_file that is not there stops the adapter with its name.
    let e = adapters(Some("/nonexistent/ca.pem".into()))
        .vault("us-west-2")
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    task.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Credentials secrets read from memory, as Secrets Manager would answer.
struct Secrets(std::collections::BTreeMap<&'static str, String>);

impl hapilot_adapters::secrets::SecretReader for Secrets {
    async fn secret_string(&self, id: &str) -> Result<String, hapilot_adapters::AdapterError> {
        Ok(self.0.get(id).cloned().unwrap_or_default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_and_prometheus_authenticate_with_credentials_from_their_secrets() {
    use hapilot::local::systems::gateway::SimulatedGateway;
    use hapilot::local::systems::patroni::SimulatedPatroni;
    use hapilot::local::systems::prometheus::LocalPrometheus;
    use hapilot_adapters::canary_metrics::{TrafficMetrics, TrafficProvider, TrafficSource};
    use hapilot_adapters::database::{Database, DatabaseTarget, PromotionOutcome};
    use hapilot_functions::catalog::{Credential, find};

    let patroni = SimulatedPatroni::start("pg-west", false).await.unwrap();
    patroni.require_basic_auth("patroni", "s3cret-patroni");
    let gateway = SimulatedGateway::start("us-east-1").await.unwrap();
    gateway.traffic().set(100.0, 0.0);
    let prometheus = LocalPrometheus::start(&[gateway.metrics_target()])
        .await
        .unwrap();
    prometheus.require_authorization("Bearer s3cret-prometheus");

    let settings = |with_secrets: bool| {
        let mut s = Settings::with_defaults();
        s.allow_plain_http = true;
        s.regions.insert(
            "us-west-2".into(),
            RegionConfig {
                health_url: "http://west.example.com/health".into(),
                set_identifier: "secondary".into(),
                // No credentials in the configuration: they come from the secrets.
                database: Some(DatabaseTarget::Patroni {
                    url: patroni.url(),
                    member: patroni.name(),
                    ca_file: None,
                    auth: None,
                    dsn: None,
                }),
                kubernetes: None,
                vault: None,
                redis: None,
                restore: None,
                restore_test: None,
                restore_test_vault: None,
            },
        );
        s.canary_provider = Some(TrafficSource::Prometheus {
            url: prometheus.url(),
            request_query: r#"sum(increase(http_requests_total{region="{region}"}[{window}]))"#
                .into(),
            error_query:
                r#"sum(increase(http_requests_total{region="{region}",status=~"5.."}[{window}]))"#
                    .into(),
            ca_file: None,
            auth: None,
            latency: Default::default(),
        });
        if with_secrets {
            s.database_secret = Some("hapilot/database".into());
            s.canary_secret = Some("hapilot/canary".into());
        }
        s
    };
    let secrets = Secrets(
        [
            (
                "hapilot/database",
                r#"{"us-west-2": {"patroni_auth": {"kind": "basic", "username": "patroni", "password": "s3cret-patroni"}}}"#.to_string(),
            ),
            (
                "hapilot/canary",
                r#"{"kind": "bearer", "token": "s3cret-prometheus"}"#.to_string(),
            ),
        ]
        .into_iter()
        .collect(),
    );
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    // Each function reads only its own kinds: the canary gate's secret is the canary's.
    assert_eq!(
        find("canary-gate").unwrap().credentials,
        &[Credential::Canary]
    );
    let measure = |s: Settings| {
        let sdk = sdk.clone();
        async move {
            TrafficProvider::new(s.canary_provider.unwrap(), sdk, reqwest::Client::new())
                .measure("us-east-1", 60)
                .await
        }
    };

    // Without the secrets: refused, and the error says which secret to set.
    let bare = settings(false);
    let e = Adapters::new(&sdk, bare.clone())
        .unwrap()
        .database("us-west-2")
        .unwrap()
        .promote(std::time::Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("401") && e.contains("patroni_auth"), "{e}");
    assert!(!patroni.is_primary());
    let e = measure(bare).await.unwrap_err().to_string();
    assert!(
        e.contains("401") && e.contains("HAPILOT_CANARY_SECRET"),
        "{e}"
    );

    // With them: the same calls go through, and no error or Debug output shows them.
    let mut given = settings(true);
    given
        .read_secrets(&secrets, &[Credential::Database, Credential::Canary])
        .await
        .unwrap();
    let shown = format!("{given:?}");
    assert!(
        !shown.contains("s3cret-patroni") && !shown.contains("s3cret-prometheus"),
        "{shown}"
    );
    assert!(measure(given.clone()).await.is_ok());
    let outcome = Adapters::new(&sdk, given)
        .unwrap()
        .database("us-west-2")
        .unwrap()
        .promote(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(outcome, PromotionOutcome::Promoted);
    assert!(patroni.is_primary());
}
