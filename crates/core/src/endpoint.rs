//! The endpoint's configuration objects, in the shapes of the GCS manager API: the endpoint, storage
//! gateways, mapped and guest collections, roles, sharing policies and user credentials.
//!
//! These documents *are* the configuration: they are stored as they are shown, so their serde form is the
//! wire form (`DATA_TYPE` included). Fields the server computes are marked as such and ignored on input.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::mapping::MappingDocument;

/// The fixed connector id of POSIX storage (the GCS value, so clients show the right name).
pub const POSIX_CONNECTOR_ID: Uuid = Uuid::from_u128(0x145812c8_decc_41f1_83cf_bb2a85a2a70b);

/// A PathRestrictions document as stored; validated and compiled by `restrictions` before use.
pub type RestrictPaths = serde_json::Value;

fn default_true() -> bool {
    true
}

/// Booleans of GCS documents as GCS takes them: JSON `true`/`false`, or the strings `"True"`/`"False"` (any case)
/// that scripts send (the Globus SDK's own guest-collection example sends `public="True"`).
pub mod flag {
    use serde::de::{self, Deserializer, Visitor};

    struct Flag;

    impl Visitor<'_> for Flag {
        type Value = bool;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a boolean (true or false, or the string \"True\" or \"False\")")
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
            parse(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }

    /// `true`/`false` in any case; nothing else.
    pub fn parse(v: &str) -> Option<bool> {
        if v.eq_ignore_ascii_case("true") {
            Some(true)
        } else if v.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            None
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        d.deserialize_any(Flag)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointDoc {
    #[serde(rename = "DATA_TYPE", default = "endpoint_type")]
    pub data_type: String,
    #[serde(default)]
    pub id: Uuid,
    pub display_name: String,
    #[serde(default)]
    pub organization: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub contact_email: Option<String>,
    #[serde(default)]
    pub contact_info: Option<String>,
    #[serde(default)]
    pub info_link: Option<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default = "default_true", deserialize_with = "flag::deserialize")]
    pub public: bool,
    #[serde(default)]
    pub subscription_id: Option<String>,
    #[serde(default, deserialize_with = "flag::deserialize")]
    pub allow_udt: bool,
    #[serde(default)]
    pub network_use: Option<String>,
    #[serde(default)]
    pub max_concurrency: Option<i64>,
    #[serde(default)]
    pub preferred_concurrency: Option<i64>,
    #[serde(default)]
    pub max_parallelism: Option<i64>,
    #[serde(default)]
    pub preferred_parallelism: Option<i64>,
    #[serde(default)]
    pub gridftp_control_channel_port: Option<i64>,
    /// The identity that owns the endpoint (set through `/endpoint/owner`).
    #[serde(default)]
    pub owner_id: Option<Uuid>,
    /// Computed: the manager API's URL.
    #[serde(default)]
    pub gcs_manager_url: Option<String>,
}

