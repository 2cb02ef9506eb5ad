//! Compiled access policies, cached. A guest collection has one policy (it acts as its creator's account); a
//! mapped collection has one per caller, because each caller reaches it as their own account.
//!
//! The cache is invalidated through the database: every change to a table a policy is built from moves a
//! stored generation forward in the same transaction (SQL triggers, so any process's writes count: the admin
//! CLI's too). Each request reads that one row before it uses the cache (a primary-key read, some microseconds
//! beside a request's other reads), so a change counts at the next request, with no time window; a running
//! task re-reads it at least every few seconds (see the transfer engine).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ferry_core::access::{Account, CollectionPolicy, PolicyInputs};
use ferry_core::endpoint::{CollectionDoc, CollectionType};
use ferry_core::restrictions::{Home, names_home};
use ferry_storage::{Connector, Scoped};
use uuid::Uuid;

use crate::{Endpoint, EndpointError, Requester, Result, account};

/// Entries beyond this are dropped wholesale: a bound on memory, not an expected size.
const MAX_ENTRIES: usize = 10_000;

/// How a caller reaches a collection: through a compiled policy as an account, or not at all.
pub(crate) enum Grant {
    Policy {
        policy: Box<CollectionPolicy>,
        /// The gateway's storage seen from the collection's root: its errors name collection paths.
        connector: Arc<dyn Connector>,
        account: String,
        /// The storage gateway (two collections on one gateway share its storage).
        gateway: Uuid,
    },
    NoAccount(String),
}

impl Grant {
    fn new(
        policy: CollectionPolicy,
        storage: Arc<dyn Connector>,
        account: String,
        gateway: Uuid,
    ) -> Self {
        let connector: Arc<dyn Connector> = Arc::new(Scoped::new(storage, &policy.root));
        Grant::Policy {
            policy: Box::new(policy),
            connector,
            account,
            gateway,
        }
    }
}

type Key = (Uuid, Option<Uuid>);

#[derive(Default)]
pub(crate) struct PolicyCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Bumped by every configuration change; a policy built from older data is not stored.
    generation: u64,
    /// The database's generation the entries were built at (None before the first read).
    stored: Option<i64>,
    entries: HashMap<Key, Arc<Grant>>,
}

impl PolicyCache {
    pub(crate) fn clear(&self) {
        if let Ok(mut i) = self.inner.lock() {
            i.generation += 1;
            i.entries.clear();
        }
    }

    /// Drops every entry if the database's generation moved since the entries were built.
    fn sync(&self, stored: i64) {
        if let Ok(mut i) = self.inner.lock()
            && i.stored != Some(stored)
        {
            i.stored = Some(stored);
            i.generation += 1;
            i.entries.clear();
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.inner.lock().map(|i| i.generation).unwrap_or(u64::MAX)
    }

    fn get(&self, key: &Key) -> (u64, Option<Arc<Grant>>) {
        match self.inner.lock() {
            Ok(i) => (i.generation, i.entries.get(key).cloned()),
            Err(_) => (u64::MAX, None),
        }
    }

    fn put(&self, generation: u64, key: Key, grant: Arc<Grant>) {
        if let Ok(mut i) = self.inner.lock()
            && i.generation == generation
        {
            if i.entries.len() >= MAX_ENTRIES {
                i.entries.clear();
            }
            i.entries.insert(key, grant);
        }
    }
}

/// Why `account` cannot reach a collection based on the home folder, when it has none on this storage.
pub(crate) fn homeless(c: &CollectionDoc, account: &str, home: Home<'_>) -> Option<String> {
    (home == Home::Missing && names_home(&c.collection_base_path)).then(|| {
        format!(
            "account {account} has no home folder on this storage gateway, and the collection is based on it"
        )
    })
}

impl Endpoint {
    /// The compiled policy through which `who` reaches `c`. Anonymous callers reach guest collections only.
    pub(crate) async fn grant(
        &self,
        c: &CollectionDoc,
        who: Option<&Requester>,
    ) -> Result<Arc<Grant>> {
        let key = match c.collection_type {
            CollectionType::Guest => (c.id, None),
            CollectionType::Mapped => (
                c.id,
                Some(who.ok_or(EndpointError::Unauthenticated)?.identity.id),
            ),
        };
        self.policies.sync(self.store.policy_generation().await?);
        let (generation, cached) = self.policies.get(&key);
        if let Some(g) = cached {
            return Ok(g);
        }
        let grant = Arc::new(self.build_grant(c, who).await?);
        self.policies.put(generation, key, grant.clone());
        Ok(grant)
    }

