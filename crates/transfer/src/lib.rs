//! The transfer engine: Transfer and delete tasks as rows in the database, claimed by workers with leases;
//! files streamed from the source connector to the destination connector, hashed on the way, written under a
//! temporary name and renamed once verified; faults retried with back-off; events and notifications.

// The task document is one large `json!` literal.
#![recursion_limit = "256"]

pub mod checksum;
mod copy;
mod delete;
pub mod doc;
mod engine;
mod error;
pub mod filter;
mod notify;
mod run;
pub mod submit;
pub mod webhooks;

pub use engine::{Engine, EngineMetrics, EngineSettings, Submitted};
pub use error::{Result, TransferError};
pub use notify::Notifier;
