//! Federated identities and linked sets on SQLite.

use async_trait::async_trait;
use ferry_core::Identity;
use sqlx::Row;
use uuid::Uuid;

use crate::federation::{FederationStore, SignedIn};
use crate::sqlite::{SqliteStore, backend, identity_from, uuid_col};
use crate::{Result, Store, StoreError};

#[async_trait]
impl FederationStore for SqliteStore {
    async fn sign_in_external(
        &self,
        provider: Uuid,
        subject: &str,
        fresh: &Identity,
    ) -> Result<SignedIn> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let found = sqlx::query(
            "UPDATE identities SET name = ?, email = ?, organization = ? \
             WHERE id = (SELECT identity_id FROM external_subjects WHERE provider = ? AND subject = ?) \
             RETURNING *",
        )
        .bind(&fresh.name)
        .bind(&fresh.email)
        .bind(&fresh.organization)
        .bind(provider.to_string())
        .bind(subject)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        if let Some(row) = found {
            let identity = identity_from(&row)?;
            tx.commit().await.map_err(backend)?;
            return Ok(SignedIn {
                identity,
                created: false,
            });
        }
        sqlx::query(
            "INSERT INTO identities(id, username, name, email, organization, kind, password_hash, created, \
             identity_provider) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?)",
        )
        .bind(fresh.id.to_string())
        .bind(&fresh.username)
        .bind(&fresh.name)
        .bind(&fresh.email)
        .bind(&fresh.organization)
        .bind(fresh.kind.as_str())
        .bind(fresh.created)
        .bind(provider.to_string())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "INSERT INTO external_subjects(provider, subject, identity_id) VALUES (?, ?, ?)",
        )
        .bind(provider.to_string())
        .bind(subject)
        .bind(fresh.id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        let mut identity = fresh.clone();
        identity.identity_provider = Some(provider);
        Ok(SignedIn {
            identity,
            created: true,
        })
    }

    async fn external_subject(&self, identity: Uuid) -> Result<Option<(Uuid, String)>> {
        sqlx::query("SELECT provider, subject FROM external_subjects WHERE identity_id = ?")
            .bind(identity.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| {
                Ok((
                    uuid_col(&r, "provider")?,
                    r.try_get("subject").map_err(backend)?,
                ))
            })
            .transpose()
    }

    async fn identity_set(&self, identity: Uuid) -> Result<Vec<Identity>> {
        let rows = sqlx::query(
            "SELECT i.*, i.id = l.primary_id AS is_primary FROM identity_links l \
             JOIN identities i ON i.id = l.identity_id \
             WHERE l.primary_id = (SELECT primary_id FROM identity_links WHERE identity_id = ?) \
             ORDER BY is_primary DESC, i.username",
        )
        .bind(identity.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        if rows.is_empty() {
            return Ok(self.get_identity(identity).await?.into_iter().collect());
        }
        rows.iter().map(identity_from).collect()
    }

    async fn link_identity(&self, identity: Uuid, other: Uuid, now: i64) -> Result<()> {
        if identity == other {
            return Err(StoreError::Conflict(
                "an identity cannot be linked with itself".into(),
            ));
        }
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let primary_of = |id: Uuid| {
            sqlx::query_scalar::<_, String>(
                "SELECT COALESCE((SELECT primary_id FROM identity_links WHERE identity_id = ?1), ?1)",
            )
            .bind(id.to_string())
        };
        let primary = primary_of(identity)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let theirs = primary_of(other)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        if primary != theirs {
            // The primary's own row, then every member of the other set (or `other` alone) moves over.
            for member in [&primary, &theirs, &other.to_string()] {
                sqlx::query(
                    "INSERT INTO identity_links(identity_id, primary_id, linked_at) VALUES (?, ?, ?) \
                     ON CONFLICT(identity_id) DO NOTHING",
                )
                .bind(member)
                .bind(&primary)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
            sqlx::query("UPDATE identity_links SET primary_id = ? WHERE primary_id = ?")
                .bind(&primary)
                .bind(&theirs)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn unlink_identity(&self, identity: Uuid) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let primary: Option<String> = sqlx::query_scalar(
            "DELETE FROM identity_links WHERE identity_id = ? RETURNING primary_id",
        )
        .bind(identity.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        if primary.as_deref() == Some(identity.to_string().as_str()) {
            sqlx::query(
                "UPDATE identity_links SET primary_id = (SELECT identity_id FROM identity_links \
                 WHERE primary_id = ?1 ORDER BY linked_at, identity_id LIMIT 1) WHERE primary_id = ?1",
            )
            .bind(identity.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        // A set of one is no set.
        sqlx::query(
            "DELETE FROM identity_links WHERE primary_id IN (SELECT primary_id FROM identity_links \
             GROUP BY primary_id HAVING COUNT(*) = 1)",
        )
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn insert_upstream_login(
        &self,
        state_hash: &str,
        provider: &str,
        document: &str,
        expires_at: i64,
        now: i64,
        limit: i64,
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        sqlx::query("DELETE FROM upstream_logins WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let kept = sqlx::query(
            "INSERT INTO upstream_logins(state_hash, provider, document, expires_at) \
             SELECT ?, ?, ?, ? WHERE (SELECT COUNT(*) FROM upstream_logins) < ?",
        )
        .bind(state_hash)
        .bind(provider)
        .bind(document)
        .bind(expires_at)
        .bind(limit)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1;
        tx.commit().await.map_err(backend)?;
        Ok(kept)
    }

    async fn take_upstream_login(
        &self,
        state_hash: &str,
        now: i64,
    ) -> Result<Option<(String, String)>> {
        sqlx::query(
            "DELETE FROM upstream_logins WHERE state_hash = ? AND expires_at > ? RETURNING provider, document",
        )
        .bind(state_hash)
        .bind(now)
        .fetch_optional(&self.writer)
        .await
        .map_err(backend)?
        .map(|r| Ok((r.try_get("provider").map_err(backend)?, r.try_get("document").map_err(backend)?)))
        .transpose()
    }
}
