//! ACL policies: the HCL subset Vault policies use, path globs, and the capability check.

use std::collections::BTreeMap;

/// Capabilities as bits, so merging rules is an OR.
pub mod cap {
    pub const READ: u8 = 1;
    pub const CREATE: u8 = 2;
    pub const UPDATE: u8 = 4;
    pub const DELETE: u8 = 8;
    pub const LIST: u8 = 16;
    pub const SUDO: u8 = 32;
    pub const DENY: u8 = 64;
}

fn cap_bit(name: &str) -> Option<u8> {
    Some(match name {
        "read" => cap::READ,
        "create" => cap::CREATE,
        "update" => cap::UPDATE,
        "delete" => cap::DELETE,
        "list" => cap::LIST,
        "sudo" => cap::SUDO,
        "deny" => cap::DENY,
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub pattern: String,
    pub caps: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub text: String,
    pub rules: Vec<Rule>,
    /// 1 when first written, one more on every rewrite, as OpenBao counts.
    pub version: u64,
    /// Simulated unix seconds of the last write.
    pub modified_secs: u64,
}

impl Policy {
    pub fn parse(text: &str) -> Result<Policy, String> {
        let rules = parse_rules(text)?;
        Ok(Policy {
            text: text.to_string(),
            rules,
            version: 1,
            modified_secs: 0,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Str(String),
    Ident(String),
    Punct(char),
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' || (c == '/' && next == Some('/')) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            loop {
                if i + 1 >= chars.len() {
                    return Err("unterminated block comment".into());
                }
                if chars[i] == '*' && chars[i + 1] == '/' {
                    i += 2;
                    break;
                }
                i += 1;
            }
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None | Some('\n') => return Err("unterminated string".into()),
                    Some('"') => break,
                    Some('\\') => {
                        match chars.get(i + 1) {
                            Some(&e @ ('"' | '\\')) => s.push(e),
                            _ => return Err("unsupported escape in string".into()),
                        }
                        i += 1;
                    }
                    Some(&ch) => s.push(ch),
                }
                i += 1;
            }
            i += 1;
            out.push(Tok::Str(s));
        } else if "{}[]=,".contains(c) {
            out.push(Tok::Punct(c));
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_-".contains(chars[i])) {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            return Err(format!("unexpected character {c:?}"));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn expect(&mut self, p: char) -> Result<(), String> {
        match self.next() {
            Some(Tok::Punct(c)) if c == p => Ok(()),
            _ => Err(format!("expected '{p}'")),
        }
    }
}

/// Stricter than Vault: only `capabilities` is accepted inside a path block, so a policy that
/// relies on parameter constraints fails loudly here instead of being silently looser.
fn parse_rules(text: &str) -> Result<Vec<Rule>, String> {
    let mut p = Parser {
        toks: tokenize(text)?,
        pos: 0,
    };
    let mut rules = Vec::new();
    while let Some(tok) = p.next() {
        if tok != Tok::Ident("path".into()) {
            return Err("expected 'path' block".into());
        }
        let pattern = match p.next() {
            Some(Tok::Str(s)) => s,
            _ => return Err("expected a quoted path after 'path'".into()),
        };
        if pattern.contains('*') && !pattern.ends_with('*') || pattern.matches('*').count() > 1 {
            return Err(format!("path {pattern:?}: '*' is only allowed at the end"));
        }
        p.expect('{')?;
        let mut caps: Option<u8> = None;
        loop {
            match p.next() {
                Some(Tok::Punct('}')) => break,
                Some(Tok::Ident(key)) if key == "capabilities" => {
                    p.expect('=')?;
                    caps = Some(caps.unwrap_or(0) | parse_cap_list(&mut p, &pattern)?);
                }
                Some(Tok::Ident(key)) => {
                    return Err(format!("unsupported key {key:?} in path block"))
                }
                _ => return Err(format!("path {pattern:?}: expected 'capabilities' or '}}'")),
            }
        }
        let caps = caps.ok_or_else(|| format!("path {pattern:?}: missing capabilities"))?;
        rules.push(Rule {
            pattern: pattern.trim_start_matches('/').to_string(),
            caps,
        });
    }
    Ok(rules)
}

/// The capability list of the block for `pattern`, which an unknown capability's error names.
fn parse_cap_list(p: &mut Parser, pattern: &str) -> Result<u8, String> {
    p.expect('[')?;
    let mut caps = 0;
    loop {
        match p.next() {
            Some(Tok::Punct(']')) => return Ok(caps),
            Some(Tok::Str(s)) => {
                // OpenBao names the path twice in this message; so does the sim.
                caps |= cap_bit(&s).ok_or_else(|| {
                    format!("path {pattern:?}: path {pattern:?}: invalid capability {s:?}")
                })?;
                match p.peek() {
                    Some(Tok::Punct(',')) => {
                        p.pos += 1;
                    }
                    Some(Tok::Punct(']')) => {}
                    _ => return Err("expected ',' or ']' in capabilities".into()),
                }
            }
            _ => return Err("expected a quoted capability".into()),
        }
    }
}

/// `+` matches exactly one segment; a trailing `*` makes the rest a prefix match.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let (body, prefix) = match pattern.strip_suffix('*') {
        Some(b) => (b, true),
        None => (pattern, false),
    };
    if !body.contains('+') {
        return if prefix {
            path.starts_with(body)
        } else {
            path == body
        };
    }
    let pat: Vec<&str> = body.split('/').collect();
    let segs: Vec<&str> = path.split('/').collect();
    if segs.len() < pat.len() || (!prefix && segs.len() != pat.len()) {
        return false;
    }
    let last = pat.len() - 1;
    pat.iter().zip(&segs).enumerate().all(|(i, (p, s))| {
        if *p == "+" {
            !s.is_empty()
        } else if prefix && i == last {
            s.starts_with(p)
        } else {
            p == s
        }
    })
}

