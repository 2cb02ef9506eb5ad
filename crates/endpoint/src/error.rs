use ferry_storage::StorageError;
use ferry_store::StoreError;

/// What the endpoint refuses. The server maps each variant to the dialect of the API it came through (the GCS
/// result envelope, a Transfer error document, an HTTP status for data requests) in one place.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// A bad document or parameter; the message names the field.
    #[error("{0}")]
    BadRequest(String),
    /// Data access that needs a signed-in caller was attempted anonymously.
    #[error("this request needs a signed-in caller")]
    Unauthenticated,
    #[error("{0}")]
    NotFound(String),
    /// The collection (or endpoint) named in the request does not exist, or is not visible to the caller.
    #[error("No such collection '{0}'")]
    CollectionNotFound(String),
    /// The caller lacks the role a management operation needs (the message names it).
    #[error("{0}")]
    PermissionDenied(String),
    /// The one access check refused a data access (the message says which layer, and the path).
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    Conflict(String),
    /// Bytes sent with a checksum did not match it (or broke off before they could be checked): none was kept.
    #[error("{0}")]
    ChecksumMismatch(String),
    /// The thing existed and is no more (an invitation used, expired or withdrawn); the message says which.
    #[error("{0}")]
    Gone(String),
    /// The storage answered with an error (missing file, existing name, full disk, ...).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A service Ferry depends on (the mail server) could not do its part; nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for EndpointError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => EndpointError::NotFound("not found".into()),
            StoreError::Conflict(what) => EndpointError::Conflict(what),
            StoreError::Backend(m) => EndpointError::Internal(m),
            e @ StoreError::LeaseLost => EndpointError::Internal(e.to_string()),
        }
    }
}

impl From<ferry_core::access::PolicyError> for EndpointError {
    fn from(e: ferry_core::access::PolicyError) -> Self {
        EndpointError::Internal(e.0)
    }
}

pub type Result<T> = std::result::Result<T, EndpointError>;
