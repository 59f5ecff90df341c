//! The general answer path: one query packet answered from a snapshot,
//! the definition of every answer (the precompiled fast path is checked
//! against it). Takes the query's bytes and the client's address, writes
//! the reply's bytes; shared by UDP and TCP. Does no I/O and takes no locks.

use std::net::IpAddr;

use super::choice_memo::ThreadMemo;
use super::wire::{
    self, ClientSubnet, EdnsInfo, MAX_NAME_LEN, Query, QueryError, Rcode, ReplyEdns, ReplyWriter,
    Section, lowercase_name, rtype,
};
use crate::dnssec::SignedZone;
use crate::dnssec::sign::{DS, NSEC, NXNAME, RRSIG};
use crate::health::HealthView;
use crate::policy::{
    self, ClientAddress, EndpointTarget, Family, Selection, Service, Trace, trace,
};
use crate::snapshot::Snapshot;
use crate::zone::{Node, RRset, Resolution, Zone};

/// Largest reply over UDP without EDNS (RFC 1035 §4.2.1).
pub(crate) const PLAIN_UDP_LIMIT: usize = 512;
/// Largest DNS message over TCP (two-byte length prefix, RFC 1035 §4.2.2).
const TCP_LIMIT: usize = 65_535;
/// Longest CNAME chain followed inside a zone.
const MAX_CNAME_CHAIN: usize = 8;

/// How the query arrived; decides the size limit of the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Datagram: replies limited by EDNS payload size, truncated with TC.
    Udp,
    /// Stream: replies up to 64 KiB.
    Tcp,
}

/// What happened to one query, for metrics and logs.
#[derive(Debug, Clone)]
pub struct Outcome<'s> {
    /// The reply's rcode.
    pub rcode: Rcode,
    /// The query type (0 when the packet had no readable question).
    pub qtype: u16,
    /// Whether the reply was truncated.
    pub truncated: bool,
    /// Index in `Snapshot::zones` of the zone that answered, if any.
    pub zone: Option<usize>,
    /// Whether the query carried an EDNS Client Subnet option (the query
    /// log reads it from the packet: carrying it here would cost every query).
    pub had_client_subnet: bool,
    /// Index in `Snapshot::services` of the service that answered, and
    /// what it chose.
    pub service: Option<(usize, Selection<'s>)>,
}

impl Outcome<'_> {
    fn rejected(rcode: Rcode) -> Self {
        Self {
            rcode,
            qtype: 0,
            truncated: false,
            zone: None,
            had_client_subnet: false,
            service: None,
        }
    }
}

/// The general path: [`handle_packet`](super::served::handle_packet) without the precompiled answers,
/// and optionally recording why each step went as it did (`gslb explain`).
#[allow(clippy::too_many_arguments)]
pub fn handle_packet_traced<'s>(
    snapshot: &'s Snapshot,
    health: &HealthView,
    packet: &[u8],
    client: IpAddr,
    transport: Transport,
    seed: u64,
    out: &mut Vec<u8>,
    mut trace: Trace<'_>,
) -> Option<Outcome<'s>> {
    let query = match wire::parse_query(packet) {
        Ok(query) => query,
        Err(QueryError::Drop) => return None,
        Err(QueryError::Reject {
            id,
            opcode,
            rcode,
            had_edns,
        }) => {
            wire::write_reject(out, id, opcode, rcode, had_edns, snapshot.max_udp_payload);
            return Some(Outcome::rejected(rcode));
        }
    };
    if query.qtype == rtype::IXFR && transport == Transport::Udp {
        // RFC 1995 §2: a UDP IXFR gets the SOA (the transfer code checks
        // who may ask and signs with TSIG).
        let rcode = crate::transfer::answer_udp_ixfr(snapshot, packet, client, out);
        return Some(Outcome {
            qtype: query.qtype,
            ..Outcome::rejected(udp_ixfr_rcode(rcode))
        });
    }
    let subnet = query.edns.and_then(|e| e.client_subnet);
    let (client, usable_subnet) = routing_client(snapshot, subnet, client);
    trace!(
        trace,
        "client: {}/{} ({})",
        client.address,
        client.prefix_len,
        match (subnet, usable_subnet) {
            (_, true) => "EDNS Client Subnet",
            (Some(_), false) if !snapshot.ecs.enabled => "source address; ECS disabled in config",
            (Some(_), false) => "source address; ECS source prefix 0",
            (None, _) => "source address, no ECS",
        }
    );
    let edns = query.edns.map(|e| ReplyEdns {
        udp_payload: snapshot.max_udp_payload,
        client_subnet: e.client_subnet.map(|s| (s, 0)),
        dnssec_ok: e.dnssec_ok,
    });
    let max_len = reply_limit(snapshot, transport, query.edns);
    // Lowercased once: the zone lookups and the reply's name compression use it.
    let mut qname_buf = [0u8; MAX_NAME_LEN];
    let qname_lower = lowercase_name(query.qname, &mut qname_buf).map(|len| &qname_buf[..len]);
    let mut reply = ReplyWriter::new(out, &query, qname_lower.unwrap_or_default(), max_len, edns);
    let mut context = Context {
        snapshot,
        health,
        client,
        seed,
        scope_prefix_len: 0,
        trace,
        zone: None,
        service: None,
        signed: None,
    };
    let rcode = answer(&mut context, &query, qname_lower, &mut reply);
    if usable_subnet {
        reply.set_ecs_scope(context.scope_prefix_len);
    }
    let truncated = reply.is_truncated();
    reply.finish(rcode);
    Some(Outcome {
        rcode,
        qtype: query.qtype,
        truncated,
        zone: context.zone,
        had_client_subnet: subnet.is_some(),
        service: context.service,
    })
}

