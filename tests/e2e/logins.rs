//! The CLI with the logins teams have: an IAM Identity Center `sso_session` profile (through a
//! loopback portal that refuses as the real one does) and a `credential_process` profile, each
//! resolved by the real SDK inside the `hapilot` binary, and a profile whose SSO token expired
//! refused in one line that says what to run.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use hapilot::local::aws::sso_portal::{PortalGrant, SsoPortal};
use sha1::{Digest, Sha1};

const ACCOUNT: &str = "111122223333";

/// Writes `~/.aws/sso/cache/<sha1(session)>.json` as `aws sso login --sso-session` leaves it.
fn cache_token(home: &Path, session: &str, token: &str, expires_in_s: i64) {
    let dir = home.join(".aws/sso/cache");
    std::fs::create_dir_all(&dir).unwrap();
    let name: String = Sha1::digest(session.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let expires = chrono::Utc::now() + chrono::Duration::seconds(expires_in_s);
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::json!({
            "accessToken": token,
            "expiresAt": expires.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "region": "us-east-1",
            "startUrl": "https://corp.awsapps.com/start",
        })
        .to_string(),
    )
    .unwrap();
}

struct Logins {
    home: tempdir::Dir,
    portal: SsoPortal,
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Logins {
    async fn start() -> Self {
        let home = std::env::temp_dir().join(format!("hapilot-logins-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(home.join(".aws")).unwrap();
        let process = home.join("creds.sh");
        std::fs::write(
            &process,
            "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"AKIAPROCESS\", \"SecretAccessKey\": \"s\", \"SessionToken\": \"t\"}'\n",
        )
        .unwrap();
        std::fs::set_permissions(&process, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            home.join(".aws/config"),
            format!(
                "[profile oncall]\nsso_session = corp\nsso_account_id = {ACCOUNT}\nsso_role_name = PlatformOnCall\nregion = us-east-1\n\n\
                 [sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-1\n\n\
                 [profile stale]\nsso_session = old\nsso_account_id = {ACCOUNT}\nsso_role_name = PlatformOnCall\nregion = us-east-1\n\n\
                 [sso-session old]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-1\n\n\
                 [profile vault]\ncredential_process = {}\nregion = us-east-1\n",
                process.display()
            ),
        )
        .unwrap();
        cache_token(&home, "corp", "fresh-token", 3600);
        cache_token(&home, "old", "expired-token", -3600);
        let portal = SsoPortal::start(vec![PortalGrant {
            access_token: "fresh-token".into(),
            account_id: ACCOUNT.into(),
            role_name: "PlatformOnCall".into(),
        }])
        .await
        .unwrap();
        Self {
            home: tempdir::Dir(home),
            portal,
        }
    }

    /// `hapilot` with nothing of this machine's AWS setup: only the test's home and portal.
    fn hapilot(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_hapilot"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home.0)
            .env("AWS_ENDPOINT_URL_SSO", &self.portal.url)
            .env("AWS_ENDPOINT_URL_STS", &self.portal.url)
            .current_dir(&self.home.0)
            .args(args)
            .kill_on_drop(true);
        c
    }

    async fn run(&self, args: &[&str]) -> std::process::Output {
        tokio::time::timeout(Duration::from_secs(60), self.hapilot(args).output())
            .await
            .expect("hapilot ends")
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sso_session_profile_signs_with_the_keys_the_portal_issued() {
    let logins = Logins::start().await;
    let out = logins
        .run(&[
            "whoami",
            "--json",
            "--profile",
            "oncall",
            "--region",
            "us-west-2",
        ])
        .await;
    let said = crate::support::said(&out);
    assert!(out.status.success(), "{said}");
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).expect(&said);
    // The credentials check before any call and the call itself each ask the portal.
    let issued = logins.portal.issued_keys();
    let signed = logins.portal.signed_with();
    assert!(
        !issued.is_empty() && issued.contains(&signed[0]),
        "{issued:?} {signed:?}"
    );
    assert_eq!(
        me["arn"],
        format!(
            "arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_PlatformOnCall/{}",
            signed[0]
        ),
        "STS saw the portal's keys: {me:#}"
    );
    assert_eq!(me["account"], ACCOUNT);
    assert_eq!(me["region"], "us-west-2", "--region beats the profile's");
    assert_eq!(me["profile"], "oncall");
    assert!(
        me["profile_kind"].as_str().unwrap().contains("SsoSession"),
        "{me:#}"
    );

    // The same through AWS_PROFILE, as most shells have it.
    let out = logins
        .hapilot(&["whoami", "--json"])
        .env("AWS_PROFILE", "oncall")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", crate::support::said(&out));
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(me["region"], "us-east-1", "the profile's region");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_process_profile_signs_with_what_the_process_printed() {
    let logins = Logins::start().await;
    let out = logins
        .run(&["whoami", "--json", "--profile", "vault"])
        .await;
    let said = crate::support::said(&out);
    // The portal's STS knows only keys it issued: the process's key is refused by name, which
    // proves the request was signed with it.
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("InvalidClientTokenId"), "{said}");
    assert_eq!(logins.portal.signed_with(), ["AKIAPROCESS"]);
    assert!(logins.portal.issued_keys().is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("no AWS credentials"),
        "the process gave credentials: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_sso_login_is_refused_in_one_line_that_says_what_to_run() {
    let logins = Logins::start().await;
    let out = logins.run(&["whoami", "--profile", "stale"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("hapilot: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("no AWS credentials from profile stale")
            && errors[0].contains("IAM Identity Center profile (sso_session old)")
            && errors[0].contains("aws sso login --profile stale"),
        "{stderr}"
    );
    assert!(logins.portal.issued_keys().is_empty());

    // A profile that does not exist is named as such.
    let out = logins
        .run(&["whoami", "--profile", "nosuch", "--region", "us-east-1"])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("profile nosuch is in neither ~/.aws/config nor ~/.aws/credentials"),
        "{stderr}"
    );
}
