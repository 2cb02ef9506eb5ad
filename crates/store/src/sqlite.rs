//! The embedded default: SQLite in the data directory, WAL mode, one file.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use ferry_core::{
    Client, ClientKind, Group, GroupRole, Identity, IdentityKind, Membership, MembershipStatus,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use ferry_core::acl::{AclPrincipal, AclRule};
use ferry_core::auth_policy::AuthPolicy;
use ferry_core::endpoint::{
    CollectionDoc, RoleDoc, SharingPolicyDoc, StorageGatewayDoc, UserCredentialDoc,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{
    AuditFilter, AuditRecord, Bookmark, CollectionFilter, ConsentRecord, GrantRecord, Invitation,
    IssueOutcome, RemovedInvitation, Result, ScopeRecord, SecretKind, SecretRecord, Store,
    StoreError,
};

/// The database holds signing keys and secret hashes: it is readable by its owner only (SQLite gives its WAL and
/// shared-memory files the same mode).
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

pub struct SqliteStore {
    /// Reads, from several connections at once.
    pub(crate) pool: SqlitePool,
    /// Every write, through one connection: SQLite takes one writer at a time anyway, and writers on separate
    /// connections wait for each other in the busy handler's sleeps (1 ms, 2 ms, 5 ms, … each), can fail a
    /// read-then-write transaction outright (SQLITE_BUSY_SNAPSHOT), and drop each other's page caches.
    pub(crate) writer: SqlitePool,
    /// How the readiness check opens the file: never creating it.
    probe: SqliteConnectOptions,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies the migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        private_file(path)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", path.display())))?;
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL loses no committed transaction when the process dies (kill -9), only possibly
            // the last ones on a power cut, and spares an fsync per commit (the transfer engine commits often).
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let cannot =
            |e: sqlx::Error| StoreError::Backend(format!("cannot open {}: {e}", path.display()));
        // SQLite gives sqlx no lock to migrate under: openers at once (a server starting while an admin command
        // runs, two nodes) would each apply the same migration, and one opener's first connection (which sets
        // WAL mode) can find the database locked by another's migration. A lock file beside the database makes
        // them take turns from the first connection to the last; the later ones find the migrations applied.
        let lock_path = path.with_extension("migrate.lock");
        let lock = tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .and_then(|f| f.lock().map(|()| f))
                .map_err(|e| {
                    StoreError::Backend(format!("cannot lock {}: {e}", lock_path.display()))
                })
        })
        .await
        .map_err(|e| StoreError::Backend(format!("cannot lock the database: {e}")))??;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await
            .map_err(cannot)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        let probe = opts
            .clone()
            .create_if_missing(false)
            .busy_timeout(Duration::from_secs(1));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await
            .map_err(cannot)?;
        drop(lock);
        Ok(Self {
            pool,
            writer,
            probe,
        })
    }
}

impl SqliteStore {
    /// Runs a `DELETE … WHERE id = ?` for one row; `NotFound` when there was none.
    pub(crate) async fn delete_one(&self, sql: &'static str, id: Uuid) -> Result<()> {
        affected(
            sqlx::query(sql)
                .bind(id.to_string())
                .execute(&self.writer)
                .await
                .map_err(backend)?
                .rows_affected(),
        )
    }
}

impl SqliteStore {
    /// Deletes what depends on row `id` (`dependents`), then the row (`row`), in one transaction; NotFound
    /// (and nothing deleted) when there is no such row. Both statements bind `id` as their one parameter.
    pub(crate) async fn delete_with_dependents(
        &self,
        dependents: &'static str,
        row: &'static str,
        id: Uuid,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        sqlx::query(dependents)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let n = sqlx::query(row)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await.map_err(backend)
    }
}

pub(crate) fn backend(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return StoreError::Conflict(db.message().to_string());
    }
    StoreError::Backend(e.to_string())
}

pub(crate) fn uuid_col(row: &SqliteRow, col: &str) -> Result<Uuid> {
    let s: String = row.try_get(col).map_err(backend)?;
    Uuid::parse_str(&s).map_err(|e| StoreError::Backend(format!("bad uuid in {col}: {e}")))
}

pub(crate) fn opt_uuid_col(row: &SqliteRow, col: &str) -> Result<Option<Uuid>> {
    let s: Option<String> = row.try_get(col).map_err(backend)?;
    s.map(|s| {
        Uuid::parse_str(&s).map_err(|e| StoreError::Backend(format!("bad uuid in {col}: {e}")))
    })
    .transpose()
}

pub(crate) fn bad(col: &str, v: &str) -> StoreError {
    StoreError::Backend(format!("unexpected value '{v}' in column {col}"))
}

pub(crate) fn identity_from(row: &SqliteRow) -> Result<Identity> {
    let kind: String = row.try_get("kind").map_err(backend)?;
    Ok(Identity {
        id: uuid_col(row, "id")?,
        username: row.try_get("username").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        email: row.try_get("email").map_err(backend)?,
        organization: row.try_get("organization").map_err(backend)?,
        kind: IdentityKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
        created: row.try_get("created").map_err(backend)?,
        identity_provider: opt_uuid_col(row, "identity_provider")?,
    })
}

fn client_from(row: &SqliteRow) -> Result<Client> {
    let kind: String = row.try_get("kind").map_err(backend)?;
    let uris: String = row.try_get("redirect_uris").map_err(backend)?;
    Ok(Client {
        id: uuid_col(row, "id")?,
        name: row.try_get("name").map_err(backend)?,
        kind: ClientKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
        redirect_uris: serde_json::from_str(&uris).map_err(|_| bad("redirect_uris", &uris))?,
        owner: opt_uuid_col(row, "owner")?,
        template_id: opt_uuid_col(row, "template_id")?,
        created: row.try_get("created").map_err(backend)?,
        verified: row.try_get::<i64, _>("verified").map_err(backend)? != 0,
        grant_types: opt_json_list(row, "grant_types")?,
        allowed_scopes: opt_json_list(row, "allowed_scopes")?,
    })
}