/// The query-path rcode of a UDP IXFR answer, as written on the wire (the
/// transfer code answers with one of these five).
fn udp_ixfr_rcode(rcode: u8) -> Rcode {
    match rcode {
        0 => Rcode::NoError,
        1 => Rcode::FormErr,
        2 => Rcode::ServFail,
        9 => Rcode::NotAuth,
        _ => Rcode::Refused,
    }
}

/// The client as routing sees it: the query's Client Subnet when ECS is on
/// and the resolver did not opt out (capped to the configured prefix), else
/// the packet's source address. The flag says whether the subnet was used.
#[inline]
pub(crate) fn routing_client(
    snapshot: &Snapshot,
    subnet: Option<ClientSubnet>,
    source: IpAddr,
) -> (ClientAddress, bool) {
    // RFC 7871 §7.1.2: a source prefix of 0 asks us not to use the subnet.
    match subnet.filter(|s| snapshot.ecs.enabled && s.source_prefix_len > 0) {
        Some(s) => {
            let cap = match s.address {
                IpAddr::V4(_) => snapshot.ecs.max_source_prefix_v4,
                IpAddr::V6(_) => snapshot.ecs.max_source_prefix_v6,
            };
            let client = if s.source_prefix_len <= cap {
                // Parsing rejected bits past the source prefix: no masking.
                ClientAddress {
                    address: s.address,
                    prefix_len: s.source_prefix_len,
                }
            } else {
                ClientAddress::subnet(s.address, cap)
            };
            (client, true)
        }
        None => (ClientAddress::full(source), false),
    }
}

/// Largest reply allowed for a query that came over `transport` with `edns`.
pub(crate) fn reply_limit(
    snapshot: &Snapshot,
    transport: Transport,
    edns: Option<EdnsInfo>,
) -> usize {
    match (transport, edns) {
        (Transport::Tcp, _) => TCP_LIMIT,
        (Transport::Udp, None) => PLAIN_UDP_LIMIT,
        (Transport::Udp, Some(e)) => {
            usize::from(e.udp_payload.clamp(512, snapshot.max_udp_payload))
        }
    }
}

/// Per-query state shared by the answer steps.
struct Context<'s, 't> {
    snapshot: &'s Snapshot,
    /// The health view of this query.
    health: &'t HealthView,
    client: ClientAddress,
    seed: u64,
    /// ECS scope of the answer so far (0: does not depend on the client).
    scope_prefix_len: u8,
    trace: Trace<'t>,
    /// The zone answering, by index (for metrics).
    zone: Option<usize>,
    /// The last service consulted, by index, and its choice (for metrics and logs).
    service: Option<(usize, Selection<'s>)>,
    /// The answering zone when it is signed and the query set DO: every
    /// answer and authority RRset then carries its RRSIGs (RFC 4035 §3.1).
    signed: Option<&'s SignedZone>,
}

/// Fills the reply's sections and returns its rcode.
fn answer<'s>(
    context: &mut Context<'s, '_>,
    query: &Query<'_>,
    qname_lower: Option<&[u8]>,
    reply: &mut ReplyWriter<'_>,
) -> Rcode {
    let snapshot = context.snapshot;
    // RFC 1035 §4.1.2: we serve class IN only (and QCLASS * as IN).
    if query.qclass != wire::CLASS_IN && query.qclass != wire::CLASS_ANY {
        return Rcode::Refused;
    }
    match query.qtype {
        rtype::OPT => return Rcode::FormErr,
        // Transfers come over TCP (`transfer`, routed by the server);
        // UDP IXFR is answered before this point.
        rtype::AXFR | rtype::IXFR => return Rcode::Refused,
        rtype::MAILA | rtype::MAILB | 128..=250 => return Rcode::NotImp,
        _ => {}
    }
    let Some(qname) = qname_lower else {
        return Rcode::FormErr;
    };
    let Some((zone_index, zone)) = snapshot
        .zones
        .find_index(qname)
        .and_then(|index| Some((index, snapshot.zones.get(index)?)))
    else {
        // Not authoritative: refuse rather than answer (no amplification, no referral to root).
        return Rcode::Refused;
    };
    if zone.is_unavailable() {
        // A secondary zone with no current data (RFC 1035 §4.3.5: SERVFAIL
        // once expired).
        context.zone = Some(zone_index);
        return Rcode::ServFail;
    }
    reply.set_authoritative(true);
    context.zone = Some(zone_index);
    if query.edns.is_some_and(|e| e.dnssec_ok) {
        context.signed = snapshot.dnssec.zone(zone_index);
    }
    answer_in_zone(context, zone, qname, query.qtype, reply)
}

