//! Validation: BackendPool documents -> `ConfigSet` (placeholder).

use super::ConfigSet;
use crate::api::BackendPool;

/// Where the documents came from (for error messages).
#[derive(Debug, Clone)]
pub enum Source {
    /// A file path.
    File(String),
    /// The Kubernetes API.
    Kubernetes,
}

/// One validation failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Full message.
    pub message: String,
}

/// Every failure found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for e in &self.0 {
            writeln!(f, "{}", e.message)?;
        }
        Ok(())
    }
}

/// Validates `pools` as a whole.
pub fn validate(_source: &Source, _pools: &[BackendPool]) -> Result<ConfigSet, ValidationErrors> {
    Ok(ConfigSet::default())
}
