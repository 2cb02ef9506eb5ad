//! Resumable uploads on SQLite.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{SqliteQueryResult, SqliteRow};
use uuid::Uuid;

use crate::sqlite::{SqliteStore, backend, uuid_col};
use crate::uploads::{UploadRecord, UploadStore};
use crate::{Result, StoreError};

fn upload_from(row: &SqliteRow) -> Result<UploadRecord> {
    let length: i64 = row.try_get("length").map_err(backend)?;
    Ok(UploadRecord {
        id: uuid_col(row, "id")?,
        owner: uuid_col(row, "owner")?,
        collection: uuid_col(row, "collection")?,
        path: row.try_get("path").map_err(backend)?,
        gateway: uuid_col(row, "gateway")?,
        storage_path: row.try_get("storage_path").map_err(backend)?,
        length: u64::try_from(length)
            .map_err(|_| StoreError::Backend(format!("negative upload length {length}")))?,
        created: row.try_get("created").map_err(backend)?,
        expires: row.try_get("expires").map_err(backend)?,
    })
}

/// Whether a statement changed the one row it names.
fn one_row(done: std::result::Result<SqliteQueryResult, sqlx::Error>) -> Result<bool> {
    Ok(done.map_err(backend)?.rows_affected() == 1)
}

#[async_trait]
impl UploadStore for SqliteStore {
    async fn create_upload(&self, u: &UploadRecord) -> Result<()> {
        // SQLite integers are signed: a length beyond i64 cannot be kept (nor stored on any disk).
        let length = i64::try_from(u.length)
            .map_err(|_| StoreError::Backend(format!("upload length {} too large", u.length)))?;
        sqlx::query(
            "INSERT INTO uploads(id, owner, collection, path, gateway, storage_path, length, created, expires) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(u.id.to_string())
        .bind(u.owner.to_string())
        .bind(u.collection.to_string())
        .bind(&u.path)
        .bind(u.gateway.to_string())
        .bind(&u.storage_path)
        .bind(length)
        .bind(u.created)
        .bind(u.expires)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn get_upload(&self, id: Uuid) -> Result<Option<UploadRecord>> {
        sqlx::query("SELECT * FROM uploads WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| upload_from(&r))
            .transpose()
    }

    async fn touch_upload(&self, id: Uuid, expires: i64) -> Result<bool> {
        let q = sqlx::query("UPDATE uploads SET expires = ? WHERE id = ?").bind(expires);
        one_row(q.bind(id.to_string()).execute(&self.writer).await)
    }

    async fn delete_upload(&self, id: Uuid) -> Result<bool> {
        let q = sqlx::query("DELETE FROM uploads WHERE id = ?");
        one_row(q.bind(id.to_string()).execute(&self.writer).await)
    }

    async fn list_expired_uploads(&self, now: i64, limit: i64) -> Result<Vec<UploadRecord>> {
        sqlx::query("SELECT * FROM uploads WHERE expires <= ? ORDER BY expires, id LIMIT ?")
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(upload_from)
            .collect()
    }
}
