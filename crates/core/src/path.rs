//! Normalised storage paths: absolute, `/`-separated, UTF-8, no `.` or `..` segments, no repeated or
//! trailing `/` (except the root `/` itself). Every function here other than `normalize` expects such paths.

/// Longest path `normalize` accepts, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest segment `normalize` accepts, in bytes (Linux's `NAME_MAX`).
pub const MAX_SEGMENT_BYTES: usize = 255;

/// Why a path was refused. Messages show the path (shortened when very long).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is empty")]
    Empty,
    #[error("path {} is not absolute (it must start with /)", shown(.0))]
    Relative(String),
    #[error("path {} contains a .. segment", shown(.0))]
    DotDot(String),
    #[error("path {} contains a NUL character", shown(.0))]
    Nul(String),
    #[error("path {} is longer than {MAX_PATH_BYTES} bytes", shown(.0))]
    TooLong(String),
    #[error("path {} has a segment longer than {MAX_SEGMENT_BYTES} bytes", shown(.0))]
    SegmentTooLong(String),
}

impl PathError {
    /// The refused path as given.
    pub fn path(&self) -> &str {
        match self {
            PathError::Empty => "",
            PathError::Relative(p)
            | PathError::DotDot(p)
            | PathError::Nul(p)
            | PathError::TooLong(p)
            | PathError::SegmentTooLong(p) => p,
        }
    }
}

/// The path quoted for a message, cut after 200 characters so that a 4 KiB path does not flood logs.
fn shown(path: &str) -> String {
    const KEEP: usize = 200;
    match path.char_indices().nth(KEEP) {
        Some((cut, _)) => format!("{:?}…", &path[..cut]),
        None => format!("{path:?}"),
    }
}

/// Absolute; collapses repeated `/`, drops `.` segments, strips a trailing `/` ("/" stays "/").
/// Refuses: empty, relative (not starting with `/`), any `..` segment anywhere (`/data/../etc` is refused, not
/// resolved), NUL characters, more than 4096 bytes, a segment over 255 bytes.
pub fn normalize(path: &str) -> Result<String, PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.contains('\0') {
        return Err(PathError::Nul(path.to_owned()));
    }
    // Checked on the input, so that the work done on a hostile path stays bounded.
    if path.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong(path.to_owned()));
    }
    if !path.starts_with('/') {
        return Err(PathError::Relative(path.to_owned()));
    }
    let mut out = String::with_capacity(path.len());
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(PathError::DotDot(path.to_owned())),
            s if s.len() > MAX_SEGMENT_BYTES => {
                return Err(PathError::SegmentTooLong(path.to_owned()));
            }
            s => {
                out.push('/');
                out.push_str(s);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// `rel` taken below `base`; both normalised absolute: join("/a","/")=="/a", join("/","/x")=="/x",
/// join("/a","/x/y")=="/a/x/y".
pub fn join(base: &str, rel: &str) -> String {
    if rel == "/" || rel.is_empty() {
        base.to_owned()
    } else if base == "/" || base.is_empty() {
        rel.to_owned()
    } else {
        let mut out = String::with_capacity(base.len() + rel.len());
        out.push_str(base);
        out.push_str(rel);
        out
    }
}

/// The part of `path` below `base`, as an absolute path; the inverse of `join`: Some("/x/y") for
/// ("/a", "/a/x/y"), Some("/") for ("/a", "/a"), None for ("/a", "/ab") or ("/a", "/b").
pub fn strip_base(base: &str, path: &str) -> Option<String> {
    below(base, path).map(|rest| {
        if rest.is_empty() {
            "/".to_owned()
        } else {
            rest.to_owned()
        }
    })
}

/// Whether `path` is `base` or below it at a `/` boundary; base "/" contains everything, "/ab" is not within "/a".
pub fn is_within(base: &str, path: &str) -> bool {
    below(base, path).is_some()
}

/// The rest of `path` after `base`: "" when equal, "/…" when below, None otherwise.
fn below<'a>(base: &str, path: &'a str) -> Option<&'a str> {
    if base == "/" {
        return path
            .starts_with('/')
            .then_some(if path == "/" { "" } else { path });
    }
    let rest = path.strip_prefix(base)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// The leading parts of `path` at `/` boundaries, root first, the path itself last: "/", "/a", "/a/b" for
/// "/a/b"; just "/" for "/". Does not allocate.
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let root = path.starts_with('/').then_some("/");
    let inner = path
        .match_indices('/')
        .filter(|&(at, _)| at > 0)
        .map(move |(at, _)| &path[..at]);
    let itself = (path != "/" && !path.is_empty()).then_some(path);
    root.into_iter().chain(inner).chain(itself)
}

/// The path one level up; None for "/".
pub fn parent(path: &str) -> Option<&str> {
    match path.rfind('/')? {
        0 if path.len() > 1 => Some("/"),
        0 => None,
        at => Some(&path[..at]),
    }
}

