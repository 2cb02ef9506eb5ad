//! The one place where errors become HTTP responses. Each API family answers in its own documented dialect:
//! OAuth2 endpoints with `{error, error_description}`, the Auth API with Globus Auth's `errors` envelope,
//! Groups with `{code, message}`, the endpoint manager with the GCS result envelope, and the browser pages with
//! an HTML page.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_auth::AuthError;
use ferry_endpoint::EndpointError;
use ferry_proto::auth::{AuthApiErrorDoc, AuthApiErrorItem, OAuthErrorDoc};
use ferry_storage::StorageError;
use serde_json::json;
use uuid::Uuid;

fn status_of(e: &AuthError) -> StatusCode {
    match e {
        AuthError::InvalidClient | AuthError::Unauthenticated | AuthError::LoginFailed => {
            StatusCode::UNAUTHORIZED
        }
        AuthError::SlowDown { .. } => StatusCode::TOO_MANY_REQUESTS,
        AuthError::Forbidden(_) => StatusCode::FORBIDDEN,
        AuthError::NotFound(_) => StatusCode::NOT_FOUND,
        AuthError::Conflict(_) => StatusCode::CONFLICT,
        AuthError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        AuthError::Upstream(_) => StatusCode::BAD_GATEWAY,
        AuthError::InvalidRequest(_)
        | AuthError::InvalidGrant(_)
        | AuthError::UnauthorizedClient(_)
        | AuthError::UnsupportedGrantType(_)
        | AuthError::InvalidScope(_) => StatusCode::BAD_REQUEST,
    }
}

/// The message shown to the caller. Internal details are logged, never sent.
fn public_message(e: &AuthError) -> String {
    match e {
        AuthError::Internal(detail) => {
            tracing::error!(%detail, "internal error");
            "internal server error".into()
        }
        other => other.to_string(),
    }
}

fn with_common_headers(mut r: Response, e: &AuthError) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let AuthError::SlowDown { retry_after } = e
        && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
    {
        h.insert(header::RETRY_AFTER, v);
    }
    r
}

/// Errors of the OAuth2 endpoints (token, introspect, validate, revoke).
pub struct OAuthError(pub AuthError);

impl From<AuthError> for OAuthError {
    fn from(e: AuthError) -> Self {
        Self(e)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let e = &self.0;
        let code = match e {
            AuthError::InvalidClient => "invalid_client",
            AuthError::InvalidGrant(_) => "invalid_grant",
            AuthError::UnauthorizedClient(_) => "unauthorized_client",
            AuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            AuthError::InvalidScope(_) => "invalid_scope",
            AuthError::SlowDown { .. } => "slow_down",
            AuthError::Internal(_) => "server_error",
            AuthError::Unavailable(_) | AuthError::Upstream(_) => "temporarily_unavailable",
            AuthError::Forbidden(_) => "access_denied",
            _ => "invalid_request",
        };
        let body = OAuthErrorDoc {
            error: code.into(),
            error_description: public_message(e),
        };
        let mut r = (status_of(e), axum::Json(body)).into_response();
        if matches!(e, AuthError::InvalidClient) {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ferry\""),
            );
        }
        with_common_headers(r, e)
    }
}

/// Errors of the Globus Auth API (`/v2/api/*`, userinfo).
pub struct AuthApiError(pub AuthError);

impl From<AuthError> for AuthApiError {
    fn from(e: AuthError) -> Self {
        Self(e)
    }
}

impl IntoResponse for AuthApiError {
    fn into_response(self) -> Response {
        let e = &self.0;
        let status = status_of(e);
        let (code, title) = match e {
            AuthError::Unauthenticated | AuthError::InvalidClient => {
                ("UNAUTHORIZED", "Unauthorized")
            }
            AuthError::Forbidden(_) => ("FORBIDDEN", "Forbidden"),
            AuthError::NotFound(_) => ("NOT_FOUND", "Not Found"),
            AuthError::Conflict(_) => ("CONFLICT", "Conflict"),
            AuthError::SlowDown { .. } => ("TOO_MANY_REQUESTS", "Too Many Requests"),
            AuthError::Internal(_) => ("INTERNAL_ERROR", "Internal Server Error"),
            AuthError::Unavailable(_) => ("SERVICE_UNAVAILABLE", "Service Unavailable"),
            AuthError::Upstream(_) => ("BAD_GATEWAY", "Bad Gateway"),
            _ => ("BAD_REQUEST", "Bad Request"),
        };
        let detail = public_message(e);
        let body = AuthApiErrorDoc {
            errors: vec![AuthApiErrorItem {
                status: status.as_u16().to_string(),
                id: Uuid::new_v4().to_string(),
                code: code.into(),
                title: title.into(),
                detail: detail.clone(),
            }],
            error: code.to_ascii_lowercase(),
            error_description: detail,
        };
        let mut r = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        with_common_headers(r, e)
    }
}