fn answer_in_zone<'s>(
    context: &mut Context<'s, '_>,
    zone: &'s Zone,
    qname: &[u8],
    qtype: u16,
    reply: &mut ReplyWriter<'_>,
) -> Rcode {
    let mut name: &[u8] = qname;
    // Names already answered for in this chain, to stop CNAME loops.
    let mut visited: [&[u8]; MAX_CNAME_CHAIN] = [&[]; MAX_CNAME_CHAIN];
    for step in 0..MAX_CNAME_CHAIN {
        if visited[..step].contains(&name) {
            return Rcode::NoError;
        }
        visited[step] = name;
        let resolution = match zone.resolve(name) {
            // RFC 4035 §3.1.4.1: the DS set at a delegation is the parent's
            // data, answered here rather than referred.
            Resolution::Referral { cut, .. } if qtype == DS && cut == name => {
                match zone.node(cut) {
                    Some(node) => Resolution::Node {
                        node,
                        from_wildcard: false,
                    },
                    None => Resolution::NxDomain,
                }
            }
            resolution => resolution,
        };
        match resolution {
            Resolution::Referral { cut, ns } => {
                if reply.count(Section::Answer) > 0 {
                    // A CNAME led below a zone cut: the answer so far stands.
                    return Rcode::NoError;
                }
                reply.set_authoritative(false);
                reply.push_rrset(
                    Section::Authority,
                    cut,
                    rtype::NS,
                    ns.ttl,
                    ns.rdata_slices(),
                );
                if let Some(signed) = context.signed {
                    push_delegation_proof(signed, zone, cut, reply);
                }
                push_addresses(
                    context.signed,
                    zone,
                    &ns.targets,
                    Targets::Referral { cut },
                    reply,
                );
                return Rcode::NoError;
            }
            Resolution::NxDomain => {
                let rcode = push_negative(context, zone, name, Denied::NxName, reply);
                if context.signed.is_some() {
                    // RFC 9824 §3: the name is denied with one NSEC whose
                    // bitmap holds NXNAME, and the rcode stays NOERROR.
                    return rcode;
                }
                // RFC 6604: the rcode describes the last name in the chain.
                return Rcode::NxDomain;
            }
            Resolution::Node {
                node,
                from_wildcard,
            } => {
                if let Some(index) = node.service {
                    match answer_service(context, index, zone, name, qtype, reply) {
                        ServiceAnswer::Done(rcode) => return rcode,
                        ServiceAnswer::Chase(target) => {
                            name = target;
                            continue;
                        }
                    }
                }
                if let Some(rrset) = pick_rrset(node, qtype) {
                    if !push_signed(context, reply, Section::Answer, name, rrset, from_wildcard) {
                        return Rcode::ServFail;
                    }
                    // In-zone addresses of the hosts named (RFC 1035 §3.3.9
                    // and §3.3.11, RFC 2782), as BIND, Knot and NSD add them.
                    // ANY stays minimal (RFC 8482): no additional records.
                    if matches!(rrset.rtype, rtype::NS | rtype::MX | rtype::SRV)
                        && qtype != rtype::ANY
                    {
                        let targets = if rrset.rtype == rtype::NS {
                            Targets::NameServers
                        } else {
                            Targets::Hosts
                        };
                        push_addresses(context.signed, zone, &rrset.targets, targets, reply);
                    }
                    return Rcode::NoError;
                }
                match node.rrset(rtype::CNAME) {
                    Some(cname) if qtype != rtype::CNAME => {
                        let written = reply.count(Section::Answer);
                        if !push_signed(context, reply, Section::Answer, name, cname, from_wildcard)
                        {
                            return Rcode::ServFail;
                        }
                        if reply.count(Section::Answer) == written {
                            return Rcode::NoError;
                        }
                        match cname.targets.first() {
                            Some(target) if target.ends_with(zone.origin()) => name = target,
                            _ => return Rcode::NoError,
                        }
                    }
                    _ => {
                        let denied = Denied::NoData {
                            qtype,
                            wildcard: from_wildcard.then_some(node),
                        };
                        return push_negative(context, zone, name, denied, reply);
                    }
                }
            }
        }
    }
    Rcode::NoError
}

