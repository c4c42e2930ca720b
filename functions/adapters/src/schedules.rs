//! EventBridge Scheduler, read-only: whether a schedule exists and is enabled (readiness'
//! "DR drill scheduled").

use std::future::Future;

use crate::AdapterError;

/// Reads schedules.
pub trait ScheduleReader: Send + Sync {
    /// The `State` (`ENABLED`, `DISABLED`) of schedule `name` in the default group; None when
    /// there is no such schedule.
    fn schedule_state(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, AdapterError>> + Send;
}

/// [`ScheduleReader`] on EventBridge Scheduler.
#[derive(Debug, Clone)]
pub struct Scheduler {
    client: aws_sdk_scheduler::Client,
}

impl Scheduler {
    /// A client from `config`.
    pub fn from_sdk(config: &aws_config::SdkConfig) -> Self {
        Self {
            client: aws_sdk_scheduler::Client::new(config),
        }
    }
}

impl ScheduleReader for Scheduler {
    async fn schedule_state(&self, name: &str) -> Result<Option<String>, AdapterError> {
        match self.client.get_schedule().name(name).send().await {
            Ok(out) => Ok(Some(
                out.state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "ENABLED".into()),
            )),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(AdapterError::aws("GetSchedule")(e)),
        }
    }
}

/// In-memory [`ScheduleReader`]: schedule name -> `State`.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone, Default)]
pub struct MemorySchedules {
    /// Name -> `ENABLED` / `DISABLED`.
    pub schedules: std::collections::BTreeMap<String, String>,
}

#[cfg(any(test, feature = "fakes"))]
impl ScheduleReader for MemorySchedules {
    async fn schedule_state(&self, name: &str) -> Result<Option<String>, AdapterError> {
        Ok(self.schedules.get(name).cloned())
    }
}
