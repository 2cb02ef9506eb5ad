//! `filter_rules` of a transfer: which names a recursive copy includes. The first rule whose pattern (fnmatch,
//! on the entry's name) and type match decides; a name no rule matches is included.

use ferry_core::fnmatch::fnmatch;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Include,
    Exclude,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryType {
    File,
    Dir,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterRule {
    #[serde(rename = "DATA_TYPE", default = "filter_rule_type")]
    pub data_type: String,
    pub method: Method,
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub entry_type: Option<EntryType>,
}

fn filter_rule_type() -> String {
    "filter_rule".into()
}

/// Whether an entry called `name` (a folder when `is_dir`) takes part in the copy.
pub fn included(rules: &[FilterRule], name: &str, is_dir: bool) -> bool {
    for r in rules {
        let type_matches = match r.entry_type {
            None => true,
            Some(EntryType::Dir) => is_dir,
            Some(EntryType::File) => !is_dir,
        };
        if type_matches && fnmatch(&r.name, name) {
            return r.method == Method::Include;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(method: Method, name: &str, t: Option<EntryType>) -> FilterRule {
        FilterRule {
            data_type: filter_rule_type(),
            method,
            name: name.into(),
            entry_type: t,
        }
    }

    #[test]
    fn first_match_wins_and_unmatched_is_included() {
        let rules = [
            rule(Method::Include, "keep.tmp", None),
            rule(Method::Exclude, "*.tmp", Some(EntryType::File)),
            rule(Method::Exclude, "cache", Some(EntryType::Dir)),
        ];
        assert!(included(&rules, "keep.tmp", false));
        assert!(!included(&rules, "x.tmp", false));
        assert!(
            included(&rules, "x.tmp", true),
            "the rule is for files only"
        );
        assert!(!included(&rules, "cache", true));
        assert!(included(&rules, "cache", false));
        assert!(included(&rules, "data.h5", false));
    }
}
