//! Delete tasks. A folder is removed bottom-up, every file and folder through the access check on its own, so
//! that a read-only rule deeper in a writable folder protects what it covers (the folder then stays, and the
//! task fails saying which path was refused).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferry_core::access::Action;
use ferry_core::fnmatch::fnmatch;
use ferry_core::path;
use ferry_endpoint::data::Authorized;
use ferry_endpoint::{CollectionAccess, EndpointError};
use ferry_storage::{EntryKind, StorageError};
use ferry_store::tasks::{ItemKind, ItemOutcome, ItemState, TaskCounters, TaskRow};
use uuid::Uuid;

use crate::engine::Inner;
use crate::run::{Access, Fault, FaultKind, RunEnd, Side};
use crate::submit::Options;

/// Folders deeper than this are refused rather than recursed into without end.
const MAX_DEPTH: usize = 512;

pub(crate) async fn run(
    inner: &Arc<Inner>,
    task: &TaskRow,
    options: &Options,
    access: &Access,
    stop: &AtomicBool,
) -> RunEnd {
    let store = inner.store.as_ref();
    let items = match store
        .pending_items(task.id, &[ItemKind::Path], 0, i64::MAX)
        .await
    {
        Ok(i) => i,
        Err(_) => return RunEnd::Stopped,
    };
    for item in items {
        if stop.load(Ordering::SeqCst) {
            return RunEnd::Stopped;
        }
        let mut counted = TaskCounters::default();
        let outcome = |state, attempts, code: Option<&str>, error: Option<String>| ItemOutcome {
            seq: item.seq,
            state,
            attempts,
            checksum_algorithm: None,
            checksum: None,
            error_code: code.map(str::to_string),
            error,
            error_time: code.map(|_| inner.now()),
            progress: None,
        };
        // An attempt is recorded before it starts: a path that is gone when a later attempt looks (after the
        // process stopped mid-way) was most likely removed by this task, and is what the task asked for.
        let resumed = item.attempts > 0;
        let started = outcome(ItemState::Pending, item.attempts + 1, None, None);
        if inner
            .finish_items(task.id, &[started], &TaskCounters::default())
            .await
            .is_err()
        {
            return RunEnd::Stopped;
        }
        let r = delete_path(
            &access.src,
            task.id,
            &item.src,
            options,
            resumed,
            &mut counted,
        )
        .await;
        match r {
            Ok(()) => {
                let o = outcome(ItemState::Done, item.attempts, None, None);
                if inner.finish_items(task.id, &[o], &counted).await.is_err() {
                    return RunEnd::Stopped;
                }
            }
            Err(f) if f.kind == FaultKind::Retry => {
                counted.faults += 1;
                let o = outcome(
                    ItemState::Pending,
                    item.attempts + 1,
                    Some(f.code),
                    Some(f.message.clone()),
                );
                let _ = inner.finish_items(task.id, &[o], &counted).await;
                return RunEnd::Inactive {
                    code: f.code.into(),
                    details: format!("{}: {}", item.src, f.message),
                };
            }
            Err(f) => {
                let _ = inner.finish_items(task.id, &[], &counted).await;
                return RunEnd::Failed {
                    code: f.code.into(),
                    description: format!("{}: {}", item.src, f.message),
                };
            }
        }
    }
    RunEnd::Succeeded
}

