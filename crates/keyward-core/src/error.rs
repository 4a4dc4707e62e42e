use thiserror::Error;

/// Errors of the domain layer. Every variant names the input field at fault so the HTTP
/// layer can answer `400` with `field` set.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CoreError {
    #[error("{message}")]
    Invalid { field: String, message: String },
}

impl CoreError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::Invalid { field: field.into(), message: message.into() }
    }

    pub fn field(&self) -> &str {
        match self {
            CoreError::Invalid { field, .. } => field,
        }
    }
}
