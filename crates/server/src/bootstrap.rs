//! First start: an administrator identity and a confidential client for it, with credentials written once
//! to a file only the owner can read.

use std::io::Write;
use std::path::{Path, PathBuf};

use ferry_auth::{Auth, AuthError};
use ferry_endpoint::{Defaults, Endpoint};
use uuid::Uuid;

use crate::{Config, ServerError};
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
        record_url(&path, &auth.config().issuer)
            .map_err(|e| AuthError::Internal(format!("cannot update {}: {e}", path.display())))?;
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

/// Every start records the URL it serves in the credentials file, which the administrator's commands read: a
/// restart with `--tls`, another port or a `public_url` must not leave them calling the old one. A file the
/// administrator removed stays removed.
fn record_url(path: &Path, url: &str) -> std::io::Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut creds: AdminCredentials = serde_json::from_str(&text)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    if creds.url == url {
        return Ok(());
    }
    creds.url = url.to_string();
    write_private(path, &serde_json::to_vec_pretty(&creds).unwrap_or_default())
}

/// The administrator person and its client, as the first start created them.
pub async fn admin_ids(auth: &Auth) -> Result<(Uuid, Uuid), AuthError> {
    let client = auth
        .store()
        .meta_get(BOOTSTRAP_KEY)
        .await?
        .and_then(|c| Uuid::parse_str(&c).ok())
        .ok_or_else(|| AuthError::Internal("the administrator's client is not recorded".into()))?;
    let person = auth
        .resolve_identity("admin")
        .await?
        .ok_or_else(|| AuthError::Internal("the administrator identity is missing".into()))?;
    Ok((person.id, client))
}

/// First start of the endpoint: the administrator owns it, the administrator and its client administer it,
/// and a storage gateway over the storage folder (reachable by those two accounts only; others get access by
/// being shared with) carries a mapped collection that allows guest collections.
pub async fn ensure_endpoint(
    auth: &Auth,
    endpoint: &Endpoint,
    cfg: &Config,
) -> Result<Defaults, ServerError> {
    let (person, client) = admin_ids(auth).await?;
    let root = cfg
        .storage_root
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("storage"));
    let person_account = ferry_core::mapping::default_username(
        &auth
            .store()
            .get_identity(person)
            .await?
            .map(|i| i.username)
            .unwrap_or_default(),
    )
    .to_string();
    Ok(endpoint
        .ensure_defaults(
            person,
            &[person, client],
            &root,
            &[person_account, client.to_string()],
        )
        .await?)
}

/// An endpoint's default storage, owned and administered by the person who set the endpoint up.
pub async fn ensure_site_endpoint(
    site: &crate::site::SiteFile,
    endpoint: &Endpoint,
    cfg: &Config,
) -> Result<Defaults, ServerError> {
    let root = cfg
        .storage_root
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("storage"));
    let account = ferry_core::mapping::default_username(&site.owner.username).to_string();
    Ok(endpoint
        .ensure_defaults(site.owner.id, &[site.owner.id], &root, &[account])
        .await?)
}

/// The file in the data directory that names this node.
pub const NODE_ID_FILE: &str = "node_id";

/// This node's name (a machine and its data directory): read from `<data dir>/node_id`, made up and written
/// there (0600, atomically) on the first start. The transfer engine's leases begin with it, so that a starting
/// process releases the leases its own node's previous process left, and no other node's.
pub fn node_id(data_dir: &Path) -> Result<String, ServerError> {
    let path = data_dir.join(NODE_ID_FILE);
    let io = |e| ServerError::DataDir(path.clone(), e);
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let id = s.trim();
            if id.is_empty() || id.contains(['/', '\\']) || id.chars().any(char::is_whitespace) {
                return Err(io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the node id must be one word without / (delete the file to get a new one)",
                )));
            }
            Ok(id.to_string())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = Uuid::new_v4().simple().to_string();
            write_private(&path, format!("{id}\n").as_bytes()).map_err(io)?;
            Ok(id)
        }
        Err(e) => Err(io(e)),
    }
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_node_id_is_made_once_kept_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let id = super::node_id(dir.path()).unwrap();
        assert!(!id.is_empty() && !id.contains('/'));
        let path = dir.path().join(super::NODE_ID_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            super::node_id(dir.path()).unwrap(),
            id,
            "the same on every start"
        );
        std::fs::write(&path, "a/b\n").unwrap();
        assert!(
            super::node_id(dir.path()).is_err(),
            "a / would mix nodes up"
        );
    }
}
