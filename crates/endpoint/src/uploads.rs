//! Resumable uploads (the domain of the tus protocol): a file sent in as many requests as the connection needs,
//! its bytes kept in a hidden temporary file beside the file it becomes (see [`Connector::open_part`]), which
//! takes the real name only once the last byte arrived. Nothing half-uploaded ever appears under the name.
//!
//! Every request goes through the one access check for writing at the upload's path, so a permission withdrawn
//! mid-upload stops it at the next request (and before the file takes its name). An upload is its owner's alone:
//! to anyone else it does not exist.
//!
//! [`Connector::open_part`]: ferry_storage::Connector::open_part

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use ferry_core::access::Action;
use ferry_storage::{Commit, PartFile};
use ferry_store::UploadRecord;
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use crate::data::{Authorized, client_path};
use crate::{Endpoint, EndpointError, Requester, Result};

/// An upload nobody touched for this long is abandoned, and swept: 24 hours after its last request (its
/// creation, a query of its offset, or bytes sent).
pub const UPLOAD_IDLE_SECS: i64 = 24 * 3600;

/// Uploads one sweep removes at most; the next sweep takes the rest.
const SWEEP_BATCH: i64 = 100;

/// Bytes gathered from the request before each write: fewer, larger writes than the network's small chunks.
const WRITE_BUFFER: usize = 1024 * 1024;

/// Where an upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadProgress {
    /// Bytes received and kept.
    pub offset: u64,
    /// The whole file's size.
    pub length: u64,
}

/// The uploads a request is writing to now: one writer per upload, so that two requests never write the same
/// bytes at once (a client that retries before the server noticed its last connection broke). With each, the
/// offset its body started at when the body is checked against a checksum: until the check, its bytes may yet be
/// taken back, so they are not reported as arrived.
#[derive(Default)]
pub(crate) struct Writing(Mutex<HashMap<Uuid, Option<u64>>>);

/// The right to write to one upload, given back when dropped (whatever way the request ends).
struct Writer<'a> {
    set: &'a Writing,
    id: Uuid,
}

impl Writing {
    fn holds(&self, id: Uuid) -> bool {
        self.0.lock().map(|s| s.contains_key(&id)).unwrap_or(true)
    }

    /// Where the checked body being written to upload `id` started, if one is.
    fn checking_from(&self, id: Uuid) -> Option<u64> {
        self.0.lock().ok()?.get(&id).copied().flatten()
    }

    fn take(&self, id: Uuid) -> Result<Writer<'_>> {
        let mut set = self
            .0
            .lock()
            .map_err(|_| EndpointError::Internal("upload table poisoned".into()))?;
        if set.contains_key(&id) {
            return Err(EndpointError::Conflict(format!(
                "another request is writing to upload {id}; ask for its offset and try again"
            )));
        }
        set.insert(id, None);
        Ok(Writer { set: self, id })
    }
}

impl Writer<'_> {
    /// The body being written from `at` is to be checked: until then, the upload is reported at `at`.
    fn checking_from(&self, at: u64) {
        if let Ok(mut set) = self.set.0.lock() {
            set.insert(self.id, Some(at));
        }
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.0.lock() {
            set.remove(&self.id);
        }
    }
}

impl Endpoint {
    /// Begins an upload of `length` bytes to `path`: `who` must be allowed to write there, and the path must
    /// name a file (not the root, nor a folder). An empty file is complete at once. Returns the upload's id.
    pub async fn create_upload(
        &self,
        who: Option<&Requester>,
        collection: Uuid,
        path: &str,
        length: u64,
    ) -> Result<Uuid> {
        let owner = who.ok_or(EndpointError::Unauthenticated)?;
        // Beyond what any file system (or the upload records) can hold.
        if i64::try_from(length).is_err() {
            return Err(EndpointError::BadRequest(format!(
                "length: {length} bytes is more than any storage holds"
            )));
        }
        let path = client_path("path", path)?;
        let a = self
            .authorize(who, collection, &path, Action::Write, "upload")
            .await?;
        if a.path == "/" {
            return Err(EndpointError::BadRequest(
                "path: the root of a collection is a folder, not a file".into(),
            ));
        }
        let id = Uuid::new_v4();
        // Made now, so that a folder in the way or a missing parent folder is told before any byte is sent.
        let part = a
            .connector
            .open_part(&a.storage_path, &id.to_string(), None)
            .await?;
        if length == 0 {
            finish(part).await?;
            return Ok(id);
        }
        let now = self.now();
        let record = UploadRecord {
            id,
            owner: owner.identity.id,
            collection,
            path,
            gateway: a.gateway,
            storage_path: a.storage_path.clone(),
            length,
            created: now,
            expires: now + UPLOAD_IDLE_SECS,
        };
        if let Err(e) = self.store.create_upload(&record).await {
            let _ = part.discard().await;
            return Err(e.into());
        }
        Ok(id)
    }

