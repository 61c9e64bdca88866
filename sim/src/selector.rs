//! Kubernetes label selectors (`a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`) and the
//! few field selectors kubectl sends (`metadata.name`, `metadata.namespace`, `status.phase`).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unable to parse requirement {term:?}: {why}")]
pub struct SelectorError {
    pub term: String,
    pub why: &'static str,
}

/// A conjunction of requirements; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector(pub Vec<Requirement>);

impl Selector {
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        let mut reqs = Vec::new();
        for term in split_terms(s) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            reqs.push(parse_term(term)?);
        }
        Ok(Selector(reqs))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        })
    }
}

/// Splits on commas that are not inside a `( ... )` value set.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn err(term: &str, why: &'static str) -> SelectorError {
    SelectorError {
        term: term.to_string(),
        why,
    }
}

fn parse_term(term: &str) -> Result<Requirement, SelectorError> {
    if let Some(key) = term.strip_prefix('!') {
        let key = key.trim();
        return if valid_key(key) {
            Ok(Requirement::NotExists(key.to_string()))
        } else {
            Err(err(term, "invalid label key"))
        };
    }
    for (op, neg) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((k, v)) = term.split_once(op) {
            let (k, v) = (k.trim(), v.trim());
            if !valid_key(k) {
                return Err(err(term, "invalid label key"));
            }
            if !valid_value(v) {
                return Err(err(term, "invalid label value"));
            }
            return Ok(if neg {
                Requirement::NotEquals(k.to_string(), v.to_string())
            } else {
                Requirement::Equals(k.to_string(), v.to_string())
            });
        }
    }
    let mut words = term.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or("").trim();
    let rest = words.next().unwrap_or("").trim();
    if rest.is_empty() {
        return if valid_key(key) {
            Ok(Requirement::Exists(key.to_string()))
        } else {
            Err(err(term, "invalid label key"))
        };
    }
    if !valid_key(key) {
        return Err(err(term, "invalid label key"));
    }
    let (negate, set) = if let Some(set) = rest.strip_prefix("notin") {
        (true, set)
    } else if let Some(set) = rest.strip_prefix("in") {
        (false, set)
    } else {
        return Err(err(term, "expected one of =, ==, !=, in, notin"));
    };
    let set = set.trim();
    let inner = set
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| err(term, "expected a parenthesised value set"))?;
    let mut values = Vec::new();
    for v in inner.split(',') {
        let v = v.trim();
        if !valid_value(v) {
            return Err(err(term, "invalid label value"));
        }
        values.push(v.to_string());
    }
    let key = key.to_string();
    Ok(if negate {
        Requirement::NotIn(key, values)
    } else {
        Requirement::In(key, values)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(i: usize) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("app".into(), "web".into());
        m.insert("index".into(), i.to_string());
        m.insert(
            "parity".into(),
            if i % 2 == 0 { "even" } else { "odd" }.into(),
        );
        m
    }

    fn select(s: &str) -> Vec<usize> {
        let sel = Selector::parse(s).unwrap();
        (0..5).filter(|&i| sel.matches(&labels(i))).collect()
    }

    #[test]
    fn equality_and_inequality() {
        assert_eq!(select("app=web"), vec![0, 1, 2, 3, 4]);
        assert_eq!(select("app==web,parity=even"), vec![0, 2, 4]);
        assert_eq!(select("parity!=odd"), vec![0, 2, 4]);
        assert_eq!(select("app=db"), Vec::<usize>::new());
    }

    #[test]
    fn set_based() {
        assert_eq!(select("index in (1,2)"), vec![1, 2]);
        assert_eq!(select("index in (1, 2),parity=odd"), vec![1]);
        assert_eq!(select("index notin (0,4)"), vec![1, 2, 3]);
        assert_eq!(select("parity"), vec![0, 1, 2, 3, 4]);
        assert_eq!(select("!parity"), Vec::<usize>::new());
        assert_eq!(select("nope notin (x)"), vec![0, 1, 2, 3, 4]);
        assert_eq!(select(""), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn bad_selectors_are_rejected() {
        assert!(Selector::parse("index in 1,2").is_err());
        assert!(Selector::parse("a=b c").is_err());
        assert!(Selector::parse("index within (1)").is_err());
        assert!(Selector::parse("=x").is_err());
    }
}
