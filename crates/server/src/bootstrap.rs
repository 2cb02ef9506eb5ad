//! First start: an administrator identity and a confidential client for it, with credentials written once
//! to a file only the owner can read.

use std::io::Write;
use std::path::{Path, PathBuf};

use ferry_auth::{Auth, AuthError};
use ferry_core::ClientKind;
use serde::{Deserialize, Serialize};

pub const CREDENTIALS_FILE: &str = "admin-credentials.json";
const BOOTSTRAP_KEY: &str = "bootstrap.admin_client";

/// What the administrator needs to log in; written once, never logged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminCredentials {
    pub url: String,
    pub username: String,
    pub password: String,
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug)]
pub enum Bootstrap {
    /// Created on this start; the secrets are shown once.
    Created {
        path: PathBuf,
        credentials: AdminCredentials,
    },
    /// An earlier start created them.
    Existing { path: PathBuf },
}

pub async fn ensure_admin(auth: &Auth, data_dir: &Path) -> Result<Bootstrap, AuthError> {
    let path = data_dir.join(CREDENTIALS_FILE);
    if auth.store().meta_get(BOOTSTRAP_KEY).await?.is_some() {
        return Ok(Bootstrap::Existing { path });
    }
    // An earlier first start may have stopped half-way: start over from a clean slate.
    if let Some(stale) = auth.resolve_identity("admin").await? {
        auth.delete_identity(stale.id).await?;
    }
    let person = auth
        .create_person("admin", Some("Ferry administrator"), None, None)
        .await?;
    let client = auth
        .create_client(
            "Ferry administrator's client",
            ClientKind::Confidential,
            vec![],
            Some(person.identity.id),
        )
        .await?;
    let credentials = AdminCredentials {
        url: auth.config().issuer.clone(),
        username: person.identity.username.clone(),
        password: person.generated_password.unwrap_or_default(),
        client_id: client.client.id.to_string(),
        client_secret: client.secret.unwrap_or_default(),
    };
    write_private(
        &path,
        &serde_json::to_vec_pretty(&credentials).unwrap_or_default(),
    )
    .map_err(|e| AuthError::Internal(format!("cannot write {}: {e}", path.display())))?;
    auth.store()
        .meta_get_or_insert(BOOTSTRAP_KEY, &credentials.client_id)
        .await?;
    Ok(Bootstrap::Created { path, credentials })
}

/// Writes a file readable by its owner only, replacing it atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
