//! Ferry's domain model. No I/O: callers pass in the current time and get decisions back.

pub mod access;
pub mod acl;
pub mod auth_policy;
pub mod clock;
pub mod endpoint;
pub mod fnmatch;
pub mod group;
pub mod identity;
pub mod mapping;
pub mod net;
pub mod path;
pub mod restrictions;
pub mod roles;
pub mod scope;
pub mod time;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use group::{Group, GroupRole, Membership, MembershipStatus};
pub use identity::{Client, ClientKind, Identity, IdentityKind};
pub use scope::{ResourceServer, Scope, ScopeError};
