//! Identity mapping: from a Globus-style identity to the storage account name (`$USER` in restrictions).
//!
//! Two document kinds, as GCS has them:
//! - `expression_identity_mapping#1.0.0`: rules `{source, match, output, ignore_case, literal}`, tried in order,
//!   first match wins. `source` and `output` interpolate `{field}` from the identity (`{username}`, `{id}`,
//!   `{email}`, `{name}`, `{organization}`); `output` also takes `{0}`, `{1}`… for the match's groups.
//!   `match` is a full-string match in a reduced POSIX ERE: `.`, `?`, `*`, `|`, `(…)`; `\` escapes those and
//!   `\` and `"`; every other character is literal. A quantifier with nothing to repeat, or two quantifiers in
//!   a row, is rejected, as is any other backslash escape.
//! - `external_identity_mapping#1.0.0`: a program that reads the identities as JSON on stdin and answers with
//!   usernames on stdout. Running it is I/O and lives outside `core`; the document and its JSON shapes are here.
//!
//! Without a mapping document, the default is the username without its `@domain`.

use serde::{Deserialize, Serialize};

/// The identity fields a mapping may read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingInput {
    pub id: String,
    pub username: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub organization: Option<String>,
}

impl MappingInput {
    fn field(&self, name: &str) -> Option<&str> {
        match name {
            "id" | "sub" => Some(&self.id),
            "username" => Some(&self.username),
            "email" => self.email.as_deref(),
            "name" => self.name.as_deref(),
            "organization" => self.organization.as_deref(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingRule {
    pub source: String,
    #[serde(rename = "match")]
    pub pattern: String,
    pub output: String,
    #[serde(default)]
    pub ignore_case: bool,
    #[serde(default)]
    pub literal: bool,
}

/// A storage gateway's `identity_mappings` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "DATA_TYPE")]
pub enum MappingDocument {
    #[serde(rename = "expression_identity_mapping#1.0.0")]
    Expression { mappings: Vec<MappingRule> },
    #[serde(rename = "external_identity_mapping#1.0.0")]
    External { command: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("mappings[{rule}].match: {why}")]
    BadPattern { rule: usize, why: String },
    #[error("mappings[{rule}].{field}: {why}")]
    BadTemplate {
        rule: usize,
        field: &'static str,
        why: String,
    },
    #[error("the external mapping needs a command (a non-empty list: program and arguments)")]
    EmptyCommand,
    #[error("mappings[{rule}] reads {{{field}}}, which this identity does not have")]
    MissingField { rule: usize, field: String },
    #[error("mappings[{rule}].match is too costly to evaluate on this input")]
    TooCostly { rule: usize },
}

/// The default mapping: the username without its `@domain`.
pub fn default_username(username: &str) -> &str {
    username
        .split_once('@')
        .map(|(local, _)| local)
        .unwrap_or(username)
}

/// Checks a mapping document when it is stored, so that a bad one is refused with a message naming the rule.
pub fn validate(doc: &MappingDocument) -> Result<(), MappingError> {
    match doc {
        MappingDocument::Expression { mappings } => {
            for (i, r) in mappings.iter().enumerate() {
                CompiledRule::new(i, r)?;
            }
            Ok(())
        }
        MappingDocument::External { command } => {
            if command.first().is_none_or(|p| p.trim().is_empty()) {
                return Err(MappingError::EmptyCommand);
            }
            Ok(())
        }
    }
}

/// Applies an expression mapping: the first rule whose `match` matches its `source` gives the username.
/// `Ok(None)`: no rule matched (the identity has no account here).
pub fn map_expression(
    rules: &[MappingRule],
    who: &MappingInput,
) -> Result<Option<String>, MappingError> {
    for (i, r) in rules.iter().enumerate() {
        let rule = CompiledRule::new(i, r)?;
        let source = interpolate(&rule.source, who, &[], i)?;
        let chars: Vec<char> = source.chars().collect();
        let Some(groups) = rule
            .matcher
            .full_match(&chars)
            .map_err(|()| MappingError::TooCostly { rule: i })?
        else {
            continue;
        };
        let groups: Vec<String> = groups
            .iter()
            .map(|g| {
                g.map(|(a, b)| chars[a..b].iter().collect())
                    .unwrap_or_default()
            })
            .collect();
        return interpolate(&rule.output, who, &groups, i).map(Some);
    }
    Ok(None)
}

/// Template pieces: literal text, an identity field, or a match group.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Field(String),
    Group(usize),
}

fn parse_template(
    t: &str,
    rule: usize,
    field: &'static str,
    allow_groups: bool,
) -> Result<Vec<Piece>, MappingError> {
    let bad = |why: String| MappingError::BadTemplate { rule, field, why };
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = t.chars();
    while let Some(c) = chars.next() {
        if c != '{' {
            text.push(c);
            continue;
        }
        let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
        if !t.contains('}') || name.is_empty() || name.contains('{') {
            return Err(bad(format!("'{{{name}' is not closed or is empty")));
        }
        if !text.is_empty() {
            out.push(Piece::Text(std::mem::take(&mut text)));
        }
        match name.parse::<usize>() {
            Ok(n) if allow_groups => out.push(Piece::Group(n)),
            Ok(_) => return Err(bad("match groups can only be used in output".into())),
            Err(_) => out.push(Piece::Field(name)),
        }
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

fn interpolate(
    pieces: &[Piece],
    who: &MappingInput,
    groups: &[String],
    rule: usize,
) -> Result<String, MappingError> {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Group(n) => out.push_str(groups.get(*n).map(String::as_str).unwrap_or("")),
            Piece::Field(f) => {
                out.push_str(who.field(f).ok_or_else(|| MappingError::MissingField {
                    rule,
                    field: f.clone(),
                })?)
            }
        }
    }
    Ok(out)
}

struct CompiledRule {
    source: Vec<Piece>,
    output: Vec<Piece>,
    matcher: Matcher,
}

impl CompiledRule {
    fn new(i: usize, r: &MappingRule) -> Result<Self, MappingError> {
        let matcher = if r.literal {
            Matcher::literal(&r.pattern, r.ignore_case)
        } else {
            Matcher::parse(&r.pattern, r.ignore_case)
                .map_err(|why| MappingError::BadPattern { rule: i, why })?
        };
        let output = parse_template(&r.output, i, "output", true)?;
        for p in &output {
            if let Piece::Group(n) = p
                && *n >= matcher.groups
            {
                return Err(MappingError::BadTemplate {
                    rule: i,
                    field: "output",
                    why: format!(
                        "{{{n}}} refers to a group the match does not have ({} groups)",
                        matcher.groups
                    ),
                });
            }
        }
        Ok(Self {
            source: parse_template(&r.source, i, "source", false)?,
            output,
            matcher,
        })
    }
}

// ---- the reduced ERE ----

#[derive(Debug, Clone, Copy, PartialEq)]
enum Quant {
    One,
    ZeroOrOne,
    ZeroOrMore,
}

#[derive(Debug, Clone, PartialEq)]
enum Atom {
    Char(char),
    Any,
    Group(usize, Vec<Vec<(Atom, Quant)>>),
}

type Alternatives = Vec<Vec<(Atom, Quant)>>;
type Caps = Vec<Option<(usize, usize)>>;

struct Matcher {
    alts: Alternatives,
    groups: usize,
    ignore_case: bool,
}

/// Backtracking is bounded: an adversarial pattern and input give up instead of hanging the server.
const STEP_LIMIT: u32 = 1_000_000;

impl Matcher {
    fn literal(s: &str, ignore_case: bool) -> Self {
        Self {
            alts: vec![s.chars().map(|c| (Atom::Char(c), Quant::One)).collect()],
            groups: 0,
            ignore_case,
        }
    }

    fn parse(p: &str, ignore_case: bool) -> Result<Self, String> {
        let chars: Vec<char> = p.chars().collect();
        let mut pos = 0;
        let mut groups = 0;
        let alts = parse_alts(&chars, &mut pos, &mut groups, 0)?;
        if pos != chars.len() {
            return Err(format!("unbalanced ')' at position {pos}"));
        }
        Ok(Self {
            alts,
            groups,
            ignore_case,
        })
    }

    /// `Ok(Some(groups))` on a full match; `Err(())` when the step limit is reached.
    fn full_match(&self, input: &[char]) -> Result<Option<Caps>, ()> {
        let m = Run {
            input,
            ignore_case: self.ignore_case,
            steps: std::cell::Cell::new(0),
        };
        let mut caps = vec![None; self.groups];
        let mut found = None;
        let matched = m.alts(&self.alts, 0, &mut caps, &mut |p, caps: &mut Caps| {
            if p == input.len() {
                found = Some(caps.clone());
                true
            } else {
                false
            }
        });
        if m.steps.get() > STEP_LIMIT {
            return Err(());
        }
        Ok(if matched { found } else { None })
    }
}

fn parse_alts(
    c: &[char],
    pos: &mut usize,
    groups: &mut usize,
    depth: usize,
) -> Result<Alternatives, String> {
    if depth > 32 {
        return Err("groups are nested too deeply".into());
    }
    let mut alts = vec![Vec::new()];
    while *pos < c.len() {
        let ch = c[*pos];
        match ch {
            ')' => break,
            '|' => {
                *pos += 1;
                alts.push(Vec::new());
                continue;
            }
            '?' | '*' => {
                let seq = alts.last_mut().expect("always one alternative");
                match seq.last_mut() {
                    Some((_, q @ Quant::One)) => {
                        *q = if ch == '?' {
                            Quant::ZeroOrOne
                        } else {
                            Quant::ZeroOrMore
                        }
                    }
                    Some(_) => {
                        return Err(format!(
                            "'{ch}' at position {} follows another quantifier",
                            *pos
                        ));
                    }
                    None => {
                        return Err(format!("'{ch}' at position {} has nothing to repeat", *pos));
                    }
                }
                *pos += 1;
                continue;
            }
            _ => {}
        }
        let atom = match ch {
            '.' => Atom::Any,
            '(' => {
                let index = *groups;
                *groups += 1;
                *pos += 1;
                let inner = parse_alts(c, pos, groups, depth + 1)?;
                if c.get(*pos) != Some(&')') {
                    return Err("'(' is not closed".into());
                }
                Atom::Group(index, inner)
            }
            '\\' => {
                *pos += 1;
                match c.get(*pos) {
                    Some(&e @ ('.' | '?' | '*' | '|' | '(' | ')' | '\\' | '"')) => Atom::Char(e),
                    Some(e) => return Err(format!("'\\{e}' is not an allowed escape")),
                    None => return Err("the pattern ends with a lone '\\'".into()),
                }
            }
            other => Atom::Char(other),
        };
        *pos += 1;
        alts.last_mut()
            .expect("always one alternative")
            .push((atom, Quant::One));
    }
    Ok(alts)
}

struct Run<'a> {
    input: &'a [char],
    ignore_case: bool,
    steps: std::cell::Cell<u32>,
}

type Cont<'k> = dyn FnMut(usize, &mut Caps) -> bool + 'k;

impl Run<'_> {
    fn alts(&self, alts: &Alternatives, pos: usize, caps: &mut Caps, k: &mut Cont<'_>) -> bool {
        alts.iter().any(|seq| self.seq(seq, 0, pos, caps, k))
    }

    fn seq(
        &self,
        seq: &[(Atom, Quant)],
        i: usize,
        pos: usize,
        caps: &mut Caps,
        k: &mut Cont<'_>,
    ) -> bool {
        self.steps.set(self.steps.get() + 1);
        if self.steps.get() > STEP_LIMIT {
            return false;
        }
        let Some((atom, quant)) = seq.get(i) else {
            return k(pos, caps);
        };
        match quant {
            Quant::One => self.atom(atom, pos, caps, &mut |p, c: &mut Caps| {
                self.seq(seq, i + 1, p, c, k)
            }),
            Quant::ZeroOrOne => {
                self.atom(atom, pos, caps, &mut |p, c: &mut Caps| {
                    self.seq(seq, i + 1, p, c, k)
                }) || self.seq(seq, i + 1, pos, caps, k)
            }
            Quant::ZeroOrMore => self.star(atom, seq, i, pos, caps, k),
        }
    }

    /// Greedy repetition; an iteration must consume input, so `(a?)*` cannot loop forever.
    fn star(
        &self,
        atom: &Atom,
        seq: &[(Atom, Quant)],
        i: usize,
        pos: usize,
        caps: &mut Caps,
        k: &mut Cont<'_>,
    ) -> bool {
        self.atom(atom, pos, caps, &mut |p, c: &mut Caps| {
            p > pos && self.star(atom, seq, i, p, c, k)
        }) || self.seq(seq, i + 1, pos, caps, k)
    }

    fn atom(&self, atom: &Atom, pos: usize, caps: &mut Caps, k: &mut Cont<'_>) -> bool {
        match atom {
            Atom::Char(c) => match self.input.get(pos) {
                Some(x)
                    if x == c || (self.ignore_case && x.to_lowercase().eq(c.to_lowercase())) =>
                {
                    k(pos + 1, caps)
                }
                _ => false,
            },
            Atom::Any => pos < self.input.len() && k(pos + 1, caps),
            Atom::Group(idx, inner) => {
                let saved = caps[*idx];
                let ok = self.alts(inner, pos, caps, &mut |p, c: &mut Caps| {
                    let before = c[*idx];
                    c[*idx] = Some((pos, p));
                    if k(p, c) {
                        return true;
                    }
                    c[*idx] = before;
                    false
                });
                if !ok {
                    caps[*idx] = saved;
                }
                ok
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(username: &str) -> MappingInput {
        MappingInput {
            id: "0a1b".into(),
            username: username.into(),
            email: Some(format!("{username}.mail")),
            ..Default::default()
        }
    }

    fn rule(source: &str, pattern: &str, output: &str) -> MappingRule {
        MappingRule {
            source: source.into(),
            pattern: pattern.into(),
            output: output.into(),
            ignore_case: false,
            literal: false,
        }
    }

    #[test]
    fn default_strips_the_domain() {
        assert_eq!(default_username("ana@uni.edu"), "ana");
        assert_eq!(default_username("ana"), "ana");
    }

    #[test]
    fn first_matching_rule_wins_with_groups() {
        let rules = vec![
            rule("{username}", "(.*)@uni\\.edu", "{0}"),
            rule("{username}", "(.*)@(lab|dept)\\.uni\\.edu", "{1}_{0}"),
            rule("{email}", ".*", "fallback"),
        ];
        assert_eq!(
            map_expression(&rules, &who("ana@uni.edu"))
                .unwrap()
                .as_deref(),
            Some("ana")
        );
        assert_eq!(
            map_expression(&rules, &who("bo@lab.uni.edu"))
                .unwrap()
                .as_deref(),
            Some("lab_bo")
        );
        assert_eq!(
            map_expression(&rules, &who("x@other.org"))
                .unwrap()
                .as_deref(),
            Some("fallback")
        );
        // The match is anchored at both ends: a prefix or suffix match is no match.
        let strict = vec![rule("{username}", "ana", "A")];
        assert_eq!(map_expression(&strict, &who("ana@uni.edu")).unwrap(), None);
    }

    #[test]
    fn quantifiers_alternation_and_case() {
        let m = |p: &str, s: &str, ic: bool| {
            let m = Matcher::parse(p, ic).unwrap();
            m.full_match(&s.chars().collect::<Vec<_>>())
                .unwrap()
                .is_some()
        };
        assert!(m("ab?c", "ac", false));
        assert!(m("ab?c", "abc", false));
        assert!(!m("ab?c", "abbc", false));
        assert!(m("a(b|cd)*e", "abcdbe", false));
        assert!(m("(a?)*b", "aaab", false));
        assert!(m("ANA", "ana", true));
        assert!(!m("ANA", "ana", false));
        assert!(m("a\\.b", "a.b", false));
        assert!(!m("a\\.b", "axb", false));
        assert!(
            m("x+y[1]", "x+y[1]", false),
            "ERE specials outside the subset are literal"
        );
    }

    #[test]
    fn bad_patterns_and_templates_are_named() {
        for (p, want) in [
            ("*a", "nothing to repeat"),
            ("a**", "follows another quantifier"),
            ("a*?", "follows another quantifier"),
            ("(a", "not closed"),
            ("a)", "unbalanced"),
            ("a\\d", "not an allowed escape"),
            ("a\\", "lone"),
        ] {
            let doc = MappingDocument::Expression {
                mappings: vec![rule("{username}", p, "x")],
            };
            let e = validate(&doc).unwrap_err().to_string();
            assert!(
                e.contains("mappings[0].match") && e.contains(want),
                "{p}: {e}"
            );
        }
        let doc = MappingDocument::Expression {
            mappings: vec![rule("{username}", "(.*)", "{1}")],
        };
        assert!(
            validate(&doc)
                .unwrap_err()
                .to_string()
                .contains("mappings[0].output")
        );
        let doc = MappingDocument::Expression {
            mappings: vec![rule("{0}", ".*", "x")],
        };
        assert!(
            validate(&doc)
                .unwrap_err()
                .to_string()
                .contains("mappings[0].source")
        );
        assert_eq!(
            map_expression(&[rule("{shoe_size}", ".*", "x")], &who("a")).unwrap_err(),
            MappingError::MissingField {
                rule: 0,
                field: "shoe_size".into()
            }
        );
        assert_eq!(
            validate(&MappingDocument::External { command: vec![] }).unwrap_err(),
            MappingError::EmptyCommand
        );
    }

    #[test]
    fn literal_rules_and_documents() {
        let mut r = rule("{username}", "a.b*", "lit");
        r.literal = true;
        assert_eq!(
            map_expression(std::slice::from_ref(&r), &who("a.b*"))
                .unwrap()
                .as_deref(),
            Some("lit")
        );
        assert_eq!(map_expression(&[r], &who("axbbb")).unwrap(), None);
        let doc: MappingDocument = serde_json::from_str(
            r#"{"DATA_TYPE":"expression_identity_mapping#1.0.0","mappings":[{"source":"{username}","match":"(.*)@x","output":"{0}","ignore_case":true}]}"#,
        )
        .unwrap();
        assert!(validate(&doc).is_ok());
        let bad = serde_json::from_str::<MappingDocument>(
            r#"{"DATA_TYPE":"expression_identity_mapping#1.0.0","mappings":[{"source":"s","match":"m","output":"o","colour":1}]}"#,
        );
        assert!(bad.unwrap_err().to_string().contains("colour"));
    }

    #[test]
    fn pathological_patterns_give_up_instead_of_hanging() {
        let m = Matcher::parse("(.*)*(.*)*(.*)*(.*)*x", false).unwrap();
        let input: Vec<char> = "a".repeat(40).chars().collect();
        assert!(m.full_match(&input).is_err());
    }
}
