//! fnmatch never panics, `Pattern::matches` agrees with `fnmatch`, and both agree with glibc's
//! `fnmatch(p, n, 0)` in C.UTF-8 wherever glibc is a reference (see `oracle`).
//! Input: UTF-8 text, pattern and name separated by the first newline.
#![no_main]

use ferry_core::fnmatch::{Pattern, fnmatch};
use libfuzzer_sys::fuzz_target;
use std::ffi::CString;
use std::sync::OnceLock;

/// glibc's answer, in C.UTF-8 (`utf8`) or in the C locale (byte by byte).
fn glibc(p: &CString, n: &CString, utf8: bool) -> bool {
    // Locale objects made once; `uselocale` switches only this thread.
    static LOCALES: OnceLock<(usize, usize)> = OnceLock::new();
    let &(wide, bytes) = LOCALES.get_or_init(|| {
        // SAFETY: NUL-terminated literals; a null base locale asks for a fresh object.
        unsafe {
            let wide = libc::newlocale(libc::LC_ALL_MASK, c"C.UTF-8".as_ptr(), std::ptr::null_mut());
            let bytes = libc::newlocale(libc::LC_ALL_MASK, c"C".as_ptr(), std::ptr::null_mut());
            assert!(!wide.is_null() && !bytes.is_null(), "locales C.UTF-8 and C are needed");
            (wide as usize, bytes as usize)
        }
    });
    let locale = if utf8 { wide } else { bytes } as libc::locale_t;
    // SAFETY: valid locale objects that live for the whole run; valid NUL-terminated strings.
    unsafe {
        let previous = libc::uselocale(locale);
        let r = libc::fnmatch(p.as_ptr(), n.as_ptr(), 0) == 0;
        libc::uselocale(previous);
        r
    }
}

/// What glibc says, or None where it is no reference for character-wise matching: it also accepts byte-wise
/// matches of non-ASCII text; in C.UTF-8 it orders only Latin-1 in ranges and mis-parses range ends for
/// characters above U+00FF; classes above U+00FF are approximated on our side.
fn oracle(p: &str, n: &str) -> Option<bool> {
    let wide_pattern = p.chars().any(|c| c > '\u{ff}');
    let wide_name = n.chars().any(|c| c > '\u{ff}');
    if (wide_pattern && p.contains('-')) || (wide_name && (p.contains('-') || p.contains("[:"))) {
        return None;
    }
    let (pc, nc) = (CString::new(p).ok()?, CString::new(n).ok()?);
    let utf8 = glibc(&pc, &nc, true);
    if utf8 && !(p.is_ascii() && n.is_ascii()) && glibc(&pc, &nc, false) {
        return None;
    }
    Some(utf8)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (p, n) = text.split_once('\n').unwrap_or((text, ""));
    let ours = fnmatch(p, n);
    let pattern = Pattern::new(p);
    assert_eq!(pattern.matches(n), ours, "Pattern::matches vs fnmatch: {p:?} {n:?}");
    assert!(pattern.ranks().len() <= p.chars().count());
    if ours {
        assert!(n.starts_with(pattern.literal_prefix()), "literal prefix {:?} of {p:?} vs {n:?}", pattern.literal_prefix());
    }
    if let Some(want) = oracle(p, n) {
        assert_eq!(ours, want, "glibc disagrees: fnmatch({p:?}, {n:?})");
    }
});
