//! The `PathRestrictions` document (`path_restrictions#1.0.0`) and its evaluation, as
//! shared/design/path-restrictions.md specifies: which rules apply to a path, their precedence, and how
//! several applicable rules combine.
//!
//! `PathRestrictions::compile` does all per-user work once (interpolation, compiling, sorting); afterwards
//! `Compiled::access` answers on the hot path without allocating, and `Compiled::evaluate` explains the answer.

use crate::fnmatch::{self, Pattern};
use crate::path;
use serde_json::{Map, Value};

pub const DATA_TYPE: &str = "path_restrictions#1.0.0";
/// Most entries one list may hold.
pub const MAX_ENTRIES: usize = 1000;
/// Longest entry, in bytes.
pub const MAX_ENTRY_BYTES: usize = 4096;

/// A right on a path. Ordered: `None < Read < ReadWrite`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    None,
    Read,
    ReadWrite,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::None => "none",
            Access::Read => "read",
            Access::ReadWrite => "read_write",
        }
    }

    /// The seed's override table: `self` is the longer (higher-precedence) rule, `shorter` the running result.
    /// A longer `none` or `read_write` always wins; a longer `read` lifts `none` but does not lower `read_write`.
    fn over(self, shorter: Access) -> Access {
        match (self, shorter) {
            (Access::Read, Access::ReadWrite) => Access::ReadWrite,
            (longer, _) => longer,
        }
    }

    /// Among rules with identical rank sequences, the more restrictive one has the higher precedence.
    fn tie_order(self) -> u8 {
        match self {
            Access::ReadWrite => 0,
            Access::Read => 1,
            Access::None => 2,
        }
    }

    const LISTS: [Access; 3] = [Access::None, Access::Read, Access::ReadWrite];
}

/// A document's three lists of patterns, as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathRestrictions {
    pub none: Vec<String>,
    pub read: Vec<String>,
    pub read_write: Vec<String>,
}

/// A refused document: `field` locates the problem (`restrict_paths.read[2]`), `message` says what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestrictionError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for RestrictionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for RestrictionError {}

fn refuse(field: impl Into<String>, message: impl Into<String>) -> RestrictionError {
    RestrictionError {
        field: field.into(),
        message: message.into(),
    }
}

impl PathRestrictions {
    fn list(&self, access: Access) -> &[String] {
        match access {
            Access::None => &self.none,
            Access::Read => &self.read,
            Access::ReadWrite => &self.read_write,
        }
    }

    /// Parses and validates a document. `field` names the document in messages ("restrict_paths",
    /// "sharing_restrict_paths"). Accepts `DATA_TYPE` absent or exactly "path_restrictions#1.0.0"; the three
    /// lists are optional (absent or null: empty); refuses unknown keys, non-string entries, entries not
    /// matching `^[/~\$\*\?\[].*$`, the same pattern string in two lists, more than 1000 entries per list,
    /// entries over 4096 bytes.
    pub fn from_json(value: &Value, field: &str) -> Result<Self, RestrictionError> {
        let Value::Object(map) = value else {
            return Err(refuse(field, "must be an object"));
        };
        if let Some(key) = map
            .keys()
            .find(|k| !matches!(k.as_str(), "DATA_TYPE" | "none" | "read" | "read_write"))
        {
            return Err(refuse(field, format!("unknown key {key:?}")));
        }
        match map.get("DATA_TYPE") {
            None => {}
            Some(Value::String(s)) if s == DATA_TYPE => {}
            Some(other) => {
                return Err(refuse(
                    format!("{field}.DATA_TYPE"),
                    format!("must be {DATA_TYPE:?}, not {other}"),
                ));
            }
        }
        let doc = PathRestrictions {
            none: string_list(map, field, Access::None)?,
            read: string_list(map, field, Access::Read)?,
            read_write: string_list(map, field, Access::ReadWrite)?,
        };
        doc.validate(field)?;
        Ok(doc)
    }