/// What a service answer leaves to do.
enum ServiceAnswer<'s> {
    /// The reply is complete.
    Done(Rcode),
    /// A CNAME endpoint was written; its in-zone target is answered next.
    Chase(&'s [u8]),
}

/// Answers at a service name: the policy picks the endpoints.
fn answer_service<'s>(
    context: &mut Context<'s, '_>,
    index: usize,
    zone: &Zone,
    name: &[u8],
    qtype: u16,
    reply: &mut ReplyWriter<'_>,
) -> ServiceAnswer<'s> {
    let Some(service) = context.snapshot.services.get(index) else {
        return ServiceAnswer::Done(Rcode::ServFail);
    };
    let family = match qtype {
        rtype::A | rtype::ANY | rtype::CNAME => Family::V4,
        rtype::AAAA => Family::V6,
        _ => {
            let denied = Denied::NoData {
                qtype,
                wildcard: None,
            };
            return ServiceAnswer::Done(push_negative(context, zone, name, denied, reply));
        }
    };
    if let Some(lines) = context.trace.as_deref_mut() {
        explain_location(
            context.snapshot,
            context.health,
            service,
            context.client,
            lines,
        );
    }
    let selection = policy::select_with(
        service,
        context.health,
        context.client,
        family,
        context.seed,
        context.trace.as_deref_mut(),
        &mut ThreadMemo,
    );
    context.scope_prefix_len = context.scope_prefix_len.max(selection.scope_prefix_len);
    context.service = Some((index, selection.clone()));
    if selection.servfail {
        return ServiceAnswer::Done(Rcode::ServFail);
    }
    let mut endpoints = selection.endpoints().peekable();
    let Some(first) = endpoints.peek() else {
        let denied = Denied::NoData {
            qtype,
            wildcard: None,
        };
        return ServiceAnswer::Done(push_negative(context, zone, name, denied, reply));
    };
    let presigned = |count: u8| -> &'s [Box<[u8]>] {
        let sigs = context
            .snapshot
            .dnssec
            .service(index)
            .zip(selection.chosen().first())
            .and_then(|(sigs, &endpoint)| sigs.get(selection.pool_index, endpoint, selection.ttl));
        match sigs {
            Some(sigs) if count == 1 => sigs,
            _ => &[],
        }
    };
    match &first.target {
        // A name has at most one CNAME (RFC 1034 §3.6.2).
        EndpointTarget::Cname(target) => {
            reply.push_rrset(
                Section::Answer,
                name,
                rtype::CNAME,
                selection.ttl,
                [&first.rdata[..]],
            );
            if context.signed.is_some() {
                push_rrsigs(
                    reply,
                    Section::Answer,
                    name,
                    selection.ttl,
                    presigned(1).iter(),
                );
            }
            if qtype != rtype::CNAME && target.ends_with(zone.origin()) {
                return ServiceAnswer::Chase(target);
            }
        }
        EndpointTarget::Address(_) if qtype == rtype::CNAME => {
            let denied = Denied::NoData {
                qtype,
                wildcard: None,
            };
            return ServiceAnswer::Done(push_negative(context, zone, name, denied, reply));
        }
        EndpointTarget::Address(_) => {
            let record_type = first.record_type();
            let Some(signed) = context.signed else {
                reply.push_rrset(
                    Section::Answer,
                    name,
                    record_type,
                    selection.ttl,
                    endpoints.map(|e| &e.rdata[..]),
                );
                return ServiceAnswer::Done(Rcode::NoError);
            };
            if selection.count == 1 {
                reply.push_rrset(
                    Section::Answer,
                    name,
                    record_type,
                    selection.ttl,
                    [&first.rdata[..]],
                );
                push_rrsigs(
                    reply,
                    Section::Answer,
                    name,
                    selection.ttl,
                    presigned(1).iter(),
                );
                return ServiceAnswer::Done(Rcode::NoError);
            }
            // A combination of endpoints: signed now, unless this worker's
            // signing budget is spent; then the first endpoint alone, whose
            // answer was signed at build.
            let rdatas: Vec<&[u8]> = selection.endpoints().map(|e| &e.rdata[..]).collect();
            match signed.online(name, record_type, selection.ttl, &rdatas) {
                Some(sigs) => {
                    reply.push_rrset(
                        Section::Answer,
                        name,
                        record_type,
                        selection.ttl,
                        rdatas.iter().copied(),
                    );
                    push_rrsigs(reply, Section::Answer, name, selection.ttl, sigs.iter());
                }
                None => {
                    let sigs = context
                        .snapshot
                        .dnssec
                        .service(index)
                        .zip(selection.chosen().first())
                        .and_then(|(sigs, &e)| sigs.get(selection.pool_index, e, selection.ttl))
                        .unwrap_or_default();
                    reply.push_rrset(
                        Section::Answer,
                        name,
                        record_type,
                        selection.ttl,
                        [&first.rdata[..]],
                    );
                    push_rrsigs(reply, Section::Answer, name, selection.ttl, sigs.iter());
                }
            }
        }
    }
    ServiceAnswer::Done(Rcode::NoError)
}