/// Deletes one submitted path: with `interpret_globs`, every name its last component matches.
async fn delete_path(
    access: &CollectionAccess,
    task: Uuid,
    p: &str,
    o: &Options,
    resumed: bool,
    counted: &mut TaskCounters,
) -> Result<(), Fault> {
    // Missing is fine when asked (ignore_missing) or when an earlier attempt of this task got there first.
    let missing_ok = o.ignore_missing || resumed;
    let leaf = path::file_name(p).unwrap_or("");
    let globbed = o.interpret_globs && leaf.contains(['*', '?', '[']);
    if !globbed {
        return delete_one(access, task, p, o, missing_ok, counted).await;
    }
    let parent = path::parent(p).unwrap_or("/");
    let dir = check(access, parent)?;
    let listing = match dir.connector.list(&dir.storage_path).await {
        Err(StorageError::NotFound(_)) if missing_ok => return Ok(()),
        r => r.map_err(|e| Fault::from_endpoint(e.into(), Side::Source))?,
    };
    let mut matched = 0;
    for e in listing.entries.iter().filter(|e| fnmatch(leaf, &e.name)) {
        matched += 1;
        let child = path::join(parent, &format!("/{}", e.name));
        delete_one(access, task, &child, o, missing_ok, counted).await?;
    }
    if matched == 0 && !missing_ok {
        return Err(Fault {
            code: "FILE_NOT_FOUND",
            message: format!("nothing matches {p}"),
            kind: FaultKind::Fatal,
            source: false,
        });
    }
    Ok(())
}

fn refused(e: EndpointError) -> Fault {
    match e {
        // A refusal will not go away by retrying a delete; the owner has to change the rules.
        EndpointError::AccessDenied(m) => Fault::fatal("PERMISSION_DENIED", m),
        e => Fault::from_endpoint(e, Side::Source),
    }
}

fn check(access: &CollectionAccess, p: &str) -> Result<Authorized, Fault> {
    access.check(p, Action::Write).map_err(refused)
}

/// The check for removing one file or folder, written to the audit log.
async fn check_removal(
    access: &CollectionAccess,
    task: Uuid,
    p: &str,
) -> Result<Authorized, Fault> {
    access
        .check_for_task(p, Action::Write, "delete", task)
        .await
        .map_err(refused)
}

async fn delete_one(
    access: &CollectionAccess,
    task: Uuid,
    p: &str,
    o: &Options,
    missing_ok: bool,
    counted: &mut TaskCounters,
) -> Result<(), Fault> {
    let a = check(access, p)?;
    let entry = match a.connector.stat(&a.storage_path).await {
        Ok(e) => e,
        Err(StorageError::NotFound(_)) if missing_ok => return Ok(()),
        Err(StorageError::NotFound(_)) => {
            return Err(Fault::fatal(
                "FILE_NOT_FOUND",
                format!("{p}: no such file or folder"),
            ));
        }
        Err(e) => return Err(Fault::from_endpoint(e.into(), Side::Source)),
    };
    if entry.kind == EntryKind::Dir && !o.recursive {
        return Err(Fault::fatal(
            "FILE_TYPE_MISMATCH",
            format!("{p} is a folder: delete it with recursive"),
        ));
    }
    remove_tree(access, task, p, entry.kind, counted, 0).await
}

/// Removes `p` (a folder with everything in it), each entry checked on its own, children first.
async fn remove_tree(
    access: &CollectionAccess,
    task: Uuid,
    p: &str,
    kind: EntryKind,
    counted: &mut TaskCounters,
    depth: usize,
) -> Result<(), Fault> {
    let a = check_removal(access, task, p).await?;
    if kind == EntryKind::Dir {
        if depth > MAX_DEPTH {
            return Err(Fault::fatal(
                "ENDPOINT_ERROR",
                format!("{p}: folders nested too deep"),
            ));
        }
        let listing = a
            .connector
            .list(&a.storage_path)
            .await
            .map_err(|e| Fault::from_endpoint(e.into(), Side::Source))?;
        for e in listing.entries {
            let child = path::join(p, &format!("/{}", e.name));
            Box::pin(remove_tree(
                access,
                task,
                &child,
                e.kind,
                counted,
                depth + 1,
            ))
            .await?;
        }
        counted.directories += 1;
    } else {
        counted.files += 1;
    }
    match a.connector.delete(&a.storage_path, false).await {
        Ok(()) | Err(StorageError::NotFound(_)) => Ok(()),
        Err(e) => Err(Fault::from_endpoint(e.into(), Side::Source)),
    }
}
