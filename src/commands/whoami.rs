//! `hapilot whoami`: who the CLI acts as, where.

use super::Context;

pub(crate) async fn exec(cx: &Context) -> anyhow::Result<()> {
    let sdk = cx.config.aws().await?;
    let profile = cx.config.profile();
    let kind = hapilot::login::kind_of(&profile);
    let identity = hapilot::approvals::caller_identity(&sdk).await?;
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let kind_text = kind.as_ref().map(|k| format!("{k:?}"));
    if cx.out.json {
        say!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "arn": identity,
                "account": identity.split(':').nth(4),
                "region": region,
                "profile": profile,
                "profile_kind": kind_text,
                "endpoint_url": sdk.endpoint_url(),
            }))?
        );
        return Ok(());
    }
    say!("identity  {identity}");
    say!("region    {region}");
    say!(
        "profile   {profile} ({})",
        kind_text
            .as_deref()
            .unwrap_or("not in the shared files: environment keys or a role")
    );
    if let Some(url) = sdk.endpoint_url() {
        say!("endpoint  {url}");
    }
    Ok(())
}
