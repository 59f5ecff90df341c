//! Compiles a service's routing rules (geo map, distances, latency table)
//! into its [`RegionTable`], and explains which rule applies to a client.
//!
//! Both use the same `order_for_location`, so `gslb explain` reasons with
//! the very function that built the table the server answers from.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::PolicyKind;
use super::{Pool, RegionTable};
use crate::geo::{Family as AddressFamily, Location, LocationId, LocationTable, PrefixTable};

/// An ordered list of pool indices (into the service's pools).
pub type Order = Vec<u16>;

/// A geo map with pool names resolved to indices and keys normalised.
#[derive(Debug, Clone, Default)]
pub struct GeoRules {
    /// Operator networks.
    pub nets: Vec<(IpNet, Order)>,
    /// By autonomous system number.
    pub asn: HashMap<u32, Order>,
    /// By ISO 3166-2 code (`US-WA`), upper case.
    pub subdivision: HashMap<String, Order>,
    /// By country code, upper case.
    pub country: HashMap<String, Order>,
    /// By continent code, upper case.
    pub continent: HashMap<String, Order>,
    /// Everyone else.
    pub default: Option<Order>,
}

/// Everything that decides a client's pool order.
#[derive(Debug, Clone)]
pub struct RouteRules {
    /// The policy.
    pub policy: PolicyKind,
    /// The geo map (geo policy; fallback of nearest and latency).
    pub geo: Option<GeoRules>,
    /// Latency rows as (network, order by latency), for `latency`.
    pub latency: Vec<(IpNet, Order)>,
    /// Candidate pools (for distances and the fallback order).
    pub pools: Vec<Arc<Pool>>,
}

/// Interns orders so equal lists share one index (and table leaves merge).
#[derive(Default)]
struct Orders {
    index: HashMap<Order, u32>,
    list: Vec<Box<[u16]>>,
}

impl Orders {
    fn intern(&mut self, order: Order) -> u32 {
        if let Some(&i) = self.index.get(&order) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(order.clone().into_boxed_slice());
        self.index.insert(order, i);
        i
    }
}

impl RouteRules {
    /// The fallback order: the candidate pools as listed.
    pub fn fallback(&self) -> Order {
        (0..self.pools.len() as u16).collect()
    }

    /// The order for a location, and the rule that chose it.
    pub fn order_for_location(
        &self,
        location: &Location,
        locations_loaded: bool,
    ) -> (Order, String) {
        match self.policy {
            PolicyKind::Failover | PolicyKind::Fastest => (
                self.fallback(),
                "failover: pools in configured order".to_string(),
            ),
            PolicyKind::Geo => self.geo_order(location),
            PolicyKind::Nearest => match location.latitude_longitude {
                Some(coordinates) => self.nearest_order(coordinates),
                None => {
                    let (order, reason) = self.geo_order(location);
                    (
                        order,
                        format!("no client coordinates, falling back to {reason}"),
                    )
                }
            },
            PolicyKind::Latency => {
                if self.geo.is_some() {
                    let (order, reason) = self.geo_order(location);
                    (order, format!("no latency row, falling back to {reason}"))
                } else if let (Some(coordinates), true) = (
                    location.latitude_longitude,
                    locations_loaded && self.pools.iter().all(|p| p.coordinates.is_some()),
                ) {
                    let (order, reason) = self.nearest_order(coordinates);
                    (order, format!("no latency row, falling back to {reason}"))
                } else {
                    (
                        self.fallback(),
                        "no latency row: pools in configured order".to_string(),
                    )
                }
            }
        }
    }

    fn geo_order(&self, location: &Location) -> (Order, String) {
        let Some(geo) = &self.geo else {
            return (
                self.fallback(),
                "no geo map: pools in configured order".to_string(),
            );
        };
        // Locations hold ISO 3166-2 codes whatever the database wrote.
        if let Some(code) = &location.subdivision
            && let Some(order) = geo.subdivision.get(&**code)
        {
            return (order.clone(), format!("geo map subdivision {code}"));
        }
        if let Some(country) = &location.country {
            let key = country.to_ascii_uppercase();
            if let Some(order) = geo.country.get(&key) {
                return (order.clone(), format!("geo map country {key}"));
            }
        }
        if let Some(continent) = &location.continent {
            let key = continent.to_ascii_uppercase();
            if let Some(order) = geo.continent.get(&key) {
                return (order.clone(), format!("geo map continent {key}"));
            }
        }
        match &geo.default {
            Some(order) => (order.clone(), "geo map default".to_string()),
            None => (
                self.fallback(),
                "no geo map entry and no default: pools in configured order".to_string(),
            ),
        }
    }

    fn nearest_order(&self, (lat, lon): (f64, f64)) -> (Order, String) {
        let mut scored: Vec<(f64, u16)> = self
            .pools
            .iter()
            .enumerate()
            .map(|(i, pool)| {
                let distance = pool.coordinates.map_or(f64::INFINITY, |(plat, plon)| {
                    great_circle_km(lat, lon, plat, plon)
                });
                (biased_distance(distance, pool.bias), i as u16)
            })
            .collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let described: Vec<String> = scored
            .iter()
            .map(|(d, i)| format!("{} {:.0} km", self.pools[usize::from(*i)].name, d))
            .collect();
        (
            scored.into_iter().map(|(_, i)| i).collect(),
            format!("nearest to ({lat:.2}, {lon:.2}): {}", described.join(", ")),
        )
    }

