//! Sharing policies: extra sharing restrictions for some local accounts on a mapped collection, added (as a
//! union) to the collection's own `sharing_restrict_paths` for guest collections those accounts create.

use ferry_core::endpoint::{CollectionDoc, CollectionType, SharingPolicyDoc};
use ferry_core::restrictions::PathRestrictions;
use serde_json::Value;
use uuid::Uuid;

use crate::{Endpoint, EndpointError, Requester, Result, docs};

impl Endpoint {
    async fn policy_collection(&self, who: &Requester, id: Uuid) -> Result<CollectionDoc> {
        let c = match self.store.get_collection(id).await? {
            Some(c) if c.collection_type == CollectionType::Mapped => c,
            _ => {
                return Err(EndpointError::BadRequest(format!(
                    "collection_id: no mapped collection {id}"
                )));
            }
        };
        let ep = self.my_endpoint_roles(who).await?;
        let coll = self.my_collection_roles(who, &ep, &c).await?;
        if !ferry_core::roles::modifies_collection(&ep, &coll) {
            return Err(EndpointError::PermissionDenied(
                "sharing policies need the mapped collection's administrator role".into(),
            ));
        }
        Ok(c)
    }

    pub async fn create_sharing_policy(&self, who: &Requester, request: Value) -> Result<Value> {
        let mut request = request;
        docs::drop_fields(&mut request, &["id"]);
        let mut doc: SharingPolicyDoc = docs::parse(request, "sharing_policy")?;
        self.policy_collection(who, doc.collection_id).await?;
        PathRestrictions::from_json(&doc.sharing_restrict_paths, "sharing_restrict_paths")
            .map_err(|e| EndpointError::BadRequest(e.to_string()))?;
        if let Some(users) = &doc.users
            && let Some(bad) = users.iter().find(|u| u.trim().is_empty())
        {
            return Err(EndpointError::BadRequest(format!(
                "users: {bad:?} is not an account name"
            )));
        }
        doc.id = Uuid::new_v4();
        doc.data_type = "sharing_policy#1.0.0".into();
        self.store.create_sharing_policy(&doc).await?;
        self.changed();
        self.record(
            who,
            "sharing_policy.create",
            Some(doc.collection_id),
            doc.id.to_string(),
        )
        .await;
        Ok(docs::to_value(&doc))
    }

    /// The policies of a mapped collection; with `username`, only those that apply to that account.
    pub async fn list_sharing_policies(
        &self,
        who: &Requester,
        collection: Uuid,
        username: Option<&str>,
    ) -> Result<Vec<Value>> {
        self.policy_collection(who, collection).await?;
        Ok(self
            .store
            .list_sharing_policies(collection)
            .await?
            .iter()
            .filter(|p| {
                username.is_none_or(|u| p.users.as_ref().is_none_or(|l| l.iter().any(|x| x == u)))
            })
            .map(docs::to_value)
            .collect())
    }

    async fn sharing_policy(&self, who: &Requester, id: Uuid) -> Result<SharingPolicyDoc> {
        let p = self
            .store
            .get_sharing_policy(id)
            .await?
            .ok_or_else(|| EndpointError::NotFound(format!("no sharing policy {id}")))?;
        self.policy_collection(who, p.collection_id).await?;
        Ok(p)
    }

    pub async fn get_sharing_policy(&self, who: &Requester, id: Uuid) -> Result<Value> {
        Ok(docs::to_value(&self.sharing_policy(who, id).await?))
    }

    pub async fn delete_sharing_policy(&self, who: &Requester, id: Uuid) -> Result<()> {
        let p = self.sharing_policy(who, id).await?;
        self.store.delete_sharing_policy(id).await?;
        self.changed();
        self.record(
            who,
            "sharing_policy.delete",
            Some(p.collection_id),
            id.to_string(),
        )
        .await;
        Ok(())
    }
}
