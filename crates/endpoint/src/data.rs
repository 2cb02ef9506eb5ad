//! Data access: every door (file operations, HTTPS, each file of a transfer) comes through [`Endpoint::authorize`],
//! which normalises the path, applies the one access check, follows symlinks only inside the storage root and
//! checks the place they lead to as well, and records the decision in the audit log.
//!
//! The connector then works on the canonical path and refuses to traverse any symlink, so a symlink swapped in
//! after the check makes the operation fail instead of leading somewhere the check did not see.
//!
//! What a symlink at the end of a path means depends on the operation: reading, listing and writing go where it
//! leads (inside the collection only); stat, delete and rename act on the link itself ([`Endpoint::authorize_entry`]),
//! so that deleting a link never deletes what it points to. The connector an access hands out reports errors in
//! the collection's own paths: no message shows the storage behind the collection.

use std::sync::Arc;

use ferry_core::access::{
    Account, Action, Caller, CollectionPolicy, SignedIn, interpolate_base_path,
};
use ferry_core::endpoint::CollectionDoc;
use ferry_core::path;
use ferry_core::restrictions::Home;
use ferry_storage::{ByteStream, Connector, Entry, EntryKind, StorageError, Upload};
use futures_util::StreamExt;
use uuid::Uuid;

use crate::audit::AuditLog;
use crate::listing::{ListQuery, Listed};
use crate::policy::Grant;
use crate::{Endpoint, EndpointError, Requester, Result};

/// Names that cannot be shown (not UTF-8) reported by one listing at most: a bound on a hostile folder.
const MAX_UNREPRESENTABLE: usize = 1000;

/// What a symlink as the last name of a path means for an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Last {
    /// Go where it leads (inside the collection): read, list, write, mkdir.
    Follow,
    /// The link itself: stat, delete, rename.
    Itself,
}

/// A data access the check allowed.
pub struct Authorized {
    pub connector: Arc<dyn Connector>,
    /// The canonical path in the storage gateway's namespace: what the operation must use.
    pub storage_path: String,
    /// The canonical path inside the collection.
    pub path: String,
    /// The collection's root in the gateway's namespace.
    pub root: String,
    /// The storage gateway the data is on.
    pub(crate) gateway: Uuid,
}

impl Authorized {
    /// Whether both are on the same storage (the same gateway), where paths can be compared.
    pub fn same_storage(&self, other: &Authorized) -> bool {
        self.gateway == other.gateway
    }
}

/// A file the check allowed reading.
pub struct Opened {
    /// The file as it was when opened.
    pub entry: Entry,
    place: Authorized,
}

impl Opened {
    /// Bytes `[offset, offset+len)` (to the end when `len` is None), streamed.
    pub async fn bytes(&self, offset: u64, len: Option<u64>) -> Result<ByteStream> {
        Ok(self
            .place
            .connector
            .read(&self.place.storage_path, offset, len)
            .await?)
    }

    /// The file's path inside the collection.
    pub fn path(&self) -> &str {
        &self.place.path
    }
}

/// Normalises a path given by a client, naming the parameter when it is unusable.
pub fn client_path(field: &str, path: &str) -> Result<String> {
    path::normalize(path).map_err(|e| EndpointError::BadRequest(format!("{field}: {e}")))
}

/// Globus clients write `/~/` for "the default folder": the collection's `default_directory` (which may name
/// `$USER`/`$HOME`), or its root.
pub fn expand_home(path: &str, c: &CollectionDoc, account: Option<&str>) -> String {
    let rest = match path {
        "~" | "/~" => "",
        p => match p.strip_prefix("/~/").or_else(|| p.strip_prefix("~/")) {
            Some(r) => r,
            None => return path.to_string(),
        },
    };
    let home = c
        .default_directory
        .as_deref()
        .filter(|d| !d.starts_with("/~") && !d.starts_with('~'))
        .map(|d| {
            interpolate_base_path(
                d,
                Account {
                    username: account.unwrap_or(""),
                    home: Home::NoConcept,
                },
            )
        })
        .and_then(|d| path::normalize(&d?).ok())
        .unwrap_or_else(|| "/".into());
    if rest.is_empty() {
        home
    } else {
        format!("{}/{rest}", home.trim_end_matches('/'))
    }
}

