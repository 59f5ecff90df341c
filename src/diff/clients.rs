//! The client lists `gslb diff --clients` weighs: gslb's own query log
//! (text or `--log-format json` lines), a list of networks or addresses,
//! or a CSV of `network,weight`; one format per line, so a file may mix
//! them. Comments (`#`) and blank lines are skipped, and so is a CSV
//! header on the first line.
//!
//! A query log line is one query, routed as the server routed it: by the
//! leaf of its ECS address (else its source address). A listed network is
//! a population of clients spread evenly over its addresses. Identical
//! entries are merged (a query log repeats its clients).

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::policy::Family;

/// Most errors reported for one file.
const MAX_ERRORS: usize = 20;

/// One weighed client or network of clients.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientEntry {
    /// The network (an address is a /32 or /128), masked.
    pub net: IpNet,
    /// Its weight (queries for a query log).
    pub weight: f64,
    /// Routed by its first address, as a query is (query log lines);
    /// otherwise spread over its addresses.
    pub point: bool,
    /// The service it asked for (query log lines): lowercase, with the
    /// final dot; `None` weighs it for every service.
    pub name: Option<String>,
    /// The answer family it asked for (query log: A or AAAA).
    pub record: Option<Family>,
}

impl ClientEntry {
    /// Whether it is weighed for service `name`.
    pub fn applies_to(&self, name: &str) -> bool {
        self.name
            .as_deref()
            .is_none_or(|asked| asked.eq_ignore_ascii_case(name))
    }
}

/// The clients of one file.
#[derive(Debug, Clone, Default)]
pub struct ClientList {
    /// Merged entries, in order of first appearance.
    pub entries: Vec<ClientEntry>,
    /// Lines read as entries (before merging).
    pub lines: usize,
    /// Query log lines skipped because they asked for neither A nor AAAA.
    pub skipped_types: usize,
}

/// Lines of a client list that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{}", .lines.join("\n"))]
pub struct ClientsError {
    /// `file:line: what is wrong`, at most [`MAX_ERRORS`].
    pub lines: Vec<String>,
}

/// Reads a client list; `origin` names it in errors.
///
/// # Errors
/// Every unreadable line (up to 20), as `origin:line: what is wrong`.
pub fn parse_clients(text: &str, origin: &str) -> Result<ClientList, ClientsError> {
    let mut list = ClientList::default();
    let mut index: HashMap<(IpNet, bool, Option<String>, Option<u8>), usize> = HashMap::new();
    let mut errors = Vec::new();
    let mut first = true;
    for (number, raw) in text.lines().enumerate() {
        let line = strip_ansi(raw);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let was_first = std::mem::replace(&mut first, false);
        let parsed = if line.starts_with('{') {
            parse_json_line(line)
        } else if line.contains(" client=") || line.starts_with("client=") {
            parse_text_log_line(line)
        } else {
            match parse_listed(line) {
                Err(_) if was_first && looks_like_header(line) => continue,
                other => other,
            }
        };
        let entry = match parsed {
            Ok(Some(entry)) => entry,
            Ok(None) => {
                list.skipped_types += 1;
                continue;
            }
            Err(message) => {
                if errors.len() < MAX_ERRORS {
                    errors.push(format!("{origin}:{}: {message}", number + 1));
                }
                continue;
            }
        };
        list.lines += 1;
        let key = (
            entry.net,
            entry.point,
            entry.name.clone(),
            entry.record.map(|f| f as u8),
        );
        match index.get(&key) {
            Some(&i) => list.entries[i].weight += entry.weight,
            None => {
                index.insert(key, list.entries.len());
                list.entries.push(entry);
            }
        }
    }
    if errors.is_empty() {
        Ok(list)
    } else {
        Err(ClientsError { lines: errors })
    }
}

/// `NETWORK`, `ADDRESS`, `NETWORK,WEIGHT` (spaces allowed around the comma).
fn parse_listed(line: &str) -> Result<Option<ClientEntry>, String> {
    let mut fields = line.split(',').map(str::trim);
    let network = fields.next().unwrap_or("");
    let weight = fields.next();
    if fields.next().is_some() {
        return Err(format!(
            "{line:?}: expected NETWORK or NETWORK,WEIGHT (two fields at most)"
        ));
    }
    let net = parse_net(network).ok_or_else(|| {
        format!(
            "{network:?} is not a network or address: expected a query log line, a network (192.0.2.0/24, 2001:db8::/32, 192.0.2.1), or NETWORK,WEIGHT"
        )
    })?;
    let weight = match weight {
        None => 1.0,
        Some(text) => match text.parse::<f64>() {
            Ok(w) if w.is_finite() && w >= 0.0 => w,
            _ => {
                return Err(format!(
                    "weight {text:?} of {network}: expected a number of at least 0"
                ));
            }
        },
    };
    Ok(Some(ClientEntry {
        net,
        weight,
        point: false,
        name: None,
        record: None,
    }))
}

fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .map(|n| n.trunc())
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// A first line such as `network,weight` or `prefix,queries`.
fn looks_like_header(line: &str) -> bool {
    line.split(',').all(|f| {
        f.trim()
            .chars()
            .all(|c| c.is_ascii_alphabetic() || c == '_')
    })
}

/// A query log line's fields: client, ecs, name, qtype.
fn entry_from_log(
    client: Option<&str>,
    ecs: Option<&str>,
    name: Option<&str>,
    qtype: Option<&str>,
) -> Result<Option<ClientEntry>, String> {
    let record = match qtype {
        Some("A") => Some(Family::V4),
        Some("AAAA") => Some(Family::V6),
        None => None,
        Some(_) => return Ok(None),
    };
    let net = match ecs.filter(|e| *e != "-") {
        Some(ecs) => ecs
            .parse::<IpNet>()
            .map(|n| n.trunc())
            .map_err(|_| format!("query log line with a bad ecs {ecs:?}"))?,
        None => {
            let client = client.ok_or("query log line without client=")?;
            client
                .parse::<IpAddr>()
                .map(IpNet::from)
                .map_err(|_| format!("query log line with a bad client {client:?}"))?
        }
    };
    let name = name.filter(|n| *n != "-").map(|n| {
        let mut name = n.to_ascii_lowercase();
        if !name.ends_with('.') {
            name.push('.');
        }
        name
    });
    Ok(Some(ClientEntry {
        net,
        weight: 1.0,
        point: true,
        name,
        record,
    }))
}

/// `… client=192.0.2.1 ecs=81.2.69.0/24 name=www.example.test. qtype=A …`
fn parse_text_log_line(line: &str) -> Result<Option<ClientEntry>, String> {
    let mut fields: HashMap<&str, &str> = HashMap::new();
    for token in line.split_whitespace() {
        if let Some((key, value)) = token.split_once('=') {
            fields.insert(key, value.trim_matches('"'));
        }
    }
    entry_from_log(
        fields.get("client").copied(),
        fields.get("ecs").copied(),
        fields.get("name").copied(),
        fields.get("qtype").copied(),
    )
}

/// A `--log-format json` line: the fields under `fields` (or at the top).
fn parse_json_line(line: &str) -> Result<Option<ClientEntry>, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|err| format!("not a JSON query log line: {err}"))?;
    let fields = value.get("fields").unwrap_or(&value);
    let field = |key: &str| fields.get(key).and_then(serde_json::Value::as_str);
    entry_from_log(field("client"), field("ecs"), field("name"), field("qtype"))
}

/// The line without terminal colour codes (`ESC [ … m`), as a log copied
/// from a terminal has them.
fn strip_ansi(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.contains('\u{1b}') {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_reads_and_repeats_merge() {
        let text = "\
network,weight
# a comment
192.0.2.0/24, 10
2001:db8::/32
198.51.100.7
2026-06-01T10:00:00Z  INFO gslb::query: query client=127.0.0.1 ecs=81.2.69.160/24 name=WWW.example.test. qtype=A transport=\"udp\"
2026-06-01T10:00:01Z  INFO gslb::query: query client=127.0.0.1 ecs=81.2.69.160/24 name=WWW.example.test. qtype=A transport=\"udp\"
{\"level\":\"INFO\",\"fields\":{\"message\":\"query\",\"client\":\"203.0.113.9\",\"ecs\":\"-\",\"name\":\"api.example.test.\",\"qtype\":\"AAAA\"},\"target\":\"gslb::query\"}
\u{1b}[2m2026\u{1b}[0m client=10.0.0.1 ecs=- name=www.example.test. qtype=MX
";
        let list = parse_clients(text, "clients.txt").unwrap();
        assert_eq!(list.lines, 6);
        assert_eq!(list.skipped_types, 1);
        let nets: Vec<(String, f64, bool)> = list
            .entries
            .iter()
            .map(|e| (e.net.to_string(), e.weight, e.point))
            .collect();
        assert_eq!(
            nets,
            vec![
                ("192.0.2.0/24".to_string(), 10.0, false),
                ("2001:db8::/32".to_string(), 1.0, false),
                ("198.51.100.7/32".to_string(), 1.0, false),
                ("81.2.69.0/24".to_string(), 2.0, true),
                ("203.0.113.9/32".to_string(), 1.0, true),
            ]
        );
        assert_eq!(list.entries[3].name.as_deref(), Some("www.example.test."));
        assert!(list.entries[3].applies_to("www.example.test."));
        assert!(!list.entries[3].applies_to("api.example.test."));
        assert!(list.entries[0].applies_to("api.example.test."));
        assert_eq!(list.entries[4].record, Some(Family::V6));
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let err = parse_clients("192.0.2.0/24\nnot-a-net\n10.0.0.0/8,-3\n", "c.csv").unwrap_err();
        assert_eq!(err.lines.len(), 2);
        assert!(
            err.lines[0].starts_with("c.csv:2: \"not-a-net\" is not a network"),
            "{err}"
        );
        assert!(err.lines[1].starts_with("c.csv:3: weight \"-3\""), "{err}");
    }
}
