//! The CLI's settings file, `hapilot.toml` (DESIGN.md: the CLI reads the same settings as the
//! Lambdas, from a file, overridable by flags).
//!
//! ```toml
//! [aws]                       # where the CLI talks to (each also settable by the SDK's own env)
//! region = "eu-west-1"        # AWS_REGION
//! profile = "platform-ops"    # AWS_PROFILE
//! # endpoint_url = "http://127.0.0.1:4566"   # AWS_ENDPOINT_URL: the local stack
//! regions = ["us-east-1", "us-west-2", "eu-west-1"]  # tried in order when one is dark
//!
//! [settings]                  # the Lambdas' HAPILOT_* variables, lower case, without the prefix
//! audit_bucket = "hapilot-audit-123456789012-eu-west-1"
//! backup_bucket = "gateway-backups-eu-west-1"
//! dr_backup_bucket = "gateway-backups-us-west-2"
//! dr_region = "us-west-2"
//! tier = "Critical"
//! ```
//!
//! Precedence, strongest first: a flag, the environment variable, the file, the default. So a
//! file shared by a team never hides what an operator sets for one command. A key hapilot does
//! not know is an error naming it (a typo must not silently fall back to a default), and nothing
//! is done.

use std::path::{Path, PathBuf};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use hapilot_functions::config::{Settings, VARIABLES, variable};
use serde::Deserialize;

use crate::HapilotError;

/// The file read when `--config` is not given, if it exists in the working directory.
pub const DEFAULT_FILE: &str = "hapilot.toml";

/// The `[aws]` table: which account and endpoint the CLI talks to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConnection {
    /// `AWS_REGION`.
    pub region: Option<String>,
    /// `AWS_PROFILE`.
    pub profile: Option<String>,
    /// `AWS_ENDPOINT_URL` (the local stack's front door).
    pub endpoint_url: Option<String>,
    /// The deployment's regions in the order the CLI tries them when the configured one does
    /// not answer (e.g. `["us-east-1", "us-west-2", "eu-west-1"]`); the settings' `regions`
    /// table comes after.
    #[serde(default)]
    pub regions: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    aws: AwsConnection,
    #[serde(default)]
    settings: toml::Table,
}

/// The CLI's configuration: the file's values under the environment's.
#[derive(Debug, Clone, Default)]
pub struct CliConfig {
    /// Where it was read from (`None`: no file, environment and defaults only).
    pub path: Option<PathBuf>,
    /// The `[aws]` table.
    pub aws: AwsConnection,
    /// `[settings]` as the Lambdas' variables: `HAPILOT_AUDIT_BUCKET` -> text (tables and arrays
    /// as JSON, which is what those variables hold).
    settings: std::collections::BTreeMap<String, String>,
    /// `--region` and `--profile`: stronger than the environment and the file.
    flags: AwsConnection,
}

