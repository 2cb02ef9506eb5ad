//! A hub's record of the endpoints that joined it and the collections they hold, and an endpoint's mirror of
//! the identities its callers have (see `shared/design/sites.md`).

use async_trait::async_trait;
use ferry_core::Identity;
use uuid::Uuid;

use crate::Result;

/// An endpoint joined to this hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The endpoint's id, which is also its client id at the hub.
    pub id: Uuid,
    /// The person who set it up.
    pub owner: Uuid,
    /// Where the endpoint serves `/api` and `/data`, without a trailing slash.
    pub public_url: String,
    pub display_name: String,
    /// Reports taken so far.
    pub version: i64,
    pub reported_at: Option<i64>,
    pub created: i64,
}

/// One collection of a site, as its last report named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteCollection {
    pub id: Uuid,
    pub site: Uuid,
    pub display_name: String,
    /// `mapped` or `guest`.
    pub kind: String,
}

#[async_trait]
pub trait SiteStore: Send + Sync {
    async fn create_site(&self, site: &Site) -> Result<()>;
    async fn get_site(&self, id: Uuid) -> Result<Option<Site>>;
    async fn list_sites(&self) -> Result<Vec<Site>>;
    /// Removes the site and every collection it reported; the hub's records of tasks it was running end FAILED
    /// at `now` (nothing will report them again).
    async fn delete_site(&self, id: Uuid, now: i64) -> Result<()>;
    /// Replaces what the site reported, in one step, and returns the new report version. A collection id
    /// another site holds is a Conflict (nothing changes).
    async fn report_site(
        &self,
        id: Uuid,
        public_url: &str,
        display_name: &str,
        collections: &[SiteCollection],
        now: i64,
    ) -> Result<i64>;
    async fn site_collections(&self, site: Uuid) -> Result<Vec<SiteCollection>>;
    /// A collection some endpoint reported.
    async fn site_collection(&self, id: Uuid) -> Result<Option<SiteCollection>>;
    /// The site that holds a collection (or is the endpoint `id`), if a site does.
    async fn site_of(&self, id: Uuid) -> Result<Option<Site>>;
    /// Stores or refreshes an identity the hub vouched for (an endpoint keeps them for names, mapping and
    /// ownership); changes nothing when it is already as given.
    async fn mirror_identity(&self, identity: &Identity) -> Result<()>;
}