/// A caller's access to one collection, held for the length of a transfer task so that each file is checked in
/// memory: the compiled policy (rebuilt by [`Endpoint::collection_access`] after a configuration change) and the
/// caller's groups. Only for canonical paths: the task's starting paths come through [`Endpoint::authorize`],
/// and what a listing finds under them is real files and folders (symlinks are not followed), so no resolving
/// is needed on the way down.
pub struct CollectionAccess {
    reach: Reach,
    who: Requester,
    collection: Uuid,
    generation: u64,
    clock: ferry_core::SharedClock,
    audit: AuditLog,
}

/// Where a [`CollectionAccess`] reaches the files.
enum Reach {
    /// Storage of this endpoint, through the caller's compiled policy.
    Here(Arc<Grant>),
    /// Another endpoint's collection, read for a task: that endpoint runs the access check for the task owner
    /// on each request, so every path is passed on as it is.
    Remote(Arc<dyn Connector>),
}

impl CollectionAccess {
    /// Checks `action` on `path` (canonical, inside the collection) now.
    pub fn check(&self, path: &str, action: Action) -> Result<Authorized> {
        let grant = match &self.reach {
            Reach::Here(g) => g,
            Reach::Remote(connector) => {
                return Ok(Authorized {
                    connector: connector.clone(),
                    storage_path: path.to_string(),
                    path: path.to_string(),
                    root: "/".into(),
                    gateway: Uuid::nil(),
                });
            }
        };
        match &**grant {
            Grant::NoAccount(why) => Err(EndpointError::AccessDenied(format!(
                "no access to {path}: {why}"
            ))),
            Grant::Policy {
                policy,
                connector,
                gateway,
                ..
            } => {
                let caller = self.who.caller();
                policy
                    .check(&caller, path, action, self.clock.now())
                    .map_err(|r| {
                        EndpointError::AccessDenied(format!(
                            "no {} access to {path}: {r}",
                            action.as_str()
                        ))
                    })?;
                Ok(Authorized {
                    connector: connector.clone(),
                    storage_path: policy.storage_path(path),
                    path: path.to_string(),
                    root: policy.root.clone(),
                    gateway: *gateway,
                })
            }
        }
    }

    /// [`Self::check`] for one file (or folder) of task `task`, with the decision written to the audit log as
    /// `task.<op>` (`read`, `write`, `delete`): who, the task, the collection and the path as it sees it.
    pub async fn check_for_task(
        &self,
        path: &str,
        action: Action,
        op: &str,
        task: Uuid,
    ) -> Result<Authorized> {
        let r = self.check(path, action);
        // Another endpoint's files: that endpoint records each read where it checks it.
        if self.is_remote() {
            return r;
        }
        let (allowed, detail) = match &r {
            Ok(_) => (true, format!("task {task}")),
            Err(EndpointError::AccessDenied(m)) => (false, format!("task {task}: {m}")),
            Err(_) => return r,
        };
        self.audit
            .record(
                Some(self.who.identity.id),
                &format!("task.{op}"),
                Some(self.collection),
                Some(path),
                allowed,
                detail,
            )
            .await;
        r
    }

    pub fn collection(&self) -> Uuid {
        self.collection
    }

    /// The storage the collection is on (None when the caller has no account there).
    pub fn connector(&self) -> Option<Arc<dyn Connector>> {
        match &self.reach {
            Reach::Remote(connector) => Some(connector.clone()),
            Reach::Here(g) => match &**g {
                Grant::Policy { connector, .. } => Some(connector.clone()),
                Grant::NoAccount(_) => None,
            },
        }
    }

    /// Whether the files are another endpoint's (read through it for a task).
    pub fn is_remote(&self) -> bool {
        matches!(self.reach, Reach::Remote(_))
    }
}

impl Endpoint {
    /// `who`'s access to a collection, for checking many paths in a row (see [`CollectionAccess`]).
    pub async fn collection_access(
        &self,
        who: &Requester,
        collection: Uuid,
    ) -> Result<CollectionAccess> {
        let c = self.collection(collection).await?;
        let grant = self.grant(&c, Some(who)).await?;
        // Read after the grant, which brings the cache up to date with the database.
        let generation = self.policies.generation();
        Ok(CollectionAccess {
            reach: Reach::Here(grant),
            who: who.clone(),
            collection,
            generation,
            clock: self.settings.clock.clone(),
            audit: self.audit.clone(),
        })
    }

    /// Whether collections of other endpoints can be read here for tasks (see [`crate::RemoteCollections`]).
    pub fn reads_remote(&self) -> bool {
        self.settings.remote.is_some()
    }

