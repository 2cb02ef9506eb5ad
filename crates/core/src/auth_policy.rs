//! Authentication policies (Globus Auth's `/v2/api/policies` documents). A mapped collection names one as its
//! `guest_auth_policy_id`; its guest collections then count a permission only for callers whose identity is
//! from an allowed domain.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::fnmatch::fnmatch;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthPolicy {
    #[serde(default)]
    pub id: Uuid,
    /// Globus groups policies into projects; Ferry keeps the value for clients that send one.
    #[serde(default)]
    pub project_id: Option<String>,
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub high_assurance: bool,
    #[serde(default)]
    pub authentication_assurance_timeout: Option<i64>,
    #[serde(default)]
    pub required_mfa: bool,
    /// Domains (fnmatch patterns such as `*.edu`) a caller's identity must be from; None or empty: any.
    #[serde(default)]
    pub domain_constraints_include: Option<Vec<String>>,
    /// Domains whose identities never count; a domain in both lists is refused.
    #[serde(default)]
    pub domain_constraints_exclude: Option<Vec<String>>,
}

/// Re-sign-in timeouts Ferry accepts: a minute to a year.
pub const MIN_ASSURANCE_TIMEOUT: i64 = 60;
pub const MAX_ASSURANCE_TIMEOUT: i64 = 365 * 86400;

impl AuthPolicy {
    /// How recent a sign-in must be for the policy's permissions to count (seconds), if it says.
    pub fn assurance_timeout(&self) -> Option<i64> {
        self.authentication_assurance_timeout
    }

    /// What Ferry cannot enforce is refused rather than stored as a promise it would not keep.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.display_name.chars().count();
        if n == 0 || n > 128 || self.display_name.contains('\n') {
            return Err("display_name: must be 1 to 128 characters on one line".into());
        }
        if self.required_mfa {
            return Err(
                "required_mfa: Ferry does not check a second factor; a provider that requires one for its \
                 people does"
                    .into(),
            );
        }
        match self.authentication_assurance_timeout {
            Some(t) if !(MIN_ASSURANCE_TIMEOUT..=MAX_ASSURANCE_TIMEOUT).contains(&t) => {
                return Err(format!(
                    "authentication_assurance_timeout: {t} seconds; it must be {MIN_ASSURANCE_TIMEOUT} to \
                     {MAX_ASSURANCE_TIMEOUT}"
                ));
            }
            None if self.high_assurance => {
                return Err(
                    "high_assurance: a high-assurance policy needs authentication_assurance_timeout (seconds \
                     within which a person must have signed in)"
                        .into(),
                );
            }
            _ => {}
        }
        for (field, list) in [
            (
                "domain_constraints_include",
                &self.domain_constraints_include,
            ),
            (
                "domain_constraints_exclude",
                &self.domain_constraints_exclude,
            ),
        ] {
            if let Some(bad) = list
                .iter()
                .flatten()
                .find(|d| d.trim().is_empty() || d.contains(['@', '/', ' ']))
            {
                return Err(format!("{field}: {bad:?} is not a domain"));
            }
        }
        Ok(())
    }

    /// Whether a caller with this username (None: anonymous) satisfies the domain constraints.
    pub fn admits(&self, username: Option<&str>) -> bool {
        let domain = username
            .and_then(|u| u.rsplit_once('@'))
            .map(|(_, d)| d.to_ascii_lowercase());
        let matches = |list: &Option<Vec<String>>| {
            domain.as_deref().is_some_and(|d| {
                list.iter()
                    .flatten()
                    .any(|p| fnmatch(&p.to_ascii_lowercase(), d))
            })
        };
        if matches(&self.domain_constraints_exclude) {
            return false;
        }
        match &self.domain_constraints_include {
            Some(l) if !l.is_empty() => matches(&self.domain_constraints_include),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(include: &[&str], exclude: &[&str]) -> AuthPolicy {
        let list = |l: &[&str]| Some(l.iter().map(|s| s.to_string()).collect());
        AuthPolicy {
            id: Uuid::nil(),
            project_id: None,
            display_name: "p".into(),
            description: String::new(),
            high_assurance: false,
            authentication_assurance_timeout: None,
            required_mfa: false,
            domain_constraints_include: list(include),
            domain_constraints_exclude: list(exclude),
        }
    }

    #[test]
    fn domains() {
        let p = policy(&["*.edu", "lab.org"], &["bad.edu"]);
        assert!(p.admits(Some("ana@uni.edu")));
        assert!(p.admits(Some("bo@LAB.org")));
        assert!(
            !p.admits(Some("eve@bad.edu")),
            "a domain in both lists is refused"
        );
        assert!(!p.admits(Some("x@corp.com")));
        assert!(!p.admits(None), "anonymous callers have no domain");
        let open = policy(&[], &["bad.edu"]);
        assert!(open.admits(Some("x@corp.com")) && open.admits(None));
        assert!(!open.admits(Some("eve@bad.edu")));
        assert!(policy(&["a b"], &[]).validate().is_err());
        let mut ha = policy(&[], &[]);
        ha.high_assurance = true;
        assert!(ha.validate().unwrap_err().starts_with("high_assurance"));
    }
}
