//! Systems behind a private CA (Vault, Kubernetes, Patroni, Prometheus in production) are
//! reached over HTTPS with the `ca_file` setting, through the same adapters the functions
//! build, and refused without it.

use hapilot::local::http::tls_front;
use hapilot::local::vault::SimulatedVault;
use hapilot_aws::vault::{Vault, VaultTarget};
use hapilot_functions::config::{RegionConfig, Settings};
use hapilot_functions::registry::Adapters;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_behind_a_private_ca_is_trusted_with_ca_file_and_refused_without() {
    let dir = std::env::temp_dir().join(format!("hapilot-https-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    hapilot::local::postgres::make_tls_files(&dir).unwrap();
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
                }),
                restore: None,
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
    // A ca_file that is not there stops the adapter with its name.
    let e = adapters(Some("/nonexistent/ca.pem".into()))
        .vault("us-west-2")
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    task.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
