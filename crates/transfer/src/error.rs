use ferry_endpoint::EndpointError;
use ferry_store::StoreError;

/// What the transfer service refuses. The server maps each variant to a Transfer error document in one place.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A bad submission or parameter: `code` is the documented Transfer code (`ClientError.BadRequest`,
    /// `ClientError.BadRequest.NoTransferItems`, …); the message names the field.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// No such task, or not the caller's.
    #[error("{0}")]
    TaskNotFound(String),
    /// The task cannot do that now (e.g. cancelling a finished task).
    #[error("{0}")]
    Conflict(String),
    /// Collections, permissions and storage, as the endpoint reports them.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl TransferError {
    pub fn bad(message: impl Into<String>) -> Self {
        TransferError::BadRequest {
            code: "ClientError.BadRequest",
            message: message.into(),
        }
    }
}

impl From<StoreError> for TransferError {
    fn from(e: StoreError) -> Self {
        TransferError::Endpoint(e.into())
    }
}

pub type Result<T> = std::result::Result<T, TransferError>;
