//! `path::normalize` never panics; what it accepts is normalised and stays so; the helpers that take
//! normalised paths never panic on them.
#![no_main]

use ferry_core::path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(n) = path::normalize(text) else { return };
    assert_eq!(path::normalize(&n), Ok(n.clone()), "not idempotent: {text:?}");
    assert!(n.starts_with('/'), "{n:?}");
    assert!(!n.contains("//") && !n.contains("/./") && !n.contains("/../"), "{n:?}");
    assert!(n == "/" || !(n.ends_with('/') || n.ends_with("/.") || n.ends_with("/..")), "{n:?}");
    assert!(n.len() <= path::MAX_PATH_BYTES);
    let mut count = 0;
    for a in path::ancestors(&n) {
        count += 1;
        assert!(path::is_within(a, &n));
        let rel = path::strip_base(a, &n).unwrap_or_else(|| panic!("{a:?} is an ancestor of {n:?}"));
        assert_eq!(path::join(a, &rel), n);
    }
    assert!(count >= 1);
    if let Some(parent) = path::parent(&n) {
        let name = path::file_name(&n).unwrap_or_else(|| panic!("{n:?} has a parent but no name"));
        assert_eq!(path::join(parent, &format!("/{name}")), n);
    }
});
