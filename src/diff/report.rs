//! The text of a [`Diff`], as `gslb diff` prints it.

use std::fmt::Write as _;

use super::{Diff, FamilyDiff, Flow};

/// Renders `diff` for people: per service and family, the share that
/// moves, each move, what stays, and the largest moved networks with
/// where they are.
pub fn render_text(diff: &Diff) -> String {
    let mut out = String::new();
    for service in &diff.services {
        let _ = writeln!(out, "\n{} ({})", service.name, service.change);
        for why in &service.spill {
            let _ = writeln!(out, "  spill: {why}");
        }
        for family in &service.families {
            render_family(&mut out, family);
        }
    }
    if diff.services.is_empty() {
        out.push_str("no services on either side\n");
    }
    out
}

fn render_family(out: &mut String, family: &FamilyDiff) {
    let name = if family.family == "ipv4" {
        "IPv4"
    } else {
        "IPv6"
    };
    if family.total <= 0.0 {
        let _ = writeln!(out, "  {name}: no clients in the list");
        return;
    }
    let percent = family.moved * 100.0 / family.total;
    if family.moved <= 0.0 {
        let _ = writeln!(
            out,
            "  {name}: nothing moves ({}; {} blocks compared)",
            amount(family, family.total),
            family.blocks
        );
    } else {
        let _ = writeln!(
            out,
            "  {name}: {} of the {} move ({} of {}; {} blocks compared)",
            pct(percent),
            family.unit,
            number_and_unit(family, family.moved).0,
            amount(family, family.total),
            family.blocks
        );
    }
    for flow in family.flows.iter().filter(|f| f.from != f.to) {
        let _ = writeln!(
            out,
            "    {:<24} {:>8}  {}",
            format!("{} -> {}", flow.from, flow.to),
            pct(flow.percent),
            amount(family, flow.weight)
        );
    }
    let stays: Vec<String> = family
        .flows
        .iter()
        .filter(|f| f.from == f.to)
        .map(|f| format!("{} {}", f.from, pct(f.percent)))
        .collect();
    if !stays.is_empty() {
        let _ = writeln!(out, "    stay: {}", stays.join(", "));
    }
    if family.top_moved.is_empty() {
        return;
    }
    let _ = writeln!(out, "    top moved networks:");
    for network in &family.top_moved {
        let moves: Vec<String> = network
            .moves
            .iter()
            .map(|m: &Flow| {
                if network.moves.len() == 1 {
                    format!("{} -> {}", m.from, m.to)
                } else {
                    format!("{} -> {} {}", m.from, m.to, pct(m.percent))
                }
            })
            .collect();
        let locations: Vec<String> = network
            .locations
            .iter()
            .take(4)
            .map(|(label, share)| {
                if network.locations.len() == 1 {
                    label.clone()
                } else {
                    format!("{label} {}", pct(*share))
                }
            })
            .collect();
        let more = network.locations.len().saturating_sub(4);
        let _ = writeln!(
            out,
            "      {:<20} {:<22} {:>14}  {}{}",
            network.network.to_string(),
            moves.join(", "),
            amount(family, network.weight),
            locations.join(", "),
            if more > 0 {
                format!(" (+{more} more)")
            } else {
                String::new()
            }
        );
    }
}

fn pct(value: f64) -> String {
    if value > 0.0 && value < 0.01 {
        "<0.01%".to_string()
    } else {
        format!("{value:.2}%")
    }
}

/// A weight in the family's unit: IPv4 addresses, IPv6 /48s, or clients.
fn amount(family: &FamilyDiff, weight: f64) -> String {
    let (number, unit) = number_and_unit(family, weight);
    format!("{number} {unit}")
}

fn number_and_unit(family: &FamilyDiff, weight: f64) -> (String, &'static str) {
    match (family.unit, family.family) {
        ("addresses", "ipv4") => (thousands(weight), "addresses"),
        ("addresses", _) => {
            let per48 = weight / 2f64.powi(80);
            if per48 >= 1.0 || per48 == 0.0 {
                (thousands(per48), "/48s")
            } else {
                (format!("{per48:.3}"), "/48s")
            }
        }
        _ if weight.fract().abs() < 1e-9 => (thousands(weight), "clients"),
        _ => (format!("{weight:.1}"), "clients"),
    }
}

/// `1234567.0` → `1,234,567` (rounded); very large values in exponent form.
fn thousands(value: f64) -> String {
    if value >= 1e18 {
        return format!("{value:.3e}");
    }
    let digits = format!("{:.0}", value.round());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(4_294_967_296.0), "4,294,967,296");
        assert_eq!(thousands(12.0), "12");
        assert_eq!(pct(0.004), "<0.01%");
        assert_eq!(pct(12.5), "12.50%");
    }
}