fn opt_json_list(row: &SqliteRow, col: &str) -> Result<Option<Vec<String>>> {
    let raw: Option<String> = row.try_get(col).map_err(backend)?;
    raw.map(|r| serde_json::from_str(&r).map_err(|_| bad(col, &r)))
        .transpose()
}

fn secret_from(row: &SqliteRow) -> Result<SecretRecord> {
    let kind: String = row.try_get("kind").map_err(backend)?;
    let extra: String = row.try_get("extra").map_err(backend)?;
    Ok(SecretRecord {
        hash: row.try_get("hash").map_err(backend)?,
        kind: SecretKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
        grant_id: uuid_col(row, "grant_id")?,
        client_id: opt_uuid_col(row, "client_id")?,
        identity_id: uuid_col(row, "identity_id")?,
        resource_server: row.try_get("resource_server").map_err(backend)?,
        scopes: row.try_get("scopes").map_err(backend)?,
        extra: serde_json::from_str(&extra).map_err(|_| bad("extra", &extra))?,
        issued_at: row.try_get("issued_at").map_err(backend)?,
        expires_at: row.try_get("expires_at").map_err(backend)?,
        used_at: row.try_get("used_at").map_err(backend)?,
        revoked_at: row.try_get("revoked_at").map_err(backend)?,
    })
}

fn consent_from(row: &SqliteRow) -> Result<ConsentRecord> {
    Ok(ConsentRecord {
        id: uuid_col(row, "id")?,
        identity_id: uuid_col(row, "identity_id")?,
        client_id: uuid_col(row, "client_id")?,
        scope: row.try_get("scope").map_err(backend)?,
        parent_id: opt_uuid_col(row, "parent_id")?,
        created: row.try_get("created").map_err(backend)?,
        last_used: row.try_get("last_used").map_err(backend)?,
    })
}

fn group_from(row: &SqliteRow) -> Result<Group> {
    Ok(Group {
        id: uuid_col(row, "id")?,
        name: row.try_get("name").map_err(backend)?,
        description: row.try_get("description").map_err(backend)?,
        parent_id: opt_uuid_col(row, "parent_id")?,
        visibility: row.try_get("visibility").map_err(backend)?,
        members_visibility: row.try_get("members_visibility").map_err(backend)?,
        created: row.try_get("created").map_err(backend)?,
    })
}

fn membership_from(row: &SqliteRow) -> Result<Membership> {
    let role: String = row.try_get("role").map_err(backend)?;
    let status: String = row.try_get("status").map_err(backend)?;
    Ok(Membership {
        group_id: uuid_col(row, "group_id")?,
        identity_id: uuid_col(row, "identity_id")?,
        username: row.try_get("username").map_err(backend)?,
        role: GroupRole::parse(&role).ok_or_else(|| bad("role", &role))?,
        status: MembershipStatus::parse(&status).ok_or_else(|| bad("status", &status))?,
        updated: row.try_get("updated").map_err(backend)?,
    })
}

fn to_doc<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v)
        .map_err(|e| StoreError::Backend(format!("cannot encode a document: {e}")))
}

fn doc_col<T: DeserializeOwned>(row: &SqliteRow) -> Result<T> {
    let text: String = row.try_get("doc").map_err(backend)?;
    serde_json::from_str(&text)
        .map_err(|e| StoreError::Backend(format!("stored document is unreadable: {e}")))
}

fn docs<T: DeserializeOwned>(rows: Vec<SqliteRow>) -> Result<Vec<T>> {
    rows.iter().map(doc_col).collect()
}

fn affected(n: u64) -> Result<()> {
    if n == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn acl_from(row: &SqliteRow) -> Result<AclRule> {
    let kind: String = row.try_get("principal_type").map_err(backend)?;
    let principal: String = row.try_get("principal").map_err(backend)?;
    let perms: String = row.try_get("permissions").map_err(backend)?;
    let extra: serde_json::Value = doc_col(row)?;
    Ok(AclRule {
        id: uuid_col(row, "id")?,
        collection_id: uuid_col(row, "collection_id")?,
        principal: AclPrincipal::from_parts(&kind, &principal)
            .ok_or_else(|| bad("principal", &principal))?,
        path: row.try_get("path").map_err(backend)?,
        write: perms == "rw",
        expires_at: row.try_get("expires_at").map_err(backend)?,
        created: row.try_get("created").map_err(backend)?,
        notify_email: extra["notify_email"].as_str().map(str::to_string),
        notify_message: extra["notify_message"].as_str().map(str::to_string),
        folder: extra["folder"].as_bool().unwrap_or(true),
    })
}

fn acl_extra(r: &AclRule) -> String {
    serde_json::json!({
        "notify_email": r.notify_email,
        "notify_message": r.notify_message,
        "folder": r.folder,
    })
    .to_string()
}

/// Inserts a rule if its collection holds fewer than `max` rules: the count and the insert are one statement, so
/// that parallel creates (from any process) cannot pass the limit together.
fn acl_insert(
    r: &AclRule,
    max: usize,
) -> sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    sqlx::query(
        "INSERT INTO acl_rules(id, collection_id, principal_type, principal, path, permissions, expires_at, doc, created) \
         SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? \
         WHERE (SELECT count(*) FROM acl_rules WHERE collection_id = ?) < ?",
    )
    .bind(r.id.to_string())
    .bind(r.collection_id.to_string())
    .bind(r.principal.type_str())
    .bind(r.principal.id_str())
    .bind(r.path.clone())
    .bind(if r.write { "rw" } else { "r" })
    .bind(r.expires_at)
    .bind(acl_extra(r))
    .bind(r.created)
    .bind(r.collection_id.to_string())
    .bind(i64::try_from(max).unwrap_or(i64::MAX))
}

