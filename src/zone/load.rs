//! Reads an RFC 1035 master file into records, with the line of each one.
//!
//! hickory's zone `Parser` reports errors without a line number, so the file
//! is first split into logical entries here (comments, quotes and
//! parentheses handled as RFC 1035 §5.1 says), each entry is parsed on its
//! own with the context so far ($ORIGIN, $TTL, the previous owner), and every
//! bad entry is reported as `file:line: message`. Does no DNS lookups.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use hickory_proto::rr::{DNSClass, Name, Record};
use hickory_proto::serialize::txt::Parser;

use super::ZoneError;

/// Maximum nesting of `$INCLUDE` files.
const MAX_INCLUDE_DEPTH: usize = 8;

/// A record together with the place it was read from.
#[derive(Debug, Clone)]
pub struct LocatedRecord {
    /// The parsed record (absolute owner name).
    pub record: Record,
    /// File the record came from (an `$INCLUDE`d file has its own).
    pub file: PathBuf,
    /// 1-based line where the record's entry starts.
    pub line: usize,
}

/// Reads and parses a zone file. All bad entries are collected.
///
/// # Errors
/// Every problem found, each naming file and line.
pub fn load_zone_file(path: &Path, origin: &Name) -> Result<Vec<LocatedRecord>, Vec<ZoneError>> {
    let mut state = ParseState::new(origin);
    read_file(path, &mut state, 0, None);
    state.finish()
}

/// Parses zone text that did not come from a file (tests, fuzzing).
///
/// # Errors
/// Every problem found, each naming `path` and line.
pub fn parse_zone_text(
    text: &str,
    path: &Path,
    origin: &Name,
) -> Result<Vec<LocatedRecord>, Vec<ZoneError>> {
    let mut state = ParseState::new(origin);
    parse_text(text, path, &mut state, 0);
    state.finish()
}

struct ParseState {
    origin: Name,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
    previous_owner: Option<Name>,
    records: Vec<LocatedRecord>,
    errors: Vec<ZoneError>,
}