    async fn build_grant(&self, c: &CollectionDoc, who: Option<&Requester>) -> Result<Grant> {
        match c.collection_type {
            CollectionType::Mapped => {
                let who = who.ok_or(EndpointError::Unauthenticated)?;
                let gateway = self.gateway(mapped_gateway(c)?).await?;
                let account = match account::account_for(&gateway, &who.identity).await {
                    Ok(a) => a,
                    Err(why) => return Ok(Grant::NoAccount(why)),
                };
                let storage = self.connector(&gateway)?;
                let found = storage.home_of(&account).await;
                let home = Home::from_lookup(storage.has_homes(), found.as_deref());
                if let Some(why) = homeless(c, &account, home) {
                    return Ok(Grant::NoAccount(why));
                }
                let policy = CollectionPolicy::build(&PolicyInputs {
                    collection: c,
                    mapped: None,
                    gateway: &gateway,
                    account: Account {
                        username: &account,
                        home,
                    },
                    sharing_policies: &[],
                    acl_rules: &[],
                    roles: &[],
                    guest_auth_policy: None,
                })?;
                Ok(Grant::new(policy, storage, account, gateway.id))
            }
            CollectionType::Guest => {
                let mapped_id = c.mapped_collection_id.ok_or_else(|| {
                    EndpointError::Internal(format!(
                        "guest collection {} has no mapped collection",
                        c.id
                    ))
                })?;
                let mapped = self.collection(mapped_id).await?;
                let gateway = self.gateway(mapped_gateway(&mapped)?).await?;
                let Some(account) = self.guest_account(c, &gateway).await? else {
                    return Ok(Grant::NoAccount(
                        "the guest collection's owner no longer has a storage account here".into(),
                    ));
                };
                let account = match account {
                    Ok(a) => a,
                    Err(why) => {
                        return Ok(Grant::NoAccount(format!(
                            "the guest collection's owner can no longer reach the storage gateway: {why}"
                        )));
                    }
                };
                let storage = self.connector(&gateway)?;
                let found = storage.home_of(&account).await;
                let home = Home::from_lookup(storage.has_homes(), found.as_deref());
                if let Some(why) = homeless(&mapped, &account, home) {
                    return Ok(Grant::NoAccount(format!(
                        "the guest collection's owner: {why}"
                    )));
                }
                let sharing_policies = self.store.list_sharing_policies(mapped.id).await?;
                let acl_rules = self.store.list_acl_rules(c.id).await?;
                let mut roles = self.store.list_roles(None).await?;
                roles.extend(self.store.list_roles(Some(c.id)).await?);
                let auth_policy = match mapped.guest_auth_policy_id {
                    Some(id) => match self.store.get_auth_policy(id).await? {
                        Some((p, _)) => Some(p),
                        // Deleting a policy in use is refused; a missing one fails closed.
                        None => {
                            return Ok(Grant::NoAccount(format!(
                                "the mapped collection's authentication policy {id} is missing"
                            )));
                        }
                    },
                    None => None,
                };
                let policy = CollectionPolicy::build(&PolicyInputs {
                    collection: c,
                    mapped: Some(&mapped),
                    gateway: &gateway,
                    account: Account {
                        username: &account,
                        home,
                    },
                    sharing_policies: &sharing_policies,
                    acl_rules: &acl_rules,
                    roles: &roles,
                    guest_auth_policy: auth_policy.as_ref(),
                })?;
                Ok(Grant::new(policy, storage, account, gateway.id))
            }
        }
    }

    /// The account a guest collection acts as: its creator's credential, provided the creator still maps to
    /// that account (so that `users_deny`, a removed domain or a deleted identity cut the share off).
    /// `None`: the credential or the creator is gone.
    async fn guest_account(
        &self,
        c: &CollectionDoc,
        gateway: &ferry_core::endpoint::StorageGatewayDoc,
    ) -> Result<Option<account::Outcome>> {
        let (Some(cred_id), Some(owner)) = (c.user_credential_id, c.identity_id) else {
            return Ok(None);
        };
        let Some(cred) = self.store.get_user_credential(cred_id).await? else {
            return Ok(None);
        };
        let Some(creator) = self.store.get_identity(owner).await? else {
            return Ok(None);
        };
        let Some(username) = cred.username else {
            return Ok(None);
        };
        Ok(Some(
            account::account_for(gateway, &creator)
                .await
                .and_then(|now| {
                    if now == username {
                        Ok(username)
                    } else {
                        Err(format!(
                            "its owner now maps to account {now}, not {username}"
                        ))
                    }
                }),
        ))
    }
}

pub(crate) fn mapped_gateway(c: &CollectionDoc) -> Result<Uuid> {
    c.storage_gateway_id.ok_or_else(|| {
        EndpointError::Internal(format!("collection {} has no storage gateway", c.id))
    })
}
