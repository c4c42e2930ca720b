//! The in-memory fake of [`TrafficSwitch`](super::TrafficSwitch) for handler unit tests.

use std::collections::BTreeMap;

use super::TrafficSwitch;
use crate::AdapterError;

/// In-memory [`TrafficSwitch`]: weights by SetIdentifier, every change in sync at once.
#[cfg(any(test, feature = "fakes"))]
#[derive(Debug, Clone, Default)]
pub struct MemoryTrafficSwitch {
    weights: std::sync::Arc<std::sync::Mutex<BTreeMap<String, i64>>>,
    changes: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

#[cfg(any(test, feature = "fakes"))]
impl MemoryTrafficSwitch {
    /// A switch with these weights.
    pub fn with(weights: &[(&str, i64)]) -> Self {
        let switch = Self::default();
        switch
            .weights
            .lock()
            .expect("weights")
            .extend(weights.iter().map(|(s, w)| (s.to_string(), *w)));
        switch
    }

    /// The comments of every change applied.
    pub fn changes(&self) -> Vec<String> {
        self.changes.lock().expect("changes").clone()
    }
}

#[cfg(any(test, feature = "fakes"))]
impl TrafficSwitch for MemoryTrafficSwitch {
    async fn states(&self) -> Result<BTreeMap<String, i64>, AdapterError> {
        Ok(self.weights.lock().expect("weights").clone())
    }

    async fn apply(
        &self,
        weights: &[(String, i64)],
        comment: &str,
    ) -> Result<String, AdapterError> {
        let mut all = self.weights.lock().expect("weights");
        for (set, _) in weights {
            if !all.contains_key(set) {
                return Err(AdapterError::NotFound(format!(
                    "no record with SetIdentifier {set}"
                )));
            }
        }
        all.extend(weights.iter().cloned());
        let mut changes = self.changes.lock().expect("changes");
        changes.push(comment.to_string());
        Ok(format!("change-{}", changes.len()))
    }

    async fn in_sync(&self, _change_id: &str) -> Result<bool, AdapterError> {
        Ok(true)
    }
}