    /// `{"DATA_TYPE":"path_restrictions#1.0.0","none":[..],"read":[..],"read_write":[..]}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "DATA_TYPE": DATA_TYPE,
            "none": self.none,
            "read": self.read,
            "read_write": self.read_write,
        })
    }

    /// The checks of `from_json` that concern the lists' contents.
    pub fn validate(&self, field: &str) -> Result<(), RestrictionError> {
        for access in Access::LISTS {
            let name = access.as_str();
            let list = self.list(access);
            if list.len() > MAX_ENTRIES {
                return Err(refuse(
                    format!("{field}.{name}"),
                    format!(
                        "has {} entries, more than the {MAX_ENTRIES} allowed",
                        list.len()
                    ),
                ));
            }
            for (i, entry) in list.iter().enumerate() {
                check_entry(entry)
                    .map_err(|message| refuse(format!("{field}.{name}[{i}]"), message))?;
            }
        }
        // The very same pattern in two lists has no sensible meaning (path-restrictions.md, vector 24).
        for (a, later) in [
            (Access::None, Access::Read),
            (Access::None, Access::ReadWrite),
            (Access::Read, Access::ReadWrite),
        ] {
            for (i, entry) in self.list(later).iter().enumerate() {
                if self.list(a).contains(entry) {
                    return Err(refuse(
                        format!("{field}.{}[{i}]", later.as_str()),
                        format!(
                            "{entry:?} is also in {}; a pattern may appear in one list only",
                            a.as_str()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Interpolates and compiles the rules for one user; see `Vars`.
    pub fn compile(&self, vars: &Vars<'_>) -> Compiled {
        let mut rules: Vec<Rule> = Vec::new();
        for access in Access::LISTS {
            for pattern in self.list(access) {
                let Some(interpolated) = interpolate(pattern, vars) else {
                    continue;
                };
                let compiled = Pattern::new(&interpolated);
                // A trailing `/` is ignored (path-restrictions.md), except for the pattern `/` itself.
                let trimmed = compiled.trim_trailing_slashes();
                let matcher = if trimmed.len() == interpolated.len() {
                    compiled
                } else {
                    Pattern::new(trimmed)
                };
                let test = match matcher.exact_literal() {
                    // Paths are absolute, so a pattern that is not can never apply.
                    Some(lit) if !lit.starts_with('/') => continue,
                    Some(lit) => Test::Exact(lit.to_owned()),
                    None if !matcher.literal_prefix().starts_with('/')
                        && !matcher.literal_prefix().is_empty() =>
                    {
                        continue;
                    }
                    None => Test::Wild,
                };
                rules.push(Rule {
                    rule: RuleRef {
                        list: access,
                        pattern: pattern.clone(),
                        interpolated,
                    },
                    matcher,
                    test,
                });
            }
        }
        // Lowest precedence first; the sort is stable, so equal keys keep document order.
        rules.sort_by(|a, b| {
            a.matcher
                .ranks()
                .cmp(b.matcher.ranks())
                .then(a.rule.list.tie_order().cmp(&b.rule.list.tie_order()))
        });
        let heads = rules
            .iter()
            .map(|r| match &r.test {
                Test::Exact(lit) => Head::of(lit),
                Test::Wild => Head::of(r.matcher.literal_prefix()),
            })
            .collect();
        Compiled { rules, heads }
    }
}

fn string_list(
    map: &Map<String, Value>,
    field: &str,
    access: Access,
) -> Result<Vec<String>, RestrictionError> {
    let name = access.as_str();
    match map.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            if items.len() > MAX_ENTRIES {
                return Err(refuse(
                    format!("{field}.{name}"),
                    format!(
                        "has {} entries, more than the {MAX_ENTRIES} allowed",
                        items.len()
                    ),
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(refuse(
                        format!("{field}.{name}[{i}]"),
                        format!("must be a string, not {other}"),
                    )),
                })
                .collect()
        }
        Some(other) => Err(refuse(
            format!("{field}.{name}"),
            format!("must be a list of strings, not {other}"),
        )),
    }
}

/// The schema's `^[/~\$\*\?\[].*$` (ECMA-262: `.` excludes line terminators), plus size and NUL limits.
fn check_entry(entry: &str) -> Result<(), String> {
    if entry.len() > MAX_ENTRY_BYTES {
        return Err(format!(
            "is {} bytes long, more than the {MAX_ENTRY_BYTES} allowed",
            entry.len()
        ));
    }
    if !entry.starts_with(['/', '~', '$', '*', '?', '[']) {
        return Err(format!("{entry:?} must start with one of / ~ $ * ? ["));
    }
    if entry.contains(['\n', '\r', '\u{2028}', '\u{2029}']) {
        return Err(format!("{entry:?} must not contain a line break"));
    }
    // Not in the schema, but no storage path can contain NUL, so such a pattern is a mistake.
    if entry.contains('\0') {
        return Err(format!("{entry:?} must not contain a NUL character"));
    }
    Ok(())
}

/// Where `~` and `$HOME` lead for one account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Home<'a> {
    /// The storage has no home folders: `~` and `$HOME` mean `/` (path-restrictions.md, vector 23).
    #[default]
    NoConcept,
    /// The storage has home folders, but this account has none it can reach (no such account on the host, or
    /// a home outside the gateway's folder): patterns and base paths that name the home apply to nothing.
    /// Reading it as `/` would hand such an account the whole gateway through `read_write: ["$HOME"]`.
    Missing,
    /// The home folder in the gateway's namespace.
    At(&'a str),
}

impl<'a> Home<'a> {
    /// What a storage's look-up found: `has_homes` is whether the storage has the concept at all.
    pub fn from_lookup(has_homes: bool, found: Option<&'a str>) -> Self {
        match (has_homes, found) {
            (false, _) => Home::NoConcept,
            (true, Some(h)) => Home::At(h),
            (true, None) => Home::Missing,
        }
    }

    /// The home without a trailing `/` ("" for the root); None when there is none to go to.
    fn trimmed(self) -> Option<&'a str> {
        match self {
            Home::NoConcept => Some(""),
            Home::At(h) => Some(h.trim_end_matches('/')),
            Home::Missing => None,
        }
    }
}

/// Whether a pattern or base path names the home folder (`~`, `~/…` or `$HOME`, not escaped).
pub fn names_home(pattern: &str) -> bool {
    if pattern == "~" || pattern.starts_with("~/") {
        return true;
    }
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        if c == '\\' {
            let escaped = rest.chars().nth(1).map_or(0, char::len_utf8);
            rest = &rest[1 + escaped..];
        } else if rest.starts_with("$HOME") {
            return true;
        } else {
            rest = &rest[c.len_utf8()..];
        }
    }
    false
}

/// The values interpolated into patterns for one user.
/// `user`: the effective storage username ($USER). None: patterns using $USER apply to nothing.
/// `home`: where `~` and `$HOME` lead (see [`Home`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Vars<'a> {
    pub user: Option<&'a str>,
    pub home: Home<'a>,
}

/// `~` (whole pattern or a leading `~/`), `$HOME` and `$USER` replaced by their values, escaped so that they
/// match literally. None when the pattern needs a value that is missing (then it applies to nothing).
/// Backslash escapes are kept as they are, so `\$USER` is a literal `$USER`.
fn interpolate(pattern: &str, vars: &Vars<'_>) -> Option<String> {
    // The home without trailing `/`: "" for the root, so that `~/x` and `$HOME/x` never become `//x`.
    let home = match vars.home.trimmed() {
        Some(h) => h,
        None if names_home(pattern) => return None,
        None => "",
    };
    let home = fnmatch::escape(home);
    let user = match vars.user {
        Some(u) if !u.is_empty() => Some(fnmatch::escape(u)),
        _ => None,
    };
    let mut out = String::with_capacity(pattern.len() + home.len());
    // Writes the home; the root's "/" is left to a `/` that follows, if any.
    let push_home = |out: &mut String, rest: &str| {
        if home.is_empty() {
            if !rest.starts_with('/') {
                out.push('/');
            }
        } else {
            out.push_str(&home);
        }
    };
    let mut rest = pattern;
    if pattern == "~" || pattern.starts_with("~/") {
        rest = &pattern[1..];
        push_home(&mut out, rest);
    }
    while let Some(c) = rest.chars().next() {
        if c == '\\' {
            let escaped = rest.chars().nth(1).map_or(0, char::len_utf8);
            out.push_str(&rest[..1 + escaped]);
            rest = &rest[1 + escaped..];
        } else if let Some(after) = rest.strip_prefix("$HOME") {
            push_home(&mut out, after);
            rest = after;
        } else if let Some(after) = rest.strip_prefix("$USER") {
            out.push_str(user.as_deref()?);
            rest = after;
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    Some(out)
}

/// One rule as `evaluate` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    pub list: Access,
    /// As written in the document.
    pub pattern: String,
    /// After interpolation.
    pub interpolated: String,
}

/// The full answer for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// None: no rule applies (which means no access).
    pub access: Option<Access>,
    /// The rule whose value the result took.
    pub decided_by: Option<RuleRef>,
    /// Every applicable rule, lowest precedence first.
    pub applicable: Vec<RuleRef>,
}

impl Evaluation {
    pub fn effective(&self) -> Access {
        self.access.unwrap_or(Access::None)
    }
}

/// How a rule decides whether it applies to a path.
#[derive(Debug, Clone)]
enum Test {
    /// A pattern without wildcards or brackets: applies to that path and everything below it.
    Exact(String),
    /// fnmatch against the path and its ancestors that can start with the literal prefix.
    Wild,
}

#[derive(Debug, Clone)]
struct Rule {
    rule: RuleRef,
    matcher: Pattern,
    test: Test,
}

/// A quick, allocation-free pre-filter: the first 8 bytes of the text every path the rule applies to
/// starts with, as a masked word. Most rules are rejected by one comparison; a pass still needs `applies`.
#[derive(Debug, Clone, Copy)]
struct Head {
    bytes: u64,
    mask: u64,
}

impl Head {
    fn of(prefix: &str) -> Head {
        let n = prefix.len().min(8);
        Head {
            bytes: word(prefix),
            mask: if n == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * n)) - 1
            },
        }
    }

    fn admits(self, path_word: u64) -> bool {
        path_word & self.mask == self.bytes
    }
}

