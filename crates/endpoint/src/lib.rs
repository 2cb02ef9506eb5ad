//! The endpoint manager (the GCS manager API's domain): storage gateways, mapped and guest collections, roles,
//! sharing policies, user credentials and the audit log, each change checked against the role table.

pub mod error;

pub use error::{EndpointError, Result};
