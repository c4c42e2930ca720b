//! The operator's side of the local world: the on-call's IAM login, the drill schedule an
//! operator enables, and the permissions a test takes away from a deployed role.

use super::{PRIMARY_REGION, STANDBY_REGION};
use crate::LocalError;
use crate::LocalStack;

/// An IAM user's access key, as an operator's shell holds it.
#[derive(Debug, Clone)]
pub struct OperatorLogin {
    /// The user's ARN.
    pub arn: String,
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
}

/// The IAM user the local world's operator signs in as.
pub const OPERATOR_USER: &str = "oncall";

/// Creates the operator's IAM user with the `OperatorPolicy` of every deployed stack that has
/// one, and an access key.
pub(super) async fn create_operator(
    stack: &LocalStack,
    templates: &crate::aws::template::world::TemplateDeployment,
) -> Result<OperatorLogin, LocalError> {
    let iam = aws_sdk_iam::Client::new(&stack.observer_config(PRIMARY_REGION));
    let user = iam
        .create_user()
        .user_name(OPERATOR_USER)
        .send()
        .await
        .map_err(LocalError::aws("CreateUser"))?;
    for deployed in templates.stacks.values() {
        if let Some(policy) = deployed.refs.get("OperatorPolicy").and_then(|v| v.as_str()) {
            iam.attach_user_policy()
                .user_name(OPERATOR_USER)
                .policy_arn(policy)
                .send()
                .await
                .map_err(LocalError::aws("AttachUserPolicy"))?;
        }
    }
    let key = iam
        .create_access_key()
        .user_name(OPERATOR_USER)
        .send()
        .await
        .map_err(LocalError::aws("CreateAccessKey"))?;
    let key = key
        .access_key()
        .ok_or_else(|| LocalError::Invalid("CreateAccessKey answered without a key".into()))?;
    Ok(OperatorLogin {
        arn: user.user().map(|u| u.arn().to_string()).unwrap_or_default(),
        access_key_id: key.access_key_id().to_string(),
        secret_access_key: key.secret_access_key().to_string(),
    })
}

/// The DR drill schedule's name in the local world (the template's `DrDrillSchedule`,
/// `<stack>-dr-drill`).
pub const DRILL_SCHEDULE: &str = "hapilot-dr-drill";

/// Sets the DR drill schedule's `State` (`ENABLED` / `DISABLED`) in the primary's and the
/// standby's stack, as an operator does once the drill was rehearsed: the template's schedule
/// keeps its expression, target and input (UpdateSchedule replaces the whole schedule, so
/// they are read first and given back). Returns its name.
pub async fn put_drill_schedule(stack: &LocalStack, state: &str) -> Result<String, LocalError> {
    use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, ScheduleState};
    for region in [PRIMARY_REGION, STANDBY_REGION] {
        let scheduler = aws_sdk_scheduler::Client::new(&stack.sdk_config_in(region));
        let found = scheduler
            .get_schedule()
            .name(DRILL_SCHEDULE)
            .send()
            .await
            .map_err(LocalError::aws("GetSchedule"))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(LocalError::aws("UpdateSchedule"))?;
        scheduler
            .update_schedule()
            .name(DRILL_SCHEDULE)
            .set_schedule_expression(found.schedule_expression().map(str::to_string))
            .set_schedule_expression_timezone(
                found.schedule_expression_timezone().map(str::to_string),
            )
            .flexible_time_window(window)
            .set_target(found.target().cloned())
            .state(ScheduleState::from(state))
            .send()
            .await
            .map_err(LocalError::aws("UpdateSchedule"))?;
    }
    Ok(DRILL_SCHEDULE.to_string())
}

/// The inline policy [`deny_role_actions`] puts on a role.
const DENIAL_POLICY: &str = "hapilot-local-denial";

/// Takes `actions` away from the deployed role `role_arn` with an explicit `Deny` (what a
/// permission boundary or an SCP does to a template's role); with no actions, gives them back.
pub async fn deny_role_actions(
    stack: &LocalStack,
    role_arn: &str,
    actions: &[&str],
) -> Result<(), LocalError> {
    let iam = aws_sdk_iam::Client::new(stack.sdk_config());
    let name = role_arn.rsplit('/').next().unwrap_or(role_arn);
    if actions.is_empty() {
        let _ = iam
            .delete_role_policy()
            .role_name(name)
            .policy_name(DENIAL_POLICY)
            .send()
            .await;
        return Ok(());
    }
    iam.put_role_policy()
        .role_name(name)
        .policy_name(DENIAL_POLICY)
        .policy_document(
            serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny",
                "Action": actions, "Resource": "*"}]})
            .to_string(),
        )
        .send()
        .await
        .map_err(LocalError::aws("PutRolePolicy"))?;
    Ok(())
}