impl CliConfig {
    /// Reads `path`, or `./hapilot.toml` when there is one, or nothing.
    pub fn load(path: Option<&Path>) -> Result<Self, HapilotError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_FILE).is_file() => PathBuf::from(DEFAULT_FILE),
            None => return Ok(Self::default()),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| HapilotError::Config {
            path: path.clone(),
            detail: format!("cannot read it: {e}"),
        })?;
        Self::parse(&text, &path)
    }

    /// Parses the text of a settings file read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, HapilotError> {
        let bad = |detail: String| HapilotError::Config {
            path: path.to_path_buf(),
            detail,
        };
        let file: File = toml::from_str(text).map_err(|e| {
            bad(format!(
                "not a hapilot settings file: {}",
                e.to_string().trim()
            ))
        })?;
        let mut settings = std::collections::BTreeMap::new();
        for (key, value) in file.settings {
            let name = format!("HAPILOT_{}", key.to_ascii_uppercase());
            if variable(&name).is_none() {
                let known: Vec<String> = VARIABLES
                    .iter()
                    .map(|v| v.name.trim_start_matches("HAPILOT_").to_ascii_lowercase())
                    .collect();
                return Err(bad(format!(
                    "[settings] has no key {key:?}; known keys: {}",
                    known.join(", ")
                )));
            }
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other @ (toml::Value::Table(_) | toml::Value::Array(_)) => {
                    serde_json::to_string(&other).map_err(|e| bad(format!("{key}: {e}")))?
                }
                other => {
                    return Err(bad(format!(
                        "[settings] {key} = {other}: use a string, number, boolean, table or array"
                    )));
                }
            };
            settings.insert(name, text);
        }
        let config = Self {
            path: Some(path.to_path_buf()),
            aws: file.aws,
            settings,
            flags: AwsConnection::default(),
        };
        // Malformed values (a tier that does not exist, regions that do not parse) stop here,
        // before any command talks to AWS.
        config.settings()?;
        Ok(config)
    }

    /// One Lambda variable, e.g. `HAPILOT_AUDIT_BUCKET`: the environment's, else the file's.
    pub fn setting(&self, variable: &str) -> Option<String> {
        std::env::var(variable)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| self.settings.get(variable).cloned())
    }

    /// The Lambdas' [`Settings`] as the CLI sees them.
    pub fn settings(&self) -> Result<Settings, HapilotError> {
        Settings::from_lookup(|k| self.setting(k)).map_err(|e| HapilotError::Config {
            path: self.path.clone().unwrap_or_else(|| "environment".into()),
            detail: e.to_string(),
        })
    }

    /// The same configuration with `--region` and `--profile` applied: a flag beats the
    /// environment and the file, as in the AWS CLI.
    pub fn with_flags(mut self, region: Option<String>, profile: Option<String>) -> Self {
        self.flags.region = region.filter(|r| !r.trim().is_empty());
        self.flags.profile = profile.filter(|p| !p.trim().is_empty());
        self
    }

    /// The profile the SDK will use: `--profile`, `AWS_PROFILE`, the file's, else `default`.
    pub fn profile(&self) -> String {
        self.flags
            .profile
            .clone()
            .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()))
            .or_else(|| self.aws.profile.clone())
            .unwrap_or_else(|| "default".to_string())
    }

    /// Whether `--region` chose the region (then no other region is tried for it).
    pub fn region_is_pinned(&self) -> bool {
        self.flags.region.is_some()
    }

    /// [`CliConfig::sdk`], refused in one line saying what to set when it has no region or no
    /// credentials (before any call, so the user never reads an SDK dump instead). A profile
    /// that yields no credentials is named with its kind and what to run (`aws sso login`, the
    /// credential process ...).
    pub async fn aws(&self) -> Result<SdkConfig, HapilotError> {
        let sdk = self.sdk().await;
        let missing = |what: String| HapilotError::Config {
            path: self.path.clone().unwrap_or_else(|| "environment".into()),
            detail: what,
        };
        if sdk.region().is_none() {
            return Err(missing(
                "no AWS region: use --region, set AWS_REGION, or region under [aws] in hapilot.toml".into(),
            ));
        }
        let fix = "use --profile, set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";
        let explained = |e: String| {
            let profile = self.profile();
            let keys_in_env = std::env::var_os("AWS_ACCESS_KEY_ID").is_some_and(|v| !v.is_empty());
            match crate::login::kind_of(&profile) {
                Some(kind) if !keys_in_env => {
                    format!(
                        "no AWS credentials from profile {profile} ({e}): {}",
                        kind.remedy(&profile)
                    )
                }
                None if self.flags.profile.is_some()
                    || std::env::var_os("AWS_PROFILE").is_some() =>
                {
                    format!(
                        "no AWS credentials: profile {profile} is in neither ~/.aws/config nor ~/.aws/credentials (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE)"
                    )
                }
                _ => format!("no AWS credentials ({e}): {fix}"),
            }
        };
        match sdk.credentials_provider() {
            None => return Err(missing(explained("none configured".into()))),
            Some(provider) => {
                use aws_sdk_sts::config::ProvideCredentials;
                if let Err(e) = provider.provide_credentials().await {
                    let detail = hapilot_adapters::error_chain(&e);
                    return Err(missing(explained(detail)));
                }
            }
        }
        Ok(sdk)
    }

    /// [`CliConfig::aws`] in the region that answers. With the configured region dark (its
    /// Step Functions endpoint unreachable or answering 5xx), the other regions of the
    /// deployment (`regions` in the settings, in order) are tried, and the first that answers
    /// is used, said on stderr: during a regional outage the runs, approvals and reports live
    /// in the standby's stack. `--region` pins the region and nothing else is tried.
    pub async fn aws_answering(&self) -> Result<SdkConfig, HapilotError> {
        let sdk = self.aws().await?;
        if self.region_is_pinned() {
            return Ok(sdk);
        }
        let configured = sdk.region().map(|r| r.to_string()).unwrap_or_default();
        let Err(first) = answers(&sdk).await else {
            return Ok(sdk);
        };
        let mut others: Vec<String> = self.aws.regions.clone();
        others.extend(
            self.settings()
                .map(|s| s.regions.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        let mut tried = vec![configured.clone()];
        for region in others {
            if tried.contains(&region) {
                continue;
            }
            tried.push(region.clone());
            let candidate = sdk
                .clone()
                .into_builder()
                .region(Region::new(region.clone()))
                .build();
            if answers(&candidate).await.is_ok() {
                eprintln!(
                    "hapilot: {configured} does not answer ({first}); using {region}, the next region of the deployment (--region to choose)"
                );
                return Ok(candidate);
            }
        }
        Ok(sdk)
    }

    /// The AWS SDK configuration: the SDK's own chain (environment, profile), with the file's
    /// `[aws]` values where the environment says nothing, and the flags over both.
    pub async fn sdk(&self) -> SdkConfig {
        let unset = |var: &str| std::env::var_os(var).is_none_or(|v| v.is_empty());
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = (self.aws.region.as_ref())
            .filter(|_| unset("AWS_REGION") && unset("AWS_DEFAULT_REGION"))
        {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(profile) = self.aws.profile.as_ref().filter(|_| unset("AWS_PROFILE")) {
            loader = loader.profile_name(profile);
        }
        if let Some(profile) = &self.flags.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &self.flags.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = self
            .aws
            .endpoint_url
            .as_ref()
            .filter(|_| unset("AWS_ENDPOINT_URL"))
        {
            loader = loader.endpoint_url(url);
        }
        loader.load().await
    }
}

/// Whether a region's Step Functions endpoint answers at all (one attempt, a few seconds): any
/// answer but a 5xx counts, an access refusal too (that region is up; the refusal is said by
/// the command itself).
async fn answers(sdk: &SdkConfig) -> Result<(), String> {
    let probe = hapilot_adapters::sdk::one_attempt(sdk)
        .into_builder()
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(std::time::Duration::from_secs(6))
                .connect_timeout(std::time::Duration::from_secs(3))
                .build(),
        )
        .build();
    match aws_sdk_sfn::Client::new(&probe)
        .list_state_machines()
        .max_results(1)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            match status {
                Some(s) if s < 500 => Ok(()),
                Some(s) => Err(format!("HTTP {s}")),
                None => Err(hapilot_adapters::error_chain(&e)),
            }
        }
    }
}

