//! `hapilot status`: where the deployment stands.

use super::Context;

pub(crate) async fn exec(cx: &Context) -> anyhow::Result<()> {
    let settings = cx.config.settings()?;
    let sdk = cx.config.aws_answering().await?;
    let control = std::env::var("HAPILOT_LOCAL_CONTROL")
        .ok()
        .filter(|u| !u.is_empty());
    let status = hapilot::status::read_status(&sdk, &settings, control.as_deref()).await;
    cx.out.result(&status.to_json(), |_| status.render())
}
