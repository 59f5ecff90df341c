//! `gslb explain`: runs one hypothetical query through the server's own
//! answer path with a trace, and renders the trace and the reply.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::str::FromStr;

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, RecordType};

use crate::dns::answer::{Transport, handle_packet_traced};
use crate::health::HealthView;
use crate::load::{DemandLearner, plan_service, pool_usable};
use crate::policy::spill::{Spill, client_position, describe};
use crate::policy::{ClientAddress, Pool, Service, mask};
use crate::snapshot::Snapshot;

/// A hypothetical client: an address, and a prefix when it is to be sent
/// as EDNS Client Subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExplainClient {
    /// Client or subnet address.
    pub address: IpAddr,
    /// With a prefix, the query carries ECS; without, the address is the source.
    pub prefix_len: Option<u8>,
}

impl FromStr for ExplainClient {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix_len) = match text.split_once('/') {
            Some((a, p)) => (
                a,
                Some(
                    p.parse::<u8>()
                        .map_err(|_| format!("bad prefix length in {text:?}"))?,
                ),
            ),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("bad client address {address:?}"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        if prefix_len.is_some_and(|p| p > max) {
            return Err(format!("prefix length of {text:?} is longer than {max}"));
        }
        Ok(Self {
            address,
            prefix_len,
        })
    }
}

/// Explains how `snapshot` answers `name`/`record_type` for `client` in
/// `health`; `demand`, the server's learned pool demand (live), is what a
/// load-aware service's what-if split is planned with.
///
/// # Errors
/// The name or type cannot be encoded into a query.
pub fn explain(
    snapshot: &Snapshot,
    health: &HealthView,
    client: ExplainClient,
    demand: Option<&DemandLearner>,
    name: &str,
    record_type: &str,
) -> Result<String, String> {
    let rtype = RecordType::from_str(&record_type.to_ascii_uppercase())
        .map_err(|_| format!("unknown record type {record_type:?}"))?;
    let mut qname = Name::from_ascii(name).map_err(|err| format!("bad name {name:?}: {err}"))?;
    qname.set_fqdn(true);
    let packet = build_query(&qname, u16::from(rtype), client);
    // With ECS the packet source is a resolver; without, the client itself.
    let source = match client.prefix_len {
        Some(_) => IpAddr::from([127, 0, 0, 1]),
        None => client.address,
    };
    let mut reply = Vec::new();
    let mut trace = Vec::new();
    let outcome = handle_packet_traced(
        snapshot,
        health,
        &packet,
        source,
        Transport::Tcp,
        0,
        &mut reply,
        Some(&mut trace),
    );
    let mut out = String::new();
    let _ = writeln!(out, "query: {qname} {rtype}");
    for line in &trace {
        let _ = writeln!(out, "{line}");
    }
    if let Some(service) = snapshot
        .services
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(&qname.to_ascii()))
    {
        explain_spill(service, health, client, demand, &mut out);
    }
    if outcome.is_none() {
        let _ = writeln!(out, "result: dropped");
        return Ok(out);
    }
    match Message::from_vec(&reply) {
        Ok(message) => {
            let _ = writeln!(
                out,
                "result: {}{}",
                message.metadata.response_code,
                if message.metadata.authoritative {
                    ", authoritative"
                } else {
                    ""
                }
            );
            for (section, records) in [
                ("answer", &message.answers),
                ("authority", &message.authorities),
                ("additional", &message.additionals),
            ] {
                for record in records {
                    let _ = writeln!(out, "{section}: {record}");
                }
            }
            if let Some(edns) = &message.edns
                && let Some(EdnsOption::Subnet(subnet)) =
                    edns.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet)
            {
                let _ = writeln!(
                    out,
                    "ecs: {}/{} scope /{}",
                    subnet.addr(),
                    subnet.source_prefix(),
                    subnet.scope_prefix()
                );
            }
        }
        Err(err) => {
            let _ = writeln!(out, "result: reply could not be decoded: {err}");
        }
    }
    Ok(out)
}

