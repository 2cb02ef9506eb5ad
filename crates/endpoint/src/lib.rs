//! The endpoint manager (the GCS manager API's domain): the endpoint document, storage gateways, mapped and
//! guest collections, roles, sharing policies and user credentials, each change checked against the role table
//! and written to the audit log; and data access through the one access check ([`ferry_core::access`]).
//!
//! Compiled access policies are cached per collection (and per caller on mapped collections, whose account
//! depends on the caller); every configuration change, by this process or another one on the same database,
//! drops the cache, so a change counts at the next request (see `policy`).

// The Transfer endpoint document is one large `json!` literal.
#![recursion_limit = "256"]

mod account;
pub mod audit;
mod bookmarks;
mod collections;
mod credentials;
pub mod data;
pub mod docs;
mod error;
mod explain;
mod gateways;
pub mod index;
mod info;
mod invitation;
pub mod listing;
mod permissions;
mod policy;
mod roles;
mod sharing;
pub mod uploads;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ferry_core::Identity;
use ferry_core::endpoint::{CollectionDoc, EndpointDoc, StorageGatewayDoc};
use ferry_core::roles::{Roles, Who, collection_roles, endpoint_roles};
use ferry_storage::{Connector, PosixConnector};
use ferry_store::Store;
use uuid::Uuid;

pub use audit::{AuditLog, AuditPage, AuditQuery};
pub use collections::CollectionQuery;
pub use data::CollectionAccess;
pub use error::{EndpointError, Result};
pub use explain::AccessReport;
pub use index::{SearchPage, SearchQuery};
pub use info::Defaults;
pub use invitation::{InvitationPreview, Inviter};
pub use permissions::MAX_RULES;
pub use roles::Administers;
pub use uploads::{UPLOAD_IDLE_SECS, UploadProgress};

/// The name of an endpoint nobody named.
pub const DEFAULT_NAME: &str = "Ferry endpoint";

/// Collections of other endpoints that this one reads for the tasks its hub gives it.
#[async_trait::async_trait]
pub trait RemoteCollections: Send + Sync {
    /// A read-only view of `collection` (another endpoint's) for task `task`: the other endpoint checks the
    /// task owner's access on each request. `CollectionNotFound` when no endpoint holds it.
    async fn task_source(
        &self,
        task: Uuid,
        collection: Uuid,
    ) -> Result<Arc<dyn ferry_storage::Connector>>;
    /// The name of another endpoint's collection that a task here has read (None when none has).
    fn display_name(&self, collection: Uuid) -> Option<String>;
    /// The owner of task `task` (which the hub gave this endpoint) as the hub knows them now: memberships and
    /// linked identities are the hub's, and a permission given to a group or a linked identity must reach the
    /// task's access checks here.
    async fn owner_now(&self, task: Uuid) -> Result<OwnerNow>;
}

/// A task owner's groups and linked identities, from the hub.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerNow {
    pub groups: Vec<Uuid>,
    pub linked: Vec<Uuid>,
}

/// Where an endpoint learns of identities it has not met yet (its hub); a single-host server has all of them in
/// its own store.
#[async_trait::async_trait]
pub trait IdentityDirectory: Send + Sync {
    async fn identity(&self, id: Uuid) -> Result<Option<Identity>>;
    /// Whether a group exists (groups are the hub's: a permission or role may name one).
    async fn group_exists(&self, id: Uuid) -> Result<bool>;
}

/// Where the endpoint is reached and how it reaches people.
#[derive(Clone)]
pub struct Settings {
    /// The server's public base URL, without a trailing slash.
    pub base_url: String,
    /// How long an e-mail invitation can be redeemed.
    pub invitation_lifetime_secs: i64,
    /// Sends invitations and notifications; None when `[smtp]` is not configured.
    pub mailer: Option<Arc<ferry_mail::Mailer>>,
    /// Where rule expiry and record times come from.
    pub clock: ferry_core::SharedClock,
    /// Identities this store does not hold (an endpoint's hub).
    pub directory: Option<Arc<dyn IdentityDirectory>>,
    /// Other endpoints' collections, read for tasks (an endpoint's hub finds them).
    pub remote: Option<Arc<dyn RemoteCollections>>,
    /// The endpoint's name when its document is first made (an endpoint of a hub: the name given at setup).
    pub display_name: String,
}

impl Settings {
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            invitation_lifetime_secs: 7 * 24 * 3600,
            mailer: None,
            clock: ferry_core::clock::system(),
            directory: None,
            remote: None,
            display_name: DEFAULT_NAME.into(),
        }
    }
}

