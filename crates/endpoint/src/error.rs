use ferry_store::StoreError;

/// What the endpoint manager refuses. The server maps each to the GCS result envelope's `code` and status.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// A bad document or parameter; the message names the field.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// The caller lacks the role (the message names it).
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Conflict(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for EndpointError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => EndpointError::NotFound("not found".into()),
            StoreError::Conflict(what) => EndpointError::Conflict(what),
            StoreError::Backend(m) => EndpointError::Internal(m),
        }
    }
}

pub type Result<T> = std::result::Result<T, EndpointError>;
