//! Sites on SQLite.

use async_trait::async_trait;
use ferry_core::Identity;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use crate::sites::{Site, SiteCollection, SiteStore};
use crate::sqlite::{SqliteStore, backend, uuid_col};
use crate::{Result, StoreError};

fn site_from(row: &SqliteRow) -> Result<Site> {
    Ok(Site {
        id: uuid_col(row, "id")?,
        owner: uuid_col(row, "owner")?,
        public_url: row.try_get("public_url").map_err(backend)?,
        display_name: row.try_get("display_name").map_err(backend)?,
        version: row.try_get("version").map_err(backend)?,
        reported_at: row.try_get("reported_at").map_err(backend)?,
        created: row.try_get("created").map_err(backend)?,
    })
}

fn collection_from(row: &SqliteRow) -> Result<SiteCollection> {
    Ok(SiteCollection {
        id: uuid_col(row, "id")?,
        site: uuid_col(row, "site")?,
        display_name: row.try_get("display_name").map_err(backend)?,
        kind: row.try_get("kind").map_err(backend)?,
    })
}

#[async_trait]
impl SiteStore for SqliteStore {
    async fn create_site(&self, s: &Site) -> Result<()> {
        sqlx::query(
            "INSERT INTO sites(id, owner, public_url, display_name, version, reported_at, created) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(s.id.to_string())
        .bind(s.owner.to_string())
        .bind(&s.public_url)
        .bind(&s.display_name)
        .bind(s.version)
        .bind(s.reported_at)
        .bind(s.created)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn get_site(&self, id: Uuid) -> Result<Option<Site>> {
        sqlx::query("SELECT * FROM sites WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| site_from(&r))
            .transpose()
    }

    async fn list_sites(&self) -> Result<Vec<Site>> {
        sqlx::query("SELECT * FROM sites ORDER BY created, id")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(site_from)
            .collect()
    }

    async fn delete_site(&self, id: Uuid, now: i64) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        sqlx::query(
            "UPDATE tasks SET status = 'FAILED', nice_status = NULL, completion_time = ?, fatal_error = ? \
             WHERE runner = ? AND status IN ('ACTIVE', 'INACTIVE')",
        )
        .bind(now)
        .bind(
            serde_json::json!({"code": "ENDPOINT_NOT_FOUND",
                "description": "The endpoint running the task left the hub"})
            .to_string(),
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("DELETE FROM site_collections WHERE site = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let n = sqlx::query("DELETE FROM sites WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        if n == 0 {
            return Err(crate::StoreError::NotFound);
        }
        tx.commit().await.map_err(backend)
    }

    async fn report_site(
        &self,
        id: Uuid,
        public_url: &str,
        display_name: &str,
        collections: &[SiteCollection],
        now: i64,
    ) -> Result<i64> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let version: Option<i64> = sqlx::query_scalar(
            "UPDATE sites SET public_url = ?, display_name = ?, version = version + 1, reported_at = ? \
             WHERE id = ? RETURNING version",
        )
        .bind(public_url)
        .bind(display_name)
        .bind(now)
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let version = version.ok_or(StoreError::NotFound)?;
        sqlx::query("DELETE FROM site_collections WHERE site = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        for c in collections {
            sqlx::query(
                "INSERT INTO site_collections(id, site, display_name, kind) VALUES (?, ?, ?, ?)",
            )
            .bind(c.id.to_string())
            .bind(id.to_string())
            .bind(&c.display_name)
            .bind(&c.kind)
            .execute(&mut *tx)
            .await
            .map_err(|e| match backend(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("collection {} belongs to another endpoint", c.id))
                }
                other => other,
            })?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(version)
    }

    async fn site_collections(&self, site: Uuid) -> Result<Vec<SiteCollection>> {
        sqlx::query("SELECT * FROM site_collections WHERE site = ? ORDER BY display_name, id")
            .bind(site.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(collection_from)
            .collect()
    }

    async fn site_collection(&self, id: Uuid) -> Result<Option<SiteCollection>> {
        sqlx::query("SELECT * FROM site_collections WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| collection_from(&r))
            .transpose()
    }

    async fn site_of(&self, id: Uuid) -> Result<Option<Site>> {
        sqlx::query(
            "SELECT * FROM sites WHERE id = ?1 \
             OR id = (SELECT site FROM site_collections WHERE id = ?1)",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .map(|r| site_from(&r))
        .transpose()
    }

    async fn mirror_identity(&self, i: &Identity) -> Result<()> {
        // Only a real change is written: an update moves the policy generation, which drops compiled policies.
        sqlx::query(
            "INSERT INTO identities(id, username, name, email, organization, kind, password_hash, created) \
             VALUES (?, ?, ?, ?, ?, ?, NULL, ?) \
             ON CONFLICT(id) DO UPDATE SET username = excluded.username, name = excluded.name, \
             email = excluded.email, organization = excluded.organization \
             WHERE identities.username IS NOT excluded.username OR identities.name IS NOT excluded.name \
             OR identities.email IS NOT excluded.email OR identities.organization IS NOT excluded.organization",
        )
        .bind(i.id.to_string())
        .bind(&i.username)
        .bind(&i.name)
        .bind(&i.email)
        .bind(&i.organization)
        .bind(i.kind.as_str())
        .bind(i.created)
        .execute(&self.writer)
        .await
        .map_err(|e| match backend(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "identity '{}': another identity of this endpoint has that name",
                i.username
            )),
            other => other,
        })?;
        Ok(())
    }
}