/// The first 8 bytes of `s` as a little-endian word, zero-padded.
fn word(s: &str) -> u64 {
    let mut buf = [0u8; 8];
    let n = s.len().min(8);
    buf[..n].copy_from_slice(&s.as_bytes()[..n]);
    u64::from_le_bytes(buf)
}

impl Rule {
    /// Whether the pattern matches `path` or a leading part of it ending at a `/` boundary.
    fn applies(&self, path: &str) -> bool {
        match &self.test {
            Test::Exact(lit) => lit == "/" || path::is_within(lit, path),
            Test::Wild => {
                let prefix = self.matcher.literal_prefix();
                // Every match starts with the prefix, and every candidate is a leading part of `path`.
                path.starts_with(prefix)
                    && path::ancestors(path)
                        .filter(|a| a.len() >= prefix.len())
                        .any(|a| self.matcher.matches(a))
            }
        }
    }
}

/// The override walk from the lowest-precedence applicable rule to the highest.
///
/// Rules with identical rank sequences form one step whose value is their most restrictive one (the sort puts
/// it last in its group), so that a tie never widens access: `read` and `read_write` tied on a path give
/// `read` over whatever the shorter rules gave, as one `read` rule would.
#[derive(Default)]
struct Walk<'a> {
    access: Option<Access>,
    /// The result before the current tie group, and the group's rank sequence.
    before_group: Option<Access>,
    group: Option<&'a [u8]>,
}