/// Errors of the Groups API.
pub struct GroupsError(pub AuthError);

impl From<AuthError> for GroupsError {
    fn from(e: AuthError) -> Self {
        Self(e)
    }
}

impl IntoResponse for GroupsError {
    fn into_response(self) -> Response {
        let e = &self.0;
        let message = public_message(e);
        let body = json!({
            "code": ferry_auth::groups::error_code(e),
            "message": message,
            "detail": message,
            "request_id": Uuid::new_v4().to_string(),
        });
        with_common_headers((status_of(e), axum::Json(body)).into_response(), e)
    }
}

/// Errors shown to a person in a browser.
pub struct PageError(pub AuthError);

impl From<AuthError> for PageError {
    fn from(e: AuthError) -> Self {
        Self(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = &self.0;
        let page = crate::routes::web::error_page(&public_message(e));
        with_common_headers((status_of(e), page).into_response(), e)
    }
}

/// The HTTP status of an endpoint error; shared by every dialect that reports endpoint errors.
pub fn endpoint_status(e: &EndpointError) -> StatusCode {
    match e {
        EndpointError::BadRequest(_) => StatusCode::BAD_REQUEST,
        EndpointError::Unauthenticated => StatusCode::UNAUTHORIZED,
        EndpointError::NotFound(_) | EndpointError::CollectionNotFound(_) => StatusCode::NOT_FOUND,
        EndpointError::PermissionDenied(_) | EndpointError::AccessDenied(_) => {
            StatusCode::FORBIDDEN
        }
        EndpointError::Conflict(_) => StatusCode::CONFLICT,
        EndpointError::Gone(_) => StatusCode::GONE,
        EndpointError::ChecksumMismatch(_) => {
            StatusCode::from_u16(ferry_proto::tus::CHECKSUM_MISMATCH)
                .unwrap_or(StatusCode::BAD_REQUEST)
        }
        EndpointError::Storage(s) => match s {
            StorageError::NotFound(_) => StatusCode::NOT_FOUND,
            StorageError::Exists(_) | StorageError::DirectoryNotEmpty(_) => StatusCode::CONFLICT,
            StorageError::NotADirectory(_)
            | StorageError::IsADirectory(_)
            | StorageError::InvalidPath(_)
            | StorageError::InvalidName(_) => StatusCode::BAD_REQUEST,
            StorageError::PermissionDenied(_)
            | StorageError::Escape(_)
            | StorageError::Symlink(_)
            | StorageError::Loop(_) => StatusCode::FORBIDDEN,
            StorageError::NoSpace(_) => StatusCode::INSUFFICIENT_STORAGE,
            StorageError::Io(_) | StorageError::VerifyFailed(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        },
        EndpointError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        EndpointError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The message an endpoint error shows. Internal details are logged, never sent.
pub fn endpoint_message(e: &EndpointError) -> String {
    match e {
        EndpointError::Internal(detail) => {
            tracing::error!(%detail, "internal error");
            "internal server error".into()
        }
        EndpointError::Storage(StorageError::Io(detail)) => {
            tracing::error!(%detail, "storage error");
            "the storage failed to complete the operation".into()
        }
        other => other.to_string(),
    }
}

/// Errors of the endpoint manager API (`/api`), in the GCS result envelope.
pub struct ManagerError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl From<EndpointError> for ManagerError {
    fn from(e: EndpointError) -> Self {
        let status = endpoint_status(&e);
        let code = match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "permission_denied",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "conflict",
            _ => "internal_error",
        };
        Self {
            status,
            code,
            message: endpoint_message(&e),
        }
    }
}

impl From<AuthError> for ManagerError {
    fn from(e: AuthError) -> Self {
        let status = status_of(&e);
        let code = match status {
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "permission_denied",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
            StatusCode::INTERNAL_SERVER_ERROR => "internal_error",
            _ => "bad_request",
        };
        Self {
            status,
            code,
            message: public_message(&e),
        }
    }
}

impl IntoResponse for ManagerError {
    fn into_response(self) -> Response {
        let body = json!({
            "DATA_TYPE": "result#1.0.0",
            "http_response_code": self.status.as_u16(),
            "code": self.code,
            "message": self.message,
            "detail": self.message,
            "has_next_page": false,
            "data": [],
        });
        let mut r = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// The Transfer operation an error came from: the codes clients expect differ between file operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferOp {
    Ls,
    Stat,
    Mkdir,
    Rename,
    /// Everything that is not a file operation (collections, permissions, roles, bookmarks).
    Other,
}

impl TransferOp {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferOp::Ls => "ls",
            TransferOp::Stat => "stat",
            TransferOp::Mkdir => "mkdir",
            TransferOp::Rename => "rename",
            TransferOp::Other => "",
        }
    }
    fn is_file_op(self) -> bool {
        self != TransferOp::Other
    }
}

enum Cause {
    Auth(AuthError),
    Endpoint(EndpointError),
    Task(ferry_transfer::TransferError),
}

/// Errors of the Transfer API (`/v0.10`): `{code, message, request_id, resource}`, with the codes the Globus
/// clients test for (`ClientError.NotFound` from ls, `NotFound` from stat, `EndpointPermissionDenied`, ...).
pub struct TransferError {
    op: TransferOp,
    resource: String,
    cause: Cause,
}

impl TransferError {
    pub fn auth(op: TransferOp, resource: &str, e: AuthError) -> Self {
        Self {
            op,
            resource: resource.to_string(),
            cause: Cause::Auth(e),
        }
    }
    pub fn endpoint(op: TransferOp, resource: &str, e: EndpointError) -> Self {
        Self {
            op,
            resource: resource.to_string(),
            cause: Cause::Endpoint(e),
        }
    }
    pub fn task(resource: &str, e: ferry_transfer::TransferError) -> Self {
        match e {
            ferry_transfer::TransferError::Endpoint(e) => {
                Self::endpoint(TransferOp::Other, resource, e)
            }
            e => Self {
                op: TransferOp::Other,
                resource: resource.to_string(),
                cause: Cause::Task(e),
            },
        }
    }
}

impl IntoResponse for TransferError {
    fn into_response(self) -> Response {
        let (status, code, message): (StatusCode, &str, String) = match &self.cause {
            Cause::Auth(AuthError::Unauthenticated) => (
                StatusCode::UNAUTHORIZED,
                "ClientError.AuthenticationFailed",
                "No Authentication provided, or the token is not valid for the Transfer service"
                    .into(),
            ),
            Cause::Auth(e @ AuthError::Unavailable(_)) => {
                (status_of(e), "ServiceUnavailable", public_message(e))
            }
            Cause::Auth(e) => (status_of(e), "ClientError.BadRequest", public_message(e)),
            Cause::Endpoint(e) => transfer_code(e, self.op),
            Cause::Task(e) => {
                use ferry_transfer::TransferError as T;
                match e {
                    T::BadRequest { code, message } => {
                        (StatusCode::BAD_REQUEST, *code, message.clone())
                    }
                    T::TaskNotFound(m) => {
                        (StatusCode::NOT_FOUND, "ClientError.NotFound", m.clone())
                    }
                    T::Conflict(m) => (StatusCode::CONFLICT, "Conflict", m.clone()),
                    T::Endpoint(e) => transfer_code(e, self.op),
                    T::Internal(m) => {
                        tracing::error!(error = %m, "transfer service error");
                        (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "EndpointError",
                            "internal error".into(),
                        )
                    }
                }
            }
        };
        let body = json!({
            "code": code,
            "message": message,
            "request_id": Uuid::new_v4().simple().to_string(),
            "resource": self.resource,
        });
        let mut r = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// The status, Transfer `code` and message of an endpoint error, by the operation it came from.
fn transfer_code(e: &EndpointError, op: TransferOp) -> (StatusCode, &'static str, String) {
    let status = endpoint_status(e);
    let code = match (e, op) {
        (EndpointError::BadRequest(_), _) => "ClientError.BadRequest",
        (EndpointError::Unauthenticated, _) => "ClientError.AuthenticationFailed",
        (EndpointError::CollectionNotFound(_), _) => "EndpointNotFound",
        (EndpointError::NotFound(_), _) => "ClientError.NotFound",
        (EndpointError::PermissionDenied(_), op) if !op.is_file_op() => "PermissionDenied",
        (EndpointError::PermissionDenied(_) | EndpointError::AccessDenied(_), _) => {
            "EndpointPermissionDenied"
        }
        (EndpointError::Unavailable(_), _) => "ServiceUnavailable",
        (EndpointError::Conflict(_), _) => "Exists",
        (EndpointError::Storage(StorageError::NotFound(_)), TransferOp::Stat) => "NotFound",
        (EndpointError::Storage(StorageError::NotFound(_)), _) => "ClientError.NotFound",
        (EndpointError::Storage(StorageError::Exists(_)), TransferOp::Mkdir) => {
            "ExternalError.MkdirFailed.Exists"
        }
        (EndpointError::Storage(StorageError::Exists(_)), _) => "Exists",
        (EndpointError::Storage(StorageError::NotADirectory(_)), TransferOp::Ls) => {
            "ExternalError.DirListingFailed.NotDirectory"
        }
        (EndpointError::Storage(StorageError::NoSpace(_)), _) => "ExternalError.NoSpace",
        _ => match status {
            StatusCode::FORBIDDEN => "EndpointPermissionDenied",
            StatusCode::BAD_REQUEST => "ClientError.BadRequest",
            StatusCode::CONFLICT => "Exists",
            _ => "EndpointError",
        },
    };
    (status, code, endpoint_message(e))
}

/// Errors of HTTPS data access (`/data/<collection>/...`): the status says it; a small JSON body explains.
pub struct DataError {
    status: StatusCode,
    message: String,
}

impl DataError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl DataError {
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<EndpointError> for DataError {
    fn from(e: EndpointError) -> Self {
        Self::new(endpoint_status(&e), endpoint_message(&e))
    }
}

impl From<AuthError> for DataError {
    fn from(e: AuthError) -> Self {
        Self::new(status_of(&e), public_message(&e))
    }
}

impl IntoResponse for DataError {
    fn into_response(self) -> Response {
        let body = json!({
            "code": self.status.canonical_reason().unwrap_or("Error"),
            "message": self.message,
        });
        let mut r = (self.status, axum::Json(body)).into_response();
        let h = r.headers_mut();
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// Errors of the pull API (`/site/pull/…`), with which another endpoint reads a collection here for a task: the
/// status, and a [`PullFailure`] that keeps the kind of failure (the reader's task retries some and skips others).
pub struct PullError {
    status: StatusCode,
    failure: ferry_proto::sites::PullFailure,
}

impl PullError {
    pub fn failure(&self) -> &ferry_proto::sites::PullFailure {
        &self.failure
    }

    pub fn at(e: EndpointError, path: &str) -> Self {
        use ferry_proto::sites::pull_failure as kind;
        let k = match &e {
            EndpointError::Storage(StorageError::NotFound(_))
            | EndpointError::CollectionNotFound(_) => kind::NOT_FOUND,
            EndpointError::Storage(StorageError::NotADirectory(_)) => kind::NOT_A_DIRECTORY,
            EndpointError::Storage(StorageError::IsADirectory(_)) => kind::IS_A_DIRECTORY,
            EndpointError::Storage(
                StorageError::PermissionDenied(_)
                | StorageError::Escape(_)
                | StorageError::Symlink(_)
                | StorageError::Loop(_),
            )
            | EndpointError::AccessDenied(_)
            | EndpointError::PermissionDenied(_)
            | EndpointError::Unauthenticated => kind::REFUSED,
            _ => kind::OTHER,
        };
        Self {
            status: endpoint_status(&e),
            failure: ferry_proto::sites::PullFailure {
                kind: k.into(),
                path: path.to_string(),
                message: endpoint_message(&e),
            },
        }
    }
}

impl From<AuthError> for PullError {
    fn from(e: AuthError) -> Self {
        use ferry_proto::sites::pull_failure as kind;
        let status = status_of(&e);
        let k = if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            kind::REFUSED
        } else {
            kind::OTHER
        };
        Self {
            status,
            failure: ferry_proto::sites::PullFailure {
                kind: k.into(),
                path: String::new(),
                message: public_message(&e),
            },
        }
    }
}

impl IntoResponse for PullError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.failure)).into_response()
    }
}

/// An error on a page of the web app: shown in the app's frame, saying what happened and what to do.
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    message: String,
    /// What to do, where the page knows better than the status does.
    advice: Option<&'static str>,
}

impl AppError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            advice: None,
        }
    }

    /// The same error with the page's own advice in place of the status's.
    pub fn advising(mut self, advice: &'static str) -> Self {
        self.advice = Some(advice);
        self
    }

    /// What a person can do about an error of this status.
    fn advice(&self) -> &'static str {
        if let Some(a) = self.advice {
            return a;
        }
        match self.status {
            StatusCode::FORBIDDEN => {
                "If you need access, ask the person who shared this folder with you, or the \
                 collection's administrator."
            }
            StatusCode::NOT_FOUND => {
                "Check the path, or go back to the folder above and look for it there."
            }
            StatusCode::CONFLICT => "Choose another name, or remove what is in the way first.",
            StatusCode::BAD_REQUEST => "Correct what the message names and try again.",
            StatusCode::UNAUTHORIZED => "Sign in again and retry.",
            s if s.is_server_error() => {
                "This is a fault of the server, not of what you did; try again in a minute, and tell \
                 the administrator if it persists."
            }
            _ => "",
        }
    }
}

