//! Building AWS SDK configuration and clients, for AWS and for the local stack.
//!
//! In AWS the default chain (Lambda's role, region) is used. Locally every client points at the
//! local stack's front door through `AWS_ENDPOINT_URL`, which the SDK reads by itself; the same
//! code therefore runs unchanged in both places.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;

/// Account id the local stack (moto) uses in every ARN.
pub const LOCAL_ACCOUNT_ID: &str = "123456789012";

/// Loads configuration from the environment (Lambda's role and region, `AWS_ENDPOINT_URL`).
pub async fn from_env() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Configuration for talking to a local stack at `endpoint_url` (e.g. `http://127.0.0.1:4566`),
/// with dummy credentials, so no AWS account or profile is ever consulted.
pub fn local(endpoint_url: &str, region: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint_url)
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            Credentials::new(
                "hapilot-local",
                "hapilot-local",
                None,
                None,
                "hapilot-local",
            ),
        ))
        .build()
}

/// The functions' configuration: every AWS call is tried once. A transient failure then reaches
/// the state machine as `hapilot.Transient`, whose `Retry` (full jitter, capped delays, an
/// attempt budget that fits the tier's RTO) is the one retry layer, and each retry is in the
/// run's history. With the SDK's own three attempts under it, the attempts would multiply
/// (3 x 4 calls for one blip) and stay invisible.
pub fn one_attempt(config: &SdkConfig) -> SdkConfig {
    config
        .clone()
        .into_builder()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build()
}

/// An S3 client; path-style addressing whenever an endpoint is overridden, because bucket
/// subdomains of `127.0.0.1` do not resolve.
pub fn s3(config: &SdkConfig) -> aws_sdk_s3::Client {
    let builder =
        aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some());
    aws_sdk_s3::Client::from_conf(builder.build())
}