/// Writes an RRset and, when the answer is signed, its RRSIGs: those made
/// at build, or for a wildcard expansion (owner = the query name) ones made
/// now. `false` when they could not be made (the signing budget is spent).
fn push_signed(
    context: &Context<'_, '_>,
    reply: &mut ReplyWriter<'_>,
    section: Section,
    owner: &[u8],
    rrset: &RRset,
    from_wildcard: bool,
) -> bool {
    reply.push_rrset(section, owner, rrset.rtype, rrset.ttl, rrset.rdata_slices());
    let Some(signed) = context.signed else {
        return true;
    };
    if from_wildcard {
        // Signed as the name itself (Labels = its label count), so no proof
        // that the name does not exist is needed (as Cloudflare and NS1 do
        // with compact denial).
        let rdatas: Vec<&[u8]> = rrset.rdata_slices().collect();
        let Some(sigs) = signed.online(owner, rrset.rtype, rrset.ttl, &rdatas) else {
            return false;
        };
        push_rrsigs(reply, section, owner, rrset.ttl, sigs.iter());
    } else {
        push_rrsigs(reply, section, owner, rrset.ttl, rrset.rrsigs.iter());
    }
    true
}

/// Writes the RRSIG set of the RRset just written.
fn push_rrsigs<'r>(
    reply: &mut ReplyWriter<'_>,
    section: Section,
    owner: &[u8],
    ttl: u32,
    sigs: impl Iterator<Item = &'r Box<[u8]>>,
) {
    reply.push_rrset(section, owner, RRSIG, ttl, sigs.map(|s| &s[..]));
}

/// What a negative answer denies.
enum Denied<'z> {
    /// The name does not exist.
    NxName,
    /// The name has no `qtype` data; `wildcard` is the wildcard node that
    /// answers for it, if any.
    NoData {
        qtype: u16,
        wildcard: Option<&'z Node>,
    },
}

/// NODATA / NXDOMAIN authority: the SOA with the negative TTL (RFC 2308
/// §3, §5), and when signing its RRSIG and the compact-denial NSEC of the
/// name with its RRSIG (RFC 9824 §3). Returns the rcode (NOERROR, or
/// SERVFAIL when a denial could not be signed within the budget).
fn push_negative(
    context: &Context<'_, '_>,
    zone: &Zone,
    name: &[u8],
    denied: Denied<'_>,
    reply: &mut ReplyWriter<'_>,
) -> Rcode {
    let soa = zone.soa();
    reply.push_rrset(
        Section::Authority,
        zone.origin(),
        rtype::SOA,
        zone.negative_ttl(),
        soa.rdata_slices(),
    );
    let Some(signed) = context.signed else {
        return Rcode::NoError;
    };
    push_rrsigs(
        reply,
        Section::Authority,
        zone.origin(),
        zone.negative_ttl(),
        soa.rrsigs.iter(),
    );
    let ttl = signed.nsec_ttl();
    match denied {
        Denied::NoData {
            qtype,
            wildcard: None,
        } if signed
            .denial(name)
            .is_some_and(|d| !d.types.contains(&qtype)) =>
        {
            if let Some(denial) = signed.denial(name) {
                reply.push_rrset(Section::Authority, name, NSEC, ttl, [&denial.rdata[..]]);
                push_rrsigs(reply, Section::Authority, name, ttl, denial.rrsigs.iter());
            }
        }
        denied => {
            // Made now: a name that does not exist, a wildcard expansion,
            // or a type the name's usual denial lists (a service with
            // nothing to answer right now).
            let types: Vec<u16> = match denied {
                Denied::NxName => vec![NXNAME],
                Denied::NoData { qtype, wildcard } => {
                    let present: Vec<u16> = match (wildcard, signed.denial(name)) {
                        (Some(node), _) => node.rrsets.iter().map(|r| r.rtype).collect(),
                        (None, Some(denial)) => denial.types.to_vec(),
                        (None, None) => Vec::new(),
                    };
                    present.into_iter().filter(|&t| t != qtype).collect()
                }
            };
            let Some((rdata, sigs)) = signed.online_denial(name, &types) else {
                return Rcode::ServFail;
            };
            reply.push_rrset(Section::Authority, name, NSEC, ttl, [&rdata[..]]);
            push_rrsigs(reply, Section::Authority, name, ttl, sigs.iter());
        }
    }
    Rcode::NoError
}