/// A signed-in caller: an identity and the groups it is an active member of (read per request, so that a
/// membership change counts at once).
#[derive(Debug, Clone)]
pub struct Requester {
    pub identity: Identity,
    /// Groups any identity of the caller's set is an active member of.
    pub groups: Vec<Uuid>,
    /// The other identities linked with this one: what names them names the caller.
    pub linked: Vec<Identity>,
    /// When the person signed in (for policies that ask for a recent sign-in).
    pub signed_in: ferry_core::access::SignedIn,
}

impl Requester {
    /// Whether a permission's principal names this caller (an unredeemed invitation names nobody yet).
    pub(crate) fn named_by(&self, p: &ferry_core::acl::AclPrincipal) -> bool {
        use ferry_core::acl::AclPrincipal as P;
        match p {
            P::Identity(id) => self.who().is_identity(*id),
            P::Group(g) => self.groups.contains(g),
            P::AllAuthenticatedUsers | P::Anonymous => true,
            P::Invitation(_) => false,
        }
    }

    fn who(&self) -> Who<'_> {
        Who {
            identity: self.identity.id,
            groups: &self.groups,
            linked: &self.linked,
        }
    }

    /// The caller as the access check sees it.
    pub fn caller(&self) -> ferry_core::access::Caller<'_> {
        ferry_core::access::Caller {
            identity: Some(self.identity.id),
            username: Some(&self.identity.username),
            groups: &self.groups,
            linked: &self.linked,
            signed_in: self.signed_in,
        }
    }

    /// The same caller, signed in at `at` (the session its token or browser descends from), if known.
    pub fn signed_in_at(mut self, at: Option<i64>) -> Self {
        self.signed_in = match at {
            Some(t) => ferry_core::access::SignedIn::At(t),
            None => ferry_core::access::SignedIn::NoSession,
        };
        self
    }
}

pub struct Endpoint {
    store: Arc<dyn Store>,
    settings: Settings,
    id: Uuid,
    audit: AuditLog,
    policies: policy::PolicyCache,
    /// One connector per storage gateway, reopened when the gateway's root changes.
    connectors: Mutex<HashMap<Uuid, OpenConnector>>,
    /// Resumable uploads a request is writing to now.
    uploads: uploads::Writing,
}

/// A gateway's connector and the root folder it was opened on.
type OpenConnector = (String, Arc<dyn Connector>);

/// Where the endpoint's id is kept (an endpoint joined to a hub is given its id by the hub).
pub const ENDPOINT_ID_KEY: &str = "endpoint.id";
const ENDPOINT_DOC_KEY: &str = "endpoint.doc";

impl Endpoint {
    pub(crate) fn now(&self) -> i64 {
        self.settings.clock.now()
    }

