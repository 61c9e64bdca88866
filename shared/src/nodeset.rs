//! Compact pod lists: `web-[00-41,43-99]` for a hundred aliases less one, so a fan-out to a
//! thousand pods can name who answered what on one line. [`fold`] writes such a list and
//! [`expand`] reads it back.
//!
//! Each name is cut at its last run of digits into prefix, number and suffix. Names that share
//! prefix, suffix and zero padding fold into one bracketed pattern of ranges; several patterns
//! (and names without digits) are joined with commas.

use std::collections::BTreeMap;

/// Longest digit run read as a number (longer runs stay literal text).
const MAX_DIGITS: usize = 18;

/// A name cut at its last run of digits: prefix, digits, suffix.
type Parts<'a> = (&'a str, &'a str, &'a str);

/// Splits `name` at its last run of digits.
fn split(name: &str) -> Option<Parts<'_>> {
    let bytes = name.as_bytes();
    let end = bytes.iter().rposition(u8::is_ascii_digit)? + 1;
    let start = bytes[..end]
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |i| i + 1);
    let digits = &name[start..end];
    if digits.len() > MAX_DIGITS {
        return None;
    }
    Some((&name[..start], digits, &name[end..]))
}

/// Consecutive numbers as ranges: `0-41,43-99`, each number `width` digits wide (0: as is).
fn ranges(numbers: &[u64], width: usize) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < numbers.len() {
        let first = numbers[i];
        let mut last = first;
        while i + 1 < numbers.len() && numbers[i + 1] == last + 1 {
            i += 1;
            last = numbers[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&format!("{first:0width$}"));
        if last != first {
            out.push_str(&format!("-{last:0width$}"));
        }
        i += 1;
    }
    out
}

