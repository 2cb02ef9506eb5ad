//! HTTPS: a certificate from the configuration, or on first start a small private CA and a server
//! certificate signed by it, in `<data dir>/tls/`. Clients trust the CA file (`GLOBUS_SDK_VERIFY_SSL`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::bootstrap::write_private;

pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA to trust, when Ferry made its own.
    pub ca: Option<PathBuf>,
}

/// Generates the CA and server certificate unless they exist.
pub fn ensure_self_signed(
    data_dir: &Path,
    listen: SocketAddr,
    host: Option<&str>,
) -> Result<TlsFiles, String> {
    let dir = data_dir.join("tls");
    let files = TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        ca: Some(dir.join("ca.pem")),
    };
    if files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let err = |e: rcgen::Error| format!("certificate generation failed: {e}");
    let ca_key = rcgen::KeyPair::generate().map_err(err)?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Ferry local CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    if let Some(h) = host {
        names.push(h.to_string());
    }
    names.sort();
    names.dedup();
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let mut params = rcgen::CertificateParams::new(names).map_err(err)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Ferry");
    let cert = params.signed_by(&key, &issuer).map_err(err)?;

    let io = |p: &Path, e: std::io::Error| format!("cannot write {}: {e}", p.display());
    if let Some(ca) = &files.ca {
        std::fs::write(ca, ca_cert.pem()).map_err(|e| io(ca, e))?;
    }
    std::fs::write(&files.cert, cert.pem() + &ca_cert.pem()).map_err(|e| io(&files.cert, e))?;
    write_private(&files.key, key.serialize_pem().as_bytes()).map_err(|e| io(&files.key, e))?;
    Ok(files)
}

pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate in {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read key {}: {e}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key do not fit: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Days until the first certificate in `pem` expires (negative once it has). Reads just the validity from the
/// DER structure: Certificate → TBSCertificate → [version], serial, signature, issuer, validity{notBefore,
/// notAfter}.
pub fn days_left(pem: &str) -> Result<i64, String> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    let not_after = not_after(der.as_ref()).ok_or("cannot read the certificate's validity")?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Ok((not_after - now).div_euclid(86_400))
}

/// One DER element: (tag, contents, rest).
fn element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &x| (a << 8) | x as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert, _) = element(der)?;
    let (_, tbs, _) = element(cert)?;
    let mut rest = tbs;
    // An explicit [0] version comes first when present.
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    for _ in 0..3 {
        rest = element(rest)?.2; // serial, signature algorithm, issuer
    }
    let (_, validity, _) = element(rest)?;
    let (_, _, after) = element(validity)?;
    let (tag, t, _) = element(after)?;
    let t = std::str::from_utf8(t).ok()?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i32 = t.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, t.get(2..)?)
        }
        0x18 => (t.get(..4)?.parse().ok()?, t.get(4..)?),
        _ => return None,
    };
    let num = |r: std::ops::Range<usize>| rest.get(r)?.parse::<u8>().ok();
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(num(0..2)?).ok()?, num(2..4)?)
            .ok()?;
    let at = date.with_hms(num(4..6)?, num(6..8)?, num(8..10)?).ok()?;
    Some(at.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_expiry_of_a_generated_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let f =
            super::ensure_self_signed(dir.path(), "127.0.0.1:1".parse().unwrap(), None).unwrap();
        let days = super::days_left(&std::fs::read_to_string(f.cert).unwrap()).unwrap();
        assert!(days > 30, "{days}");
        assert!(super::days_left("nope").is_err());
    }
}