fn acl_error(e: sqlx::Error) -> StoreError {
    match backend(e) {
        StoreError::Conflict(_) => {
            StoreError::Conflict("a rule for this principal and path".into())
        }
        StoreError::Backend(m) if m.contains("FOREIGN KEY") => StoreError::NotFound,
        other => other,
    }
}

fn invitation_from(row: &SqliteRow) -> Result<Invitation> {
    Ok(Invitation {
        id: uuid_col(row, "id")?,
        collection_id: uuid_col(row, "collection_id")?,
        rule_id: uuid_col(row, "rule_id")?,
        email: row.try_get("email").map_err(backend)?,
        code_hash: row.try_get("code_hash").map_err(backend)?,
        invited_by: uuid_col(row, "invited_by")?,
        created: row.try_get("created").map_err(backend)?,
        expires_at: row.try_get("expires_at").map_err(backend)?,
        redeemed_by: opt_uuid_col(row, "redeemed_by")?,
        redeemed_at: row.try_get("redeemed_at").map_err(backend)?,
    })
}

fn bookmark_from(row: &SqliteRow) -> Result<Bookmark> {
    Ok(Bookmark {
        id: uuid_col(row, "id")?,
        owner: uuid_col(row, "owner")?,
        name: row.try_get("name").map_err(backend)?,
        collection_id: uuid_col(row, "collection_id")?,
        path: row.try_get("path").map_err(backend)?,
        pinned: row.try_get::<i64, _>("pinned").map_err(backend)? != 0,
        created: row.try_get("created").map_err(backend)?,
    })
}

fn bookmark_error(e: sqlx::Error) -> StoreError {
    match backend(e) {
        StoreError::Conflict(_) => StoreError::Conflict("a bookmark with this name".into()),
        other => other,
    }
}

fn audit_from(row: &SqliteRow) -> Result<AuditRecord> {
    Ok(AuditRecord {
        seq: row.try_get("seq").map_err(backend)?,
        time: row.try_get("time").map_err(backend)?,
        identity_id: opt_uuid_col(row, "identity_id")?,
        action: row.try_get("action").map_err(backend)?,
        collection_id: opt_uuid_col(row, "collection_id")?,
        path: row.try_get("path").map_err(backend)?,
        allowed: row.try_get::<i64, _>("allowed").map_err(backend)? != 0,
        detail: row.try_get("detail").map_err(backend)?,
    })
}

macro_rules! membership_select {
    ($where:literal) => {
        concat!(
            "SELECT m.group_id, m.identity_id, i.username, m.role, m.status, m.updated ",
            "FROM memberships m JOIN identities i ON i.id = m.identity_id ",
            $where
        )
    };
}

#[async_trait]
impl Store for SqliteStore {
    /// Opens the file afresh and reads a table: pooled connections keep a removed or replaced database file
    /// open and would go on answering from it, so only a new connection finds that the database is gone.
    async fn ping(&self) -> Result<()> {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect_with(&self.probe)
            .await
            .map_err(backend)?;
        let read = sqlx::query("SELECT 1 FROM meta LIMIT 1")
            .fetch_optional(&mut c)
            .await
            .map(|_| ())
            .map_err(backend);
        let _ = c.close().await;
        read
    }

    async fn meta_get_or_insert(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        self.meta_get(key).await?.ok_or(StoreError::NotFound)
    }