/// Folds names into a compact list: `web-[00-41,43-99],db-1`. Duplicates count once; the
/// patterns come out sorted by prefix, suffix and padding, so the same set always folds the
/// same way.
pub fn fold<S: AsRef<str>>(names: &[S]) -> String {
    // (prefix, suffix) -> padded width (0: unpadded) -> numbers.
    let mut numbered: BTreeMap<(&str, &str), BTreeMap<usize, Vec<u64>>> = BTreeMap::new();
    let mut plain: Vec<&str> = Vec::new();
    // A number written with a leading zero fixes its pattern's width; numbers of that width
    // without one ("10" beside "09") belong to the same padded pattern.
    let mut padded_widths: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    let parts: Vec<(&str, Option<Parts<'_>>)> = names
        .iter()
        .map(|n| (n.as_ref(), split(n.as_ref())))
        .collect();
    for (_, p) in &parts {
        if let Some((prefix, digits, suffix)) = p
            && digits.len() > 1
            && digits.starts_with('0')
        {
            padded_widths
                .entry((prefix, suffix))
                .or_default()
                .push(digits.len());
        }
    }
    for (name, p) in parts {
        match p {
            Some((prefix, digits, suffix)) => {
                let padded = padded_widths
                    .get(&(prefix, suffix))
                    .is_some_and(|w| w.contains(&digits.len()));
                let width = if padded { digits.len() } else { 0 };
                let n = digits.parse::<u64>().expect("at most 18 digits");
                numbered
                    .entry((prefix, suffix))
                    .or_default()
                    .entry(width)
                    .or_default()
                    .push(n);
            }
            None => plain.push(name),
        }
    }
    let mut patterns: Vec<String> = Vec::new();
    for ((prefix, suffix), by_width) in numbered {
        for (width, mut numbers) in by_width {
            numbers.sort_unstable();
            numbers.dedup();
            if numbers.len() == 1 {
                patterns.push(format!("{prefix}{:0width$}{suffix}", numbers[0]));
            } else {
                patterns.push(format!("{prefix}[{}]{suffix}", ranges(&numbers, width)));
            }
        }
    }
    plain.sort_unstable();
    plain.dedup();
    patterns.extend(plain.into_iter().map(str::to_owned));
    patterns.join(",")
}

/// Why a folded list cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad pod list {list:?}: {reason}")]
pub struct ParseError {
    pub list: String,
    pub reason: String,
}

/// Expands a folded list back into names, in the order written. The inverse of [`fold`]
/// (up to order): `web-[08-10]` gives `web-08`, `web-09`, `web-10`.
pub fn expand(list: &str) -> Result<Vec<String>, ParseError> {
    let err = |reason: &str| ParseError {
        list: list.to_owned(),
        reason: reason.to_owned(),
    };
    let mut out = Vec::new();
    let mut rest = list;
    while !rest.is_empty() {
        // One pattern: up to the next comma outside brackets.
        let mut depth = 0;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '[' if depth == 0 => depth = 1,
                '[' => return Err(err("nested brackets")),
                ']' if depth == 1 => depth = 0,
                ']' => return Err(err("unbalanced ]")),
                ',' if depth == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        if depth != 0 {
            return Err(err("unclosed ["));
        }
        let pattern = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
        if pattern.is_empty() {
            return Err(err("empty item"));
        }
        let Some(open) = pattern.find('[') else {
            out.push(pattern.to_owned());
            continue;
        };
        let close = pattern.find(']').ok_or_else(|| err("unclosed ["))?;
        let (prefix, suffix) = (&pattern[..open], &pattern[close + 1..]);
        if suffix.contains('[') {
            return Err(err("one bracket per item"));
        }
        for range in pattern[open + 1..close].split(',') {
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            let width = if a.len() > 1 && a.starts_with('0') {
                a.len()
            } else {
                0
            };
            let parse = |s: &str| {
                if s.is_empty() || s.len() > MAX_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
                    Err(err("a range bound is not a number"))
                } else {
                    Ok(s.parse::<u64>().expect("digits only"))
                }
            };
            let (a, b) = (parse(a)?, parse(b)?);
            if b < a {
                return Err(err("a range goes backwards"));
            }
            for n in a..=b {
                out.push(format!("{prefix}{n:0width$}{suffix}"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, range: std::ops::Range<u32>, width: usize) -> Vec<String> {
        range.map(|i| format!("{prefix}{i:0width$}")).collect()
    }

    #[test]
    fn a_hundred_pods_but_one_fold_into_two_ranges() {
        let mut all = names("web-", 0..100, 2);
        all.remove(42);
        assert_eq!(fold(&all), "web-[00-41,43-99]");
        assert_eq!(fold(&["web-42"]), "web-42");
    }

    #[test]
    fn zero_padding_is_kept_and_unpadded_numbers_stay_unpadded() {
        assert_eq!(fold(&["web-08", "web-09", "web-10"]), "web-[08-10]");
        assert_eq!(fold(&["web-8", "web-9", "web-10"]), "web-[8-10]");
        assert_eq!(fold(&["n001", "n002", "n1000"]), "n1000,n[001-002]");
    }

    #[test]
    fn several_patterns_and_plain_names_are_joined_with_commas() {
        let list = fold(&["db-1", "web-1", "web-2", "cache", "web-1", "db-2", "db-3"]);
        assert_eq!(list, "db-[1-3],web-[1-2],cache");
    }

    #[test]
    fn the_last_digit_run_is_the_one_folded() {
        assert_eq!(
            fold(&["rack1-node03.x", "rack1-node04.x", "rack2-node03.x"]),
            "rack1-node[03-04].x,rack2-node03.x"
        );
        assert_eq!(fold(&["a1b", "a2b", "a3c"]), "a[1-2]b,a3c");
    }

    #[test]
    fn expand_reverses_fold() {
        let mut all = names("web-", 0..100, 2);
        all.retain(|n| n != "web-42" && n != "web-07");
        all.extend(["db-9".to_owned(), "db-10".to_owned(), "solo".to_owned()]);
        all.extend(names("pod-", 0..12, 3));
        let folded = fold(&all);
        let mut back = expand(&folded).unwrap();
        back.sort();
        all.sort();
        assert_eq!(back, all, "{folded}");
    }

    #[test]
    fn expand_refuses_malformed_lists() {
        for bad in ["web-[1-", "web-[a-3]", "web-[3-1]", "a,,b", "x[1][2]", "x]"] {
            assert!(expand(bad).is_err(), "{bad}");
        }
        assert!(expand("").unwrap().is_empty());
        assert!(fold::<&str>(&[]).is_empty());
    }

    #[test]
    fn long_digit_runs_stay_literal() {
        let long = "x1234567890123456789012";
        assert_eq!(fold(&[long]), long);
    }
}
