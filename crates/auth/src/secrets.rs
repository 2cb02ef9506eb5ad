//! Generating, hashing and checking secrets.
//!
//! Passwords are hashed with Argon2id (they may be low-entropy, or chosen by people). Tokens, codes, sessions
//! and client secrets are 256-bit random strings made here, so a keyed BLAKE3 hash is enough and cheap on every
//! request (a slow hash adds nothing against guessing 256 bits, and cost every client-credentials token ~30 ms);
//! the key lives in the database, so a stolen hash cannot be checked against a guess offline without it either.
//! Client secrets stored by earlier versions as Argon2id hashes still verify.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::{AuthError, Result};

pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| AuthError::Internal("no randomness".into()))?;
    Ok(buf)
}

/// A fresh secret: a short prefix saying what it is, then 256 random bits in base64url.
pub fn random_secret(prefix: &str) -> Result<String> {
    Ok(format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)
    ))
}

/// A password people can type: 20 characters from an unambiguous alphabet (~115 bits).
pub fn random_password() -> Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes = random_bytes::<20>()?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

#[derive(Clone)]
pub struct TokenHasher {
    key: [u8; 32],
}

impl TokenHasher {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }
    pub fn hash(&self, secret: &str) -> String {
        blake3::keyed_hash(&self.key, secret.as_bytes())
            .to_hex()
            .to_string()
    }

    /// How a client secret is stored.
    pub fn hash_client_secret(&self, secret: &str) -> String {
        format!("{CLIENT_SECRET_PREFIX}{}", self.hash(secret))
    }

    /// Checks a client secret against its stored keyed hash, in constant time. With no stored hash the same
    /// work is done against nothing, so that an unknown client takes as long as a wrong secret. Legacy Argon2id
    /// hashes ([`is_password_hash`]) are checked by the caller, off the async threads.
    pub fn client_secret_matches(&self, secret: &str, stored: Option<&str>) -> bool {
        let computed = self.hash_client_secret(secret);
        let real = stored.is_some_and(|s| !is_password_hash(s));
        equal(&computed, stored.unwrap_or(CLIENT_SECRET_PREFIX)) && real
    }
}

/// Is this stored hash an Argon2id PHC string (a password, or a client secret stored by an older version)?
pub fn is_password_hash(stored: &str) -> bool {
    stored.starts_with("$argon2")
}

/// Constant-time equality of two secrets or hashes.
pub fn equal(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// Marks a client secret hash as keyed BLAKE3 (older rows hold Argon2id PHC strings).
const CLIENT_SECRET_PREFIX: &str = "b3k$";

fn argon2() -> Argon2<'static> {
    // OWASP's Argon2id minimum: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash_password(password: &str) -> Result<String> {
    argon2()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Internal(format!("hashing failed: {e}")))
}

/// Checks a password against a stored PHC string. With no stored hash, a dummy is checked anyway, so that
/// "no such user" and "wrong password" take the same time.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("ferry-dummy-password").unwrap_or_default());
    let (phc, real) = match stored {
        Some(s) => (s, true),
        None => (dummy.as_str(), false),
    };
    let ok = PasswordHash::new(phc)
        .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false);
    ok && real
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// PKCE S256: base64url(SHA-256(verifier)), compared in constant time.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    equal(&b64url(digest.as_ref()), challenge)
}

/// RFC 7636 §4.1: 43–128 characters of `[A-Za-z0-9-._~]`.
pub fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An S256 challenge is exactly 43 base64url characters.
pub fn valid_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_round_trip() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", Some(&h)));
        assert!(!verify_password("wrong", Some(&h)));
        assert!(!verify_password("ferry-dummy-password", None));
    }

    #[test]
    fn pkce_rfc7636_appendix_b() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(valid_verifier(v));
        assert!(pkce_matches(
            v,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches(
            v,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        assert!(!valid_verifier(&v[..42]));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(!valid_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"
        ));
    }

    #[test]
    fn client_secrets_keyed_and_legacy() {
        let h = TokenHasher::new([7; 32]);
        let secret = random_secret("").unwrap();
        let stored = h.hash_client_secret(&secret);
        assert!(stored.starts_with(CLIENT_SECRET_PREFIX));
        assert!(h.client_secret_matches(&secret, Some(&stored)));
        assert!(!h.client_secret_matches("wrong", Some(&stored)));
        // Another server's key does not accept this server's hash.
        assert!(!TokenHasher::new([8; 32]).client_secret_matches(&secret, Some(&stored)));
        assert!(!h.client_secret_matches(&secret, None));
        assert!(!h.client_secret_matches("", Some("")));
        // Rows written before the change hold Argon2id hashes: not this check's format (the caller verifies
        // them as passwords, off the async threads).
        let legacy = hash_password(&secret).unwrap();
        assert!(is_password_hash(&legacy));
        assert!(!h.client_secret_matches(&secret, Some(&legacy)));
        assert!(verify_password(&secret, Some(&legacy)));
    }

    #[test]
    fn secrets_are_distinct_and_long() {
        let a = random_secret("x_").unwrap();
        let b = random_secret("x_").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 2 + 43);
        let h = TokenHasher::new([7; 32]);
        assert_eq!(h.hash(&a), h.hash(&a));
        assert_ne!(h.hash(&a), TokenHasher::new([8; 32]).hash(&a));
    }
}
