//! Local accounts' passwords: how strong a new one must be, an administrator's reset, and a person's own
//! change. Setting a password ends every other way in: the identity's sessions, authorization codes, access
//! and refresh tokens are revoked with the change (a person's change keeps the session that made it).

use ferry_core::{Identity, IdentityKind};
use uuid::Uuid;

use crate::authorize::Session;
use crate::secrets;
use crate::service::Auth;
use crate::{AuthError, Result};

pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longer is refused: no one types it, and it would only make every check hash more.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Passwords of 12 characters or more that lists of leaked passwords put first (compared ignoring case).
/// Short ones are not listed: the length rule refuses them already.
const COMMON: &[&str] = &[
    "password1234",
    "password12345",
    "password123456",
    "password123!",
    "password2024",
    "password2025",
    "password2026",
    "passwordpassword",
    "p@ssword1234",
    "p@ssw0rd1234",
    "passw0rd1234",
    "123456789012",
    "1234567890ab",
    "123456789abc",
    "abc123456789",
    "abcd12345678",
    "123456123456",
    "123123123123",
    "654321654321",
    "987654321098",
    "qwertyuiopas",
    "qwertyuiop12",
    "qwertyuiop123",
    "qwerty123456",
    "qwerty123456789",
    "123456qwerty",
    "1234qwerasdf",
    "123qweasdzxc",
    "1q2w3e4r5t6y",
    "q1w2e3r4t5y6",
    "1qaz2wsx3edc",
    "qazwsxedcrfv",
    "zaq12wsxcde3",
    "asdfghjkl123",
    "zxcvbnm12345",
    "iloveyou1234",
    "iloveyou12345",
    "letmein12345",
    "letmein123456",
    "welcome12345",
    "welcome123456",
    "welcome2024!",
    "changeme1234",
    "changeme123!",
    "administrator",
    "trustno1trustno1",
    "monkey123456",
    "dragon123456",
    "football1234",
    "football12345",
    "baseball1234",
    "sunshine1234",
    "princess1234",
    "superman1234",
    "starwars1234",
    "whatever1234",
    "liverpool1234",
    "correcthorsebatterystaple",
];

/// Whether `password` may be set for `username` (`name@domain`); the error names the rule it breaks.
pub fn check_strength(password: &str, username: &str) -> std::result::Result<(), String> {
    let chars: Vec<char> = password.chars().collect();
    if chars.len() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password must be at least {MIN_PASSWORD_CHARS} characters long"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "the password must be at most {MAX_PASSWORD_BYTES} bytes long"
        ));
    }
    if chars.iter().any(|c| c.is_control()) {
        return Err("the password must not contain control characters".into());
    }
    let lower = password.to_lowercase();
    let username = username.to_lowercase();
    let local = username.split('@').next().unwrap_or_default();
    // A local part of one or two letters is inside too many good passwords to be a sign of a weak one.
    if lower == username || lower == local || (local.chars().count() >= 3 && lower.contains(local))
    {
        return Err("the password must not be or contain the username".into());
    }
    if COMMON.contains(&lower.as_str()) {
        return Err("the password is one of the most common passwords".into());
    }
    let lchars: Vec<char> = lower.chars().collect();
    let mut distinct = lchars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 5 {
        return Err("the password must use at least 5 different characters".into());
    }
    if let Some(p) =
        (1..=lchars.len() / 2).find(|&p| lchars.iter().zip(&lchars[p..]).all(|(a, b)| a == b))
    {
        return Err(format!(
            "the password repeats the same {p} characters over and over"
        ));
    }
    if is_run(&lchars) {
        return Err(
            "the password is a run of consecutive characters (like abcdef or 654321)".into(),
        );
    }
    Ok(())
}

/// Every character one after (or one before) the previous, digits wrapping 9 → 0 (`123456789012`).
fn is_run(chars: &[char]) -> bool {
    let step = |a: char, b: char| -> Option<i64> {
        if a.is_ascii_digit() && b.is_ascii_digit() {
            let d = (b as i64 - a as i64).rem_euclid(10);
            return match d {
                1 => Some(1),
                9 => Some(-1),
                _ => None,
            };
        }
        match b as i64 - a as i64 {
            d @ (1 | -1) => Some(d),
            _ => None,
        }
    };
    let first = step(chars[0], chars[1]);
    first.is_some() && chars.windows(2).all(|w| step(w[0], w[1]) == first)
}