impl From<EndpointError> for AppError {
    fn from(e: EndpointError) -> Self {
        Self::new(endpoint_status(&e), endpoint_message(&e))
    }
}

impl From<PageError> for AppError {
    fn from(e: PageError) -> Self {
        e.0.into()
    }
}

impl From<ferry_store::StoreError> for AppError {
    fn from(e: ferry_store::StoreError) -> Self {
        EndpointError::from(e).into()
    }
}

impl From<AuthError> for AppError {
    fn from(e: AuthError) -> Self {
        Self::new(status_of(&e), public_message(&e))
    }
}

impl From<ferry_transfer::TransferError> for AppError {
    fn from(e: ferry_transfer::TransferError) -> Self {
        use ferry_transfer::TransferError as T;
        match e {
            T::BadRequest { message, .. } => Self::new(StatusCode::BAD_REQUEST, message),
            T::TaskNotFound(m) => Self::new(StatusCode::NOT_FOUND, m),
            T::Conflict(m) => Self::new(StatusCode::CONFLICT, m),
            T::Endpoint(e) => e.into(),
            T::Internal(m) => {
                tracing::error!(error = %m, "transfer service error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
            }
        }
    }
}

impl AppError {
    /// The error's page, in the app's frame, naming `user` as signed in when known.
    pub(crate) fn page(&self, user: Option<&str>) -> Response {
        let body = format!(
            "<p class=\"notice err\" role=\"alert\" id=\"error\">{}</p><p>{}</p>\
             <p><a href=\"/file-manager\">File Manager</a> · <a href=\"/activity\">Activity</a></p>",
            crate::routes::web::escape(&self.message),
            self.advice()
        );
        crate::routes::app::shell(
            self.status,
            user,
            crate::routes::app::Section::None,
            "Cannot do that",
            &body,
        )
    }
}

impl IntoResponse for AppError {
    /// Drawn without the session, which is not at hand where errors are made; the page is kept in the
    /// response so that `app::errors_name_the_visitor` can draw it again for a person who is signed in.
    fn into_response(self) -> Response {
        let mut r = self.page(None);
        r.extensions_mut().insert(std::sync::Arc::new(self));
        r
    }
}

/// A refused health or metrics request: which check failed (readiness), or why the metrics are not served. The
/// body names the failure, never its details (those are logged).
pub struct OpsError {
    status: StatusCode,
    code: &'static str,
    message: &'static str,
}

impl OpsError {
    pub fn unready(why: crate::ops::Unready) -> Self {
        use crate::ops::Unready;
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "database",
            message: match why {
                Unready::DatabaseFailed => "the database check failed",
                Unready::DatabaseSlow => "the database did not answer in time",
            },
        }
    }

    pub fn not_allowed() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "Forbidden",
            message: "the metrics are not served to this address",
        }
    }

    pub fn store(e: &ferry_store::StoreError) -> Self {
        tracing::warn!(error = %e, "reading the task counts for the metrics failed");
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "database",
            message: "the database check failed",
        }
    }
}

impl IntoResponse for OpsError {
    fn into_response(self) -> Response {
        let body = if self.status == StatusCode::SERVICE_UNAVAILABLE {
            json!({"status": "unavailable", "failed": self.code, "message": self.message})
        } else {
            json!({"code": self.code, "message": self.message})
        };
        let mut r = (self.status, axum::Json(body)).into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}