/// The signed part of a referral: the DS set of the child with its RRSIG,
/// or the NSEC proving there is none (an insecure delegation, RFC 4035 §3.1.4).
fn push_delegation_proof(
    signed: &SignedZone,
    zone: &Zone,
    cut: &[u8],
    reply: &mut ReplyWriter<'_>,
) {
    match zone.node(cut).and_then(|node| node.rrset(DS)) {
        Some(ds) => {
            reply.push_rrset(Section::Authority, cut, DS, ds.ttl, ds.rdata_slices());
            push_rrsigs(reply, Section::Authority, cut, ds.ttl, ds.rrsigs.iter());
        }
        None => {
            if let Some(denial) = signed.denial(cut) {
                let ttl = signed.nsec_ttl();
                reply.push_rrset(Section::Authority, cut, NSEC, ttl, [&denial.rdata[..]]);
                push_rrsigs(reply, Section::Authority, cut, ttl, denial.rrsigs.iter());
            }
        }
    }
}

/// The RRset answering `qtype` at a node; for ANY, one RRset only (RFC 8482 §4.1).
fn pick_rrset(node: &Node, qtype: u16) -> Option<&RRset> {
    if qtype == rtype::ANY {
        node.rrsets.first()
    } else {
        node.rrset(qtype)
    }
}

/// Whose addresses [`push_addresses`] adds.
#[derive(Clone, Copy)]
enum Targets<'z> {
    /// Name servers of a delegation at `cut`.
    Referral { cut: &'z [u8] },
    /// Name servers of an NS answer (glue below a cut included).
    NameServers,
    /// Mail exchanges or SRV targets: the zone's own data only.
    Hosts,
}

/// Adds A/AAAA records for in-zone targets (glue for referrals; NS, MX and
/// SRV answers), once per target however often it is named.
///
/// For a referral, glue of name servers at or below the cut is required:
/// "If it does not fit, the TC bit MUST be set" (RFC 9471 §3.1). Other
/// additional records are left out when they do not fit.
fn push_addresses(
    signed: Option<&SignedZone>,
    zone: &Zone,
    targets: &[Box<[u8]>],
    kind: Targets<'_>,
    reply: &mut ReplyWriter<'_>,
) {
    for (index, target) in targets.iter().enumerate() {
        if targets[..index].contains(target) {
            continue;
        }
        let node = match kind {
            // The zone's own data only: glue below a cut is not this zone's
            // to hand out for a host (one lookup answers both).
            Targets::Hosts => match zone.resolve(target) {
                Resolution::Node {
                    node,
                    from_wildcard: false,
                } => node,
                _ => continue,
            },
            Targets::Referral { .. } | Targets::NameServers => match zone.node(target) {
                Some(node) => node,
                None => continue,
            },
        };
        let required = match kind {
            Targets::Referral { cut } => is_at_or_below(target, cut),
            Targets::NameServers | Targets::Hosts => false,
        };
        // Glue (below a delegation) is not this zone's data and is never
        // signed (RFC 4035 §2.2); the zone's own addresses are.
        let authoritative = signed.is_some()
            && match kind {
                Targets::Hosts => true,
                Targets::Referral { .. } | Targets::NameServers => {
                    !matches!(zone.resolve(target), Resolution::Referral { .. })
                }
            };
        for address_type in [rtype::A, rtype::AAAA] {
            if let Some(rrset) = node.rrset(address_type) {
                let fitted = reply.push_rrset(
                    Section::Additional,
                    target,
                    address_type,
                    rrset.ttl,
                    rrset.rdata_slices(),
                );
                if !fitted && required {
                    reply.set_truncated();
                }
                if fitted && authoritative {
                    push_rrsigs(
                        reply,
                        Section::Additional,
                        target,
                        rrset.ttl,
                        rrset.rrsigs.iter(),
                    );
                }
            }
        }
    }
}