impl Auth {
    /// A person of this server with a password here: not an application, and not an identity that signs
    /// in elsewhere (an upstream provider or a site account keeps its own password).
    async fn local_person(&self, id: Uuid) -> Result<(Identity, String)> {
        let identity = self
            .store
            .get_identity(id)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("no identity {id}")))?;
        if identity.kind != IdentityKind::Person {
            return Err(AuthError::InvalidRequest(format!(
                "{} is an application: it authenticates with its client secret (ferry client rotate-secret), \
                 not a password",
                identity.username
            )));
        }
        let local = identity
            .username
            .rsplit_once('@')
            .is_some_and(|(_, d)| d.eq_ignore_ascii_case(&self.cfg.domain));
        let hash = match self.store.password_hash(id).await? {
            Some(h) if local => h,
            _ => {
                return Err(AuthError::InvalidRequest(format!(
                    "{} signs in through another identity provider; its password is not kept by Ferry",
                    identity.username
                )));
            }
        };
        Ok((identity, hash))
    }

    /// An administrator's reset: sets `new` (checked for strength) or, with None, a generated password,
    /// which is returned to be shown once. Every session and token of the identity is revoked.
    pub async fn set_password(&self, identity: Uuid, new: Option<&str>) -> Result<Option<String>> {
        let (person, _) = self.local_person(identity).await?;
        if let Some(p) = new {
            check_strength(p, &person.username).map_err(AuthError::InvalidRequest)?;
        }
        let generated = match new {
            Some(_) => None,
            None => Some(secrets::random_password()?),
        };
        let chosen = new.or(generated.as_deref()).unwrap_or_default().to_string();
        let hash = self
            .password_work(move || secrets::hash_password(&chosen))
            .await??;
        self.store
            .set_password_hash(person.id, &hash, None, self.now())
            .await?;
        tracing::info!(identity = %person.id, "password reset by an administrator; sessions and tokens revoked");
        Ok(generated)
    }

    /// A person changes their own password from a logged-in browser. The current password is checked as at
    /// login, under the same throttle (a wrong one counts as a failed login). The identity's other sessions
    /// and all its codes and tokens are revoked; `session` stays logged in.
    pub async fn change_password(
        &self,
        session: &Session,
        current: &str,
        new: &str,
        peer: &str,
    ) -> Result<()> {
        let key = Self::limiter_key(
            "login",
            &session.identity.username.to_ascii_lowercase(),
            peer,
        );
        if let Some(retry_after) = self.limiter.blocked(&key, peer) {
            return Err(AuthError::SlowDown { retry_after });
        }
        let (person, stored) = self.local_person(session.identity.id).await?;
        check_strength(new, &person.username).map_err(AuthError::InvalidRequest)?;
        if !self.check_password(current, Some(stored)).await? {
            self.limiter.record_failure(&key, peer);
            return Err(AuthError::LoginFailed);
        }
        if new == current {
            return Err(AuthError::InvalidRequest(
                "the new password must differ from the current one".into(),
            ));
        }
        let new = new.to_string();
        let hash = self
            .password_work(move || secrets::hash_password(&new))
            .await??;
        self.store
            .set_password_hash(person.id, &hash, Some(session.hash.as_str()), self.now())
            .await?;
        tracing::info!(identity = %person.id, "password changed; other sessions and tokens revoked");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_refused_with_the_rule() {
        let user = "alice@ferry.local";
        for (pw, rule) in [
            ("short-pw-1", "at least 12 characters"),
            ("alice@ferry.local", "username"),
            ("ALICE-wonderland-42", "username"),
            ("my-name-is-alice!", "username"),
            ("Password1234", "most common"),
            ("123456789012", "most common"),
            ("qwertyuiopas", "most common"),
            ("aaaaaaaaaaaaaaaa", "5 different characters"),
            ("aabbccaabbccaabb", "5 different characters"),
            ("abcdeabcdeabcde", "repeats the same 5 characters"),
            ("xyz12xyz12xyz12", "repeats the same 5 characters"),
            ("abcdefghijklmnop", "consecutive"),
            ("ponmlkjihgfedcba", "consecutive"),
            ("890123456789", "consecutive"),
            ("tab\there-and-there", "control characters"),
        ] {
            let e = check_strength(pw, user).expect_err(pw);
            assert!(e.contains(rule), "{pw:?}: {e}");
        }
        assert!(
            check_strength(&"x1".repeat(600), user)
                .unwrap_err()
                .contains("at most 1024")
        );
    }

    #[test]
    fn good_passwords_pass() {
        for pw in [
            "correct horse battery",
            "tide-harbour-4471",
            "password-of-test",
            "vQ8#nX2m!pL9",
            "Zürich-Straße-2026",
            // A two-letter local part may appear inside a good password.
            "al-meets-kangaroo-7",
        ] {
            assert_eq!(check_strength(pw, "al@ferry.local"), Ok(()), "{pw}");
        }
        assert_eq!(
            check_strength("alice-in-chains-1991", "bob@ferry.local"),
            Ok(())
        );
    }

    #[test]
    fn generated_passwords_are_strong() {
        for _ in 0..200 {
            let p = secrets::random_password().unwrap();
            assert_eq!(check_strength(&p, "alice@ferry.local"), Ok(()), "{p}");
        }
    }
}
