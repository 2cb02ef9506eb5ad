//! The one integration-test binary: every test starts a real Ferry server on 127.0.0.1:0 and talks HTTP to it.

mod accounts;
mod auth_checklist;
mod auth_hardening;
mod authorize;
mod bad_input;
mod client_credentials;
mod data_access;
mod data_hardening;
mod endpoint_hardening;
mod groups;
mod invitations;
mod manager;
mod ops;
mod server;
mod sharing;
mod sites;
mod tokens;
mod transfer;
mod uploads;
mod wire;
