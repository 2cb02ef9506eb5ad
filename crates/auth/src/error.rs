use ferry_store::StoreError;

/// Everything the authorisation server refuses, named as OAuth2 names it where OAuth2 has a name.
/// The server maps each variant to its HTTP status and body in one place.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    InvalidRequest(String),
    /// Client authentication failed. Deliberately says nothing about which part was wrong.
    #[error("client authentication failed")]
    InvalidClient,
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("grant type '{0}' is not supported")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidScope(String),
    /// Too many failures from one client or one user at one address.
    #[error("too many failed attempts; retry in {retry_after} seconds")]
    SlowDown { retry_after: u64 },
    /// No usable bearer token: missing, malformed, expired, revoked or for another resource server.
    #[error("call must be authenticated")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Wrong username or password at the login page.
    #[error("the username or password is incorrect")]
    LoginFailed,
    #[error("internal error: {0}")]
    Internal(String),
    /// A service this one relies on (an endpoint's hub) cannot answer now; trying again later may work.
    #[error("{0}")]
    Unavailable(String),
    /// An upstream identity provider cannot be reached, or answered what cannot be used.
    #[error("{0}")]
    Upstream(String),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AuthError::NotFound("not found".into()),
            StoreError::Conflict(what) => AuthError::Conflict(format!("{what} already exists")),
            StoreError::Backend(msg) => AuthError::Internal(msg),
            e @ StoreError::LeaseLost => AuthError::Internal(e.to_string()),
        }
    }
}
