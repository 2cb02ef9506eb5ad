//! Directory listings as the Transfer API serves them: hidden files, filters, ordering and paging.
//!
//! Filter syntax (Transfer `operation/ls`): each `filter` parameter is clauses `field:values` joined by `/`, all
//! of which must hold; a file is listed when it satisfies ANY `filter` parameter (so that a recursive listing can
//! ask for "every folder, or names matching X"). `name`, `type`, `permissions`, `user` and `group` values are
//! comma-separated alternatives, prefixed by `=` (equal, the default), `~` (fnmatch pattern), `!` (not equal) or
//! `!~` (not matching); `size` and `last_modified` take a range `low,high` (either end may be empty) or a single
//! value.

use std::cmp::Ordering;

use ferry_core::fnmatch::fnmatch;
use ferry_storage::{Entry, EntryKind};

use crate::{EndpointError, Result};

/// Globus's default and maximum page of a listing.
pub const MAX_LIMIT: usize = 100_000;

/// A listed entry with what the Transfer API shows of it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub entry: Entry,
    /// `dir`, `file`, `invalid_symlink` (a link that leads nowhere reachable) or `other`.
    pub kind: &'static str,
    /// `YYYY-MM-DD HH:MM:SS+00:00`.
    pub last_modified: String,
    /// Four octal digits.
    pub permissions: String,
}

impl Listed {
    /// `entry` as listed; for a symlink, `target` is the kind of what it leads to (None: nowhere reachable).
    pub fn new(entry: Entry, target: Option<EntryKind>) -> Self {
        Listed {
            kind: kind_name(entry.kind, target),
            last_modified: ferry_core::time::transfer_time(entry.mtime),
            permissions: format!("{:04o}", entry.mode),
            entry,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Type,
    Size,
    LastModified,
    Permissions,
    User,
    Group,
}

impl Field {
    fn parse(s: &str) -> Option<Field> {
        Some(match s {
            "name" => Field::Name,
            "type" => Field::Type,
            "size" => Field::Size,
            "last_modified" => Field::LastModified,
            "permissions" => Field::Permissions,
            "user" => Field::User,
            "group" => Field::Group,
            _ => return None,
        })
    }

    fn text(self, l: &Listed) -> &str {
        match self {
            Field::Name => &l.entry.name,
            Field::Type => l.kind,
            Field::LastModified => &l.last_modified,
            Field::Permissions => &l.permissions,
            Field::User => &l.entry.user,
            Field::Group => &l.entry.group,
            Field::Size => "",
        }
    }
}

#[derive(Debug, Clone)]
enum Test {
    /// Any of the alternatives, compared exactly or as patterns; `negate` means none of them.
    Text {
        field: Field,
        values: Vec<String>,
        glob: bool,
        negate: bool,
    },
    /// `low <= value <= high` for sizes.
    Size(Option<u64>, Option<u64>),
    /// The same on the timestamp text: a date bound compares with the same number of leading characters.
    Time(Option<String>, Option<String>),
}

impl Test {
    fn holds(&self, l: &Listed) -> bool {
        match self {
            Test::Text {
                field,
                values,
                glob,
                negate,
            } => {
                let v = field.text(l);
                let any = values
                    .iter()
                    .any(|p| if *glob { fnmatch(p, v) } else { p == v });
                any != *negate
            }
            Test::Size(lo, hi) => {
                lo.is_none_or(|lo| l.entry.size >= lo) && hi.is_none_or(|hi| l.entry.size <= hi)
            }
            Test::Time(lo, hi) => {
                let t = &l.last_modified;
                let cut = |b: &str| &t[..b.len().min(t.len())];
                lo.as_deref().is_none_or(|lo| cut(lo) >= lo)
                    && hi.as_deref().is_none_or(|hi| cut(hi) <= hi)
            }
        }
    }
}

fn bad(m: String) -> EndpointError {
    EndpointError::BadRequest(m)
}

fn range(field: &str, v: &str) -> Result<(Option<String>, Option<String>)> {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    match v.split_once(',') {
        Some((lo, hi)) if !hi.contains(',') => Ok((opt(lo), opt(hi))),
        Some(_) => Err(bad(format!("filter: {field} takes low,high"))),
        None => Ok((opt(v), opt(v))),
    }
}

fn clause(c: &str) -> Result<Test> {
    let (name, v) = c
        .split_once(':')
        .ok_or_else(|| bad(format!("filter: {c:?} is not field:value")))?;
    let field = Field::parse(name).ok_or_else(|| bad(format!("filter: unknown field {name:?}")))?;
    Ok(match field {
        Field::Size => {
            let (lo, hi) = range(name, v)?;
            let num = |s: Option<String>| {
                s.map(|s| {
                    s.parse::<u64>()
                        .map_err(|_| bad(format!("filter: size {s:?} is not a number")))
                })
                .transpose()
            };
            Test::Size(num(lo)?, num(hi)?)
        }
        Field::LastModified => {
            let (lo, hi) = range(name, v)?;
            Test::Time(lo, hi)
        }
        _ => {
            let (negate, rest) = match v.strip_prefix('!') {
                Some(r) => (true, r),
                None => (false, v),
            };
            let (glob, rest) = match rest.strip_prefix('~') {
                Some(r) => (true, r),
                None => (false, rest.strip_prefix('=').unwrap_or(rest)),
            };
            Test::Text {
                field,
                values: rest.split(',').map(str::to_string).collect(),
                glob,
                negate,
            }
        }
    })
}

/// How to list a folder: hidden entries, filters, order, page.
#[derive(Debug, Clone)]
pub struct ListQuery {
    show_hidden: bool,
    /// Any of these; each is all of its clauses.
    filters: Vec<Vec<Test>>,
    order: Vec<(Field, bool)>,
    pub limit: usize,
    pub offset: usize,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            show_hidden: true,
            filters: vec![],
            order: vec![],
            limit: MAX_LIMIT,
            offset: 0,
        }
    }
}

