//! Which kind of AWS login a profile is, so that a refusal says what to run (`aws sso login`,
//! the credential process, the keys) instead of the SDK's generic "no credentials".
//!
//! The SDK resolves the credentials itself (the CLI is built with its `sso`,
//! `credentials-process` and `credentials-login` providers); this module only reads the shared
//! config and credentials files as the AWS CLI documents them ("Configuration and credential
//! file settings": `[profile NAME]` in `~/.aws/config`, `[NAME]` in `~/.aws/credentials`,
//! `[sso-session NAME]` sections, files moved by `AWS_CONFIG_FILE` and
//! `AWS_SHARED_CREDENTIALS_FILE`).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// How a profile gets its credentials, in the words of the AWS CLI's documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileKind {
    /// IAM Identity Center through an `[sso-session]` (`sso_session = NAME`).
    SsoSession {
        /// The session's name.
        session: String,
    },
    /// IAM Identity Center, legacy form (`sso_start_url` in the profile).
    SsoLegacy,
    /// `credential_process = COMMAND` (aws-vault, granted, saml2aws ...).
    CredentialProcess {
        /// The command, as written.
        command: String,
    },
    /// `login_session` (the AWS CLI's `aws login` with console credentials).
    ConsoleLogin,
    /// `role_arn` with `source_profile` or `credential_source`.
    AssumeRole {
        /// The role.
        role_arn: String,
    },
    /// `web_identity_token_file` with `role_arn`.
    WebIdentity,
    /// `aws_access_key_id` and `aws_secret_access_key`.
    StaticKeys,
    /// The profile exists but says nothing hapilot recognises about credentials.
    Unknown,
}

impl ProfileKind {
    /// What an operator runs or checks when this kind of profile yields no credentials.
    pub fn remedy(&self, profile: &str) -> String {
        match self {
            ProfileKind::SsoSession { session } => format!(
                "IAM Identity Center profile (sso_session {session}): run `aws sso login --profile {profile}` (or `--sso-session {session}`) and try again"
            ),
            ProfileKind::SsoLegacy => format!(
                "IAM Identity Center profile (sso_start_url): run `aws sso login --profile {profile}` and try again"
            ),
            ProfileKind::CredentialProcess { command } => format!(
                "credential_process profile: run `{command}` yourself; it must print the credentials JSON (Version 1) and exit 0"
            ),
            ProfileKind::ConsoleLogin => format!(
                "console login profile (login_session): run `aws login --profile {profile}` and try again"
            ),
            ProfileKind::AssumeRole { role_arn } => format!(
                "assume-role profile ({role_arn}): its source profile must have credentials, and it must be allowed to assume the role"
            ),
            ProfileKind::WebIdentity => {
                "web identity profile: the token file must exist and be current".to_string()
            }
            ProfileKind::StaticKeys => {
                "access key profile: the keys may be wrong, disabled or expired".to_string()
            }
            ProfileKind::Unknown => format!(
                "profile {profile} names no credentials (no sso_session, credential_process, role_arn or keys)"
            ),
        }
    }
}

/// A parsed shared config or credentials file: section name -> key -> value.
type Sections = BTreeMap<String, BTreeMap<String, String>>;

/// Parses the INI-like text of a shared config file. Comments (`#`, `;`) and blank lines are
/// skipped; keys are lower-cased and trimmed (the files are case-insensitive in their keys).
fn parse(text: &str) -> Sections {
    let mut sections = Sections::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            sections.entry(name.clone()).or_default();
            current = Some(name);
        } else if let (Some(section), Some((key, value))) = (&current, line.split_once('=')) {
            sections
                .get_mut(section)
                .expect("section inserted when opened")
                .insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    sections
}

