//! Resumable uploads in progress: the record of each, kept until it completes, is cancelled or expires.

use async_trait::async_trait;
use uuid::Uuid;

use crate::Result;

/// An upload that has begun and not finished. Its bytes are in a temporary file beside the file it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    /// Random (v4): knowing one upload's id tells nothing of another's.
    pub id: Uuid,
    /// The identity that began it: the only one that may continue it.
    pub owner: Uuid,
    pub collection: Uuid,
    /// The file it becomes, as a normalised path of the collection (as the client gave it).
    pub path: String,
    /// Where the temporary file lies: the storage gateway, and the canonical path (in the gateway's namespace)
    /// of the file it becomes. Every request must resolve the path to the same place.
    pub gateway: Uuid,
    pub storage_path: String,
    /// The whole file's size in bytes.
    pub length: u64,
    pub created: i64,
    /// When it is abandoned: a while after the last request that touched it (the endpoint sets the while).
    pub expires: i64,
}

#[async_trait]
pub trait UploadStore: Send + Sync {
    async fn create_upload(&self, u: &UploadRecord) -> Result<()>;
    /// The upload, expired or not (the caller decides what expiry means at its `now`).
    async fn get_upload(&self, id: Uuid) -> Result<Option<UploadRecord>>;
    /// Moves the expiry of an upload; false when there is no such upload.
    async fn touch_upload(&self, id: Uuid, expires: i64) -> Result<bool>;
    /// false when there was no such upload.
    async fn delete_upload(&self, id: Uuid) -> Result<bool>;
    /// Uploads whose expiry is at or before `now`, oldest expiry first, at most `limit`.
    async fn list_expired_uploads(&self, now: i64, limit: i64) -> Result<Vec<UploadRecord>>;
}