fn flag(name: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(bad(format!("{name}: {v:?} is not a boolean"))),
    }
}

impl ListQuery {
    /// From the Transfer `ls` parameters as given (each `filter` parameter separately).
    pub fn parse(
        show_hidden: Option<&str>,
        orderby: Option<&str>,
        filters: &[&str],
        limit: Option<&str>,
        offset: Option<&str>,
    ) -> Result<Self> {
        let mut q = ListQuery::default();
        if let Some(v) = show_hidden {
            q.show_hidden = flag("show_hidden", v)?;
        }
        for f in filters {
            q.filters
                .push(f.split('/').map(clause).collect::<Result<Vec<_>>>()?);
        }
        for part in orderby
            .unwrap_or("")
            .split(',')
            .filter(|p| !p.trim().is_empty())
        {
            let mut words = part.split_whitespace();
            let name = words.next().unwrap_or("");
            let field = Field::parse(name)
                .ok_or_else(|| bad(format!("orderby: unknown field {name:?}")))?;
            let desc = match words.next().map(str::to_ascii_uppercase).as_deref() {
                None | Some("ASC") => false,
                Some("DESC") => true,
                Some(o) => return Err(bad(format!("orderby: {o:?} is neither ASC nor DESC"))),
            };
            q.order.push((field, desc));
        }
        let num = |name: &str, v: Option<&str>| {
            v.map(|v| {
                v.parse::<usize>()
                    .map_err(|_| bad(format!("{name}: {v:?} is not a non-negative number")))
            })
            .transpose()
        };
        if let Some(l) = num("limit", limit)? {
            if l > MAX_LIMIT {
                return Err(bad(format!("limit: at most {MAX_LIMIT}")));
            }
            q.limit = l;
        }
        q.offset = num("offset", offset)?.unwrap_or(0);
        Ok(q)
    }

    /// Whether `l` is listed at all (hidden files, filters).
    fn keeps(&self, l: &Listed) -> bool {
        (self.show_hidden || !l.entry.name.starts_with('.'))
            && (self.filters.is_empty()
                || self.filters.iter().any(|f| f.iter().all(|t| t.holds(l))))
    }

    /// The listing order: the `orderby` fields, then the name.
    fn order(&self, a: &Listed, b: &Listed) -> Ordering {
        let cmp = |field: Field| match field {
            Field::Size => a.entry.size.cmp(&b.entry.size),
            f => f.text(a).cmp(f.text(b)),
        };
        self.order
            .iter()
            .map(|(f, desc)| {
                let o = cmp(*f);
                if *desc { o.reverse() } else { o }
            })
            .find(|o| *o != Ordering::Equal)
            .unwrap_or_else(|| a.entry.name.cmp(&b.entry.name))
    }