    /// `who`'s access, for task `task`, to `collection` of another endpoint: that endpoint checks each request;
    /// this one passes the paths on.
    pub async fn task_source(
        &self,
        who: &Requester,
        task: Uuid,
        collection: Uuid,
    ) -> Result<CollectionAccess> {
        let remote = self.settings.remote.as_ref().ok_or_else(|| {
            EndpointError::CollectionNotFound(format!("no collection {collection} here"))
        })?;
        let connector = remote.task_source(task, collection).await?;
        Ok(CollectionAccess {
            reach: Reach::Remote(connector),
            who: who.clone(),
            collection,
            generation: self.policies.generation(),
            clock: self.settings.clock.clone(),
            audit: self.audit.clone(),
        })
    }

    /// The owner of task `task` from the hub, with the groups the hub knows now (see
    /// [`crate::RemoteCollections::owner_now`]); the local answer where there is no hub.
    pub async fn task_owner(
        &self,
        identity: ferry_core::Identity,
        task: Uuid,
    ) -> Result<Requester> {
        match &self.settings.remote {
            Some(remote) => {
                let now = remote.owner_now(task).await?;
                Ok(Requester {
                    groups: now.groups,
                    identity,
                    linked: now
                        .linked
                        .into_iter()
                        .map(ferry_core::Identity::known_by_id)
                        .collect(),
                    signed_in: SignedIn::TaskOfOwner,
                })
            }
            None => Ok(Requester {
                signed_in: SignedIn::TaskOfOwner,
                ..self.requester(identity).await?
            }),
        }
    }

    /// The name of another endpoint's collection that a task here reads (see [`crate::RemoteCollections`]).
    pub fn remote_collection_name(&self, id: Uuid) -> Option<String> {
        self.settings.remote.as_ref()?.display_name(id)
    }

    /// A collection's display name (for task documents); None when it no longer exists.
    pub async fn collection_name(&self, id: Uuid) -> Result<Option<String>> {
        Ok(self.store.get_collection(id).await?.map(|c| c.display_name))
    }

    /// Whether the configuration changed since `access` was built (then build it again: groups, rules and
    /// roles may differ).
    pub fn is_stale(&self, access: &CollectionAccess) -> bool {
        self.policies.generation() != access.generation
    }
}

impl Endpoint {
    /// May `who` (None: anonymous) do `action` at `path` of `collection`? `op` names the operation for the log.
    /// A symlink at the end of the path is followed (inside the collection).
    pub async fn authorize(
        &self,
        who: Option<&Requester>,
        collection: Uuid,
        path: &str,
        action: Action,
        op: &str,
    ) -> Result<Authorized> {
        self.authorize_at(who, collection, path, action, op, Last::Follow)
            .await
    }

    /// [`Self::authorize`] for an operation on the entry at `path` itself (stat, delete, rename): a symlink as
    /// its last name is the link, not what it points to; symlinks before it are followed as usual.
    pub async fn authorize_entry(
        &self,
        who: Option<&Requester>,
        collection: Uuid,
        path: &str,
        action: Action,
        op: &str,
    ) -> Result<Authorized> {
        self.authorize_at(who, collection, path, action, op, Last::Itself)
            .await
    }

    async fn authorize_at(
        &self,
        who: Option<&Requester>,
        collection: Uuid,
        path: &str,
        action: Action,
        op: &str,
        last: Last,
    ) -> Result<Authorized> {
        let c = self.collection(collection).await?;
        let grant = self.grant(&c, who).await?;
        let account = match &*grant {
            Grant::Policy { account, .. } => Some(account.as_str()),
            Grant::NoAccount(_) => None,
        };
        let path = client_path("path", &expand_home(path, &c, account))?;
        let identity = who.map(|w| w.identity.id);
        let outcome = match &*grant {
            Grant::NoAccount(why) => Err(EndpointError::AccessDenied(format!(
                "no access to {path}: {why}"
            ))),
            Grant::Policy {
                policy,
                connector,
                gateway,
                ..
            } => {
                let caller = who.map(Requester::caller).unwrap_or(Caller::ANONYMOUS);
                self.check_on(policy, connector, *gateway, &caller, &path, action, last)
                    .await
            }
        };
        let (allowed, logged_path, detail) = match &outcome {
            Ok(a) => (true, a.path.as_str(), String::new()),
            Err(EndpointError::AccessDenied(m)) => (false, path.as_str(), m.clone()),
            // Not a decision (a storage failure on the way): the operation reports it.
            Err(_) => return outcome,
        };
        self.audit
            .record(
                identity,
                &format!("data.{op}"),
                Some(collection),
                Some(logged_path),
                allowed,
                detail,
            )
            .await;
        outcome
    }