impl ParseState {
    fn new(origin: &Name) -> Self {
        Self {
            origin: origin.clone(),
            default_ttl: None,
            last_ttl: None,
            previous_owner: None,
            records: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn finish(self) -> Result<Vec<LocatedRecord>, Vec<ZoneError>> {
        if self.errors.is_empty() {
            Ok(self.records)
        } else {
            Err(self.errors)
        }
    }

    fn error(&mut self, file: &Path, line: usize, message: impl Into<String>) {
        self.errors.push(ZoneError::Syntax {
            file: file.to_path_buf(),
            line,
            message: message.into(),
        });
    }
}

fn read_file(path: &Path, state: &mut ParseState, depth: usize, from: Option<(&Path, usize)>) {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_text(&text, path, state, depth),
        Err(err) => match from {
            Some((file, line)) => state.error(
                file,
                line,
                format!("cannot read $INCLUDE {}: {err}", path.display()),
            ),
            None => state.errors.push(ZoneError::Read {
                file: path.to_path_buf(),
                message: err.to_string(),
            }),
        },
    }
}

fn parse_text(text: &str, path: &Path, state: &mut ParseState, depth: usize) {
    let entries = match split_entries(text) {
        Ok(entries) => entries,
        Err((line, message)) => {
            state.error(path, line, message);
            return;
        }
    };
    for entry in entries {
        parse_entry(&entry, path, state, depth);
    }
}

fn parse_entry(entry: &Entry, path: &Path, state: &mut ParseState, depth: usize) {
    let line = entry.line;
    let mut words = entry.text.split_whitespace();
    let Some(first) = words.next() else {
        return;
    };
    if !entry.owner_omitted && first.starts_with('$') {
        let argument = words.next();
        match (first.to_ascii_uppercase().as_str(), argument) {
            ("$ORIGIN", Some(name)) => match Name::parse(name, Some(&state.origin)) {
                Ok(name) => state.origin = name,
                Err(err) => state.error(path, line, format!("bad $ORIGIN {name:?}: {err}")),
            },
            ("$TTL", Some(ttl)) => match parse_ttl(ttl) {
                Some(ttl) => state.default_ttl = Some(ttl),
                None => state.error(
                    path,
                    line,
                    format!("bad $TTL {ttl:?}: expected seconds or a duration like 1h30m"),
                ),
            },
            ("$INCLUDE", Some(file)) => {
                if depth >= MAX_INCLUDE_DEPTH {
                    state.error(path, line, "$INCLUDE nested too deeply");
                    return;
                }
                let include = path.parent().unwrap_or(Path::new(".")).join(file);
                let saved_origin = state.origin.clone();
                if let Some(origin) = words.next() {
                    match Name::parse(origin, Some(&state.origin)) {
                        Ok(name) => state.origin = name,
                        Err(err) => {
                            state.error(
                                path,
                                line,
                                format!("bad $INCLUDE origin {origin:?}: {err}"),
                            );
                            return;
                        }
                    }
                }
                read_file(&include, state, depth + 1, Some((path, line)));
                // RFC 1035 §5.1: $INCLUDE does not change the including file's origin.
                state.origin = saved_origin;
            }
            (directive, None) => state.error(path, line, format!("{directive} needs an argument")),
            (directive, Some(_)) => state.error(
                path,
                line,
                format!("unknown directive {directive} (expected $ORIGIN, $TTL or $INCLUDE)"),
            ),
        }
        return;
    }

    // Give hickory's parser one record with all the context it needs.
    let owner = if entry.owner_omitted {
        match &state.previous_owner {
            Some(owner) => owner.to_string(),
            None => {
                state.error(
                    path,
                    line,
                    "record has no owner name and no previous record to inherit it from",
                );
                return;
            }
        }
    } else {
        String::new()
    };
    let mut input = String::with_capacity(entry.text.len() + 64);
    if let Some(ttl) = state.default_ttl.or(state.last_ttl) {
        input.push_str(&format!("$TTL {ttl}\n"));
    }
    if !owner.is_empty() {
        input.push_str(&owner);
        input.push(' ');
    }
    input.push_str(&entry.text);
    input.push('\n');
    let parsed = Parser::new(input.as_str(), None, Some(state.origin.clone())).parse();
    let record_sets = match parsed {
        Ok((_, record_sets)) => record_sets,
        Err(err) => {
            state.error(path, line, describe_parse_error(&err.to_string()));
            return;
        }
    };
    let mut found = false;
    for record_set in record_sets.into_values() {
        for record in record_set.records_without_rrsigs() {
            found = true;
            if record.dns_class != DNSClass::IN {
                state.error(
                    path,
                    line,
                    format!("class {} is not served; only IN", record.dns_class),
                );
                continue;
            }
            if state.default_ttl.is_none() {
                state.last_ttl = Some(record.ttl);
            }
            state.previous_owner = Some(record.name.clone());
            state.records.push(LocatedRecord {
                record: record.clone(),
                file: path.to_path_buf(),
                line,
            });
        }
    }
    if !found {
        state.error(path, line, "no record found in this entry");
    }
}

fn describe_parse_error(message: &str) -> String {
    if message.contains("record ttl not specified") {
        "record has no TTL and no $TTL is set: add a TTL or a $TTL line".to_string()
    } else {
        message.to_string()
    }
}

/// Parses a TTL as seconds or BIND-style units (1w2d3h4m5s).
fn parse_ttl(text: &str) -> Option<u32> {
    if let Ok(seconds) = u32::from_str(text) {
        return Some(seconds);
    }
    let mut total: u64 = 0;
    let mut number: u64 = 0;
    let mut has_digits = false;
    for c in text.chars() {
        if let Some(d) = c.to_digit(10) {
            number = number.checked_mul(10)?.checked_add(u64::from(d))?;
            has_digits = true;
            continue;
        }
        if !has_digits {
            return None;
        }
        let unit = match c.to_ascii_lowercase() {
            'w' => 604_800,
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(number.checked_mul(unit)?)?;
        number = 0;
        has_digits = false;
    }
    if has_digits {
        return None;
    }
    u32::try_from(total).ok()
}

/// One logical entry of a master file: a directive or a record, possibly
/// spanning lines inside parentheses, with comments removed.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    line: usize,
    owner_omitted: bool,
    text: String,
}

/// Splits master-file text into logical entries (RFC 1035 §5.1).
fn split_entries(text: &str) -> Result<Vec<Entry>, (usize, String)> {
    let mut entries = Vec::new();
    let mut current = String::new();
    let mut start_line = 1;
    let mut line = 1;
    let mut owner_omitted = false;
    let mut at_line_start = true;
    let mut in_quotes = false;
    let mut in_comment = false;
    let mut depth = 0usize;
    let mut paren_line = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if at_line_start && depth == 0 {
            start_line = line;
            owner_omitted = c == ' ' || c == '\t';
            at_line_start = false;
        }
        if in_comment {
            if c != '\n' {
                continue;
            }
            in_comment = false;
        }
        match c {
            '\\' => {
                current.push(c);
                if let Some(next) = chars.next() {
                    if next == '\n' {
                        line += 1;
                    }
                    current.push(next);
                }
            }
            '"' => {
                in_quotes = !in_quotes;
                current.push(c);
            }
            _ if in_quotes => {
                if c == '\n' {
                    return Err((line, "unterminated quoted string".to_string()));
                }
                current.push(c);
            }
            ';' => in_comment = true,
            '(' => {
                if depth == 0 {
                    paren_line = line;
                }
                depth += 1;
                current.push(' ');
            }
            ')' => {
                if depth == 0 {
                    return Err((line, "')' without a matching '('".to_string()));
                }
                depth -= 1;
                current.push(' ');
            }
            '\n' => {
                line += 1;
                if depth == 0 {
                    if !current.trim().is_empty() {
                        entries.push(Entry {
                            line: start_line,
                            owner_omitted,
                            text: current.trim().to_string(),
                        });
                    }
                    current.clear();
                    at_line_start = true;
                } else {
                    current.push(' ');
                }
            }
            '\r' => {}
            _ => current.push(c),
        }
    }
    if in_quotes {
        return Err((line, "unterminated quoted string".to_string()));
    }
    if depth > 0 {
        return Err((paren_line, "'(' is never closed".to_string()));
    }
    if !current.trim().is_empty() {
        entries.push(Entry {
            line: start_line,
            owner_omitted,
            text: current.trim().to_string(),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Name {
        Name::from_ascii("example.test.").unwrap()
    }

    #[test]
    fn splits_multiline_soa_and_strips_comments() {
        let text = "$TTL 300\n@ IN SOA ns1 host (\n 1 ; serial\n 2 3 4 5 )\n  IN NS ns1\n";
        let entries = split_entries(text).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1].line, 2);
        assert!(entries[1].text.contains("1   2 3 4 5"));
        assert!(entries[2].owner_omitted);
        assert_eq!(entries[2].line, 5);
    }

    #[test]
    fn keeps_semicolons_inside_quotes() {
        let entries = split_entries("a TXT \"x;y\" ; comment\n").unwrap();
        assert_eq!(entries[0].text, "a TXT \"x;y\"");
    }

    #[test]
    fn reports_every_bad_line() {
        let text =
            "$TTL 60\n@ SOA ns1 host 1 2 3 4 5\nwww A 192.0.2.300\nok A 192.0.2.1\nbad AAAA nope\n";
        let errors = parse_zone_text(text, Path::new("z.zone"), &origin()).unwrap_err();
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("z.zone:3: "), "{lines:?}");
        assert!(lines[1].starts_with("z.zone:5: "), "{lines:?}");
    }

    #[test]
    fn blank_owner_inherits_previous_and_ttl_defaults_apply() {
        let text = "$TTL 1h\nwww 60 A 192.0.2.1\n    A 192.0.2.2\nmail MX 10 www\n";
        let records = parse_zone_text(text, Path::new("z"), &origin()).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[1].record.name.to_ascii(), "www.example.test.");
        assert_eq!(records[1].record.ttl, 3600);
        assert_eq!(records[0].record.ttl, 60);
        assert_eq!(records[2].line, 4);
    }

    #[test]
    fn missing_ttl_is_explained() {
        let errors = parse_zone_text("www A 192.0.2.1\n", Path::new("z"), &origin()).unwrap_err();
        assert!(errors[0].to_string().contains("$TTL"), "{}", errors[0]);
    }

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("1h30m"), Some(5400));
        assert_eq!(parse_ttl("1w"), Some(604_800));
        assert_eq!(parse_ttl("h"), None);
        assert_eq!(parse_ttl("5x"), None);
    }

    #[test]
    fn unbalanced_parentheses_name_the_line() {
        let err = split_entries("a A 1.2.3.4\nb SOA ( 1 2\n").unwrap_err();
        assert_eq!(err.0, 2);
    }
}
