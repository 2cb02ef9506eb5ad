//! Ferry's OAuth2 / OpenID Connect authorisation server, speaking Globus Auth's dialect.
//!
//! Tokens are opaque random strings stored as keyed hashes, one access token per resource server; refresh
//! tokens rotate with reuse detection; codes are single-use and bound to client, redirect URI and PKCE challenge.

mod authorize;
mod error;
mod grants;
pub mod groups;
mod keys;
mod limiter;
mod policies;
mod scopes;
mod secrets;
mod service;
pub mod sites;

pub use authorize::{AuthorizeRejection, AuthorizeRequest, ClientPresentation, Session};
pub use error::AuthError;
pub use grants::{ClientCredentials, Introspection, TokenReply};
pub use keys::verify as verify_jws;
pub use service::{Auth, AuthConfig, CreatedClient, CreatedIdentity, NewClient, Principal};

pub type Result<T> = std::result::Result<T, AuthError>;
