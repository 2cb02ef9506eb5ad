//! Paths as the connector takes them, split into names; and names the wire cannot carry.

use crate::{At, Result, StorageError};

/// The names of an absolute path ("/" has none). Refuses what a normalised path never contains.
pub fn split(path: &str) -> Result<Vec<&str>> {
    let bad = |why: &str| Err(StorageError::InvalidPath(At::new(path, why)));
    let Some(rest) = path.strip_prefix('/') else {
        return bad("must start with /");
    };
    if path.contains('\0') {
        return bad("contains a NUL character");
    }
    if rest.is_empty() {
        return Ok(vec![]);
    }
    let names: Vec<&str> = rest.split('/').collect();
    for n in &names {
        match *n {
            "" => return bad("has an empty name (// or a trailing /)"),
            "." | ".." => return bad("has a . or .. name"),
            n if n.len() > 255 => {
                return Err(StorageError::InvalidName(At::new(
                    path,
                    "a name is longer than 255 bytes",
                )));
            }
            _ => {}
        }
    }
    Ok(names)
}

/// The path of `name` inside the folder `dir`.
pub fn child(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// Joins names back into an absolute path.
pub fn join(names: &[impl AsRef<str>]) -> String {
    let mut s = String::new();
    for n in names {
        s.push('/');
        s.push_str(n.as_ref());
    }
    if s.is_empty() { "/".into() } else { s }
}

/// Bytes as text, invalid UTF-8 escaped as `\xNN`, so that such a name can be shown without being mistaken
/// for another.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::new();
    for chunk in b.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_refuses() {
        assert_eq!(split("/").unwrap(), Vec::<&str>::new());
        assert_eq!(split("/a b/c\n").unwrap(), vec!["a b", "c\n"]);
        for bad in ["", "a", "/a/", "//a", "/a/../b", "/./a", "/a\0"] {
            assert!(split(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            split(&format!("/{}", "x".repeat(256))),
            Err(StorageError::InvalidName(_))
        ));
        assert_eq!(join(&["a", "b"]), "/a/b");
        assert_eq!(join(&[] as &[&str]), "/");
        assert_eq!(escape_bytes(b"caf\xe9 ok"), "caf\\xe9 ok");
    }
}