    async fn meta_get(&self, key: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    async fn meta_set(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn create_identity(&self, i: &Identity, password_hash: Option<&str>) -> Result<()> {
        sqlx::query(
            "INSERT INTO identities(id, username, name, email, organization, kind, password_hash, created, \
             identity_provider) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(i.id.to_string())
        .bind(&i.username)
        .bind(&i.name)
        .bind(&i.email)
        .bind(&i.organization)
        .bind(i.kind.as_str())
        .bind(password_hash)
        .bind(i.created)
        .bind(i.identity_provider.map(|p| p.to_string()))
        .execute(&self.writer)
        .await
        .map_err(|e| match backend(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("identity '{}'", i.username)),
            other => other,
        })?;
        Ok(())
    }

    async fn get_identity(&self, id: Uuid) -> Result<Option<Identity>> {
        sqlx::query("SELECT * FROM identities WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| identity_from(&r))
            .transpose()
    }

    async fn find_identity(&self, username: &str) -> Result<Option<Identity>> {
        sqlx::query("SELECT * FROM identities WHERE username = ?")
            .bind(username.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| identity_from(&r))
            .transpose()
    }

    async fn list_identities(&self) -> Result<Vec<Identity>> {
        sqlx::query("SELECT * FROM identities ORDER BY username")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(identity_from)
            .collect()
    }

    async fn delete_identity(&self, id: Uuid) -> Result<()> {
        self.delete_with_dependents(
            "DELETE FROM secrets WHERE identity_id = ?1 OR client_id = ?1",
            "DELETE FROM identities WHERE id = ?",
            id,
        )
        .await
    }

    async fn password_hash(&self, id: Uuid) -> Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT password_hash FROM identities WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .flatten())
    }

    async fn set_password_hash(
        &self,
        identity_id: Uuid,
        hash: &str,
        keep_session: Option<&str>,
        now: i64,
    ) -> Result<()> {
        self.set_password_hash_tx(identity_id, hash, keep_session, now)
            .await
    }

    async fn create_client(
        &self,
        identity: &Identity,
        c: &Client,
        secret_hash: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO identities(id, username, name, email, organization, kind, password_hash, created) \
             VALUES (?, ?, ?, NULL, NULL, 'client', NULL, ?)",
        )
        .bind(identity.id.to_string())
        .bind(&identity.username)
        .bind(&identity.name)
        .bind(identity.created)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "INSERT INTO clients(id, name, kind, secret_hash, redirect_uris, owner, template_id, created, \
             verified, grant_types, allowed_scopes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(c.id.to_string())
        .bind(&c.name)
        .bind(c.kind.as_str())
        .bind(secret_hash)
        .bind(serde_json::to_string(&c.redirect_uris).unwrap_or_else(|_| "[]".into()))
        .bind(c.owner.map(|o| o.to_string()))
        .bind(c.template_id.map(|t| t.to_string()))
        .bind(c.created)
        .bind(c.verified as i64)
        .bind(c.grant_types.as_ref().map(|g| serde_json::to_string(g).unwrap_or_default()))
        .bind(c.allowed_scopes.as_ref().map(|a| serde_json::to_string(a).unwrap_or_default()))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn get_client(&self, id: Uuid) -> Result<Option<Client>> {
        sqlx::query("SELECT * FROM clients WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| client_from(&r))
            .transpose()
    }

    async fn list_clients(&self) -> Result<Vec<Client>> {
        sqlx::query("SELECT * FROM clients ORDER BY created, id")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(client_from)
            .collect()
    }

    async fn client_secret_hash(&self, id: Uuid) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar::<_, Option<String>>("SELECT secret_hash FROM clients WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?
                .flatten(),
        )
    }

    async fn set_client_secret_hash(&self, id: Uuid, hash: &str) -> Result<()> {
        let n = sqlx::query("UPDATE clients SET secret_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .map_err(backend)?
            .rows_affected();
        if n == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    async fn insert_secret(&self, s: &SecretRecord) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        crate::sqlite_auth::insert_secret_in(&mut tx, s).await?;
        tx.commit().await.map_err(backend)
    }

    async fn get_secret(&self, hash: &str) -> Result<Option<SecretRecord>> {
        sqlx::query("SELECT * FROM secrets WHERE hash = ?")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| secret_from(&r))
            .transpose()
    }

    async fn consume_secret(&self, hash: &str, now: i64) -> Result<Option<(SecretRecord, bool)>> {
        // One statement, so two concurrent redemptions cannot both see the secret unused.
        let first = sqlx::query(
            "UPDATE secrets SET used_at = ? WHERE hash = ? AND used_at IS NULL RETURNING *",
        )
        .bind(now)
        .bind(hash)
        .fetch_optional(&self.writer)
        .await
        .map_err(backend)?;
        if let Some(row) = first {
            return Ok(Some((secret_from(&row)?, true)));
        }
        Ok(self.get_secret(hash).await?.map(|s| (s, false)))
    }

    async fn revoke_secret(&self, hash: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE secrets SET revoked_at = ? WHERE hash = ? AND revoked_at IS NULL")
            .bind(now)
            .bind(hash)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn revoke_grant(&self, grant_id: Uuid, now: i64) -> Result<()> {
        self.revoke_grant_tx(grant_id, now).await
    }

    async fn revoke_client_secrets(&self, client_id: Uuid, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE secrets SET revoked_at = ?1 WHERE (client_id = ?2 OR identity_id = ?2) AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(client_id.to_string())
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn purge_expired(&self, now: i64, grace: i64) -> Result<u64> {
        let n = sqlx::query("DELETE FROM secrets WHERE expires_at < ?")
            .bind(now - grace)
            .execute(&self.writer)
            .await
            .map_err(backend)?
            .rows_affected();
        self.purge_grants(now - grace).await?;
        Ok(n)
    }

    async fn upsert_consent(&self, c: &ConsentRecord) -> Result<Uuid> {
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT id FROM consents WHERE identity_id = ? AND client_id = ? AND scope = ? \
             AND COALESCE(parent_id, '') = COALESCE(?, '')",
        )
        .bind(c.identity_id.to_string())
        .bind(c.client_id.to_string())
        .bind(&c.scope)
        .bind(c.parent_id.map(|p| p.to_string()))
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        if let Some(id) = existing {
            sqlx::query("UPDATE consents SET last_used = ? WHERE id = ?")
                .bind(c.last_used)
                .bind(&id)
                .execute(&self.writer)
                .await
                .map_err(backend)?;
            return Uuid::parse_str(&id).map_err(|e| StoreError::Backend(e.to_string()));
        }
        sqlx::query(
            "INSERT INTO consents(id, identity_id, client_id, scope, parent_id, created, last_used) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(c.id.to_string())
        .bind(c.identity_id.to_string())
        .bind(c.client_id.to_string())
        .bind(&c.scope)
        .bind(c.parent_id.map(|p| p.to_string()))
        .bind(c.created)
        .bind(c.last_used)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(c.id)
    }

    async fn list_consents(&self, identity_id: Uuid) -> Result<Vec<ConsentRecord>> {
        sqlx::query("SELECT * FROM consents WHERE identity_id = ? ORDER BY created, id")
            .bind(identity_id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(consent_from)
            .collect()
    }

    async fn create_group(&self, g: &Group, owner: &Membership) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO groups(id, name, description, parent_id, visibility, members_visibility, created) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(g.id.to_string())
        .bind(&g.name)
        .bind(&g.description)
        .bind(g.parent_id.map(|p| p.to_string()))
        .bind(&g.visibility)
        .bind(&g.members_visibility)
        .bind(g.created)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        put_membership_in(&mut tx, owner).await?;
        tx.commit().await.map_err(backend)
    }

    async fn get_group(&self, id: Uuid) -> Result<Option<Group>> {
        sqlx::query("SELECT * FROM groups WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| group_from(&r))
            .transpose()
    }

    async fn update_group(&self, g: &Group) -> Result<()> {
        let n = sqlx::query(
            "UPDATE groups SET name = ?, description = ?, parent_id = ?, visibility = ?, members_visibility = ? WHERE id = ?",
        )
        .bind(&g.name)
        .bind(&g.description)
        .bind(g.parent_id.map(|p| p.to_string()))
        .bind(&g.visibility)
        .bind(&g.members_visibility)
        .bind(g.id.to_string())
        .execute(&self.writer)
        .await
        .map_err(backend)?
        .rows_affected();
        if n == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    async fn delete_group(&self, id: Uuid) -> Result<()> {
        self.delete_one("DELETE FROM groups WHERE id = ?", id).await
    }

    async fn active_group_ids(&self, identity_id: Uuid) -> Result<Vec<Uuid>> {
        sqlx::query("SELECT group_id FROM memberships WHERE identity_id = ? AND status = 'active'")
            .bind(identity_id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(|r| uuid_col(r, "group_id"))
            .collect()
    }

    async fn groups_of(&self, identity_id: Uuid) -> Result<Vec<Group>> {
        sqlx::query(
            "SELECT g.* FROM groups g JOIN memberships m ON m.group_id = g.id WHERE m.identity_id = ? ORDER BY g.name, g.id",
        )
        .bind(identity_id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(group_from)
        .collect()
    }

    async fn memberships(&self, group_id: Uuid) -> Result<Vec<Membership>> {
        sqlx::query(membership_select!(
            "WHERE m.group_id = ? ORDER BY i.username"
        ))
        .bind(group_id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(membership_from)
        .collect()
    }

    async fn membership(&self, group_id: Uuid, identity_id: Uuid) -> Result<Option<Membership>> {
        sqlx::query(membership_select!(
            "WHERE m.group_id = ? AND m.identity_id = ?"
        ))
        .bind(group_id.to_string())
        .bind(identity_id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .map(|r| membership_from(&r))
        .transpose()
    }

    async fn put_membership(&self, m: &Membership) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        put_membership_in(&mut tx, m).await?;
        tx.commit().await.map_err(backend)
    }

    async fn delete_membership(&self, group_id: Uuid, identity_id: Uuid) -> Result<()> {
        let n = sqlx::query("DELETE FROM memberships WHERE group_id = ? AND identity_id = ?")
            .bind(group_id.to_string())
            .bind(identity_id.to_string())
            .execute(&self.writer)
            .await
            .map_err(backend)?
            .rows_affected();
        if n == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    async fn create_gateway(&self, doc: &StorageGatewayDoc) -> Result<()> {
        sqlx::query("INSERT INTO storage_gateways(id, doc, created) VALUES (?, ?, ?)")
            .bind(doc.id.to_string())
            .bind(to_doc(doc)?)
            .bind(now_secs())
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get_gateway(&self, id: Uuid) -> Result<Option<StorageGatewayDoc>> {
        sqlx::query("SELECT doc FROM storage_gateways WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| doc_col(&r))
            .transpose()
    }

    async fn list_gateways(&self) -> Result<Vec<StorageGatewayDoc>> {
        docs(
            sqlx::query("SELECT doc FROM storage_gateways ORDER BY created, id")
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?,
        )
    }

    async fn update_gateway(&self, doc: &StorageGatewayDoc) -> Result<()> {
        affected(
            sqlx::query("UPDATE storage_gateways SET doc = ? WHERE id = ?")
                .bind(to_doc(doc)?)
                .bind(doc.id.to_string())
                .execute(&self.writer)
                .await
                .map_err(backend)?
                .rows_affected(),
        )
    }

    async fn delete_gateway(&self, id: Uuid) -> Result<()> {
        let r = sqlx::query("DELETE FROM storage_gateways WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .map_err(|e| match backend(e) {
                StoreError::Backend(m) if m.contains("FOREIGN KEY") => {
                    StoreError::Conflict("collections still use this storage gateway".into())
                }
                other => other,
            })?;
        affected(r.rows_affected())
    }

    async fn create_collection(&self, doc: &CollectionDoc) -> Result<()> {
        sqlx::query(
            "INSERT INTO collections(id, collection_type, storage_gateway_id, mapped_collection_id, identity_id, doc, created) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(doc.id.to_string())
        .bind(doc.collection_type.as_str())
        .bind(doc.storage_gateway_id.map(|g| g.to_string()))
        .bind(doc.mapped_collection_id.map(|m| m.to_string()))
        .bind(doc.identity_id.map(|i| i.to_string()))
        .bind(to_doc(doc)?)
        .bind(now_secs())
        .execute(&self.writer)
        .await
        .map_err(|e| match backend(e) {
            StoreError::Backend(m) if m.contains("FOREIGN KEY") || m.contains("NOT NULL") => StoreError::NotFound,
            other => other,
        })?;
        Ok(())
    }

    async fn get_collection(&self, id: Uuid) -> Result<Option<CollectionDoc>> {
        sqlx::query("SELECT doc FROM collections WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| doc_col(&r))
            .transpose()
    }

    async fn list_collections(&self, f: &CollectionFilter) -> Result<Vec<CollectionDoc>> {
        // NULL parameters switch a condition off, so one statement serves every filter.
        docs(
            sqlx::query(
                "SELECT doc FROM collections WHERE (?1 IS NULL OR collection_type = ?1) \
                 AND (?2 IS NULL OR storage_gateway_id = ?2) AND (?3 IS NULL OR mapped_collection_id = ?3) \
                 AND (?4 IS NULL OR identity_id = ?4) ORDER BY created, id",
            )
            .bind(f.collection_type.map(|t| t.as_str()))
            .bind(f.storage_gateway_id.map(|g| g.to_string()))
            .bind(f.mapped_collection_id.map(|m| m.to_string()))
            .bind(f.identity_id.map(|i| i.to_string()))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?,
        )
    }

    async fn update_collection(&self, doc: &CollectionDoc) -> Result<()> {
        affected(
            sqlx::query("UPDATE collections SET doc = ?, identity_id = ? WHERE id = ?")
                .bind(to_doc(doc)?)
                .bind(doc.identity_id.map(|i| i.to_string()))
                .bind(doc.id.to_string())
                .execute(&self.writer)
                .await
                .map_err(backend)?
                .rows_affected(),
        )
    }

    async fn delete_collection(&self, id: Uuid) -> Result<()> {
        self.delete_one("DELETE FROM collections WHERE id = ?", id)
            .await
    }

    async fn create_role(&self, role: &RoleDoc) -> Result<()> {
        sqlx::query(
            "INSERT INTO roles(id, collection_id, principal, role, created) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(role.id.to_string())
        .bind(role.collection.map(|c| c.to_string()))
        .bind(&role.principal)
        .bind(role.role.as_str())
        .bind(now_secs())
        .execute(&self.writer)
        .await
        .map_err(|e| match backend(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict("this principal already has this role".into())
            }
            StoreError::Backend(m) if m.contains("FOREIGN KEY") => StoreError::NotFound,
            other => other,
        })?;
        Ok(())
    }

    async fn get_role(&self, id: Uuid) -> Result<Option<RoleDoc>> {
        sqlx::query("SELECT * FROM roles WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| role_from(&r))
            .transpose()
    }

    async fn list_roles(&self, collection: Option<Uuid>) -> Result<Vec<RoleDoc>> {
        sqlx::query("SELECT * FROM roles WHERE COALESCE(collection_id, '') = COALESCE(?, '') ORDER BY created, id")
            .bind(collection.map(|c| c.to_string()))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(role_from)
            .collect()
    }

    async fn delete_role(&self, id: Uuid) -> Result<()> {
        self.delete_one("DELETE FROM roles WHERE id = ?", id).await
    }

    async fn create_sharing_policy(&self, doc: &SharingPolicyDoc) -> Result<()> {
        sqlx::query(
            "INSERT INTO sharing_policies(id, collection_id, doc, created) VALUES (?, ?, ?, ?)",
        )
        .bind(doc.id.to_string())
        .bind(doc.collection_id.to_string())
        .bind(to_doc(doc)?)
        .bind(now_secs())
        .execute(&self.writer)
        .await
        .map_err(|e| match backend(e) {
            StoreError::Backend(m) if m.contains("FOREIGN KEY") => StoreError::NotFound,
            other => other,
        })?;
        Ok(())
    }

    async fn get_sharing_policy(&self, id: Uuid) -> Result<Option<SharingPolicyDoc>> {
        sqlx::query("SELECT doc FROM sharing_policies WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| doc_col(&r))
            .transpose()
    }

    async fn list_sharing_policies(&self, collection: Uuid) -> Result<Vec<SharingPolicyDoc>> {
        docs(
            sqlx::query(
                "SELECT doc FROM sharing_policies WHERE collection_id = ? ORDER BY created, id",
            )
            .bind(collection.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?,
        )
    }

    async fn delete_sharing_policy(&self, id: Uuid) -> Result<()> {
        self.delete_one("DELETE FROM sharing_policies WHERE id = ?", id)
            .await
    }

    async fn create_user_credential(&self, doc: &UserCredentialDoc) -> Result<()> {
        sqlx::query(
            "INSERT INTO user_credentials(id, identity_id, storage_gateway_id, doc, created) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(doc.id.to_string())
        .bind(doc.identity_id.map(|i| i.to_string()).unwrap_or_default())
        .bind(doc.storage_gateway_id.to_string())
        .bind(to_doc(doc)?)
        .bind(now_secs())
        .execute(&self.writer)
        .await
        .map_err(|e| match backend(e) {
            StoreError::Backend(m) if m.contains("FOREIGN KEY") => StoreError::NotFound,
            other => other,
        })?;
        Ok(())
    }

    async fn get_user_credential(&self, id: Uuid) -> Result<Option<UserCredentialDoc>> {
        sqlx::query("SELECT doc FROM user_credentials WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| doc_col(&r))
            .transpose()
    }

    async fn list_user_credentials(
        &self,
        identity: Option<Uuid>,
        gateway: Option<Uuid>,
    ) -> Result<Vec<UserCredentialDoc>> {
        docs(
            sqlx::query(
                "SELECT doc FROM user_credentials WHERE (?1 IS NULL OR identity_id = ?1) \
                 AND (?2 IS NULL OR storage_gateway_id = ?2) ORDER BY created, id",
            )
            .bind(identity.map(|i| i.to_string()))
            .bind(gateway.map(|g| g.to_string()))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?,
        )
    }

    async fn update_user_credential(&self, doc: &UserCredentialDoc) -> Result<()> {
        affected(
            sqlx::query("UPDATE user_credentials SET doc = ? WHERE id = ?")
                .bind(to_doc(doc)?)
                .bind(doc.id.to_string())
                .execute(&self.writer)
                .await
                .map_err(backend)?
                .rows_affected(),
        )
    }

    async fn delete_user_credential(&self, id: Uuid) -> Result<()> {
        self.delete_one("DELETE FROM user_credentials WHERE id = ?", id)
            .await
    }

    async fn create_acl_rule(&self, r: &AclRule) -> Result<()> {
        self.create_acl_rule_within(r, None, usize::MAX)
            .await
            .map(|_| ())
    }

    async fn list_acl_rules(&self, collection: Uuid) -> Result<Vec<AclRule>> {
        sqlx::query("SELECT * FROM acl_rules WHERE collection_id = ? ORDER BY created, id")
            .bind(collection.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(acl_from)
            .collect()
    }

    async fn delete_acl_rule(&self, id: Uuid) -> Result<()> {
        self.delete_one("DELETE FROM acl_rules WHERE id = ?", id)
            .await
    }

    async fn get_acl_rule(&self, id: Uuid) -> Result<Option<AclRule>> {
        sqlx::query("SELECT * FROM acl_rules WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| acl_from(&r))
            .transpose()
    }

    async fn update_acl_rule(&self, r: &AclRule) -> Result<()> {
        affected(
            sqlx::query(
                "UPDATE acl_rules SET principal_type = ?, principal = ?, path = ?, permissions = ?, \
                 expires_at = ?, doc = ? WHERE id = ?",
            )
            .bind(r.principal.type_str())
            .bind(r.principal.id_str())
            .bind(&r.path)
            .bind(if r.write { "rw" } else { "r" })
            .bind(r.expires_at)
            .bind(acl_extra(r))
            .bind(r.id.to_string())
            .execute(&self.writer)
            .await
            .map_err(acl_error)?
            .rows_affected(),
        )
    }

    async fn create_invitation(&self, inv: &Invitation, rule: &AclRule) -> Result<()> {
        self.create_acl_rule_within(rule, Some(inv), usize::MAX)
            .await
            .map(|_| ())
    }

    async fn find_invitation(&self, code_hash: &str) -> Result<Option<Invitation>> {
        sqlx::query("SELECT * FROM invitations WHERE code_hash = ?")
            .bind(code_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| invitation_from(&r))
            .transpose()
    }

    async fn list_invitations(&self, collection: Uuid) -> Result<Vec<Invitation>> {
        sqlx::query("SELECT * FROM invitations WHERE collection_id = ? ORDER BY created, id")
            .bind(collection.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(invitation_from)
            .collect()
    }

    async fn claim_invitation(&self, id: Uuid, identity: Uuid, now: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE invitations SET redeemed_by = ?, redeemed_at = ? \
             WHERE id = ? AND redeemed_by IS NULL AND expires_at > ?",
        )
        .bind(identity.to_string())
        .bind(now)
        .bind(id.to_string())
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(backend)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn find_removed_invitation(&self, code_hash: &str) -> Result<Option<RemovedInvitation>> {
        sqlx::query("SELECT * FROM removed_invitations WHERE code_hash = ?")
            .bind(code_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| {
                Ok(RemovedInvitation {
                    id: uuid_col(&r, "id")?,
                    collection_id: uuid_col(&r, "collection_id")?,
                    invited_by: uuid_col(&r, "invited_by")?,
                    expires_at: r.try_get("expires_at").map_err(backend)?,
                    redeemed_at: r.try_get("redeemed_at").map_err(backend)?,
                })
            })
            .transpose()
    }

    async fn create_bookmark(&self, b: &Bookmark) -> Result<()> {
        sqlx::query(
            "INSERT INTO bookmarks(id, owner, name, collection_id, path, pinned, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(b.id.to_string())
        .bind(b.owner.to_string())
        .bind(&b.name)
        .bind(b.collection_id.to_string())
        .bind(&b.path)
        .bind(b.pinned as i64)
        .bind(b.created)
        .execute(&self.writer)
        .await
        .map_err(bookmark_error)?;
        Ok(())
    }

    async fn get_bookmark(&self, id: Uuid) -> Result<Option<Bookmark>> {
        sqlx::query("SELECT * FROM bookmarks WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| bookmark_from(&r))
            .transpose()
    }

    async fn list_bookmarks(&self, owner: Uuid) -> Result<Vec<Bookmark>> {
        sqlx::query("SELECT * FROM bookmarks WHERE owner = ? ORDER BY name, id")
            .bind(owner.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(bookmark_from)
            .collect()
    }

    async fn update_bookmark(&self, b: &Bookmark) -> Result<()> {
        affected(
            sqlx::query("UPDATE bookmarks SET name = ?, path = ?, pinned = ? WHERE id = ?")
                .bind(&b.name)
                .bind(&b.path)
                .bind(b.pinned as i64)
                .bind(b.id.to_string())
                .execute(&self.writer)
                .await
                .map_err(bookmark_error)?
                .rows_affected(),
        )
    }

    async fn delete_bookmark(&self, id: Uuid) -> Result<()> {
        self.delete_one("DELETE FROM bookmarks WHERE id = ?", id)
            .await
    }

    async fn create_auth_policy(&self, policy: &AuthPolicy, owner: Uuid) -> Result<()> {
        sqlx::query("INSERT INTO auth_policies(id, owner, doc, created) VALUES (?, ?, ?, ?)")
            .bind(policy.id.to_string())
            .bind(owner.to_string())
            .bind(to_doc(policy)?)
            .bind(now_secs())
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get_auth_policy(&self, id: Uuid) -> Result<Option<(AuthPolicy, Uuid)>> {
        sqlx::query("SELECT doc, owner FROM auth_policies WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| Ok((doc_col(&r)?, uuid_col(&r, "owner")?)))
            .transpose()
    }

    async fn list_auth_policies(&self) -> Result<Vec<(AuthPolicy, Uuid)>> {
        sqlx::query("SELECT doc, owner FROM auth_policies ORDER BY created, id")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(|r| Ok((doc_col(r)?, uuid_col(r, "owner")?)))
            .collect()
    }

    async fn update_auth_policy(&self, policy: &AuthPolicy) -> Result<()> {
        affected(
            sqlx::query("UPDATE auth_policies SET doc = ? WHERE id = ?")
                .bind(to_doc(policy)?)
                .bind(policy.id.to_string())
                .execute(&self.writer)
                .await
                .map_err(backend)?
                .rows_affected(),
        )
    }

    async fn delete_auth_policy(&self, id: Uuid) -> Result<()> {
        self.delete_one("DELETE FROM auth_policies WHERE id = ?", id)
            .await
    }

    async fn append_audit(&self, records: &[AuditRecord]) -> Result<()> {
        // Many rows a statement (a task writes a few per file): one statement per row cost the writer a round
        // through SQLite per file. 7 parameters a row stays far below SQLite's 32,766.
        let mut tx = self.writer.begin().await.map_err(backend)?;
        for chunk in records.chunks(500) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO audit(time, identity_id, action, collection_id, path, allowed, detail) ",
            );
            q.push_values(chunk, |mut b, a| {
                b.push_bind(a.time)
                    .push_bind(a.identity_id.map(|i| i.to_string()))
                    .push_bind(&a.action)
                    .push_bind(a.collection_id.map(|c| c.to_string()))
                    .push_bind(&a.path)
                    .push_bind(a.allowed as i64)
                    .push_bind(&a.detail);
            });
            q.build().execute(&mut *tx).await.map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn query_audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>> {
        // A path prefix matches the path itself and what is below it, never a sibling that merely starts alike.
        let below = f
            .path_prefix
            .as_ref()
            .map(|p| format!("{}/", p.trim_end_matches('/')));
        sqlx::query(
            "SELECT * FROM audit WHERE (?1 IS NULL OR identity_id = ?1) AND (?2 IS NULL OR collection_id = ?2) \
             AND (?3 IS NULL OR path = ?3 OR substr(path, 1, length(?4)) = ?4) \
             AND (?5 IS NULL OR time >= ?5) AND (?6 IS NULL OR time < ?6) AND (?7 IS NULL OR allowed = ?7) \
             AND (?9 IS NULL OR seq > ?9) AND (?12 IS NULL OR seq < ?12) \
             AND (?11 IS NULL OR action = ?11 OR substr(action, 1, length(?11) + 1) = ?11 || '.') \
             ORDER BY CASE WHEN ?10 THEN -seq ELSE seq END LIMIT ?8",
        )
        .bind(f.identity_id.map(|i| i.to_string()))
        .bind(f.collection_id.map(|c| c.to_string()))
        .bind(&f.path_prefix)
        .bind(below)
        .bind(f.since)
        .bind(f.until)
        .bind(f.allowed.map(|a| a as i64))
        .bind(f.limit.unwrap_or(i64::MAX))
        .bind(f.after_seq)
        .bind(f.newest_first)
        .bind(&f.action)
        .bind(f.before_seq)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(audit_from)
        .collect()
    }

    async fn issue_secrets(
        &self,
        grant: &GrantRecord,
        consume: Option<&str>,
        secrets: &[SecretRecord],
        now: i64,
    ) -> Result<IssueOutcome> {
        self.issue_secrets_tx(grant, consume, secrets, now).await
    }

    async fn list_grants(&self, identity_id: Uuid, client_id: Uuid) -> Result<Vec<GrantRecord>> {
        self.list_grants_q(identity_id, client_id).await
    }

    async fn get_consent(&self, id: Uuid) -> Result<Option<ConsentRecord>> {
        sqlx::query("SELECT * FROM consents WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| consent_from(&r))
            .transpose()
    }

    async fn delete_consent(&self, id: Uuid) -> Result<()> {
        // Children go with their parent (ON DELETE CASCADE).
        self.delete_one("DELETE FROM consents WHERE id = ?", id)
            .await
    }

    async fn create_scope(&self, scope: &ScopeRecord) -> Result<()> {
        self.put_scope(scope, true).await
    }

    async fn get_scope(&self, id: Uuid) -> Result<Option<ScopeRecord>> {
        self.scope_where("id", &id.to_string()).await
    }

    async fn find_scope(&self, scope_string: &str) -> Result<Option<ScopeRecord>> {
        self.scope_where("scope_string", scope_string).await
    }

    async fn list_scopes(&self, client_id: Option<Uuid>) -> Result<Vec<ScopeRecord>> {
        self.list_scopes_q(client_id).await
    }

    async fn update_scope(&self, scope: &ScopeRecord) -> Result<()> {
        self.put_scope(scope, false).await
    }

    async fn delete_scope(&self, id: Uuid) -> Result<()> {
        self.delete_one("DELETE FROM scopes WHERE id = ?", id).await
    }

    async fn policy_generation(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT value FROM policy_generation WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    async fn create_acl_rule_within(
        &self,
        rule: &AclRule,
        invitation: Option<&Invitation>,
        max: usize,
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await.map_err(backend)?;
        let added = acl_insert(rule, max)
            .execute(&mut *tx)
            .await
            .map_err(acl_error)?
            .rows_affected();
        if added == 0 {
            return Ok(false);
        }
        if let Some(inv) = invitation {
            sqlx::query(
                "INSERT INTO invitations(id, collection_id, rule_id, email, code_hash, invited_by, created, expires_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(inv.id.to_string())
            .bind(inv.collection_id.to_string())
            .bind(inv.rule_id.to_string())
            .bind(&inv.email)
            .bind(&inv.code_hash)
            .bind(inv.invited_by.to_string())
            .bind(inv.created)
            .bind(inv.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }
}

fn role_from(row: &SqliteRow) -> Result<RoleDoc> {
    let role: String = row.try_get("role").map_err(backend)?;
    Ok(RoleDoc {
        data_type: "role#1.0.0".into(),
        id: uuid_col(row, "id")?,
        collection: opt_uuid_col(row, "collection_id")?,
        principal: row.try_get("principal").map_err(backend)?,
        role: serde_json::from_value(serde_json::Value::String(role.clone()))
            .map_err(|_| bad("role", &role))?,
    })
}

async fn put_membership_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    m: &Membership,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO memberships(group_id, identity_id, role, status, updated) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT(group_id, identity_id) DO UPDATE SET role = excluded.role, status = excluded.status, \
         updated = excluded.updated",
    )
    .bind(m.group_id.to_string())
    .bind(m.identity_id.to_string())
    .bind(m.role.as_str())
    .bind(m.status.as_str())
    .bind(m.updated)
    .execute(&mut **tx)
    .await
    .map_err(|e| match backend(e) {
        StoreError::Backend(msg) if msg.contains("FOREIGN KEY") => StoreError::NotFound,
        other => other,
    })?;
    Ok(())
}

impl FromStr for SecretKind {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        SecretKind::parse(s).ok_or_else(|| bad("kind", s))
    }
}