/// The endpoints of service `name`'s pools in the order failover walks
/// them for `client` (its primaries in its order, then backups; pools
/// outside its order last): usable or not, the override in force, the
/// probes' verdict and since when, and, while failing, the last error in
/// full; in a cluster the quorum's verdict, and a runtime weight when one
/// is set. Empty when `name` is not a service.
pub fn endpoints_report(
    snapshot: &Snapshot,
    health: &HealthView,
    client: ExplainClient,
    name: &str,
) -> String {
    let wanted = format!("{}.", name.trim_end_matches('.')).to_ascii_lowercase();
    let Some(service) = snapshot
        .services
        .iter()
        .find(|s| s.name.to_ascii_lowercase() == wanted)
    else {
        return String::new();
    };
    let address = client
        .prefix_len
        .map_or(client.address, |len| mask(client.address, len));
    let (order_index, _) = service.table.lookup(address);
    let order = crate::policy::client_order(service, health, order_index);
    let mut walk: Vec<u16> = crate::policy::failover_walk(service, order).collect();
    let walked = walk.len();
    for index in 0..service.pools.len() {
        let index = u16::try_from(index).unwrap_or(u16::MAX);
        if !walk.contains(&index) {
            walk.push(index);
        }
    }
    let now = std::time::SystemTime::now();
    let mut out = String::from("endpoints (in the order failover walks them for this client):\n");
    for (position, pool) in walk
        .iter()
        .filter_map(|&i| service.pools.get(usize::from(i)))
        .enumerate()
    {
        let usable = pool
            .endpoints
            .iter()
            .filter(|e| e.is_healthy(health))
            .count();
        let needed = pool.min_healthy.needed(pool.endpoints.len());
        let _ = writeln!(
            out,
            "  pool {}{}{}: {usable}/{} usable, needs {needed}: {}",
            pool.name,
            if pool.backup { " (backup)" } else { "" },
            if position >= walked {
                " (not in this client's order)"
            } else {
                ""
            },
            pool.endpoints.len(),
            if usable >= needed { "up" } else { "down" }
        );
        for endpoint in &pool.endpoints {
            let state = health.endpoint(endpoint.id);
            let planned = snapshot
                .probes
                .endpoints
                .iter()
                .find(|p| p.key == endpoint.key);
            let mut line = format!(
                "    {}: {}",
                endpoint.key,
                if endpoint.is_healthy(health) {
                    "usable"
                } else {
                    "not usable"
                }
            );
            if endpoint.config_down {
                line.push_str(", down = true in the configuration");
            }
            if let Some(planned) = planned {
                let effective = planned.health.effective_override();
                if effective != crate::health::Override::None {
                    let _ = write!(line, ", override {}", effective.as_str());
                }
                let status = planned.health.probe_status();
                let verdict = if planned.health.probe_up() {
                    "up"
                } else {
                    "down"
                };
                let since = now
                    .duration_since(status.state_since)
                    .map_or(0.0, |d| d.as_secs_f64());
                match (planned.probe.is_some(), status.last_probe_at) {
                    (false, _) => line.push_str(", not probed"),
                    (true, None) => {
                        let _ = write!(line, ", probe {verdict} (initial state, not probed yet)");
                    }
                    (true, Some(_)) => {
                        let _ = write!(
                            line,
                            ", probe {verdict} since {} ago",
                            crate::events::human_duration(since)
                        );
                        let failing = status.consecutive_failures > 0;
                        match (&status.last_error, failing) {
                            (Some(error), true) => {
                                let _ = write!(
                                    line,
                                    "; last check failed ({} in a row): {error}",
                                    status.consecutive_failures
                                );
                            }
                            _ => line.push_str("; last check ok"),
                        }
                    }
                }
            }
            // In a cluster the quorum over the members' verdicts decides,
            // not this member's probes alone.
            if let Some(up) = planned.and_then(|p| p.health.quorum_verdict()) {
                let _ = write!(line, ", cluster quorum {}", if up { "up" } else { "down" });
            }
            if let Some(weight) = state.operator_weight {
                let _ = write!(
                    line,
                    ", runtime weight {weight} (configured {})",
                    endpoint.weight
                );
            }
            if let Some(rtt) = state.rtt() {
                let _ = write!(line, ", rtt {:.1} ms", f64::from(rtt) / 1000.0);
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// For a load-aware service whose split for this client's pool order is
/// not in force (the trace shows one that is): where the clients of the
/// client's first pool would go if it failed now, why, and where this
/// client would land. `demand` is the server's learned demand (live);
/// without it (offline, no answer counters) own demands count as zero.
fn explain_spill(
    service: &Service,
    health: &HealthView,
    client: ExplainClient,
    demand: Option<&DemandLearner>,
    out: &mut String,
) {
    let Some(rules) = &service.load else {
        return;
    };
    let client = match client.prefix_len {
        Some(prefix_len) => ClientAddress::subnet(client.address, prefix_len),
        None => ClientAddress::full(client.address),
    };
    let (order_index, _) = service.table.lookup(client.address);
    if health
        .split(rules.slot, service.serial, order_index)
        .is_some()
    {
        return;
    }
    let order = service.order(order_index);
    let Some(first) = order
        .iter()
        .filter_map(|&p| service.pools.get(usize::from(p)))
        .find(|p| !p.backup)
    else {
        return;
    };
    let mode = match rules.spill {
        Spill::Capacity => "capacity",
        Spill::Ordered => "ordered",
    };
    let what_if = |pool: &Pool| pool.name != first.name && pool_usable(pool, health);
    let offline = DemandLearner::default();
    let Some(plan) = plan_service(service, &what_if, demand.unwrap_or(&offline)) else {
        return;
    };
    let Some(split) = plan
        .splits
        .get(order_index as usize)
        .filter(|s| !s.is_none())
    else {
        let _ = writeln!(
            out,
            "spill ({mode}): if {} fails, no other pool of this order is usable now (the all-down rule decides)",
            first.name
        );
        return;
    };
    let (position, prefix_len) = client_position(service, client);
    let lands = split
        .pool_for(position)
        .and_then(|(p, _)| service.pools.get(usize::from(p)))
        .map_or("-".to_string(), |p| p.name.clone());
    let name = |p: u16| {
        service
            .pools
            .get(usize::from(p))
            .map_or_else(|| p.to_string(), |pool| pool.name.clone())
    };
    let demands = if demand.is_some() {
        "own demands as the server learned them over the last 30 s"
    } else {
        "own demands as zero: offline, no answer counters; the live explain and /status use the learned ones"
    };
    let _ = writeln!(
        out,
        "spill ({mode}): if {} fails, its clients go {} ({demands})",
        first.name,
        describe(split, &plan.loads, name)
    );
    let _ = writeln!(
        out,
        "spill: this client (hash of {}/{prefix_len}, position {position} of 65536) would go to {lands}",
        mask(client.address, prefix_len)
    );
}

/// Encodes a query with EDNS, and ECS when the client has a prefix.
fn build_query(qname: &Name, qtype: u16, client: ExplainClient) -> Vec<u8> {
    let mut packet = vec![0x12, 0x34, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in qname.iter() {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label);
    }
    packet.push(0);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    // OPT: root, type 41, payload 4096, no flags.
    packet.extend_from_slice(&[0, 0, 41, 0x10, 0x00, 0, 0, 0, 0]);
    let mut options = Vec::new();
    if let Some(prefix_len) = client.prefix_len {
        let (family, octets): (u16, Vec<u8>) = match mask(client.address, prefix_len) {
            IpAddr::V4(v4) => (1, v4.octets().to_vec()),
            IpAddr::V6(v6) => (2, v6.octets().to_vec()),
        };
        let used = usize::from(prefix_len.div_ceil(8));
        options.extend_from_slice(&8u16.to_be_bytes());
        options.extend_from_slice(&((4 + used) as u16).to_be_bytes());
        options.extend_from_slice(&family.to_be_bytes());
        options.push(prefix_len);
        options.push(0);
        options.extend_from_slice(&octets[..used]);
    }
    packet.extend_from_slice(&(options.len() as u16).to_be_bytes());
    packet.extend_from_slice(&options);
    packet
}
