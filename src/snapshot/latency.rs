//! Parses a client-network → region latency table (CSV: prefix,region,ms),
//! as RUM or probe data would give it.

use std::path::{Path, PathBuf};

use ipnet::IpNet;

/// One row of a latency table.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyRow {
    /// Client network.
    pub network: IpNet,
    /// Region (pool) name.
    pub region: String,
    /// Measured latency in milliseconds.
    pub latency_ms: f64,
    /// 1-based line in the file.
    pub line: usize,
}

/// A problem in a latency table, located by line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct LatencyError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Parses latency table text. Blank lines, `#` comments and a header line
/// starting with `prefix` are skipped.
///
/// # Errors
/// Every malformed line.
pub fn parse_latency_table(text: &str, path: &Path) -> Result<Vec<LatencyRow>, Vec<LatencyError>> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty()
            || (rows.is_empty()
                && errors.is_empty()
                && content.to_ascii_lowercase().starts_with("prefix"))
        {
            continue;
        }
        let error = |message: String| LatencyError {
            file: path.to_path_buf(),
            line,
            message,
        };
        let fields: Vec<&str> = content.split(',').map(str::trim).collect();
        let [network, region, latency] = fields[..] else {
            errors.push(error(format!(
                "expected 3 fields prefix,region,milliseconds; found {}",
                fields.len()
            )));
            continue;
        };
        let network: IpNet = match network.parse() {
            Ok(network) => network,
            Err(_) => {
                errors.push(error(format!(
                    "bad network {network:?}: expected CIDR like 192.0.2.0/24"
                )));
                continue;
            }
        };
        if region.is_empty() {
            errors.push(error("empty region name".to_string()));
            continue;
        }
        match latency.parse::<f64>() {
            Ok(ms) if ms.is_finite() && ms >= 0.0 => rows.push(LatencyRow {
                network: network.trunc(),
                region: region.to_string(),
                latency_ms: ms,
                line,
            }),
            _ => errors.push(error(format!(
                "bad latency {latency:?}: expected milliseconds ≥ 0"
            ))),
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_and_reports_bad_lines() {
        let text = "prefix,region,ms\n10.0.0.0/8, eu, 12.5\n# comment\n10.1.0.0/16,us,x\nbad\n2001:db8::/32,ap,40\n";
        let errors = parse_latency_table(text, Path::new("l.csv")).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].line, 4);
        assert_eq!(errors[1].line, 5);
        let rows = parse_latency_table("10.0.0.0/8,eu,12.5\n", Path::new("l.csv")).unwrap();
        assert_eq!(rows[0].region, "eu");
        assert_eq!(rows[0].latency_ms, 12.5);
    }
}