    /// How much of upload `id` arrived.
    pub async fn upload_progress(
        &self,
        who: Option<&Requester>,
        collection: Uuid,
        id: Uuid,
    ) -> Result<UploadProgress> {
        let (record, a) = self.own_upload(who, collection, id).await?;
        let offset = match self.uploads.checking_from(id) {
            Some(at) => at,
            None => open(&a, id).await?.initial_len(),
        };
        Ok(UploadProgress {
            offset,
            length: record.length,
        })
    }

    /// Appends `body` to upload `id` at `offset`, which must be what arrived so far (else `Conflict`: the
    /// client must ask again). A body that breaks keeps what arrived. With the last byte, the file takes its
    /// name (replacing a file there) and the upload ends.
    ///
    /// With `checksum` (the BLAKE3 digest of the whole body), the body's bytes are kept only if they match it:
    /// else none of them is (`ChecksumMismatch`), and neither are those of a body that broke, which cannot be
    /// checked; the upload stays at `offset`, and the file never takes its name with bytes that did not match.
    pub async fn append_upload<S, E>(
        &self,
        who: Option<&Requester>,
        collection: Uuid,
        id: Uuid,
        offset: u64,
        checksum: Option<[u8; 32]>,
        mut body: S,
    ) -> Result<UploadProgress>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let (record, a) = self.own_upload(who, collection, id).await?;
        let writer = self.uploads.take(id)?;
        let part = open(&a, id).await?;
        let at = part.initial_len();
        if offset != at {
            return Err(EndpointError::Conflict(format!(
                "Upload-Offset {offset} is not where upload {id} stands: {at} bytes arrived"
            )));
        }
        if checksum.is_some() {
            writer.checking_from(at);
        }
        let mut written = at;
        let mut buffer = BytesMut::new();
        let mut hasher = blake3::Hasher::new();
        let broke = loop {
            match body.next().await {
                Some(Ok(chunk)) => {
                    if checksum.is_some() {
                        hasher.update(&chunk);
                    }
                    let end = written + buffer.len() as u64 + chunk.len() as u64;
                    if end > record.length {
                        break Some(format!(
                            "the body goes beyond the upload's length of {} bytes",
                            record.length
                        ));
                    }
                    buffer.extend_from_slice(&chunk);
                    if buffer.len() >= WRITE_BUFFER {
                        written = write(&*part, written, &mut buffer).await?;
                    }
                }
                Some(Err(e)) => {
                    break Some(format!("the body broke: {e}"));
                }
                None => break None,
            }
        };
        // What arrived is kept, whatever ended the body, unless it was to be checked.
        written = write(&*part, written, &mut buffer).await?;
        self.store
            .touch_upload(id, self.now() + UPLOAD_IDLE_SECS)
            .await?;
        if let Some(expected) = checksum {
            let matches = broke.is_none() && *hasher.finalize().as_bytes() == expected;
            if !matches {
                part.set_len(at).await?;
                let why = broke.unwrap_or_else(|| "the body does not match its checksum".into());
                return Err(EndpointError::ChecksumMismatch(format!(
                    "{why}; none of its bytes are kept: upload {id} stands at {at} bytes"
                )));
            }
        }
        if let Some(why) = broke {
            return Err(EndpointError::BadRequest(format!(
                "{why}; {written} bytes of upload {id} are kept"
            )));
        }
        if written == record.length {
            // The permission may have been withdrawn while the bytes came: the file takes its name only if
            // writing there is still allowed.
            self.own_upload(who, collection, id).await?;
            let done = finish(part).await;
            self.store.delete_upload(id).await?;
            done?;
        }
        Ok(UploadProgress {
            offset: written,
            length: record.length,
        })
    }

    /// Cancels upload `id`: its bytes are removed and it ends.
    pub async fn terminate_upload(
        &self,
        who: Option<&Requester>,
        collection: Uuid,
        id: Uuid,
    ) -> Result<()> {
        let (_, a) = self.own_upload(who, collection, id).await?;
        a.connector
            .remove_part(&a.storage_path, &id.to_string())
            .await?;
        self.store.delete_upload(id).await?;
        Ok(())
    }

    /// Removes abandoned uploads (see [`UPLOAD_IDLE_SECS`]) and their bytes; returns how many. No access check:
    /// the bytes are removed even when their owner lost access, or their collection is gone.
    pub async fn sweep_uploads(&self) -> Result<usize> {
        let expired = self
            .store
            .list_expired_uploads(self.now(), SWEEP_BATCH)
            .await?;
        let mut swept = 0;
        for u in expired {
            if self.uploads.holds(u.id) {
                continue;
            }
            let removed = match self.gateway(u.gateway).await {
                Ok(g) => match self.connector(&g) {
                    Ok(c) => c
                        .remove_part(&u.storage_path, &u.id.to_string())
                        .await
                        .map_err(EndpointError::from),
                    Err(e) => Err(e),
                },
                // The gateway is gone, and its storage with it as far as Ferry is concerned.
                Err(EndpointError::NotFound(_)) => Ok(()),
                Err(e) => Err(e),
            };
            // The record goes either way: one file that cannot be removed must not stop every later sweep.
            if let Err(e) = removed {
                tracing::warn!(upload = %u.id, gateway = %u.gateway, error = %e,
                    "an abandoned upload's temporary file could not be removed");
            }
            self.store.delete_upload(u.id).await?;
            swept += 1;
        }
        Ok(swept)
    }

    /// `who`'s live upload `id` of `collection`, with `who`'s write access at its path checked now (and found
    /// to lead where it led when the upload began). Any other upload is "not found", whoever asks; a request
    /// that finds it allowed keeps it alive.
    async fn own_upload(
        &self,
        who: Option<&Requester>,
        collection: Uuid,
        id: Uuid,
    ) -> Result<(UploadRecord, Authorized)> {
        let caller = who.ok_or(EndpointError::Unauthenticated)?;
        let now = self.now();
        let record = self
            .store
            .get_upload(id)
            .await?
            .filter(|u| u.owner == caller.identity.id && u.collection == collection)
            .filter(|u| u.expires > now)
            .ok_or_else(|| EndpointError::NotFound(format!("no upload {id}")))?;
        let a = self
            .authorize(who, collection, &record.path, Action::Write, "upload")
            .await?;
        if a.gateway != record.gateway || a.storage_path != record.storage_path {
            return Err(EndpointError::Conflict(format!(
                "{} leads elsewhere than when upload {id} began (a symbolic link changed); it cannot go on",
                record.path
            )));
        }
        self.store.touch_upload(id, now + UPLOAD_IDLE_SECS).await?;
        Ok((record, a))
    }
}

/// The upload's temporary file, as earlier requests left it.
async fn open(a: &Authorized, id: Uuid) -> Result<Box<dyn PartFile>> {
    Ok(a.connector
        .open_part(&a.storage_path, &id.to_string(), None)
        .await?)
}

/// Writes what `buffer` holds at `offset`, empties it, and returns the offset after it.
async fn write(part: &dyn PartFile, offset: u64, buffer: &mut BytesMut) -> Result<u64> {
    if buffer.is_empty() {
        return Ok(offset);
    }
    let data = buffer.split().freeze();
    let len = data.len() as u64;
    part.write_at(offset, data).await?;
    Ok(offset + len)
}

/// Gives the complete file its name, on disk for good before the client hears so.
async fn finish(part: Box<dyn PartFile>) -> Result<()> {
    part.commit(Commit {
        overwrite: true,
        mtime: None,
        durable: true,
    })
    .await?;
    Ok(())
}