    /// Collects a page from entries offered one at a time, holding only those that can still be on it.
    pub fn pager(&self) -> Pager<'_> {
        Pager {
            q: self,
            keep: self.offset.saturating_add(self.limit),
            held: Vec::new(),
            total: 0,
        }
    }

    /// Filters and orders `all`; returns the page asked for and the number of entries before paging.
    pub fn apply(&self, all: Vec<Listed>) -> (Vec<Listed>, usize) {
        let mut p = self.pager();
        for l in all {
            p.offer(l);
        }
        p.finish()
    }
}

/// A page being collected: every entry that passes the filters is counted, and at most `offset + limit` of the
/// first in order are held (twice that between trims), so that paging through a folder of millions of entries
/// holds a page, not the folder. Deep pages hold what comes before them: `offset + limit` entries.
pub struct Pager<'a> {
    q: &'a ListQuery,
    keep: usize,
    held: Vec<Listed>,
    total: usize,
}

/// Entries held before the first trim, however small the page: trimming is a partial sort, not worth doing often.
const MIN_HELD: usize = 1024;

impl Pager<'_> {
    pub fn offer(&mut self, l: Listed) {
        if !self.q.keeps(&l) {
            return;
        }
        self.total += 1;
        self.held.push(l);
        if self.held.len() >= self.keep.max(MIN_HELD).saturating_mul(2) {
            self.trim();
        }
    }

    /// Keeps the first `keep` in order.
    fn trim(&mut self) {
        if self.held.len() > self.keep {
            let q = self.q;
            if self.keep > 0 {
                self.held
                    .select_nth_unstable_by(self.keep - 1, |a, b| q.order(a, b));
            }
            self.held.truncate(self.keep);
        }
    }

    /// The page and the number of entries before paging.
    pub fn finish(mut self) -> (Vec<Listed>, usize) {
        self.trim();
        let q = self.q;
        self.held.sort_by(|a, b| q.order(a, b));
        let page = self.held.into_iter().skip(q.offset).take(q.limit).collect();
        (page, self.total)
    }
}

