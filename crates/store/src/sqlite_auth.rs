//! SQLite: grants, consents and the scope registry of the authorisation server (the bodies of the `Store`
//! methods added for issue 13, kept here so that `sqlite.rs` stays a list).

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use uuid::Uuid;

use crate::sqlite::{SqliteStore, backend, opt_uuid_col, uuid_col};
use crate::{GrantRecord, IssueOutcome, Result, ScopeRecord, SecretRecord, StoreError};

fn grant_from(row: &SqliteRow) -> Result<GrantRecord> {
    Ok(GrantRecord {
        id: uuid_col(row, "id")?,
        identity_id: opt_uuid_col(row, "identity_id")?.unwrap_or_default(),
        client_id: opt_uuid_col(row, "client_id")?.unwrap_or_default(),
        scopes: row.try_get("scopes").map_err(backend)?,
        created: row.try_get("created").map_err(backend)?,
        revoked_at: row.try_get("revoked_at").map_err(backend)?,
    })
}

fn json_col<T: serde::de::DeserializeOwned>(row: &SqliteRow, col: &str) -> Result<T> {
    let raw: String = row.try_get(col).map_err(backend)?;
    serde_json::from_str(&raw).map_err(|_| crate::sqlite::bad(col, &raw))
}

fn scope_from(row: &SqliteRow) -> Result<ScopeRecord> {
    Ok(ScopeRecord {
        id: uuid_col(row, "id")?,
        client_id: uuid_col(row, "client_id")?,
        scope_string: row.try_get("scope_string").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        description: row.try_get("description").map_err(backend)?,
        advertised: row.try_get::<i64, _>("advertised").map_err(backend)? != 0,
        allows_refresh_token: row
            .try_get::<i64, _>("allows_refresh_token")
            .map_err(backend)?
            != 0,
        required_domains: json_col(row, "required_domains")?,
        dependent_scopes: json_col(row, "dependent_scopes")?,
        created: row.try_get("created").map_err(backend)?,
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(e.to_string()))
}

/// Marks the grant revoked (creating its row if it has none) and revokes its secrets.
pub(crate) async fn revoke_grant_in(
    tx: &mut Transaction<'_, Sqlite>,
    grant_id: Uuid,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO grants(id, revoked_at) VALUES (?1, ?2) \
         ON CONFLICT(id) DO UPDATE SET revoked_at = COALESCE(revoked_at, excluded.revoked_at)",
    )
    .bind(grant_id.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    sqlx::query("UPDATE secrets SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL")
        .bind(now)
        .bind(grant_id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

pub(crate) async fn insert_secret_in(
    tx: &mut Transaction<'_, Sqlite>,
    s: &SecretRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO secrets(hash, kind, grant_id, client_id, identity_id, resource_server, scopes, extra, \
         issued_at, expires_at, used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&s.hash)
    .bind(s.kind.as_str())
    .bind(s.grant_id.to_string())
    .bind(s.client_id.map(|c| c.to_string()))
    .bind(s.identity_id.to_string())
    .bind(&s.resource_server)
    .bind(&s.scopes)
    .bind(s.extra.to_string())
    .bind(s.issued_at)
    .bind(s.expires_at)
    .bind(s.used_at)
    .bind(s.revoked_at)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

impl SqliteStore {
    pub(crate) async fn issue_secrets_tx(
        &self,
        grant: &GrantRecord,
        consume: Option<&str>,
        secrets: &[SecretRecord],
        now: i64,
    ) -> Result<IssueOutcome> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        if let Some(hash) = consume {
            let consumed = sqlx::query(
                "UPDATE secrets SET used_at = ?1 WHERE hash = ?2 AND kind IN ('refresh', 'code') AND used_at IS NULL \
                 AND revoked_at IS NULL AND expires_at > ?1 RETURNING grant_id",
            )
            .bind(now)
            .bind(hash)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            if consumed.is_none() {
                let used: Option<(String, Option<i64>)> = sqlx::query_as(
                    "SELECT grant_id, used_at FROM secrets WHERE hash = ? AND kind IN ('refresh', 'code')",
                )
                .bind(hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
                return match used {
                    Some((grant_id, Some(_))) => {
                        let id = Uuid::parse_str(&grant_id)
                            .map_err(|_| crate::sqlite::bad("grant_id", &grant_id))?;
                        revoke_grant_in(&mut tx, id, now).await?;
                        tx.commit().await.map_err(backend)?;
                        Ok(IssueOutcome::Reused)
                    }
                    _ => Ok(IssueOutcome::Invalid),
                };
            }
        }
        sqlx::query(
            "INSERT INTO grants(id, identity_id, client_id, scopes, created) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT(id) DO NOTHING",
        )
        .bind(grant.id.to_string())
        .bind(grant.identity_id.to_string())
        .bind(grant.client_id.to_string())
        .bind(&grant.scopes)
        .bind(grant.created)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let revoked: Option<i64> = sqlx::query_scalar("SELECT revoked_at FROM grants WHERE id = ?")
            .bind(grant.id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        if revoked.is_some() {
            // Dropping the transaction rolls back the consumption too: a revoked family stays as it was.
            return Ok(IssueOutcome::GrantRevoked);
        }
        for s in secrets {
            insert_secret_in(&mut tx, s).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(IssueOutcome::Issued)
    }

    /// Forgets grants older than `before` that no secret refers to any more: nothing can be issued for them
    /// (no code, refresh token or access token of theirs is left), so their row has nothing left to stop.
    pub(crate) async fn purge_grants(&self, before: i64) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM grants WHERE created < ? \
             AND NOT EXISTS (SELECT 1 FROM secrets WHERE secrets.grant_id = grants.id)",
        )
        .bind(before)
        .execute(&self.writer)
        .await
        .map_err(backend)?
        .rows_affected())
    }

    pub(crate) async fn revoke_grant_tx(&self, grant_id: Uuid, now: i64) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        revoke_grant_in(&mut tx, grant_id, now).await?;
        tx.commit().await.map_err(backend)
    }

    pub(crate) async fn list_grants_q(
        &self,
        identity_id: Uuid,
        client_id: Uuid,
    ) -> Result<Vec<GrantRecord>> {
        sqlx::query(
            "SELECT * FROM grants WHERE identity_id = ? AND client_id = ? ORDER BY created DESC, id",
        )
        .bind(identity_id.to_string())
        .bind(client_id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(grant_from)
        .collect()
    }

    pub(crate) async fn put_scope(&self, s: &ScopeRecord, create: bool) -> Result<()> {
        let sql = if create {
            "INSERT INTO scopes(id, client_id, scope_string, name, description, advertised, allows_refresh_token, \
             required_domains, dependent_scopes, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        } else {
            "UPDATE scopes SET client_id = ?2, scope_string = ?3, name = ?4, description = ?5, advertised = ?6, \
             allows_refresh_token = ?7, required_domains = ?8, dependent_scopes = ?9 WHERE id = ?1"
        };
        let n = sqlx::query(sql)
            .bind(s.id.to_string())
            .bind(s.client_id.to_string())
            .bind(&s.scope_string)
            .bind(&s.name)
            .bind(&s.description)
            .bind(s.advertised as i64)
            .bind(s.allows_refresh_token as i64)
            .bind(to_json(&s.required_domains)?)
            .bind(to_json(&s.dependent_scopes)?)
            .bind(s.created)
            .execute(&self.writer)
            .await
            .map_err(|e| match backend(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("the scope {}", s.scope_string))
                }
                StoreError::Backend(m) if m.contains("FOREIGN KEY") => StoreError::NotFound,
                other => other,
            })?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub(crate) async fn scope_where(
        &self,
        column: &str,
        value: &str,
    ) -> Result<Option<ScopeRecord>> {
        let sql = match column {
            "id" => "SELECT * FROM scopes WHERE id = ?",
            _ => "SELECT * FROM scopes WHERE scope_string = ?",
        };
        sqlx::query(sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| scope_from(&r))
            .transpose()
    }

    pub(crate) async fn list_scopes_q(&self, client_id: Option<Uuid>) -> Result<Vec<ScopeRecord>> {
        sqlx::query(
            "SELECT * FROM scopes WHERE ?1 IS NULL OR client_id = ?1 ORDER BY created, scope_string",
        )
        .bind(client_id.map(|c| c.to_string()))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(scope_from)
        .collect()
    }
}

impl SqliteStore {
    pub(crate) async fn set_password_hash_tx(
        &self,
        identity_id: Uuid,
        hash: &str,
        keep_session: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let n =
            sqlx::query("UPDATE identities SET password_hash = ? WHERE id = ? AND kind = 'person'")
                .bind(hash)
                .bind(identity_id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(backend)?
                .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        // `IS NOT` is NULL-safe: with no session to keep, every secret of the identity is revoked.
        sqlx::query(
            "UPDATE secrets SET revoked_at = ?1 WHERE identity_id = ?2 AND revoked_at IS NULL \
             AND hash IS NOT ?3",
        )
        .bind(now)
        .bind(identity_id.to_string())
        .bind(keep_session)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }
}