fn endpoint_type() -> String {
    "endpoint#1.2.0".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PosixStoragePolicies {
    #[serde(rename = "DATA_TYPE", default = "posix_policies_type")]
    pub data_type: String,
    #[serde(default)]
    pub groups_allow: Vec<String>,
    #[serde(default)]
    pub groups_deny: Vec<String>,
}

fn posix_policies_type() -> String {
    "posix_storage_policies#1.0.0".into()
}

impl Default for PosixStoragePolicies {
    fn default() -> Self {
        Self {
            data_type: posix_policies_type(),
            groups_allow: vec![],
            groups_deny: vec![],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageGatewayDoc {
    #[serde(rename = "DATA_TYPE", default = "gateway_type")]
    pub data_type: String,
    #[serde(default)]
    pub id: Uuid,
    pub display_name: String,
    #[serde(default = "posix_connector")]
    pub connector_id: Uuid,
    /// The folder on this host that is the connector's `/` (the SDK's `root`; Ferry also accepts `root_path`).
    /// Every path of the gateway, restrictions included, is inside it. Absent: the host's `/`.
    #[serde(default, rename = "root", alias = "root_path")]
    pub root: Option<String>,
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    #[serde(default)]
    pub identity_mappings: Vec<MappingDocument>,
    #[serde(default)]
    pub restrict_paths: Option<RestrictPaths>,
    #[serde(default)]
    pub users_allow: Vec<String>,
    #[serde(default)]
    pub users_deny: Vec<String>,
    #[serde(default, deserialize_with = "flag::deserialize")]
    pub high_assurance: bool,
    #[serde(default, deserialize_with = "flag::deserialize")]
    pub require_mfa: bool,
    #[serde(default)]
    pub authentication_timeout_mins: Option<i64>,
    #[serde(default)]
    pub policies: PosixStoragePolicies,
}

fn gateway_type() -> String {
    "storage_gateway#1.3.0".into()
}

fn posix_connector() -> Uuid {
    POSIX_CONNECTOR_ID
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectionType {
    Mapped,
    Guest,
}

impl CollectionType {
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionType::Mapped => "mapped",
            CollectionType::Guest => "guest",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionDoc {
    #[serde(rename = "DATA_TYPE", default = "collection_type_v")]
    pub data_type: String,
    #[serde(default)]
    pub id: Uuid,
    pub collection_type: CollectionType,
    pub display_name: String,
    /// Mapped: absolute in the gateway's namespace. Guest: relative to the mapped collection's root.
    pub collection_base_path: String,
    /// Mapped only.
    #[serde(default)]
    pub storage_gateway_id: Option<Uuid>,
    /// Guest only.
    #[serde(default)]
    pub mapped_collection_id: Option<Uuid>,
    /// Guest only: the creator's credential (their storage account).
    #[serde(default)]
    pub user_credential_id: Option<Uuid>,
    /// The owner; set by the server to the creator.
    #[serde(default)]
    pub identity_id: Option<Uuid>,
    #[serde(default = "default_true", deserialize_with = "flag::deserialize")]
    pub public: bool,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub organization: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub contact_email: Option<String>,
    #[serde(default)]
    pub contact_info: Option<String>,
    #[serde(default)]
    pub info_link: Option<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub default_directory: Option<String>,
    #[serde(default = "default_true", deserialize_with = "flag::deserialize")]
    pub enable_https: bool,
    /// Mapped only.
    #[serde(default, deserialize_with = "flag::deserialize")]
    pub allow_guest_collections: bool,
    /// Mapped only: what guest collections on it may expose, relative to its root.
    #[serde(default)]
    pub sharing_restrict_paths: Option<RestrictPaths>,
    #[serde(default)]
    pub sharing_users_allow: Vec<String>,
    #[serde(default)]
    pub sharing_users_deny: Vec<String>,
    #[serde(default = "default_true", deserialize_with = "flag::deserialize")]
    pub delete_protected: bool,
    /// Mapped only: refuse permissions that would let anonymous users write.
    #[serde(default, deserialize_with = "flag::deserialize")]
    pub disable_anonymous_writes: bool,
    // ---- GCS fields Ferry stores and shows, but that change nothing here yet ----
    #[serde(default, deserialize_with = "flag::deserialize")]
    pub force_encryption: bool,
    #[serde(default, deserialize_with = "flag::deserialize")]
    pub disable_verify: bool,
    #[serde(default, deserialize_with = "flag::deserialize")]
    pub force_verify: bool,
    #[serde(default)]
    pub user_message: Option<String>,
    #[serde(default)]
    pub user_message_link: Option<String>,
    #[serde(default)]
    pub acl_expiration_mins: Option<i64>,
    #[serde(default)]
    pub guest_auth_policy_id: Option<Uuid>,
    #[serde(default)]
    pub auto_delete_timeout: Option<i64>,
    #[serde(default, deserialize_with = "flag::deserialize")]
    pub skip_auto_delete: bool,
    #[serde(default)]
    pub domain_name: Option<String>,
    /// Connector policies (`posix_collection_policies#1.x`), kept as given.
    #[serde(default)]
    pub policies: Option<serde_json::Value>,
    // ---- computed by the server ----
    #[serde(default)]
    pub https_url: Option<String>,
    #[serde(default)]
    pub manager_url: Option<String>,
    #[serde(default)]
    pub root_path: Option<String>,
    #[serde(default)]
    pub connector_id: Option<Uuid>,
    #[serde(default, deserialize_with = "flag::deserialize")]
    pub high_assurance: bool,
    #[serde(default, deserialize_with = "flag::deserialize")]
    pub require_mfa: bool,
    #[serde(default)]
    pub authentication_timeout_mins: Option<i64>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub last_access: Option<String>,
    #[serde(default, deserialize_with = "flag::deserialize")]
    pub deleted: bool,
}

fn collection_type_v() -> String {
    "collection#1.13.0".into()
}

/// The roles of the GCS role table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    ActivityMonitor,
    ActivityManager,
    AccessManager,
    Administrator,
    Owner,
}

impl RoleName {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleName::ActivityMonitor => "activity_monitor",
            RoleName::ActivityManager => "activity_manager",
            RoleName::AccessManager => "access_manager",
            RoleName::Administrator => "administrator",
            RoleName::Owner => "owner",
        }
    }
}

/// A principal as GCS writes it: `urn:globus:auth:identity:<id>` or `urn:globus:auth:group:<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RolePrincipal {
    Identity(Uuid),
    Group(Uuid),
}

impl RolePrincipal {
    pub fn parse(urn: &str) -> Option<Self> {
        if let Some(id) = urn.strip_prefix("urn:globus:auth:identity:") {
            return Uuid::parse_str(id).ok().map(RolePrincipal::Identity);
        }
        if let Some(id) = urn.strip_prefix("urn:globus:auth:group:") {
            return Uuid::parse_str(id).ok().map(RolePrincipal::Group);
        }
        None
    }
    pub fn urn(&self) -> String {
        match self {
            RolePrincipal::Identity(id) => format!("urn:globus:auth:identity:{id}"),
            RolePrincipal::Group(id) => format!("urn:globus:auth:group:{id}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDoc {
    #[serde(rename = "DATA_TYPE", default = "role_type")]
    pub data_type: String,
    #[serde(default)]
    pub id: Uuid,
    /// None: a role on the endpoint.
    #[serde(default)]
    pub collection: Option<Uuid>,
    pub principal: String,
    pub role: RoleName,
}

fn role_type() -> String {
    "role#1.0.0".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharingPolicyDoc {
    #[serde(rename = "DATA_TYPE", default = "sharing_policy_type")]
    pub data_type: String,
    #[serde(default)]
    pub id: Uuid,
    pub collection_id: Uuid,
    pub sharing_restrict_paths: RestrictPaths,
    /// Local accounts it applies to; None = everyone.
    #[serde(default)]
    pub users: Option<Vec<String>>,
}

fn sharing_policy_type() -> String {
    "sharing_policy#1.0.0".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserCredentialDoc {
    #[serde(rename = "DATA_TYPE", default = "user_credential_type")]
    pub data_type: String,
    #[serde(default)]
    pub id: Uuid,
    #[serde(default)]
    pub identity_id: Option<Uuid>,
    pub storage_gateway_id: Uuid,
    #[serde(default)]
    pub connector_id: Option<Uuid>,
    /// The local account; computed from the identity mapping when absent.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub policies: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "flag::deserialize")]
    pub invalid: bool,
    #[serde(default, deserialize_with = "flag::deserialize")]
    pub provisioned: bool,
}

fn user_credential_type() -> String {
    "user_credential#1.0.0".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_reject_unknown_fields_and_keep_their_type() {
        let g: StorageGatewayDoc = serde_json::from_str(
            r#"{"DATA_TYPE":"storage_gateway#1.0.0","display_name":"posix","restrict_paths":{"DATA_TYPE":"path_restrictions#1.0.0","read":["/"]}}"#,
        )
        .unwrap();
        assert_eq!(g.connector_id, POSIX_CONNECTOR_ID);
        assert_eq!(g.policies.data_type, "posix_storage_policies#1.0.0");
        let e = serde_json::from_str::<StorageGatewayDoc>(r#"{"display_name":"x","colour":"red"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("colour"));
        let r: RoleDoc = serde_json::from_str(
            r#"{"DATA_TYPE":"role#1.0.0","principal":"urn:globus:auth:identity:0f0e0d0c-0b0a-0908-0706-050403020100","role":"access_manager"}"#,
        )
        .unwrap();
        assert_eq!(r.role, RoleName::AccessManager);
        assert!(RolePrincipal::parse(&r.principal).is_some());
        assert!(RolePrincipal::parse("urn:globus:auth:identity:nope").is_none());
        assert_eq!(
            POSIX_CONNECTOR_ID.to_string(),
            "145812c8-decc-41f1-83cf-bb2a85a2a70b"
        );
    }
}