impl<'a> Walk<'a> {
    fn step(&mut self, rule: &'a Rule) -> Access {
        let ranks = rule.matcher.ranks();
        if self.group != Some(ranks) {
            self.before_group = self.access;
            self.group = Some(ranks);
        }
        let own = rule.rule.list;
        let result = self.before_group.map_or(own, |shorter| own.over(shorter));
        self.access = Some(result);
        result
    }
}

/// The rules of one document for one user, sorted by precedence, ready for evaluation.
#[derive(Debug, Clone)]
pub struct Compiled {
    rules: Vec<Rule>,
    /// `heads[i]` is `rules[i]`'s pre-filter, kept apart so that the scan stays within a few cache lines.
    heads: Vec<Head>,
}

impl Compiled {
    /// Full detail, for `ferry access explain`. `path` is normalised (`path::normalize`).
    pub fn evaluate(&self, path: &str) -> Evaluation {
        let mut walk = Walk::default();
        let mut decided_by: Option<&RuleRef> = None;
        let mut applicable = Vec::new();
        for rule in self.applicable(path) {
            let result = walk.step(rule);
            // The rule decides when the result is its own value; `read` over `read_write` leaves the decider.
            if result == rule.rule.list {
                decided_by = Some(&rule.rule);
            }
            applicable.push(rule.rule.clone());
        }
        Evaluation {
            access: walk.access,
            decided_by: decided_by.cloned(),
            applicable,
        }
    }

    /// The same answer as `evaluate(path).access`, for the hot path: no heap allocation.
    pub fn access(&self, path: &str) -> Option<Access> {
        let mut walk = Walk::default();
        for rule in self.applicable(path) {
            walk.step(rule);
        }
        walk.access
    }