/// What the shared config (`config`) and credentials (`credentials`) files say of `profile`:
/// `None` when neither has it.
pub fn kind_in(config: &str, credentials: &str, profile: &str) -> Option<ProfileKind> {
    let config = parse(config);
    let credentials = parse(credentials);
    // In the config file the default profile is `[default]`, every other `[profile NAME]`.
    let in_config = if profile == "default" {
        config
            .get("default")
            .or_else(|| config.get("profile default"))
    } else {
        config.get(&format!("profile {profile}"))
    };
    let in_credentials = credentials.get(profile);
    if in_config.is_none() && in_credentials.is_none() {
        return None;
    }
    let mut keys = BTreeMap::new();
    for section in [in_credentials, in_config].into_iter().flatten() {
        keys.extend(section.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    Some(if let Some(session) = keys.get("sso_session") {
        ProfileKind::SsoSession {
            session: session.to_string(),
        }
    } else if keys.contains_key("sso_start_url") {
        ProfileKind::SsoLegacy
    } else if let Some(command) = keys.get("credential_process") {
        ProfileKind::CredentialProcess {
            command: command.to_string(),
        }
    } else if keys.contains_key("login_session") {
        ProfileKind::ConsoleLogin
    } else if keys.contains_key("web_identity_token_file") {
        ProfileKind::WebIdentity
    } else if let Some(role_arn) = keys.get("role_arn") {
        ProfileKind::AssumeRole {
            role_arn: role_arn.to_string(),
        }
    } else if keys.contains_key("aws_access_key_id") {
        ProfileKind::StaticKeys
    } else {
        ProfileKind::Unknown
    })
}

/// Where the shared files are: `AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE`, else
/// `~/.aws/config` and `~/.aws/credentials`.
fn shared_files() -> (Option<PathBuf>, Option<PathBuf>) {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let pick = |var: &str, default: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
    };
    (
        pick("AWS_CONFIG_FILE", "config"),
        pick("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
    )
}

/// The kind of `profile` as this machine's shared files describe it (`None`: no such profile).
pub fn kind_of(profile: &str) -> Option<ProfileKind> {
    let (config, credentials) = shared_files();
    let read = |p: Option<PathBuf>| {
        p.and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    };
    kind_in(&read(config), &read(credentials), profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[default]
region = us-east-1

[profile oncall]
sso_session = corp
sso_account_id = 111122223333
sso_role_name = PlatformOnCall
region = us-west-2

[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = us-east-1

[profile vault]
credential_process = aws-vault export --format=json platform

[profile  legacy ]
SSO_START_URL = https://old.awsapps.com/start

[profile console]
login_session = arn:aws:iam::111122223333:user/alice

[profile breakglass]
role_arn = arn:aws:iam::111122223333:role/BreakGlass
source_profile = default

; a comment
[profile empty]
region = eu-west-1
"#;

    const CREDENTIALS: &str = "[default]\naws_access_key_id = AKID\naws_secret_access_key = x\n";

    #[test]
    fn each_login_kind_is_recognised_as_the_aws_cli_documents_it() {
        let kind = |p: &str| kind_in(CONFIG, CREDENTIALS, p);
        assert_eq!(
            kind("oncall"),
            Some(ProfileKind::SsoSession {
                session: "corp".into()
            })
        );
        assert_eq!(
            kind("vault"),
            Some(ProfileKind::CredentialProcess {
                command: "aws-vault export --format=json platform".into()
            })
        );
        assert_eq!(kind("legacy"), Some(ProfileKind::SsoLegacy));
        assert_eq!(kind("console"), Some(ProfileKind::ConsoleLogin));
        assert!(matches!(
            kind("breakglass"),
            Some(ProfileKind::AssumeRole { .. })
        ));
        assert_eq!(kind("default"), Some(ProfileKind::StaticKeys));
        assert_eq!(kind("empty"), Some(ProfileKind::Unknown));
        assert_eq!(kind("nope"), None);
    }

    #[test]
    fn the_remedy_names_the_command_to_run() {
        let sso = ProfileKind::SsoSession {
            session: "corp".into(),
        };
        assert!(
            sso.remedy("oncall")
                .contains("aws sso login --profile oncall")
        );
        let process = ProfileKind::CredentialProcess {
            command: "granted x".into(),
        };
        assert!(process.remedy("p").contains("run `granted x` yourself"));
    }
}