/// Vault's ordering of matching globs, most specific last: later first wildcard, no trailing
/// `*`, fewer `+` segments, longer, then lexicographically larger.
fn specificity(pattern: &str) -> (usize, bool, std::cmp::Reverse<usize>, usize, &str) {
    let first_wild = pattern.find(['+', '*']).unwrap_or(usize::MAX);
    let plus = pattern.split('/').filter(|s| *s == "+").count();
    (
        first_wild,
        !pattern.ends_with('*'),
        std::cmp::Reverse(plus),
        pattern.len(),
        pattern,
    )
}

/// Capabilities granted on `path` by a set of policies. Like Vault, rules for the same pattern
/// merge across policies, and only the most specific matching pattern counts.
pub fn capabilities<'a>(policies: impl IntoIterator<Item = &'a Policy>, path: &str) -> u8 {
    let mut merged: BTreeMap<&str, u8> = BTreeMap::new();
    for policy in policies {
        for rule in &policy.rules {
            if glob_match(&rule.pattern, path) {
                *merged.entry(rule.pattern.as_str()).or_insert(0) |= rule.caps;
            }
        }
    }
    match merged
        .into_iter()
        .max_by(|a, b| specificity(a.0).cmp(&specificity(b.0)))
    {
        Some((_, caps)) if caps & cap::DENY != 0 => 0,
        Some((_, caps)) => caps,
        None => 0,
    }
}

/// The built-in `default` policy, reduced to the token self-service paths the sim serves.
pub const DEFAULT_POLICY: &str = r#"
# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("transit/encrypt/k1", "transit/encrypt/k1"));
        assert!(!glob_match("transit/encrypt/k1", "transit/encrypt/k10"));
        assert!(glob_match("transit/*", "transit/encrypt/k1"));
        assert!(glob_match("transit/encrypt/k*", "transit/encrypt/k10"));
        assert!(!glob_match("transit/*", "transit"));
        assert!(glob_match("transit/+/k1", "transit/decrypt/k1"));
        assert!(!glob_match("transit/+/k1", "transit/decrypt/x/k1"));
        assert!(!glob_match("transit/+/k1", "transit//k1"));
        assert!(glob_match("+/keys/*", "weka-transit/keys/a/rotate"));
        assert!(!glob_match("+/keys/*", "weka-transit/encrypt/a"));
        assert!(glob_match("transit/+/fs-*", "transit/encrypt/fs-7"));
        assert!(!glob_match("transit/+/fs-*", "transit/encrypt/gs-7"));
    }

    #[test]
    fn parses_hcl_with_comments() {
        let text = r#"
            # WEKA's key
            path "transit/encrypt/weka" { capabilities = ["update"] }
            // decrypt too
            path "transit/decrypt/weka" {
              capabilities = [
                "update",   /* trailing comma next */
                "read",
              ]
            }
            path "transit/keys/*" { capabilities = ["deny"] }
        "#;
        let p = Policy::parse(text).unwrap();
        assert_eq!(p.rules.len(), 3);
        assert_eq!(p.rules[0].caps, cap::UPDATE);
        assert_eq!(p.rules[1].caps, cap::UPDATE | cap::READ);
        assert_eq!(
            p.rules[2],
            Rule {
                pattern: "transit/keys/*".into(),
                caps: cap::DENY
            }
        );
    }

    #[test]
    fn rejects_bad_hcl() {
        for bad in [
            r#"path "a" { capabilities = ["fly"] }"#,
            r#"path "a" { capabilities = ["read" }"#,
            r#"path "a" { }"#,
            r#"path a { capabilities = ["read"] }"#,
            r#"path "a" { capabilities = ["read"]"#,
            r#"path "a*b" { capabilities = ["read"] }"#,
            r#"path "a" { allowed_parameters = ["read"] }"#,
            r#"key "a" { capabilities = ["read"] }"#,
            r#"path "a { capabilities = ["read"] }"#,
        ] {
            assert!(Policy::parse(bad).is_err(), "accepted: {bad}");
        }
        assert!(Policy::parse("# only a comment\n")
            .unwrap()
            .rules
            .is_empty());
    }

    #[test]
    fn most_specific_rule_wins_and_deny_wins() {
        let a =
            Policy::parse(r#"path "transit/*" { capabilities = ["update", "create"] }"#).unwrap();
        let b =
            Policy::parse(r#"path "transit/encrypt/secret" { capabilities = ["deny"] }"#).unwrap();
        let c = Policy::parse(r#"path "transit/encrypt/*" { capabilities = ["read"] }"#).unwrap();
        assert_eq!(
            capabilities([&a], "transit/encrypt/k"),
            cap::UPDATE | cap::CREATE
        );
        assert_eq!(capabilities([&a, &b], "transit/encrypt/secret"), 0);
        assert_eq!(
            capabilities([&a, &b], "transit/encrypt/other"),
            cap::UPDATE | cap::CREATE
        );
        // The longer prefix is more specific: it replaces, not extends, the shorter one.
        assert_eq!(capabilities([&a, &c], "transit/encrypt/k"), cap::READ);
        assert_eq!(capabilities([&a], "sys/mounts"), 0);
        let d = Policy::parse(
            r#"path "transit/encrypt/k" { capabilities = ["read"] }
               path "transit/encrypt/k" { capabilities = ["deny"] }"#,
        )
        .unwrap();
        assert_eq!(capabilities([&d], "transit/encrypt/k"), 0);
    }
}
