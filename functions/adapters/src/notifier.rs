//! Notifications to the on-call (SNS topic: e-mail, chat, pager).

use std::future::Future;

use hapilot_core::paging::{URGENCY_ATTRIBUTE, Urgency};

use crate::AdapterError;

/// Sends a notification.
pub trait Notifier: Send + Sync {
    /// Publishes `message` with `subject` (SNS limits subjects to 100 characters) at
    /// `urgency`: "act now" pages, "for your information" goes to mail and chat only.
    fn send(
        &self,
        subject: &str,
        message: &str,
        urgency: Urgency,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;

    /// [`Notifier::send`] for what a human must act on.
    fn notify(
        &self,
        subject: &str,
        message: &str,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send {
        self.send(subject, message, Urgency::ActNow)
    }
}

/// [`Notifier`] on an SNS topic.
#[derive(Debug, Clone)]
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsNotifier {
    /// An SNS client from `config` publishing to `topic_arn`.
    pub fn from_sdk(config: &aws_config::SdkConfig, topic_arn: &str) -> Self {
        Self::new(aws_sdk_sns::Client::new(config), topic_arn)
    }

    /// Publishes to `topic_arn`.
    pub fn new(client: aws_sdk_sns::Client, topic_arn: &str) -> Self {
        Self {
            client,
            topic_arn: topic_arn.to_string(),
        }
    }
}

impl Notifier for SnsNotifier {
    async fn send(
        &self,
        subject: &str,
        message: &str,
        urgency: Urgency,
    ) -> Result<(), AdapterError> {
        let subject: String = subject.chars().take(100).collect();
        let attribute = aws_sdk_sns::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(urgency.attribute())
            .build()
            .map_err(|e| AdapterError::Aws {
                operation: "Publish",
                detail: format!("the urgency attribute: {e}"),
            })?;
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message(message)
            .message_attributes(URGENCY_ATTRIBUTE, attribute)
            .send()
            .await
            .map_err(AdapterError::aws("Publish"))?;
        Ok(())
    }
}

/// In-memory [`Notifier`] for handler unit tests: every (subject, message) sent.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone, Default)]
pub struct MemoryNotifier {
    sent: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    urgencies: std::sync::Arc<std::sync::Mutex<Vec<Urgency>>>,
}

#[cfg(any(test, feature = "fakes"))]
impl MemoryNotifier {
    /// What was sent, in order.
    pub fn sent(&self) -> Vec<(String, String)> {
        self.sent.lock().expect("sent").clone()
    }

    /// The urgency of each notification sent, in order.
    pub fn urgencies(&self) -> Vec<Urgency> {
        self.urgencies.lock().expect("urgencies").clone()
    }
}

#[cfg(any(test, feature = "fakes"))]
impl Notifier for MemoryNotifier {
    async fn send(
        &self,
        subject: &str,
        message: &str,
        urgency: Urgency,
    ) -> Result<(), AdapterError> {
        self.urgencies.lock().expect("urgencies").push(urgency);
        self.sent
            .lock()
            .expect("sent")
            .push((subject.to_string(), message.to_string()));
        Ok(())
    }
}