    /// The rules that apply to `path`, lowest precedence first.
    fn applicable<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a Rule> + 'a {
        let path_word = word(path);
        self.heads
            .iter()
            .zip(&self.rules)
            .filter(move |(head, rule)| head.admits(path_word) && rule.applies(path))
            .map(|(_, rule)| rule)
    }

    /// True when no rule can apply to any path (so every path gets no access), e.g. an empty document or
    /// one whose only rules use `$USER` when there is no user.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::cell::Cell;

    /// Counts this thread's allocations, to show that `access` and `Pattern::matches` make none.
    struct Counting;

    thread_local! {
        static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    }

    // SAFETY: forwards to the system allocator unchanged; only counts.
    unsafe impl std::alloc::GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
            // SAFETY: same contract as ours.
            unsafe { std::alloc::System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
            // SAFETY: same contract as ours.
            unsafe { std::alloc::System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    fn allocations_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let before = ALLOCATIONS.with(Cell::get);
        let out = f();
        (out, ALLOCATIONS.with(Cell::get) - before)
    }

    fn doc(none: &[&str], read: &[&str], read_write: &[&str]) -> PathRestrictions {
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        PathRestrictions {
            none: owned(none),
            read: owned(read),
            read_write: owned(read_write),
        }
    }

    const NONE: Option<Access> = Some(Access::None);
    const R: Option<Access> = Some(Access::Read);
    const RW: Option<Access> = Some(Access::ReadWrite);
    const NO_RULE: Option<Access> = None;

    /// Every numbered vector of path-restrictions.md.
    #[test]
    fn design_vectors() {
        let ana_home = Vars {
            user: Some("ana"),
            home: Home::At("/home/ana"),
        };
        let ana = Vars {
            user: Some("ana"),
            home: Home::NoConcept,
        };
        let plain = Vars::default();
        #[rustfmt::skip]
        let vectors: &[(u32, PathRestrictions, Vars<'_>, &str, Option<Access>)] = &[
            (1, doc(&[], &[], &["/data"]), plain, "/data", RW),
            (2, doc(&[], &[], &["/data"]), plain, "/data/x/y", RW),
            (3, doc(&[], &[], &["/data"]), plain, "/database", NO_RULE),
            (4, doc(&[], &[], &["/data"]), plain, "/", NO_RULE),
            (5, doc(&["/"], &[], &["$HOME"]), ana_home, "/home/ana/f", RW),
            (6, doc(&["/"], &[], &["$HOME"]), ana_home, "/home/bob/f", NONE),
            (7, doc(&[], &["/data/ref"], &["/data"]), plain, "/data/ref/x", RW),
            (8, doc(&["/data/ref"], &[], &["/data"]), plain, "/data/ref/x", NONE),
            (9, doc(&["/data"], &["/data/pub"], &[]), plain, "/data/pub/x", R),
            (10, doc(&["/data"], &[], &["/data/pub"]), plain, "/data/pub/x", RW),
            (11, doc(&["/data/priv"], &["/data"], &[]), plain, "/data/priv", NONE),
            (12, doc(&["/a/b"], &["/a/b/c"], &["/a"]), plain, "/a/b/c/f", R),
            (13, doc(&["/a/b"], &["/a/b/c"], &["/a"]), plain, "/a/b/x", NONE),
            (14, doc(&["/a/b"], &["/a/b/c"], &["/a"]), plain, "/a/x", RW),
            (15, doc(&["/proj/secret"], &[], &["/proj/*"]), plain, "/proj/secret/f", NONE),
            (16, doc(&["/proj/secret"], &[], &["/proj/*"]), plain, "/proj/open/f", RW),
            (17, doc(&["*"], &["/opt/out"], &["/opt/in"]), plain, "/opt/in/a", RW),
            (18, doc(&["*"], &["/opt/out"], &["/opt/in"]), plain, "/etc/passwd", NONE),
            (19, doc(&["/d/a?"], &["/d/[ab]*"], &[]), plain, "/d/ax", NONE),
            (20, doc(&["/d/[ab]x"], &["/d/a?"], &[]), plain, "/d/ax", R),
            (21, doc(&[], &[], &["/u/$USER"]), ana, "/u/ana/x", RW),
            (22, doc(&[], &[], &["/u/$USER"]), ana, "/u/bob/x", NO_RULE),
            (23, doc(&[], &[], &["~"]), plain, "/anything", RW),
            (26, doc(&[], &[], &["/data\\*"]), plain, "/data*", RW),
            (27, doc(&[], &[], &["/data\\*"]), plain, "/datax", NO_RULE),
            (29, doc(&["/"], &["/[[:digit:]]*"], &[]), plain, "/2024/run", R),
            (30, doc(&["/"], &["/[!a]*"], &[]), plain, "/abc", NONE),
        ];
        for (n, d, vars, path, want) in vectors {
            d.validate("restrict_paths")
                .unwrap_or_else(|e| panic!("vector {n}: {e}"));
            let back = PathRestrictions::from_json(&d.to_json(), "restrict_paths");
            assert_eq!(back.as_ref(), Ok(d), "vector {n} round trip");
            let compiled = d.compile(vars);
            assert_eq!(compiled.evaluate(path).access, *want, "vector {n}: {path}");
            assert_eq!(compiled.access(path), *want, "vector {n}: {path} (access)");
        }

        // 24: the same pattern in two lists.
        let e =
            PathRestrictions::from_json(&json!({"read": ["/x"], "none": ["/x"]}), "restrict_paths")
                .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"restrict_paths.read[0]: "/x" is also in none; a pattern may appear in one list only"#
        );
        // 25: does not match ^[/~\$\*\?\[].*$.
        let e =
            PathRestrictions::from_json(&json!({"read": ["data"]}), "restrict_paths").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"restrict_paths.read[0]: "data" must start with one of / ~ $ * ? ["#
        );
        // 28: leaving the root through `..` is refused before evaluation.
        assert_eq!(
            path::normalize("/data/../etc"),
            Err(path::PathError::DotDot("/data/../etc".into()))
        );
    }

    #[test]
    fn from_json_accepts() {
        let empty = PathRestrictions::from_json(&json!({}), "restrict_paths");
        assert_eq!(empty, Ok(PathRestrictions::default()));
        let full = json!({"DATA_TYPE": DATA_TYPE, "none": ["/"], "read": null, "read_write": ["~/", "$HOME/x", "*", "?x", "[ab]"]});
        let d = PathRestrictions::from_json(&full, "restrict_paths").expect("valid");
        assert_eq!(d.none, ["/"]);
        assert!(d.read.is_empty());
        assert_eq!(d.read_write.len(), 5);
        assert_eq!(
            d.to_json(),
            json!({"DATA_TYPE": DATA_TYPE, "none": ["/"], "read": [], "read_write": ["~/", "$HOME/x", "*", "?x", "[ab]"]})
        );
        let mut many = vec![json!("/x"); MAX_ENTRIES];
        many[0] = json!("/y");
        assert!(PathRestrictions::from_json(&json!({ "read": many }), "f").is_ok());
        let long = format!("/{}", "a".repeat(MAX_ENTRY_BYTES - 1));
        assert!(PathRestrictions::from_json(&json!({ "read": [long] }), "f").is_ok());
    }

    #[test]
    fn from_json_refuses() {
        let f = "sharing_restrict_paths";
        let long = format!("/{}", "a".repeat(MAX_ENTRY_BYTES));
        let too_many = vec![json!("/x"); MAX_ENTRIES + 1];
        for (value, field, message) in [
            (json!([]), f.to_string(), "must be an object"),
            (
                json!({"extra": []}),
                f.to_string(),
                r#"unknown key "extra""#,
            ),
            (
                json!({"DATA_TYPE": "path_restrictions#1.0.1"}),
                format!("{f}.DATA_TYPE"),
                "must be",
            ),
            (json!({"DATA_TYPE": 1}), format!("{f}.DATA_TYPE"), "must be"),
            (
                json!({"none": "/x"}),
                format!("{f}.none"),
                "must be a list of strings",
            ),
            (
                json!({"read": ["/a", 3]}),
                format!("{f}.read[1]"),
                "must be a string",
            ),
            (
                json!({"read_write": ["/a", ""]}),
                format!("{f}.read_write[1]"),
                "must start with one of",
            ),
            (
                json!({"read_write": ["a/b"]}),
                format!("{f}.read_write[0]"),
                "must start with one of",
            ),
            (
                json!({"read_write": ["/a\nb"]}),
                format!("{f}.read_write[0]"),
                "line break",
            ),
            (
                json!({"read_write": ["/a\u{0}b"]}),
                format!("{f}.read_write[0]"),
                "NUL",
            ),
            (
                json!({"read": [long]}),
                format!("{f}.read[0]"),
                "more than the 4096 allowed",
            ),
            (
                json!({"none": too_many}),
                format!("{f}.none"),
                "more than the 1000 allowed",
            ),
            (
                json!({"read_write": ["/a"], "read": ["/b", "/a"]}),
                format!("{f}.read_write[0]"),
                "also in read",
            ),
        ] {
            let e = PathRestrictions::from_json(&value, f).expect_err(&value.to_string());
            assert_eq!(e.field, field, "{value}");
            assert!(e.message.contains(message), "{value}: {e}");
            assert_eq!(e.to_string(), format!("{}: {}", e.field, e.message));
        }
    }

    #[test]
    fn interpolation() {
        let vars = Vars {
            user: Some("ana*"),
            home: Home::At("/home/a[1]/"),
        };
        for (pattern, want) in [
            ("~", Some("/home/a\\[1]")),
            ("~/", Some("/home/a\\[1]/")),
            ("~/x", Some("/home/a\\[1]/x")),
            ("$HOME", Some("/home/a\\[1]")),
            ("$HOME/x/$USER", Some("/home/a\\[1]/x/ana\\*")),
            ("/u/$USER/*", Some("/u/ana\\*/*")),
            ("~ana", Some("~ana")),
            ("/x/~", Some("/x/~")),
            ("/x/\\$USER", Some("/x/\\$USER")),
            ("/x\\", Some("/x\\")),
        ] {
            assert_eq!(interpolate(pattern, &vars).as_deref(), want, "{pattern:?}");
        }
        let root = Vars {
            user: None,
            home: Home::At("/"),
        };
        for (pattern, want) in [
            ("~", Some("/")),
            ("~/", Some("/")),
            ("~/x", Some("/x")),
            ("$HOME", Some("/")),
            ("$HOME/x", Some("/x")),
            ("/u/$USER", None),
        ] {
            assert_eq!(interpolate(pattern, &root).as_deref(), want, "{pattern:?}");
            assert_eq!(
                interpolate(pattern, &Vars::default()).as_deref(),
                want,
                "{pattern:?} without home"
            );
        }
        assert_eq!(
            interpolate(
                "/u/$USER",
                &Vars {
                    user: Some(""),
                    home: Home::NoConcept
                }
            ),
            None
        );

        // A storage with home folders, and an account without one: the home names nothing, never "/".
        let missing = Vars {
            user: Some("ana"),
            home: Home::Missing,
        };
        for pattern in ["~", "~/x", "$HOME", "/a/$HOME/b"] {
            assert_eq!(interpolate(pattern, &missing), None, "{pattern:?}");
        }
        assert_eq!(
            interpolate("/x/\\$HOME", &missing).as_deref(),
            Some("/x/\\$HOME")
        );
        assert_eq!(interpolate("/u/$USER", &missing).as_deref(), Some("/u/ana"));
        let c = doc(&["/"], &[], &["$HOME"]).compile(&missing);
        assert_eq!(c.access("/anything"), NONE);
        assert_eq!(c.access("/"), NONE);
        assert!(
            names_home("~") && names_home("$HOME/x") && names_home("~/") && names_home("/a$HOME")
        );
        assert!(!names_home("~ana") && !names_home("/x/\\$HOME") && !names_home("/x/~"));

        // An escaped home matches literally, and `~/` with home "/" covers everything.
        let d = doc(&[], &[], &["~"]);
        let c = d.compile(&vars);
        assert_eq!(c.access("/home/a[1]/f"), RW);
        assert_eq!(c.access("/home/a1/f"), NO_RULE);
        let c = doc(&[], &["~/"], &[]).compile(&root);
        assert_eq!(c.access("/"), R);
        assert_eq!(c.access("/x"), R);
        // Without a user, $USER rules apply to nothing.
        let c = doc(&[], &[], &["/u/$USER"]).compile(&Vars::default());
        assert!(c.is_empty());
        assert_eq!(c.evaluate("/u/x").access, NO_RULE);
    }

    #[test]
    fn trailing_slash_is_ignored_except_for_root() {
        let c = doc(&[], &["/data/"], &["/"]).compile(&Vars::default());
        assert_eq!(c.access("/data"), RW, "read does not lower read_write");
        let c = doc(&["/"], &["/data/"], &[]).compile(&Vars::default());
        assert_eq!(c.access("/data"), R);
        assert_eq!(c.access("/data/x"), R);
        assert_eq!(c.access("/database"), NONE);
        assert_eq!(c.access("/"), NONE);
        let e = c.evaluate("/data/x");
        assert_eq!(
            e.applicable
                .iter()
                .map(|r| r.interpolated.as_str())
                .collect::<Vec<_>>(),
            ["/", "/data/"]
        );
        let c = doc(&[], &["/x/*/"], &[]).compile(&Vars::default());
        assert_eq!(c.access("/x/y"), R);
    }

    #[test]
    fn a_tie_never_widens_access() {
        // `/d/[ab]x` and `/d/[ac]x` rank alike on `/d/ax`: read and read_write tied give read.
        let c = doc(&[], &["/d/[ab]x"], &["/d/[ac]x"]).compile(&Vars::default());
        assert_eq!(c.access("/d/ax"), R);
        assert_eq!(c.evaluate("/d/ax").decided_by.unwrap().pattern, "/d/[ab]x");
        // Over a shorter none, the tie group still gives read; over a shorter read_write, read does not lower it.
        let c = doc(&["/"], &["/d/[ab]x"], &["/d/[ac]x"]).compile(&Vars::default());
        assert_eq!(c.access("/d/ax/f"), R);
        let c = doc(&[], &["/d/[ab]x"], &["/", "/d/[ac]x"]).compile(&Vars::default());
        assert_eq!(c.access("/d/ax"), RW);
        // Only one member applying is no tie.
        let c = doc(&[], &["/d/[ab]x"], &["/d/[ac]x"]).compile(&Vars::default());
        assert_eq!(c.access("/d/cx"), RW);
        assert_eq!(c.access("/d/bx"), R);
    }

    #[test]
    fn precedence_order() {
        // `/` is below every other absolute pattern, `*` alone is the lowest of all.
        let c = doc(&["*"], &["/"], &["/a*"]).compile(&Vars::default());
        let e = c.evaluate("/ab");
        let order: Vec<&str> = e.applicable.iter().map(|r| r.pattern.as_str()).collect();
        assert_eq!(order, ["*", "/", "/a*"]);
        // Identical rank sequences: the more restrictive one ranks higher.
        let c = doc(&["/[ac]x"], &[], &["/[ab]x"]).compile(&Vars::default());
        assert_eq!(c.access("/ax"), NONE);
        let c = doc(&["/[ab]x"], &[], &["/[ac]x"]).compile(&Vars::default());
        assert_eq!(c.access("/ax"), NONE);
        let c = doc(&[], &["/[ab]x"], &["/[ac]x"]).compile(&Vars::default());
        let e = c.evaluate("/ax");
        assert_eq!(
            e.applicable.iter().map(|r| r.list).collect::<Vec<_>>(),
            [Access::ReadWrite, Access::Read]
        );
        // Tied, they act as one rule with the more restrictive value.
        assert_eq!(e.access, R);
    }

    #[test]
    fn decided_by() {
        let c = doc(&["/a/b"], &["/a/b/c"], &["/a"]).compile(&Vars::default());
        let decider = |p: &str| c.evaluate(p).decided_by.map(|r| r.pattern);
        assert_eq!(decider("/a/b/c/f").as_deref(), Some("/a/b/c"));
        assert_eq!(decider("/a/b/x").as_deref(), Some("/a/b"));
        assert_eq!(decider("/a/x").as_deref(), Some("/a"));
        assert_eq!(decider("/z"), None);

        // `read` over `read_write` leaves the result and its decider alone.
        let c = doc(&[], &["/data/ref"], &["/data"]).compile(&Vars::default());
        let e = c.evaluate("/data/ref/x");
        assert_eq!(e.access, RW);
        assert_eq!(e.decided_by.map(|r| r.pattern).as_deref(), Some("/data"));
        assert_eq!(e.applicable.len(), 2);

        // Equal values: the higher rule becomes the decider.
        let c = doc(&[], &[], &["/data", "/data/x"]).compile(&Vars::default());
        let e = c.evaluate("/data/x/y");
        assert_eq!(
            e.decided_by.map(|r| (r.list, r.pattern)),
            Some((Access::ReadWrite, "/data/x".to_string()))
        );

        let c = doc(&[], &[], &["/u/$USER"]).compile(&Vars {
            user: Some("ana"),
            home: Home::NoConcept,
        });
        let e = c.evaluate("/u/ana");
        assert_eq!(
            e.decided_by,
            Some(RuleRef {
                list: Access::ReadWrite,
                pattern: "/u/$USER".into(),
                interpolated: "/u/ana".into()
            })
        );
        assert_eq!(e.effective(), Access::ReadWrite);
        assert_eq!(c.evaluate("/v").effective(), Access::None);
    }

    #[test]
    fn access_strings_and_order() {
        assert_eq!(Access::None.as_str(), "none");
        assert_eq!(Access::Read.as_str(), "read");
        assert_eq!(Access::ReadWrite.as_str(), "read_write");
        assert!(Access::None < Access::Read && Access::Read < Access::ReadWrite);
        assert_eq!(
            serde_json::to_value(Access::ReadWrite).ok(),
            Some(json!("read_write"))
        );
    }

    #[test]
    fn hundred_patterns_are_fast_and_allocation_free() {
        let mut d = PathRestrictions::default();
        for i in 0..34 {
            d.none.push(format!("/proj{i}/secret"));
            d.read.push(format!("/proj{i}/*/raw[0-9]"));
            d.read_write.push(format!("/proj{i}"));
        }
        d.none.push("/".into());
        d.read.push("$HOME".into());
        let c = d.compile(&Vars {
            user: Some("ana"),
            home: Home::At("/home/ana"),
        });
        let paths = [
            "/proj7/run/raw3/file.h5",
            "/proj33/secret/x",
            "/home/ana/a/b/c",
            "/etc/passwd",
            "/proj1",
        ];
        let (answers, allocations) = allocations_during(|| paths.map(|p| c.access(p)));
        assert_eq!(answers, [RW, NONE, R, NONE, RW]);
        assert_eq!(allocations, 0);
        let rounds = 20_000u32;
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            for p in paths {
                std::hint::black_box(c.access(std::hint::black_box(p)));
            }
        }
        let each = started.elapsed() / (rounds * paths.len() as u32);
        eprintln!(
            "access() over 100 patterns: {each:?} per path (this build's optimisation level)"
        );
    }

    /// The naive definition: every rule tested against every ancestor with plain `fnmatch`.
    fn reference(
        d: &PathRestrictions,
        vars: &Vars<'_>,
        path: &str,
    ) -> (Option<Access>, Vec<String>) {
        let mut rules = Vec::new();
        for access in Access::LISTS {
            for pattern in d.list(access) {
                let Some(i) = interpolate(pattern, vars) else {
                    continue;
                };
                let trimmed = Pattern::new(&i).trim_trailing_slashes().to_owned();
                if path::ancestors(path).any(|a| fnmatch::fnmatch(&trimmed, a)) {
                    rules.push((
                        Pattern::new(&trimmed).ranks().to_vec(),
                        access,
                        pattern.clone(),
                    ));
                }
            }
        }
        rules.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.tie_order().cmp(&b.1.tie_order())));
        // Rules with equal rank sequences act as one rule with their most restrictive value.
        let mut groups: Vec<(Vec<u8>, Access)> = Vec::new();
        for r in &rules {
            match groups.last_mut() {
                Some(g) if g.0 == r.0 => g.1 = g.1.min(r.1),
                _ => groups.push((r.0.clone(), r.1)),
            }
        }
        let access = groups
            .iter()
            .fold(None, |acc, g| Some(acc.map_or(g.1, |s| g.1.over(s))));
        (access, rules.into_iter().map(|r| r.2).collect())
    }

    fn patterns() -> impl Strategy<Value = String> {
        let piece = proptest::sample::select(vec![
            "/",
            "/a",
            "/b",
            "/ab",
            "/a/b",
            "*",
            "?",
            "[ab]",
            "[!a]",
            "[[:alpha:]]",
            "\\*",
            "$USER",
            "$HOME",
            "x",
            "/",
            "[",
            "-",
        ]);
        let start = proptest::sample::select(vec!["/", "~", "~/", "$HOME", "$USER", "*", "?", "["]);
        (start, proptest::collection::vec(piece, 0..4))
            .prop_map(|(s, v)| format!("{s}{}", v.concat()))
    }

    fn documents() -> impl Strategy<Value = PathRestrictions> {
        let list = || proptest::collection::vec(patterns(), 0..5);
        (list(), list(), list()).prop_map(|(none, read, read_write)| {
            // A pattern in two lists is refused; keep the first list's copy.
            let read: Vec<String> = read.into_iter().filter(|p| !none.contains(p)).collect();
            let read_write = read_write
                .into_iter()
                .filter(|p| !none.contains(p) && !read.contains(p))
                .collect();
            PathRestrictions {
                none,
                read,
                read_write,
            }
        })
    }

    fn paths() -> impl Strategy<Value = String> {
        let segment =
            proptest::sample::select(vec!["a", "b", "ab", "ana", "x", "*", "[", "home", "a[1]"]);
        proptest::collection::vec(segment, 0..5).prop_map(|v| format!("/{}", v.join("/")))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn access_equals_evaluate_and_reference(d in documents(), path in paths(), with_user in any::<bool>(), home in proptest::sample::select(vec![Home::NoConcept, Home::Missing, Home::At("/"), Home::At("/home/ana"), Home::At("/a[1]")])) {
            prop_assert!(d.validate("f").is_ok());
            let vars = Vars { user: with_user.then_some("ana"), home };
            let c = d.compile(&vars);
            let path = path::normalize(&path).unwrap_or_else(|_| "/".into());
            let e = c.evaluate(&path);
            let (fast, allocations) = allocations_during(|| c.access(&path));
            prop_assert_eq!(allocations, 0);
            prop_assert_eq!(fast, e.access);
            let (want, applicable) = reference(&d, &vars, &path);
            prop_assert_eq!(e.access, want);
            prop_assert_eq!(e.applicable.iter().map(|r| r.pattern.clone()).collect::<Vec<_>>(), applicable);
            // The decider's value is the result, and it is one of the applicable rules.
            match &e.decided_by {
                Some(r) => {
                    prop_assert_eq!(Some(r.list), e.access);
                    prop_assert!(e.applicable.contains(r));
                }
                None => prop_assert!(e.applicable.is_empty()),
            }
        }

        #[test]
        fn pattern_matching_does_not_allocate(p in patterns(), path in paths()) {
            let pattern = Pattern::new(&p);
            let (_, allocations) = allocations_during(|| pattern.matches(&path));
            prop_assert_eq!(allocations, 0);
        }
    }
}
