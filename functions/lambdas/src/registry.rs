//! The in-process function registry: function name -> handler, as the local stack's Lambda host
//! serves them. Each entry calls the same handler function as the matching `src/bin` main.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hapilot_aws::HttpProber;
use serde_json::Value;

use crate::{FunctionError, check_health};

/// The future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, FunctionError>> + Send>>;
/// A handler: JSON event in, JSON result or a named error out.
pub type Handler = Arc<dyn Fn(Value) -> HandlerFuture + Send + Sync>;

/// The adapters handlers need, built once per process (like a Lambda's init phase).
#[derive(Debug, Clone)]
pub struct Adapters {
    /// HTTP health prober.
    pub prober: HttpProber,
}

impl Adapters {
    /// Builds every adapter.
    pub fn new() -> Result<Self, FunctionError> {
        Ok(Self {
            prober: HttpProber::new().map_err(|e| FunctionError::Setup(e.to_string()))?,
        })
    }
}

/// Function name -> handler.
#[derive(Clone, Default)]
pub struct FunctionRegistry {
    handlers: BTreeMap<String, Handler>,
}

impl FunctionRegistry {
    /// Every function of [`crate::catalog::FUNCTIONS`], wired to `adapters`.
    pub fn new(adapters: Adapters) -> Self {
        let adapters = Arc::new(adapters);
        let mut registry = Self::default();
        let a = adapters.clone();
        registry.insert("check-health", move |event| {
            let a = a.clone();
            Box::pin(async move { check_health::check_health(&a.prober, event).await })
        });
        registry
    }

    /// Adds or replaces a handler (tests use this for handlers that misbehave on purpose).
    pub fn insert<F>(&mut self, name: &str, handler: F)
    where
        F: Fn(Value) -> HandlerFuture + Send + Sync + 'static,
    {
        self.handlers.insert(name.to_string(), Arc::new(handler));
    }

    /// The handler of `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<Handler> {
        self.handlers.get(name).cloned()
    }

    /// Every registered function name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }
}

impl std::fmt::Debug for FunctionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.handlers.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_serves_exactly_the_catalog() {
        let registry = FunctionRegistry::new(Adapters::new().unwrap());
        let names: Vec<_> = registry.names().collect();
        let catalog: Vec<_> = crate::catalog::FUNCTIONS.iter().map(|f| f.name).collect();
        assert_eq!(names, catalog);
    }
}