/// What the Transfer API calls a kind of entry; a symlink shows as what it leads to (`target`), or as
/// `invalid_symlink` when that is nothing reachable.
pub fn kind_name(kind: EntryKind, target: Option<EntryKind>) -> &'static str {
    match (kind, target) {
        (EntryKind::Dir, _) | (EntryKind::Symlink, Some(EntryKind::Dir)) => "dir",
        (EntryKind::File, _) | (EntryKind::Symlink, Some(EntryKind::File)) => "file",
        (EntryKind::Symlink, _) => "invalid_symlink",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, kind: &'static str, size: u64, modified: &str) -> Listed {
        Listed {
            entry: Entry {
                name: name.into(),
                kind: EntryKind::File,
                size,
                mtime: 0,
                mode: 0o644,
                user: "ana".into(),
                group: "lab".into(),
                link_target: None,
            },
            kind,
            last_modified: modified.into(),
            permissions: "0644".into(),
        }
    }

    fn names(q: &ListQuery) -> Vec<String> {
        let all = vec![
            item("a.txt", "file", 10, "2021-01-01 10:00:00+00:00"),
            item("b.dat", "file", 500, "2022-06-01 00:00:00+00:00"),
            item("dir", "dir", 4096, "2020-01-01 00:00:00+00:00"),
            item(".hidden", "file", 1, "2023-01-01 00:00:00+00:00"),
        ];
        q.apply(all).0.into_iter().map(|l| l.entry.name).collect()
    }

    fn q(filters: &[&str], orderby: Option<&str>) -> ListQuery {
        ListQuery::parse(None, orderby, filters, None, None).unwrap()
    }

    #[test]
    fn filters_orders_and_pages() {
        assert_eq!(names(&q(&[], None)), [".hidden", "a.txt", "b.dat", "dir"]);
        let hidden = ListQuery::parse(Some("0"), None, &[], None, None).unwrap();
        assert_eq!(names(&hidden), ["a.txt", "b.dat", "dir"]);
        assert_eq!(names(&q(&["name:~*.txt"], None)), ["a.txt"]);
        assert_eq!(
            names(&q(&["name:!~*.txt"], None)),
            [".hidden", "b.dat", "dir"]
        );
        assert_eq!(names(&q(&["name:a.txt,dir"], None)), ["a.txt", "dir"]);
        assert_eq!(
            names(&q(&["name:!=a.txt"], None)),
            [".hidden", "b.dat", "dir"]
        );
        assert_eq!(names(&q(&["name:!a.txt,dir"], None)), [".hidden", "b.dat"]);
        assert_eq!(names(&q(&["type:dir/name:~d*"], None)), ["dir"]);
        // Several filter parameters: any of them.
        assert_eq!(
            names(&q(&["type:dir", "name:~*.dat"], None)),
            ["b.dat", "dir"]
        );
        assert_eq!(names(&q(&["size:100,"], None)), ["b.dat", "dir"]);
        assert_eq!(
            names(&q(&["size:,10/type:file"], None)),
            [".hidden", "a.txt"]
        );
        assert_eq!(
            names(&q(&["last_modified:,2021-01-01"], None)),
            ["a.txt", "dir"]
        );
        assert_eq!(
            names(&q(&["last_modified:2022-01-01,"], None)),
            [".hidden", "b.dat"]
        );
        assert_eq!(
            names(&q(&[], Some("size DESC"))),
            ["dir", "b.dat", "a.txt", ".hidden"]
        );
        assert_eq!(
            names(&q(&[], Some("type,name DESC"))),
            ["dir", "b.dat", "a.txt", ".hidden"]
        );
        let page = ListQuery::parse(None, None, &[], Some("2"), Some("1")).unwrap();
        let (got, total) = page.apply(vec![
            item("x", "file", 0, ""),
            item("y", "file", 0, ""),
            item("z", "file", 0, ""),
        ]);
        assert_eq!((got.len(), total, got[0].entry.name.as_str()), (2, 3, "y"));
    }

    /// A page collected from entries offered one by one is the page of the whole sorted folder, while at most
    /// twice `max(offset + limit, MIN_HELD)` entries are held at a time.
    #[test]
    fn pages_are_collected_without_holding_the_folder() {
        let n = 10_000;
        let entries = || {
            (0..n).map(|i| {
                // Scattered sizes and names, in no particular order.
                let k = (i * 7919) % n;
                item(&format!("f{k:05}"), "file", (k % 97) as u64, "")
            })
        };
        for (orderby, offset, limit) in [
            (None, "0", "100"),
            (Some("size DESC"), "7", "5"),
            (Some("size,name DESC"), "3000", "10"),
            (None, "9990", "100"),
        ] {
            let q =
                ListQuery::parse(None, orderby, &["name:!~*3"], Some(limit), Some(offset)).unwrap();
            let mut pager = q.pager();
            let mut most = 0;
            for e in entries() {
                pager.offer(e);
                most = most.max(pager.held.len());
            }
            assert!(most <= 2 * (q.offset + q.limit).max(MIN_HELD), "{most}");
            let (page, total) = pager.finish();
            let mut all: Vec<Listed> = entries().filter(|l| q.keeps(l)).collect();
            all.sort_by(|a, b| q.order(a, b));
            let want: Vec<String> = all
                .iter()
                .skip(q.offset)
                .take(q.limit)
                .map(|l| l.entry.name.clone())
                .collect();
            let got: Vec<String> = page.into_iter().map(|l| l.entry.name).collect();
            assert_eq!(
                (got, total),
                (want, all.len()),
                "{orderby:?} {offset} {limit}"
            );
        }
    }

    #[test]
    fn bad_parameters_name_themselves() {
        for (f, o, l, word) in [
            (vec!["colour:red"], None, None, "filter"),
            (vec!["name"], None, None, "filter"),
            (vec!["size:big"], None, None, "size"),
            (vec![], Some("name UP"), None, "orderby"),
            (vec![], Some("weight"), None, "orderby"),
            (vec![], None, Some("100001"), "limit"),
            (vec![], None, Some("-1"), "limit"),
        ] {
            let e = ListQuery::parse(None, o, &f, l, None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(word), "{e}");
        }
        assert!(ListQuery::parse(Some("maybe"), None, &[], None, None).is_err());
    }
}