    /// The check on a compiled policy: the path as asked, then, if symlinks lie on the way, the place they lead to.
    /// With [`Last::Itself`], a symlink as the last name is not followed: only the folder it is in is resolved.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn check_on(
        &self,
        policy: &CollectionPolicy,
        connector: &Arc<dyn Connector>,
        gateway: Uuid,
        caller: &Caller<'_>,
        path: &str,
        action: Action,
        last: Last,
    ) -> Result<Authorized> {
        let now = self.now();
        let denied = |m: String| EndpointError::AccessDenied(m);
        policy
            .check(caller, path, action, now)
            .map_err(|r| denied(format!("no {} access to {path}: {r}", action.as_str())))?;
        let lexical = policy.storage_path(path);
        let resolved = match (last, path::parent(&lexical), path::file_name(&lexical)) {
            (Last::Itself, Some(parent), Some(name)) if path != "/" => connector
                .resolve(parent)
                .await
                .map(|p| path::join(&p, &format!("/{name}"))),
            _ => connector.resolve(&lexical).await,
        };
        let canonical = match resolved {
            Ok(c) => c,
            Err(StorageError::Escape(_) | StorageError::Loop(_)) => {
                return Err(denied(format!(
                    "no access to {path}: a symbolic link on the way leads outside the storage"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if canonical == lexical {
            return Ok(Authorized {
                connector: connector.clone(),
                storage_path: canonical,
                path: path.to_string(),
                root: policy.root.clone(),
                gateway,
            });
        }
        let inside = policy.collection_path(&canonical).ok_or_else(|| {
            denied(format!(
                "no access to {path}: a symbolic link on the way leads outside the collection"
            ))
        })?;
        policy.check(caller, &inside, action, now).map_err(|r| {
            denied(format!(
                "no {} access to {path} (a symbolic link to {inside}): {r}",
                action.as_str()
            ))
        })?;
        Ok(Authorized {
            connector: connector.clone(),
            storage_path: canonical,
            path: inside,
            root: policy.root.clone(),
            gateway,
        })
    }

    /// A folder's entries as the Transfer API shows them, filtered, ordered and paged by `q`; with the
    /// number of entries before paging and the names that cannot be shown (not UTF-8). The folder is read as a
    /// stream and only the entries that can still make the page are held (see [`ListQuery::pager`]).
    pub async fn list(
        &self,
        who: Option<&Requester>,
        collection: Uuid,
        path: &str,
        q: &ListQuery,
    ) -> Result<(Authorized, Vec<Listed>, usize, Vec<String>)> {
        let a = self
            .authorize(who, collection, path, Action::Read, "list")
            .await?;
        let mut chunks = a.connector.list_chunks(&a.storage_path).await?;
        let mut pager = q.pager();
        let mut unrepresentable = Vec::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            for entry in chunk.entries {
                let link = path::join(&a.storage_path, &format!("/{}", entry.name));
                pager.offer(self.listed(&a, &link, entry).await);
            }
            let room = MAX_UNREPRESENTABLE.saturating_sub(unrepresentable.len());
            unrepresentable.extend(chunk.unrepresentable.into_iter().take(room));
        }
        unrepresentable.sort();
        let (page, total) = pager.finish();
        Ok((a, page, total, unrepresentable))
    }

    /// An entry as the Transfer API shows it; for a symlink at `storage_path`, what it leads to.
    async fn listed(&self, a: &Authorized, storage_path: &str, mut entry: Entry) -> Listed {
        let mut target = None;
        entry.link_target = None;
        if entry.kind == EntryKind::Symlink
            && let Some((kind, inside)) = self.link_target(a, storage_path).await
        {
            target = Some(kind);
            entry.link_target = Some(inside);
        }
        Listed::new(entry, target)
    }

    /// Where a symlink leads, as the collection sees it (its kind and path), if that is inside the collection;
    /// None otherwise (what lies outside is not shown, not even its name).
    async fn link_target(&self, a: &Authorized, link: &str) -> Option<(EntryKind, String)> {
        let target = a.connector.resolve(link).await.ok()?;
        let inside = path::strip_base(&a.root, &target)?;
        let kind = a.connector.stat(&target).await.ok()?.kind;
        Some((kind, inside))
    }

    /// The entry at `path`: a symlink is reported as itself (its name, and where it leads inside the collection).
    pub async fn stat(
        &self,
        who: Option<&Requester>,
        collection: Uuid,
        path: &str,
    ) -> Result<(Authorized, Listed)> {
        let a = self
            .authorize_entry(who, collection, path, Action::Read, "stat")
            .await?;
        let mut entry = a.connector.stat(&a.storage_path).await?;
        if a.path == "/" {
            entry.name = "/".into();
        }
        let listed = self.listed(&a, &a.storage_path, entry).await;
        Ok((a, listed))
    }

    pub async fn mkdir(&self, who: Option<&Requester>, collection: Uuid, path: &str) -> Result<()> {
        let a = self
            .authorize(who, collection, path, Action::Write, "mkdir")
            .await?;
        Ok(a.connector.mkdir(&a.storage_path).await?)
    }

    /// Needs write access at both names.
    pub async fn rename(
        &self,
        who: Option<&Requester>,
        collection: Uuid,
        from: &str,
        to: &str,
    ) -> Result<()> {
        let src = self
            .authorize_entry(who, collection, from, Action::Write, "rename")
            .await?;
        let dst = self
            .authorize_entry(who, collection, to, Action::Write, "rename")
            .await?;
        if src.path == "/" || dst.path == "/" {
            return Err(EndpointError::BadRequest(
                "the root of a collection cannot be renamed".into(),
            ));
        }
        if path::is_within(&src.path, &dst.path) {
            return Err(EndpointError::BadRequest(format!(
                "new_path: {} lies inside {}",
                dst.path, src.path
            )));
        }
        Ok(src
            .connector
            .rename(&src.storage_path, &dst.storage_path)
            .await?)
    }

    pub async fn delete(
        &self,
        who: Option<&Requester>,
        collection: Uuid,
        path: &str,
        recursive: bool,
    ) -> Result<()> {
        let a = self
            .authorize_entry(who, collection, path, Action::Write, "delete")
            .await?;
        if a.path == "/" {
            return Err(EndpointError::BadRequest(
                "the root of a collection cannot be deleted".into(),
            ));
        }
        Ok(a.connector.delete(&a.storage_path, recursive).await?)
    }

    /// Opens a file for reading: the check and a stat now, the bytes later (ranges need the size first).
    pub async fn open_file(
        &self,
        who: Option<&Requester>,
        collection: Uuid,
        path: &str,
    ) -> Result<Opened> {
        let a = self
            .authorize(who, collection, path, Action::Read, "read")
            .await?;
        let entry = a.connector.stat(&a.storage_path).await?;
        if entry.kind != EntryKind::File {
            return Err(StorageError::IsADirectory(a.path).into());
        }
        Ok(Opened { entry, place: a })
    }

    /// Starts an upload to `path`; nothing appears under the name until the upload is committed.
    pub async fn write(
        &self,
        who: Option<&Requester>,
        collection: Uuid,
        path: &str,
        overwrite: bool,
    ) -> Result<Box<dyn Upload>> {
        let a = self
            .authorize(who, collection, path, Action::Write, "write")
            .await?;
        if a.path == "/" {
            return Err(EndpointError::BadRequest(
                "the root of a collection is a folder, not a file".into(),
            ));
        }
        Ok(a.connector.write(&a.storage_path, overwrite).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_means_the_default_directory() {
        let mut c: CollectionDoc = serde_json::from_value(serde_json::json!({
            "collection_type": "mapped", "display_name": "m", "collection_base_path": "/",
        }))
        .unwrap();
        assert_eq!(expand_home("/~/", &c, None), "/");
        assert_eq!(expand_home("/~/x/y", &c, None), "/x/y");
        assert_eq!(expand_home("/a/~/b", &c, None), "/a/~/b");
        c.default_directory = Some("/projects/$USER/".into());
        assert_eq!(expand_home("/~/", &c, Some("ana")), "/projects/ana");
        assert_eq!(expand_home("~/f", &c, Some("ana")), "/projects/ana/f");
        assert_eq!(expand_home("/data", &c, Some("ana")), "/data");
    }
}
