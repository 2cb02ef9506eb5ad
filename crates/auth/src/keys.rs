//! The RSA key that signs `id_token`s (RS256), and its JWKS form.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::secrets::b64url;
use crate::{AuthError, Result};

pub struct Signer {
    key: KeyPair,
    kid: String,
}

impl Signer {
    /// A new 2048-bit key, returned with its PKCS#8 form (base64) for storage.
    pub fn generate() -> Result<String> {
        let key = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| AuthError::Internal("RSA key generation failed".into()))?;
        let der = key
            .as_der()
            .map_err(|_| AuthError::Internal("RSA key encoding failed".into()))?;
        Ok(STANDARD.encode(der.as_ref()))
    }

    pub fn from_stored(pkcs8_b64: &str) -> Result<Self> {
        let der = STANDARD
            .decode(pkcs8_b64)
            .map_err(|_| AuthError::Internal("stored signing key is not base64".into()))?;
        let key = KeyPair::from_pkcs8(&der)
            .map_err(|e| AuthError::Internal(format!("stored signing key rejected: {e}")))?;
        let n = PublicKeyComponents::<Vec<u8>>::from(key.public_key()).n;
        // The key id is derived from the modulus, so it changes exactly when the key does.
        let kid = b64url(&blake3::hash(&n).as_bytes()[..12]);
        Ok(Self { key, kid })
    }

    pub fn jwks(&self) -> Value {
        let c = PublicKeyComponents::<Vec<u8>>::from(self.key.public_key());
        json!({"keys": [{
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
            "n": b64url(&c.n), "e": b64url(&c.e),
        }]})
    }

    /// A compact JWS over `claims`.
    pub fn sign(&self, claims: &Value) -> Result<String> {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
            .map_err(|_| AuthError::Internal("signing failed".into()))?;
        Ok(format!("{input}.{}", b64url(&sig)))
    }
}

/// Checks a compact RS256 JWS against a JWKS (the hub's, as an endpoint fetched it) and returns its claims.
/// Only RS256 is accepted, whatever the header says, so that no `alg` trick can turn the check off.
pub fn verify(jwks: &Value, jws: &str) -> Result<Value> {
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    // Callers learn only that the statement is refused; the log says why.
    let bad = |why: &str| {
        tracing::debug!(why, "hub statement refused");
        AuthError::Unauthenticated
    };
    let (input, sig) = jws.rsplit_once('.').ok_or_else(|| bad("not a JWS"))?;
    let (header, claims) = input.split_once('.').ok_or_else(|| bad("not a JWS"))?;
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| bad("not base64url"))
    };
    let header: Value =
        serde_json::from_slice(&decode(header)?).map_err(|_| bad("header is not JSON"))?;
    if header["alg"] != "RS256" {
        return Err(bad("only RS256 is accepted"));
    }
    let sig = decode(sig)?;
    let keys = jwks["keys"].as_array().ok_or_else(|| bad("no keys"))?;
    let signed_by = |k: &Value| -> bool {
        let (Some(n), Some(e)) = (k["n"].as_str(), k["e"].as_str()) else {
            return false;
        };
        let (Ok(n), Ok(e)) = (URL_SAFE_NO_PAD.decode(n), URL_SAFE_NO_PAD.decode(e)) else {
            return false;
        };
        RsaPublicKeyComponents { n: &n, e: &e }
            .verify(&RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &sig)
            .is_ok()
    };
    // The header's kid picks the key when it names one; a key set being rotated may hold two.
    let kid = header["kid"].as_str();
    if !keys
        .iter()
        .filter(|k| kid.is_none_or(|kid| k["kid"].as_str() == Some(kid)))
        .any(signed_by)
    {
        return Err(bad("the signature does not verify"));
    }
    serde_json::from_slice(&decode(claims)?).map_err(|_| bad("claims are not JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[test]
    fn signs_verifiable_jwts() {
        let signer = Signer::from_stored(&Signer::generate().unwrap()).unwrap();
        let jwt = signer.sign(&json!({"sub": "x"})).unwrap();
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let jwk = &signer.jwks()["keys"][0];
        let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
        let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();
        let public = RsaPublicKeyComponents { n: &n, e: &e };
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        public
            .verify(&RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &sig)
            .unwrap();
        assert!(
            public
                .verify(&RSA_PKCS1_2048_8192_SHA256, b"other", &sig)
                .is_err()
        );
    }
}