/// The last segment; None for "/".
pub fn file_name(path: &str) -> Option<&str> {
    path.rsplit('/').next().filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalize_accepts_and_tidies() {
        for (input, want) in [
            ("/", "/"),
            ("//", "/"),
            ("/.", "/"),
            ("/./", "/"),
            ("/a", "/a"),
            ("/a/", "/a"),
            ("//a//b///", "/a/b"),
            ("/a/./b/.", "/a/b"),
            ("/a/.../b", "/a/.../b"),
            ("/a/..b/c..", "/a/..b/c.."),
            ("/dir with space/é/日本", "/dir with space/é/日本"),
        ] {
            assert_eq!(normalize(input).as_deref(), Ok(want), "{input:?}");
        }
        let longest_segment = format!("/{}", "s".repeat(MAX_SEGMENT_BYTES));
        assert_eq!(normalize(&longest_segment), Ok(longest_segment.clone()));
        let longest = format!("/{}", "a/".repeat(2047)); // 4095 bytes
        assert!(normalize(&longest).is_ok());
    }

    #[test]
    fn normalize_refuses() {
        assert_eq!(normalize(""), Err(PathError::Empty));
        assert_eq!(normalize("a/b"), Err(PathError::Relative("a/b".into())));
        assert_eq!(normalize("./a"), Err(PathError::Relative("./a".into())));
        assert_eq!(normalize("~/a"), Err(PathError::Relative("~/a".into())));
        for p in [
            "/..",
            "/../etc",
            "/data/../etc",
            "/a/b/..",
            "/a/../a",
            "//..//",
        ] {
            assert_eq!(normalize(p), Err(PathError::DotDot(p.into())), "{p:?}");
        }
        assert_eq!(normalize("/a\0b"), Err(PathError::Nul("/a\0b".into())));
        let too_long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        assert_eq!(
            normalize(&too_long),
            Err(PathError::TooLong(too_long.clone()))
        );
        let long_segment = format!("/x/{}", "s".repeat(MAX_SEGMENT_BYTES + 1));
        assert_eq!(
            normalize(&long_segment),
            Err(PathError::SegmentTooLong(long_segment.clone()))
        );
        // Bytes, not characters: 128 two-byte characters are 256 bytes.
        assert!(matches!(
            normalize(&format!("/{}", "é".repeat(128))),
            Err(PathError::SegmentTooLong(_))
        ));
    }

    #[test]
    fn messages_name_the_path() {
        assert_eq!(
            normalize("/data/../etc").unwrap_err().to_string(),
            r#"path "/data/../etc" contains a .. segment"#
        );
        assert_eq!(
            normalize("rel").unwrap_err().to_string(),
            r#"path "rel" is not absolute (it must start with /)"#
        );
        let long = normalize(&format!("/{}", "a".repeat(5000))).unwrap_err();
        assert!(long.to_string().len() < 300, "long paths are shortened");
        assert!(long.to_string().starts_with("path \"/aaa"));
        assert_eq!(long.path().len(), 5001);
    }

    #[test]
    fn join_and_strip_base() {
        assert_eq!(join("/a", "/"), "/a");
        assert_eq!(join("/", "/x"), "/x");
        assert_eq!(join("/", "/"), "/");
        assert_eq!(join("/a", "/x/y"), "/a/x/y");
        assert_eq!(strip_base("/a", "/a/x/y").as_deref(), Some("/x/y"));
        assert_eq!(strip_base("/a", "/a").as_deref(), Some("/"));
        assert_eq!(strip_base("/a", "/ab"), None);
        assert_eq!(strip_base("/a", "/b"), None);
        assert_eq!(strip_base("/a/b", "/a"), None);
        assert_eq!(strip_base("/", "/x").as_deref(), Some("/x"));
        assert_eq!(strip_base("/", "/").as_deref(), Some("/"));
    }

    #[test]
    fn within() {
        assert!(is_within("/a", "/a"));
        assert!(is_within("/a", "/a/b"));
        assert!(!is_within("/a", "/ab"));
        assert!(!is_within("/a", "/b"));
        assert!(!is_within("/a/b", "/a"));
        assert!(is_within("/", "/"));
        assert!(is_within("/", "/anything/at/all"));
    }

    #[test]
    fn ancestors_parent_file_name() {
        assert_eq!(ancestors("/a/b").collect::<Vec<_>>(), ["/", "/a", "/a/b"]);
        assert_eq!(
            ancestors("/a/b/c").collect::<Vec<_>>(),
            ["/", "/a", "/a/b", "/a/b/c"]
        );
        assert_eq!(ancestors("/").collect::<Vec<_>>(), ["/"]);
        assert_eq!(ancestors("/x").collect::<Vec<_>>(), ["/", "/x"]);
        assert_eq!(parent("/"), None);
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(file_name("/"), None);
        assert_eq!(file_name("/a"), Some("a"));
        assert_eq!(file_name("/a/b.txt"), Some("b.txt"));
    }

    proptest! {
        #[test]
        fn normalize_properties(segments in proptest::collection::vec("(|\\.|\\.\\.|a|bc|é|/|\\.x)", 0..8), slashes in 1usize..3) {
            let raw = format!("/{}", segments.join(&"/".repeat(slashes)));
            match normalize(&raw) {
                Ok(n) => {
                    prop_assert_eq!(normalize(&n), Ok(n.clone()));
                    prop_assert!(n.starts_with('/'));
                    prop_assert!(!n.contains("//") && !n.contains("/./") && !n.contains("/../"));
                    prop_assert!(n == "/" || !n.ends_with('/'));
                    prop_assert!(!raw.split('/').any(|s| s == ".."));
                    for a in ancestors(&n) {
                        prop_assert!(is_within(a, &n));
                        let rel = strip_base(a, &n).unwrap_or_default();
                        prop_assert_eq!(join(a, &rel), n.clone());
                    }
                    prop_assert_eq!(ancestors(&n).last(), Some(n.as_str()));
                    if let Some(p) = parent(&n) {
                        prop_assert_eq!(join(p, &format!("/{}", file_name(&n).unwrap_or_default())), n.clone());
                    }
                }
                Err(e) => prop_assert_eq!(e, PathError::DotDot(raw.clone())),
            }
        }
    }
}