    /// Compiles the region table and the distinct orders it points to.
    pub fn compile(
        &self,
        locations: Option<&LocationTable>,
        asn: Option<&LocationTable>,
    ) -> (Vec<Box<[u16]>>, RegionTable) {
        let mut orders = Orders::default();
        let mut table: PrefixTable<u32> = match (self.policy, locations) {
            // Failover does not depend on the client: one leaf, scope 0.
            (PolicyKind::Failover | PolicyKind::Fastest, _) | (_, None) => {
                let (order, _) = self.order_for_location(&Location::UNKNOWN, false);
                PrefixTable::new(orders.intern(order))
            }
            (_, Some(table)) => {
                let per_location: Vec<u32> = table
                    .locations()
                    .iter()
                    .map(|location| orders.intern(self.order_for_location(location, true).0))
                    .collect();
                table
                    .prefixes()
                    .map(|LocationId(id)| per_location.get(id as usize).copied().unwrap_or(0))
            }
        };
        if !matches!(self.policy, PolicyKind::Failover | PolicyKind::Fastest) {
            if let Some(geo) = &self.geo {
                if let (false, Some(asn_table)) = (geo.asn.is_empty(), asn) {
                    for family in [AddressFamily::V4, AddressFamily::V6] {
                        let leaves: Vec<(u128, u8, LocationId)> =
                            asn_table.prefixes().trie(family).iter_leaves().collect();
                        for (bits, prefix_len, id) in leaves {
                            if let Some(order) =
                                asn_table.location(id).asn.and_then(|n| geo.asn.get(&n))
                            {
                                let index = orders.intern(order.clone());
                                table.trie_mut(family).insert(bits, prefix_len, index);
                            }
                        }
                    }
                }
                overlay_networks(&mut table, &mut orders, &geo.nets);
            }
            overlay_networks(&mut table, &mut orders, &self.latency);
        }
        table.collapse();
        // Read on every query: worth the strided index's memory.
        table.index_for_lookups();
        (orders.list, RegionTable { prefixes: table })
    }

    /// Explains, for `gslb explain`, which rule orders the pools for `client`.
    pub fn describe(
        &self,
        client: IpAddr,
        locations: Option<&LocationTable>,
        asn: Option<&LocationTable>,
    ) -> String {
        let names = |order: &Order| -> String {
            let names: Vec<&str> = order
                .iter()
                .map(|&i| self.pools[usize::from(i)].name.as_str())
                .collect();
            format!("[{}]", names.join(", "))
        };
        if self.policy == PolicyKind::Fastest {
            return "fastest: pools by measured RTT, with hysteresis".to_string();
        }
        if self.policy == PolicyKind::Failover {
            return format!(
                "failover: pools in configured order {}",
                names(&self.fallback())
            );
        }
        if let Some((net, order)) = longest_match(&self.latency, client) {
            return format!("latency table row {net}: {}", names(order));
        }
        if let Some(geo) = &self.geo {
            if let Some((net, order)) = longest_match(&geo.nets, client) {
                return format!("geo map nets {net}: {}", names(order));
            }
            if let Some(asn_table) = asn
                && let Some(number) = asn_table.lookup_location(client).0.asn
                && let Some(order) = geo.asn.get(&number)
            {
                return format!("geo map asn {number}: {}", names(order));
            }
        }
        let location = locations.map_or(&Location::UNKNOWN, |t| t.lookup_location(client).0);
        let (order, reason) = self.order_for_location(location, locations.is_some());
        format!("{reason}: {}", names(&order))
    }
}

fn longest_match(rows: &[(IpNet, Order)], client: IpAddr) -> Option<&(IpNet, Order)> {
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
        v4 => v4,
    };
    rows.iter()
        .filter(|(net, _)| net.contains(&client))
        .max_by_key(|(net, _)| net.prefix_len())
}

/// Inserts networks widest first, so more specific ones override.
fn overlay_networks(table: &mut PrefixTable<u32>, orders: &mut Orders, rows: &[(IpNet, Order)]) {
    let mut sorted: Vec<&(IpNet, Order)> = rows.iter().collect();
    sorted.sort_by_key(|(net, _)| net.prefix_len());
    for (net, order) in sorted {
        let index = orders.intern(order.clone());
        table.insert(*net, index);
    }
}

/// Great-circle distance in kilometres (haversine, mean Earth radius).
pub fn great_circle_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0;
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let d_phi = (lat2 - lat1).to_radians();
    let d_lambda = (lon2 - lon1).to_radians();
    let a = (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().asin()
}

/// Route 53 geoproximity bias: positive `bias` shrinks the distance
/// (d × (1 − b/100)), negative stretches it (d / (1 + |b|/100)).
pub fn biased_distance(distance_km: f64, bias: i8) -> f64 {
    let b = f64::from(bias.clamp(-99, 99));
    if b >= 0.0 {
        distance_km * (1.0 - b / 100.0)
    } else {
        distance_km / (1.0 + b.abs() / 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        // London → New York ≈ 5570 km.
        let d = great_circle_km(51.51, -0.13, 40.71, -74.01);
        assert!((d - 5570.0).abs() < 30.0, "{d}");
        assert_eq!(biased_distance(1000.0, 50), 500.0);
        assert_eq!(biased_distance(1000.0, -100), 1000.0 / 1.99);
        assert_eq!(biased_distance(1000.0, 0), 1000.0);
    }
}