/// A location's subdivision for `explain`: the ISO 3166-2 code rules match,
/// and what the database wrote when that differs (`US-WA (database:
/// "Washington")`), or the unmatched value (`- (database: "Atlantis", not
/// an ISO 3166-2 subdivision)`).
fn describe_subdivision(location: &crate::geo::Location) -> String {
    match (&location.subdivision, &location.subdivision_raw) {
        (Some(code), Some(raw)) if **raw == **code => code.to_string(),
        (Some(code), Some(raw)) => format!("{code} (database: {raw:?})"),
        (Some(code), None) => code.to_string(),
        (None, Some(raw)) => format!("- (database: {raw:?}, not an ISO 3166-2 subdivision)"),
        (None, None) => "-".to_string(),
    }
}

/// Trace lines: where the client is and which rule orders its pools.
fn explain_location(
    snapshot: &Snapshot,
    health: &HealthView,
    service: &Service,
    client: ClientAddress,
    lines: &mut Vec<String>,
) {
    lines.push(
        format!(
            "service: {} (policy {:?}, selection {:?})",
            service.name, service.route.policy, service.selection
        )
        .to_lowercase(),
    );
    let locations = snapshot.geo.locations.as_deref();
    let asn = snapshot.geo.asn.as_deref();
    match locations {
        Some(table) => {
            let (location, prefix_len) = table.lookup_location(client.address);
            let network = policy::mask(client.address, prefix_len);
            let field = |value: &Option<Box<str>>| value.as_deref().unwrap_or("-").to_string();
            lines.push(format!(
                "location: {network}/{prefix_len}: country {}, subdivision {}, continent {}, coordinates {}",
                field(&location.country),
                describe_subdivision(location),
                field(&location.continent),
                location
                    .latitude_longitude
                    .map_or("-".to_string(), |(lat, lon)| format!("({lat:.4}, {lon:.4})")),
            ));
        }
        None => lines.push("location: no geoip database configured".to_string()),
    }
    if let Some(table) = asn {
        let (location, prefix_len) = table.lookup_location(client.address);
        lines.push(format!(
            "asn: {}/{prefix_len}: {} {}",
            policy::mask(client.address, prefix_len),
            location.asn.map_or("-".to_string(), |n| format!("AS{n}")),
            location.as_org.as_deref().unwrap_or("")
        ));
    }
    lines.push(format!(
        "rule: {}",
        service.route.describe(client.address, locations, asn)
    ));
    for pool in &service.pools {
        for endpoint in &pool.endpoints {
            let state = if endpoint.config_down {
                "down (config)".to_string()
            } else if endpoint.is_healthy(health) {
                "up".to_string()
            } else {
                format!("down ({:?})", health.endpoint(endpoint.id).own_override).to_lowercase()
            };
            let rtt = health
                .endpoint(endpoint.id)
                .rtt()
                .map_or(String::new(), |us| {
                    format!(", rtt {:.1} ms", f64::from(us) / 1000.0)
                });
            let percent = health.endpoint(endpoint.id).weight_percent;
            let load = if percent == crate::health::FULL_WEIGHT_PERCENT {
                String::new()
            } else {
                format!(
                    ", effective weight {} ({percent} % by load)",
                    crate::health::effective_weight(endpoint.weight, percent)
                )
            };
            lines.push(format!(
                "endpoint {}: {state}, weight {}{load}{rtt}",
                endpoint.key, endpoint.weight
            ));
        }
    }
}

