//! Ferry's OAuth2 / OpenID Connect authorisation server, speaking Globus Auth's dialect.
//!
//! Tokens are opaque random strings stored as keyed hashes, one access token per resource server; refresh
//! tokens rotate with reuse detection; codes are single-use and bound to client, redirect URI and PKCE challenge.

pub mod accounts;
mod authorize;
mod error;
pub mod federation;
mod grants;
pub mod groups;
mod keys;
mod limiter;
pub mod pam;
mod policies;
mod scopes;
mod secrets;
mod service;
mod site_accounts;
pub mod sites;

pub use authorize::{AuthorizeRejection, AuthorizeRequest, ClientPresentation, Session};
pub use error::AuthError;
pub use federation::{AfterSignIn, ProviderConfig, UpstreamAnswer, UpstreamSignIn, UpstreamStart};
pub use grants::{ClientCredentials, Introspection, TokenReply};
pub use keys::verify as verify_jws;
pub use service::{Auth, AuthConfig, CreatedClient, CreatedIdentity, NewClient, Principal};

pub type Result<T> = std::result::Result<T, AuthError>;