/// The CLI configuration `hapilot local up` reads its tuning from: the user's hapilot.toml,
/// never the settings file an earlier `local up` wrote for its own world.
pub fn user_config(path: Option<&Path>) -> Result<CliConfig, HapilotError> {
    match path {
        Some(p) if p.parent().is_some_and(|d| d.ends_with(".hapilot/local")) => {
            CliConfig::load(None)
        }
        other => CliConfig::load(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CliConfig, HapilotError> {
        CliConfig::parse(text, Path::new("hapilot.toml"))
    }

    #[test]
    fn settings_become_the_lambdas_variables() {
        let config = parse(
            r#"
            [aws]
            region = "eu-west-1"
            [settings]
            backup_bucket = "backups-eu"
            cooldown_seconds = 600
            automatic_failover = false
            tier = "High"
            [settings.regions.eu-west-1]
            health_url = "https://eu.example.com/health"
            set_identifier = "eu-west-1"
            "#,
        )
        .unwrap();
        assert_eq!(config.aws.region.as_deref(), Some("eu-west-1"));
        let settings = config.settings().unwrap();
        assert_eq!(settings.backup_bucket.as_deref(), Some("backups-eu"));
        assert_eq!(settings.cooldown_secs, 600);
        assert!(!settings.automatic_failover);
        assert_eq!(settings.tier, Some(hapilot_core::tier::Tier::High));
        assert!(settings.regions.contains_key("eu-west-1"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let e = parse("[settings]\naudit_buckt = \"x\"\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("no key \"audit_buckt\"; known keys: hosted_zone_id"),
            "{e}"
        );
        let e = parse("[aws]\nregoin = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("regoin"), "{e}");
        let e = parse("[settings]\ntier = \"Gold\"\n").unwrap_err();
        assert!(e.to_string().contains("HAPILOT_TIER is not valid"), "{e}");
        let e = parse("[settings\n").unwrap_err();
        assert!(
            e.to_string().starts_with("hapilot.toml: not a hapilot"),
            "{e}"
        );
    }
}