/// Whether wire name `name` equals `ancestor` or lies below it (label-aligned).
fn is_at_or_below(name: &[u8], ancestor: &[u8]) -> bool {
    let mut pos = 0usize;
    while pos <= name.len() {
        if &name[pos..] == ancestor {
            return true;
        }
        match name.get(pos) {
            Some(&len) if len != 0 => pos += 1 + usize::from(len),
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use hickory_proto::op::{Edns, Message, Query, ResponseCode};
    use hickory_proto::rr::{Name, RecordType};

    use crate::dns::served::{Served, handle_packet};
    use crate::health::HealthTable;
    use crate::snapshot::{Snapshot, SnapshotSource};

    use super::Transport;

    /// A signed zone with a three-record multivalue service and a wildcard.
    fn signed(dir: &std::path::Path) -> (Served, HealthTable) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let key = crate::dnssec::keys::generate(
            "signed.test.",
            crate::dnssec::keys::Algorithm::EcdsaP256Sha256,
            &dir.join("keys"),
            now,
        )
        .expect("generate a key");
        std::fs::write(
            dir.join("signed.zone"),
            "$ORIGIN signed.test.\n@ 300 SOA ns1 hostmaster 1 7200 900 1209600 60\n@ 300 NS ns1\nns1 300 A 127.0.0.1\n*.wild 300 A 192.0.2.80\n",
        )
        .expect("zone");
        let config = dir.join("gslb.toml");
        std::fs::write(
            &config,
            format!(
                "[[zone]]\norigin = \"signed.test\"\nfile = \"signed.zone\"\ndnssec = true\ndnssec_keys = [{:?}]\n\n[pools.many]\nendpoints = [{{ address = \"203.0.113.1\" }}, {{ address = \"203.0.113.2\" }}, {{ address = \"203.0.113.3\" }}]\n\n[services.\"multi.signed.test\"]\npolicy = \"failover\"\npools = [\"many\"]\nselection = \"multivalue\"\nmax_records = 3\n",
                key.display().to_string()
            ),
        )
        .expect("config");
        let health = HealthTable::default();
        let source = SnapshotSource {
            config_path: config,
            extra_zones: Vec::new(),
        };
        let (snapshot, _) =
            Snapshot::build(&source, &health).unwrap_or_else(|errors| panic!("{errors}"));
        (Served::new(Arc::new(snapshot), None), health)
    }

    /// The reply to a DO query for `name` `rtype`.
    fn ask(served: &Served, health: &HealthTable, name: &str, rtype: RecordType) -> Message {
        let mut query = Message::query();
        query.add_query(Query::query(Name::from_ascii(name).expect("name"), rtype));
        let mut edns = Edns::new();
        edns.set_dnssec_ok(true);
        edns.set_max_payload(1232);
        query.set_edns(edns);
        let packet = query.to_vec().expect("encode");
        let mut out = Vec::new();
        handle_packet(
            served,
            &health.view(),
            &packet,
            std::net::IpAddr::V4(Ipv4Addr::LOCALHOST),
            Transport::Udp,
            1,
            &mut out,
        )
        .expect("a reply");
        Message::from_vec(&out).expect("decode the reply")
    }

    /// The answer section as (type, RDATA text).
    fn answers(reply: &Message) -> Vec<(RecordType, String)> {
        reply
            .answers
            .iter()
            .map(|r| (r.record_type(), r.data.to_string()))
            .collect()
    }

    #[test]
    fn past_the_signing_budget_multivalue_gives_one_presigned_record_and_the_rest_servfail() {
        // Issue 20: signing at query time takes at most a share of a
        // worker's time; past it, a multivalue answer shrinks to its first
        // record (signed at build) and what has no signature made at build
        // (a missing name's denial, a wildcard expansion) is SERVFAIL
        // rather than an answer a validator would reject.
        let dir = std::env::temp_dir().join(format!("gslb-over-budget-{}", std::process::id()));
        let (served, health) = signed(&dir);
        // Within the budget (another thread: another worker's cache and
        // budget): the whole set, signed now.
        let records = std::thread::scope(|scope| {
            scope
                .spawn(|| answers(&ask(&served, &health, "multi.signed.test.", RecordType::A)))
                .join()
                .expect("worker thread")
        });
        assert_eq!(
            records.iter().filter(|(t, _)| *t == RecordType::A).count(),
            3,
            "{records:?}"
        );
        assert_eq!(
            records
                .iter()
                .filter(|(t, _)| *t == RecordType::RRSIG)
                .count(),
            1
        );
        // This thread's budget spent, nothing signed on it yet.
        let refused_before = crate::dnssec::online::counts().refused;
        crate::dnssec::online::spend_budget();
        let shrunk = ask(&served, &health, "multi.signed.test.", RecordType::A);
        let records = answers(&shrunk);
        assert_eq!(shrunk.metadata.response_code, ResponseCode::NoError);
        assert_eq!(records.len(), 2, "{records:?}");
        assert_eq!(records[0].0, RecordType::A);
        assert_eq!(records[1].0, RecordType::RRSIG);
        let missing = ask(&served, &health, "nope.signed.test.", RecordType::A);
        assert_eq!(missing.metadata.response_code, ResponseCode::ServFail);
        let wildcard = ask(&served, &health, "x.wild.signed.test.", RecordType::A);
        assert_eq!(wildcard.metadata.response_code, ResponseCode::ServFail);
        assert!(crate::dnssec::online::counts().refused >= refused_before + 3);
        // Signed at build: still answered.
        let apex = ask(&served, &health, "signed.test.", RecordType::SOA);
        assert_eq!(apex.metadata.response_code, ResponseCode::NoError);
        assert_eq!(answers(&apex).len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
