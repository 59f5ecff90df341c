//! What the DNS workers answer from, swapped whole on reload: a snapshot,
//! the answers precompiled from it and the rate limiter's settings. Built
//! here, by the data plane, from a snapshot the control plane validated, so
//! the snapshot knows nothing of how it is served. And the seam between
//! sockets and logic: [`handle_packet`] and [`handle_udp_query`] try the
//! precompiled answers, then the general path (`answer`).
//!
//! The rate limiter's budgets are not part of it: a new `Served` takes the
//! previous one's budget table (when its size is unchanged), so a reload
//! never resets rate limiting.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::answer::{Outcome, Transport, handle_packet_traced};
use super::precompiled::PrecompiledAnswers;
use super::reply_buffer::UdpReply;
use super::rrl::RateLimiter;
use super::udp_batch::UDP_QUERY_MAX;
use crate::health::HealthView;
use crate::snapshot::Snapshot;

/// The served state currently answering queries, replaced whole on reload.
pub type SharedServed = Arc<ArcSwap<Served>>;

/// One snapshot as the workers serve it (see the module docs).
#[derive(Debug)]
pub struct Served {
    /// The configuration-derived data every answer comes from.
    pub snapshot: Arc<Snapshot>,
    /// Answers serialised from `snapshot` for the fast path.
    pub precompiled: PrecompiledAnswers,
    /// Response rate limiting for UDP answers, when `[rrl]` is on.
    pub rrl: Option<RateLimiter>,
}

impl Served {
    /// Precompiles `snapshot`'s answers. `previous` is the state being
    /// replaced, whose rate-limit budgets carry over.
    pub fn new(snapshot: Arc<Snapshot>, previous: Option<&Served>) -> Self {
        let precompiled = PrecompiledAnswers::build(&snapshot);
        let rrl = snapshot
            .rrl
            .map(|settings| RateLimiter::new(settings, previous.and_then(|p| p.rrl.as_ref())));
        Self {
            snapshot,
            precompiled,
            rrl,
        }
    }
}

/// Answers one packet in `health` (one view per query or batch). Returns
/// `None` when the packet must be dropped; otherwise the reply is in `out`.
pub fn handle_packet<'s>(
    served: &'s Served,
    health: &HealthView,
    packet: &[u8],
    client: IpAddr,
    transport: Transport,
    seed: u64,
    out: &mut Vec<u8>,
) -> Option<Outcome<'s>> {
    let fast = served.precompiled.answer(
        &served.snapshot,
        health,
        packet,
        packet.len(),
        client,
        transport,
        seed,
        out,
    );
    if fast.is_some() {
        return fast;
    }
    handle_packet_traced(
        &served.snapshot,
        health,
        packet,
        client,
        transport,
        seed,
        out,
        None,
    )
}

/// [`handle_packet`] for a UDP worker: the query is `buffer[..len]` of its
/// receive buffer, the reply goes into its fixed reply buffer (see
/// [`reply_buffer`](super::reply_buffer)). Inlined into the worker's loop,
/// its only caller: the call and its seven arguments cost every query.
#[inline(always)]
pub fn handle_udp_query<'s>(
    served: &'s Served,
    health: &HealthView,
    buffer: &[u8; UDP_QUERY_MAX],
    len: usize,
    client: IpAddr,
    seed: u64,
    out: &mut UdpReply,
) -> Option<Outcome<'s>> {
    let fast = served.precompiled.answer(
        &served.snapshot,
        health,
        buffer,
        len,
        client,
        Transport::Udp,
        seed,
        out,
    );
    if fast.is_some() {
        return fast;
    }
    let packet = buffer.get(..len)?;
    out.write_with(|general| {
        handle_packet_traced(
            &served.snapshot,
            health,
            packet,
            client,
            Transport::Udp,
            seed,
            general,
            None,
        )
    })
}
