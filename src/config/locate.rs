//! Finds where a key sits in the TOML text, so a validation error can name its line.

/// 1-based line of a byte offset.
pub fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// 1-based line of a dotted key path such as `dcs.dc2.id_start` or `ownership.shards.3.owner`
/// (numbers index arrays). Falls back to the deepest part of the path that exists.
pub fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let doc = toml_edit::Document::parse(text).ok()?;
    let mut item = doc.as_item();
    let mut best = None;
    for part in key.split('.').filter(|p| !p.is_empty()) {
        let next = match part.parse::<usize>() {
            Ok(i) => item.get(i),
            Err(_) => item.get(part),
        };
        match next {
            Some(n) => {
                item = n;
                if let Some(span) = item_span(item) {
                    best = Some(line_of_offset(text, span.start));
                }
            }
            None => break,
        }
    }
    best
}

fn item_span(item: &toml_edit::Item) -> Option<std::ops::Range<usize>> {
    match item {
        toml_edit::Item::Value(v) => v.span(),
        toml_edit::Item::Table(t) => t.span(),
        toml_edit::Item::ArrayOfTables(a) => a.span(),
        toml_edit::Item::None => None,
    }
}

/// The dotted key defined on a 1-based line: the nearest `[table]` or `[[array]]` header above
/// it, joined with the key before `=` on that line (when there is one).
pub fn key_at_line(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(current) = lines.get(line.saturating_sub(1)) else {
        return String::new();
    };
    let key = current
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string());
    let header = current.trim_start().starts_with('[');
    let table = lines[..line.saturating_sub(1).min(lines.len())]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('[') && !l.starts_with("#"))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    match (header, table, key) {
        (true, _, _) => current
            .trim()
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string(),
        (false, Some(t), Some(k)) => format!("{t}.{k}"),
        (false, None, Some(k)) => k,
        (false, Some(t), None) => t,
        (false, None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_and_array_items() {
        let text = "dc = \"x\"\n[dcs.a]\nid_start = 1\n\n[[ownership.shards]]\nshard = 0\n\n[[ownership.shards]]\nshard = 1\nowner = \"b\"\n";
        assert_eq!(line_of_key(text, "dc"), Some(1));
        assert_eq!(line_of_key(text, "dcs.a.id_start"), Some(3));
        assert_eq!(line_of_key(text, "ownership.shards.1.owner"), Some(10));
        assert_eq!(line_of_key(text, "nope"), None);
        assert_eq!(key_at_line(text, 3), "dcs.a.id_start");
        assert_eq!(key_at_line(text, 1), "dc");
        assert_eq!(key_at_line(text, 10), "ownership.shards.owner");
    }
}
