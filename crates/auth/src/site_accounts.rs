//! Site accounts: the host's own accounts (Unix, or LDAP through the host's PAM stack) as an identity domain of
//! their own, `<account>@<domain>` — what a Globus Connect Server's OIDC server gives a facility. Set up with
//! `ferry oidc create`; kept in the database, so a change counts at the next sign-in without a restart. Such an
//! identity reaches a storage gateway that allows its domain as the account of the same name, by default.

use ferry_core::{Identity, IdentityKind};
use ferry_proto::auth::{SITE_ACCOUNTS_TYPE, SiteAccountsDoc};
use ferry_store::StoreError;
use uuid::Uuid;

use crate::pam::{self, PamRefusal};
use crate::{Auth, AuthError, Result};

const KEY: &str = "auth.site_accounts";
/// Accounts below this uid are the system's (root, daemons): they never sign in, whatever PAM says, so that no
/// gateway can be reached as them through a site account (Debian's UID_MIN).
const FIRST_PERSON_UID: u32 = 1000;
/// What the meta row holds once the domain is deleted.
const NONE: &str = "null";

impl Auth {
    /// The site-account domain, if one is set up.
    pub async fn site_accounts(&self) -> Result<Option<SiteAccountsDoc>> {
        match self.store.meta_get(KEY).await? {
            None => Ok(None),
            Some(v) if v == NONE => Ok(None),
            Some(v) => serde_json::from_str(&v)
                .map(Some)
                .map_err(|e| AuthError::Internal(format!("stored site accounts: {e}"))),
        }
    }

    /// Sets the site-account domain up (`create`: none may exist yet) or changes it.
    pub async fn save_site_accounts(
        &self,
        domain: &str,
        display_name: &str,
        pam_service: &str,
        create: bool,
    ) -> Result<SiteAccountsDoc> {
        let existing = self.site_accounts().await?;
        let id = match (&existing, create) {
            (Some(e), true) => {
                return Err(AuthError::Conflict(format!(
                    "site accounts are already set up ({}); change them with `ferry oidc update`",
                    e.domain
                )));
            }
            (None, false) => {
                return Err(AuthError::NotFound(
                    "no site accounts are set up; create them with `ferry oidc create`".into(),
                ));
            }
            // The id names the identities' provider: it stays whatever else changes.
            (Some(e), false) => e.id,
            (None, true) => Uuid::new_v4(),
        };
        let domain = domain.trim().to_ascii_lowercase();
        if Identity::person_username("x", &domain).is_err() || !domain.contains('.') {
            return Err(AuthError::InvalidRequest(format!(
                "domain '{domain}' is not a domain name"
            )));
        }
        if domain == self.cfg.domain.to_ascii_lowercase() {
            return Err(AuthError::InvalidRequest(format!(
                "domain '{domain}' is this server's local accounts' domain; site accounts need their own"
            )));
        }
        if let Some(p) = self
            .cfg
            .providers
            .iter()
            .find(|p| p.domain.eq_ignore_ascii_case(&domain))
        {
            return Err(AuthError::InvalidRequest(format!(
                "domain '{domain}' belongs to identity provider '{}'",
                p.id
            )));
        }
        if let Some(e) = &existing
            && e.domain != domain
        {
            return Err(AuthError::InvalidRequest(format!(
                "the domain cannot change (identities are named {0}): delete and create again to start a new one",
                e.domain
            )));
        }
        let valid_service = !pam_service.is_empty()
            && pam_service
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid_service {
            return Err(AuthError::InvalidRequest(format!(
                "PAM service '{pam_service}' must be lowercase letters, digits, '-' and '_'"
            )));
        }
        let display_name = display_name.trim();
        if display_name.is_empty() || display_name.len() > 128 {
            return Err(AuthError::InvalidRequest(
                "the display name must be 1 to 128 characters".into(),
            ));
        }
        let doc = SiteAccountsDoc {
            data_type: SITE_ACCOUNTS_TYPE.into(),
            id,
            domain,
            display_name: display_name.to_string(),
            pam_service: pam_service.to_string(),
        };
        let text = serde_json::to_string(&doc).map_err(|e| AuthError::Internal(e.to_string()))?;
        self.store.meta_set(KEY, &text).await?;
        Ok(doc)
    }

    /// Switches site accounts off: their identities stay (with their permissions) but cannot sign in.
    pub async fn delete_site_accounts(&self) -> Result<SiteAccountsDoc> {
        let doc = self
            .site_accounts()
            .await?
            .ok_or_else(|| AuthError::NotFound("no site accounts are set up".into()))?;
        self.store.meta_set(KEY, NONE).await?;
        Ok(doc)
    }

    /// Checks a site account's password through PAM and opens a browser session for its identity (made at
    /// the first sign-in). Failures count towards the same throttle as local logins.
    pub async fn site_login(&self, account: &str, password: &str, peer: &str) -> Result<String> {
        let site = self.site_accounts().await?.ok_or_else(|| {
            AuthError::NotFound("site accounts are not set up on this server".into())
        })?;
        let account = account.trim();
        let key = Self::limiter_key("site-login", &account.to_ascii_lowercase(), peer);
        if let Some(retry_after) = self.limiter.blocked(&key, peer) {
            return Err(AuthError::SlowDown { retry_after });
        }
        match pam::authenticate(&site.pam_service, account, password).await {
            Ok(()) => {}
            Err(PamRefusal::WrongCredentials) => {
                self.limiter.record_failure(&key, peer);
                return Err(AuthError::LoginFailed);
            }
            Err(refused @ PamRefusal::AccountUnusable(_)) => {
                if let PamRefusal::AccountUnusable(why) = &refused {
                    tracing::info!(account, %why, "a site account was refused by PAM's account check");
                }
                self.limiter.record_failure(&key, peer);
                return Err(AuthError::Forbidden(refused.to_string()));
            }
            Err(PamRefusal::InvalidInput(why)) => return Err(AuthError::InvalidRequest(why)),
            Err(PamRefusal::Unavailable(why)) => {
                tracing::error!(%why, "PAM cannot check site accounts");
                return Err(AuthError::Unavailable(
                    "site accounts cannot be checked right now; ask the facility's administrators"
                        .into(),
                ));
            }
        }
        let name = account.to_string();
        let uid =
            tokio::task::spawn_blocking(move || ferry_storage::host_account(&name).map(|a| a.uid))
                .await
                .map_err(|e| AuthError::Internal(e.to_string()))?;
        if uid.is_none_or(|u| u < FIRST_PERSON_UID) {
            tracing::warn!(
                account,
                ?uid,
                "a system account's password was right; it may not sign in"
            );
            return Err(AuthError::Forbidden(
                "system accounts cannot sign in here; use your personal account".into(),
            ));
        }
        let fresh = Identity {
            id: Uuid::new_v4(),
            username: Identity::person_username(account, &site.domain)
                .map_err(AuthError::InvalidRequest)?,
            name: account.to_string(),
            email: None,
            organization: Some(site.display_name.clone()),
            kind: IdentityKind::Person,
            created: self.now(),
            identity_provider: Some(site.id),
        };
        let signed = self
            .store
            .sign_in_external(site.id, account, &fresh)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => AuthError::Conflict(format!(
                    "the username {} already belongs to another identity; ask this server's administrators",
                    fresh.username
                )),
                e => e.into(),
            })?;
        self.open_session(&signed.identity).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn system_accounts_have_low_uids() {
        let uid = |n: &str| ferry_storage::host_account(n).map(|a| a.uid);
        assert_eq!(uid("root"), Some(0));
        assert!(uid("no-such-account-here").is_none());
    }
}
