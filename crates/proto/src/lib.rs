//! Wire documents of the Globus-compatible APIs that Ferry serves, shared by server, client and CLI.
//! Field names follow the Globus shapes exactly; `../shared/reference/globus-api.md` cites where each comes from.

pub mod auth;
pub mod groups;
pub mod sites;
pub mod tus;
