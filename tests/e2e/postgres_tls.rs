//! hapilot reaches PostgreSQL as it would RDS or CloudNativePG: libpq's DSN forms and `sslmode`
//! against a real server serving TLS with its own CA.

use hapilot::local::systems::postgres::PostgresPair;
use hapilot_adapters::database::PostgresDatabase;

async fn ssl_in_use(dsn: &str) -> Result<bool, String> {
    let client = PostgresDatabase::new(dsn)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_is_honoured_and_verify_full_checks_the_ca_and_the_name() {
    let pair = tokio::task::spawn_blocking(PostgresPair::start)
        .await
        .unwrap()
        .unwrap();
    let ca = pair.ca_file();
    let port = pair.primary.port();

    assert_eq!(ssl_in_use(&pair.primary.verified_dsn(&ca)).await, Ok(true));
    let kv = format!(
        "host=localhost hostaddr=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=verify-full sslrootcert='{}'",
        ca.display()
    );
    assert_eq!(ssl_in_use(&kv).await, Ok(true));
    assert_eq!(
        ssl_in_use(&format!(
            "host=127.0.0.1 port={port} user=postgres sslmode=disable"
        ))
        .await,
        Ok(false)
    );
    assert_eq!(
        ssl_in_use(&format!(
            "postgres://postgres@127.0.0.1:{port}/postgres?sslmode=require"
        ))
        .await,
        Ok(true)
    );

    // A name the certificate does not carry: verify-ca accepts it, verify-full does not.
    let named = |mode: &str| {
        format!(
            "postgresql://postgres@db.example.internal:{port}/postgres?hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={}",
            ca.display()
        )
    };
    assert_eq!(ssl_in_use(&named("verify-ca")).await, Ok(true));
    let refused = ssl_in_use(&named("verify-full")).await.unwrap_err();
    assert!(refused.contains("db.example.internal:"), "{refused}");
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");

    // A CA that did not sign the server's certificate is refused, naming the target.
    let other = std::env::temp_dir().join(format!("hapilot-other-ca-{}", std::process::id()));
    std::fs::create_dir_all(&other).unwrap();
    let status = std::process::Command::new("openssl")
        .current_dir(&other)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=other",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ])
        .output()
        .unwrap();
    assert!(status.status.success());
    let refused = ssl_in_use(&pair.primary.verified_dsn(&other.join("ca.pem")))
        .await
        .unwrap_err();
    assert!(refused.contains(&format!("localhost:{port}")), "{refused}");
    let _ = std::fs::remove_dir_all(&other);
}

/// A deployed function has no file to point `sslrootcert` at: the CA travels as PEM text in the
/// database secret (Secrets Manager, read as the functions read it at start), and a DSN that
/// names a CA and no `sslmode` is held to verify-full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_as_pem_text_in_the_database_secret_is_verify_full() {
    use hapilot_adapters::database::DatabaseTarget;
    let pair = tokio::task::spawn_blocking(PostgresPair::start)
        .await
        .unwrap()
        .unwrap();
    let pem = std::fs::read_to_string(pair.ca_file()).unwrap();
    let port = pair.primary.port();
    let stack = crate::support::TestStack::start().await;
    let sdk = stack.stack().sdk_config();
    let secrets = aws_sdk_secretsmanager::Client::new(sdk);
    let dsn_for = |host: &str| {
        format!(
            "host={host} hostaddr=127.0.0.1 port={port} user=postgres dbname=postgres sslrootcert='{pem}'"
        )
    };
    let regions = serde_json::json!({
        "us-east-1": {"health_url": "https://127.0.0.1:9/health", "set_identifier": "primary",
                      "database": {"backend": "postgres"}},
        "us-west-2": {"health_url": "https://127.0.0.1:9/health", "set_identifier": "secondary",
                      "database": {"backend": "postgres"}},
    });
    secrets
        .create_secret()
        .name("hapilot/database")
        .secret_string(
            serde_json::json!({
                "us-east-1": {"dsn": dsn_for("localhost")},
                "us-west-2": {"dsn": dsn_for("db.example.internal")},
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let regions_text = regions.to_string();
    let mut settings = hapilot_functions::config::Settings::from_lookup(|k| match k {
        "HAPILOT_REGIONS" => Some(regions_text.clone()),
        "HAPILOT_DATABASE_SECRET" => Some("hapilot/database".into()),
        _ => None,
    })
    .unwrap();
    settings
        .read_secrets(
            &hapilot_adapters::secrets::SecretsManager::from_sdk(sdk),
            &[hapilot_functions::catalog::Credential::Database],
        )
        .await
        .unwrap();
    let dsn_of = |region: &str| match &settings.regions[region].database {
        Some(DatabaseTarget::Postgres { dsn, .. }) => dsn.expose().to_string(),
        other => panic!("{other:?}"),
    };
    // The certificate names localhost: verified in full, over TLS.
    assert_eq!(ssl_in_use(&dsn_of("us-east-1")).await, Ok(true));
    // The same CA for a name the certificate does not carry: refused (verify-full, not prefer).
    let refused = ssl_in_use(&dsn_of("us-west-2")).await.unwrap_err();
    assert!(
        refused.contains("db.example.internal:") && refused.to_lowercase().contains("certificate"),
        "{refused}"
    );
    assert!(!refused.contains("BEGIN CERTIFICATE"), "{refused}");
}
