//! `/metrics` content negotiation: OpenMetrics 1.0 for scrapers that ask
//! for it, the Prometheus text format 0.0.4 for everyone else (what
//! `promtool check metrics`, older scrapers and `curl` read).
//!
//! Owns only the choice of format and the rewrite of the OpenMetrics text
//! the scrape produces into 0.0.4; never reads a counter itself.

/// Content type of the OpenMetrics exposition (what the scrape writes).
pub const OPENMETRICS: &str = crate::metrics::CONTENT_TYPE;
/// Content type of the Prometheus text exposition.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A text exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// Prometheus text 0.0.4.
    PrometheusText,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` with a quality at least that of
    /// `text/plain`, else the Prometheus text format (also without a header).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::PrometheusText;
        };
        let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let quality = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(quality),
                "text/plain" => text = text.max(quality),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }

    /// The reply's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::PrometheusText => PROMETHEUS_TEXT,
        }
    }
}

/// Rewrites an OpenMetrics exposition as Prometheus text 0.0.4: counter
/// families take their samples' `_total` name, `info` families become
/// `_info` gauges, `unknown` becomes `untyped`; `# UNIT`, `# EOF`,
/// `_created` samples and exemplars are dropped, and HELP text loses the
/// `\"` escape 0.0.4 does not have.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<(&str, String)> = None;
    // The current family's sample name to drop (`NAME_created`).
    let mut created: Option<String> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text.replace("\\\"", "\"")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (family, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "unknown" => (name.to_string(), "untyped"),
                "gauge" | "histogram" | "summary" => (name.to_string(), kind),
                _ => (name.to_string(), "untyped"),
            };
            created = (kind == "counter").then(|| format!("{name}_created"));
            if let Some((help_name, text)) = help.take()
                && help_name == name
            {
                out.push_str(&format!("# HELP {family} {text}\n"));
            }
            out.push_str(&format!("# TYPE {family} {kind}\n"));
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if created.as_deref().is_some_and(|c| {
            line.strip_prefix(c)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        }) {
            continue;
        }
        // An exemplar follows " # " after the value.
        let sample = line.split_once(" # ").map_or(line, |(sample, _)| sample);
        out.push_str(sample);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrapers_get_what_they_ask_for() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::PrometheusText
        );
        assert_eq!(
            Format::negotiate(Some(
                "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5"
            )),
            Format::PrometheusText
        );
        assert_eq!(Format::negotiate(Some("*/*")), Format::PrometheusText);
        assert_eq!(Format::negotiate(None), Format::PrometheusText);
    }

    #[test]
    fn openmetrics_is_rewritten_as_text_0_0_4() {
        let openmetrics = "# HELP gslb_build gslb build information.\n# TYPE gslb_build info\ngslb_build_info{version=\"0.1.0\"} 1\n\
# HELP gslb_dns_queries answered \\\"queries\\\".\n# TYPE gslb_dns_queries counter\n# UNIT gslb_dns_queries queries\n\
gslb_dns_queries_total{zone=\"a\"} 3\ngslb_dns_queries_created{zone=\"a\"} 1.5\ngslb_dns_queries_total{zone=\"b\"} 4 # {trace=\"x\"} 1\n\
# HELP up a gauge.\n# TYPE up gauge\nup 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(openmetrics),
            "# HELP gslb_build_info gslb build information.\n# TYPE gslb_build_info gauge\ngslb_build_info{version=\"0.1.0\"} 1\n\
# HELP gslb_dns_queries_total answered \"queries\".\n# TYPE gslb_dns_queries_total counter\n\
gslb_dns_queries_total{zone=\"a\"} 3\ngslb_dns_queries_total{zone=\"b\"} 4\n\
# HELP up a gauge.\n# TYPE up gauge\nup 1\n"
        );
    }
}
