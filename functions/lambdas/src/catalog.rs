//! The list of hapilot's Lambda functions: one place that the local stack, the state machine
//! substitutions and the SAM template checks all read.

/// One Lambda function of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionSpec {
    /// The function (and binary) name, e.g. `check-health`; the local stack's function name.
    pub name: &'static str,
    /// The `${...}` name state machines use for its ARN, e.g. `CheckHealthFunctionArn`;
    /// `infra/template.yaml` defines the same name in `DefinitionSubstitutions`.
    pub substitution: &'static str,
    /// What it does, for `hapilot local up` and docs.
    pub summary: &'static str,
}

/// Every function hapilot deploys.
pub const FUNCTIONS: &[FunctionSpec] = &[FunctionSpec {
    name: "check-health",
    substitution: "CheckHealthFunctionArn",
    summary: "probe an HTTP /health endpoint N times and judge it healthy or not",
}];

/// Finds a function by name.
pub fn find(name: &str) -> Option<&'static FunctionSpec> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_substitutions_are_unique_and_derived() {
        for (i, f) in FUNCTIONS.iter().enumerate() {
            let pascal: String = f
                .name
                .split('-')
                .map(|w| w[..1].to_uppercase() + &w[1..])
                .collect();
            assert_eq!(f.substitution, format!("{pascal}FunctionArn"));
            assert!(FUNCTIONS[i + 1..].iter().all(|g| g.name != f.name));
        }
    }
}