    /// Loads the endpoint (creating its id and document on first use) and starts the audit writer.
    pub async fn open(store: Arc<dyn Store>, settings: Settings) -> Result<Self> {
        let id = store
            .meta_get_or_insert(ENDPOINT_ID_KEY, &Uuid::new_v4().to_string())
            .await?;
        let id = Uuid::parse_str(&id)
            .map_err(|e| EndpointError::Internal(format!("stored endpoint id: {e}")))?;
        let ep = Self {
            audit: AuditLog::start(store.clone(), settings.clock.clone()),
            store,
            settings,
            id,
            policies: policy::PolicyCache::default(),
            connectors: Mutex::new(HashMap::new()),
            uploads: uploads::Writing::default(),
        };
        if ep.store.meta_get(ENDPOINT_DOC_KEY).await?.is_none() {
            let doc: EndpointDoc = serde_json::from_value(serde_json::json!({
                "display_name": ep.settings.display_name,
            }))
            .map_err(|e| EndpointError::Internal(e.to_string()))?;
            ep.store
                .meta_get_or_insert(ENDPOINT_DOC_KEY, &docs::to_value(&doc).to_string())
                .await?;
        }
        Ok(ep)
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The caller with its current groups.
    pub async fn requester(&self, identity: Identity) -> Result<Requester> {
        let set = self.store.identity_set(identity.id).await?;
        let mut groups = Vec::new();
        for member in set.iter().map(|i| i.id).chain([identity.id]) {
            for g in self.store.active_group_ids(member).await? {
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
        }
        let linked = set.into_iter().filter(|i| i.id != identity.id).collect();
        Ok(Requester {
            identity,
            groups,
            linked,
            signed_in: ferry_core::access::SignedIn::NoSession,
        })
    }

    /// An identity named in a request (a permission's or role's principal, an owner): from the store, else
    /// from the directory, whose answer is kept.
    pub(crate) async fn identity(&self, id: Uuid) -> Result<Option<Identity>> {
        if let Some(i) = self.store.get_identity(id).await? {
            return Ok(Some(i));
        }
        let Some(dir) = &self.settings.directory else {
            return Ok(None);
        };
        let found = dir.identity(id).await?;
        if let Some(i) = &found {
            self.store.mirror_identity(i).await?;
        }
        Ok(found)
    }

    /// Whether a group exists: in the store, else in the directory (an endpoint's hub).
    pub(crate) async fn group_known(&self, id: Uuid) -> Result<bool> {
        if self.store.get_group(id).await?.is_some() {
            return Ok(true);
        }
        match &self.settings.directory {
            Some(dir) => dir.group_exists(id).await,
            None => Ok(false),
        }
    }

    /// Whether `id` is this endpoint or one of its collections.
    pub async fn holds(&self, id: Uuid) -> Result<bool> {
        Ok(id == self.id || self.store.get_collection(id).await?.is_some())
    }

    /// Called after every configuration change: compiled policies are rebuilt on their next use.
    fn changed(&self) {
        self.policies.clear();
    }

    async fn record(
        &self,
        who: &Requester,
        action: &str,
        collection: Option<Uuid>,
        detail: String,
    ) {
        self.audit
            .record(
                Some(who.identity.id),
                action,
                collection,
                None,
                true,
                detail,
            )
            .await;
    }

    async fn endpoint_doc(&self) -> Result<EndpointDoc> {
        let raw = self
            .store
            .meta_get(ENDPOINT_DOC_KEY)
            .await?
            .ok_or_else(|| EndpointError::Internal("the endpoint document is missing".into()))?;
        serde_json::from_str(&raw)
            .map_err(|e| EndpointError::Internal(format!("stored endpoint document: {e}")))
    }

    async fn my_endpoint_roles(&self, who: &Requester) -> Result<Roles> {
        let owner = self.endpoint_doc().await?.owner_id;
        let rows = self.store.list_roles(None).await?;
        Ok(endpoint_roles(who.who(), owner, &rows))
    }

    async fn my_collection_roles(
        &self,
        who: &Requester,
        endpoint: &Roles,
        c: &CollectionDoc,
    ) -> Result<Roles> {
        let rows = self.store.list_roles(Some(c.id)).await?;
        Ok(collection_roles(who.who(), endpoint, c, &rows))
    }

    async fn require_endpoint_manager(&self, who: &Requester) -> Result<Roles> {
        let roles = self.my_endpoint_roles(who).await?;
        if ferry_core::roles::manages_endpoint(&roles) {
            Ok(roles)
        } else {
            Err(EndpointError::PermissionDenied(
                "this needs the endpoint's owner or administrator role".into(),
            ))
        }
    }

    async fn gateway(&self, id: Uuid) -> Result<StorageGatewayDoc> {
        self.store
            .get_gateway(id)
            .await?
            .ok_or_else(|| EndpointError::NotFound(format!("no storage gateway {id}")))
    }

    async fn collection(&self, id: Uuid) -> Result<CollectionDoc> {
        self.store
            .get_collection(id)
            .await?
            .ok_or_else(|| EndpointError::CollectionNotFound(id.to_string()))
    }

    /// The connector of a gateway. The gateway's `root` is the host folder that is its
    /// `/`; without one, the host's `/` (as GCS's POSIX connector sees it).
    fn connector(&self, gateway: &StorageGatewayDoc) -> Result<Arc<dyn Connector>> {
        let root = gateway.root.clone().unwrap_or_else(|| "/".into());
        let mut map = self
            .connectors
            .lock()
            .map_err(|_| EndpointError::Internal("connector table poisoned".into()))?;
        if let Some((r, c)) = map.get(&gateway.id)
            && *r == root
        {
            return Ok(c.clone());
        }
        // The host folder is the administrator's business: callers are told which gateway, not where it is.
        let opened = PosixConnector::open(&PathBuf::from(&root)).map_err(|e| {
            tracing::error!(gateway = %gateway.id, error = %e, "the storage gateway's folder cannot be opened");
            EndpointError::Unavailable(format!(
                "the storage of storage gateway {} cannot be reached",
                gateway.id
            ))
        })?;
        let c: Arc<dyn Connector> = Arc::new(opened);
        map.insert(gateway.id, (root, c.clone()));
        Ok(c)
    }
}
