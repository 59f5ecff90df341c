//! Batched UDP I/O for one worker: `recvmmsg` fills up to [`UDP_BATCH`]
//! query buffers, `sendmmsg` returns the replies to their senders.
//!
//! The crate's only `unsafe` code. It exists because `nix`'s safe wrappers
//! rebuild the I/O vector and header of every slot of the batch on each
//! call, however few datagrams arrive, and copy each received header back
//! out (benches/README.md, "Batched UDP I/O"). Here the headers are set up
//! once: per batch the code resets one length per message received, and
//! per reply it sets one address and one buffer. Both system calls are
//! made with `syscall`, not glibc's wrappers: those are pthread
//! cancellation points, and enabling and disabling cancellation around
//! each call costs about 50 instructions per wakeup, a tenth of a query's
//! when queries arrive one per wakeup (nothing in gslb cancels threads).
//!
//! Invariants that make the `unsafe` blocks sound:
//! - every pointer stored in a message header points into a boxed array
//!   owned by the same [`UdpBatch`]; boxes never move their contents, so
//!   the pointers stay valid for the batch's life whatever moves the struct;
//! - the kernel is told the true size of each buffer and address area;
//! - the batch is used on one thread (its raw pointers make it `!Send`).
//!
//! It does no DNS: it hands out query bytes and peer addresses, and sends
//! the bytes it is given.

#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

/// Queries taken per `recvmmsg` call: 16, as gdnsd 3 fixes its
/// `udp_recv_width`. Every reply of a batch waits for the whole batch, so
/// a wider batch saves a little system-call time per query under load but
/// sends replies in longer bursts.
pub const UDP_BATCH: usize = 16;
/// Largest query datagram read; longer ones arrive truncated and are dropped.
pub const UDP_QUERY_MAX: usize = 4096;

/// Size of an address area, as the kernel's `socklen_t`.
const ADDRESS_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_storage>() as _;

/// Receive and send state of one UDP socket's worker.
pub struct UdpBatch<'fd> {
    socket: BorrowedFd<'fd>,
    /// Query datagrams, one buffer per message of the batch.
    queries: Box<[[u8; UDP_QUERY_MAX]]>,
    /// Sender of each query; a reply goes back to its query's sender.
    peers: Box<[libc::sockaddr_storage; UDP_BATCH]>,
    /// One I/O vector per query buffer (fixed).
    receive_vectors: Box<[libc::iovec; UDP_BATCH]>,
    receive_headers: Box<[libc::mmsghdr; UDP_BATCH]>,
    /// One I/O vector per reply, pointed at the reply's bytes per batch.
    send_vectors: Box<[libc::iovec; UDP_BATCH]>,
    send_headers: Box<[libc::mmsghdr; UDP_BATCH]>,
    /// Messages the last `receive` returned (their lengths need resetting).
    received: usize,
}

impl<'fd> UdpBatch<'fd> {
    /// Buffers and headers for `socket`, which must be a blocking UDP socket.
    pub fn new(socket: BorrowedFd<'fd>) -> Self {
        // SAFETY: the C structs below are plain data for which all-zero bytes
        // are a valid value (null pointers, zero lengths).
        let zeroed_header = unsafe { std::mem::zeroed::<libc::mmsghdr>() };
        let zeroed_address = unsafe { std::mem::zeroed::<libc::sockaddr_storage>() };
        let empty_vector = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let mut batch = Self {
            socket,
            queries: vec![[0; UDP_QUERY_MAX]; UDP_BATCH].into_boxed_slice(),
            peers: Box::new([zeroed_address; UDP_BATCH]),
            receive_vectors: Box::new([empty_vector; UDP_BATCH]),
            receive_headers: Box::new([zeroed_header; UDP_BATCH]),
            send_vectors: Box::new([empty_vector; UDP_BATCH]),
            send_headers: Box::new([zeroed_header; UDP_BATCH]),
            received: UDP_BATCH,
        };
        for i in 0..UDP_BATCH {
            batch.receive_vectors[i] = libc::iovec {
                iov_base: batch.queries[i].as_mut_ptr().cast(),
                iov_len: UDP_QUERY_MAX,
            };
            let header = &mut batch.receive_headers[i].msg_hdr;
            header.msg_name = std::ptr::from_mut(&mut batch.peers[i]).cast();
            header.msg_iov = &raw mut batch.receive_vectors[i];
            header.msg_iovlen = 1;
            let header = &mut batch.send_headers[i].msg_hdr;
            header.msg_iov = &raw mut batch.send_vectors[i];
            header.msg_iovlen = 1;
        }
        batch
    }

    /// Waits for at least one datagram, then takes what else is queued, up
    /// to [`UDP_BATCH`]. Returns how many arrived.
    ///
    /// # Errors
    /// The system call failed (EINTR, or an error queued by ICMP).
    pub fn receive(&mut self) -> io::Result<usize> {
        // The kernel shrank the address lengths of the messages it filled.
        for header in &mut self.receive_headers[..self.received] {
            header.msg_hdr.msg_namelen = ADDRESS_LEN;
        }
        self.received = 0;
        // SAFETY: the headers point at this batch's buffers, address areas
        // and vectors, with their true sizes (module invariants); the kernel
        // writes at most UDP_BATCH headers.
        let received = unsafe {
            libc::syscall(
                libc::SYS_recvmmsg,
                libc::c_long::from(self.socket.as_raw_fd()),
                self.receive_headers.as_mut_ptr(),
                UDP_BATCH as libc::c_long,
                libc::c_long::from(libc::MSG_WAITFORONE),
                std::ptr::null_mut::<libc::timespec>(),
            )
        };
        let Ok(received) = usize::try_from(received) else {
            return Err(io::Error::last_os_error());
        };
        self.received = received.min(UDP_BATCH);
        Ok(self.received)
    }

    /// Query `index` of the last batch: its whole receive buffer, the
    /// length of the datagram in it and its sender's address. The length is
    /// 0 when the datagram was longer than [`UDP_QUERY_MAX`] (not a query we
    /// can answer); `None` when the sender has no IP address.
    #[inline]
    pub fn query(&self, index: usize) -> Option<(&[u8; UDP_QUERY_MAX], usize, IpAddr)> {
        if index >= self.received {
            return None;
        }
        let header = &self.receive_headers[index];
        let peer = peer_ip(&self.peers[index], header.msg_hdr.msg_namelen)?;
        let length = if header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            0
        } else {
            (header.msg_len as usize).min(UDP_QUERY_MAX)
        };
        Some((&self.queries[index], length, peer))
    }

    /// Sends `replies[k]` to the sender of query `reply_to[k]` of the last
    /// batch. A reply the kernel refuses is skipped and the rest still sent.
    ///
    /// # Errors
    /// The last refusal, when any reply could not be sent.
    pub fn send<R: AsRef<[u8]>>(&mut self, replies: &[R], reply_to: &[u8]) -> io::Result<()> {
        let count = replies.len().min(reply_to.len()).min(UDP_BATCH);
        for k in 0..count {
            let query = usize::from(reply_to[k]).min(UDP_BATCH - 1);
            let reply = replies[k].as_ref();
            self.send_vectors[k] = libc::iovec {
                iov_base: reply.as_ptr().cast_mut().cast(),
                iov_len: reply.len(),
            };
            let header = &mut self.send_headers[k].msg_hdr;
            header.msg_name = std::ptr::from_mut(&mut self.peers[query]).cast();
            header.msg_namelen = self.receive_headers[query].msg_hdr.msg_namelen;
        }
        let mut sent = 0;
        let mut result = Ok(());
        while sent < count {
            // SAFETY: headers sent..count point at this batch's address
            // areas and vectors; the vectors point at `replies`, borrowed
            // for this call and only read by the kernel.
            let done = unsafe {
                libc::syscall(
                    libc::SYS_sendmmsg,
                    libc::c_long::from(self.socket.as_raw_fd()),
                    self.send_headers[sent..].as_mut_ptr(),
                    (count - sent) as libc::c_long,
                    0 as libc::c_long,
                )
            };
            match usize::try_from(done) {
                Ok(done) if done > 0 => sent += done,
                _ => {
                    // The first unsent reply failed: skip it.
                    result = Err(io::Error::last_os_error());
                    sent += 1;
                }
            }
        }
        result
    }
}

/// The IP address in a sender's address area filled by the kernel.
#[inline]
fn peer_ip(address: &libc::sockaddr_storage, length: libc::socklen_t) -> Option<IpAddr> {
    let length = length as usize;
    match i32::from(address.ss_family) {
        libc::AF_INET if length >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the kernel wrote a sockaddr_in here (family AF_INET,
            // length checked); sockaddr_storage is larger and aligned for it.
            let v4 = unsafe { &*std::ptr::from_ref(address).cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
        }
        libc::AF_INET6 if length >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*std::ptr::from_ref(address).cast::<libc::sockaddr_in6>() };
            Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn receives_a_batch_and_replies_to_each_sender() {
        let server = UdpSocket::bind("127.0.0.1:0").expect("bind server");
        let clients: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind client"))
            .collect();
        let server_addr = server.local_addr().expect("server address");
        for (i, client) in clients.iter().enumerate() {
            client
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .expect("timeout");
            client.send_to(&[i as u8; 5], server_addr).expect("send");
        }
        let mut batch = UdpBatch::new(server.as_fd());
        let mut seen = Vec::new();
        while seen.len() < clients.len() {
            let count = batch.receive().expect("receive");
            let mut replies = Vec::new();
            let mut reply_to = Vec::new();
            for index in 0..count {
                let (buffer, len, peer) = batch.query(index).expect("query");
                let query = &buffer[..len];
                assert_eq!(peer, IpAddr::V4(Ipv4Addr::LOCALHOST));
                assert_eq!(query.len(), 5);
                seen.push(query[0]);
                replies.push(vec![query[0] + 100; 7]);
                reply_to.push(index as u8);
            }
            assert!(batch.query(count).is_none());
            batch.send(&replies, &reply_to).expect("send");
        }
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2]);
        for (i, client) in clients.iter().enumerate() {
            let mut buf = [0u8; 16];
            let (len, from) = client.recv_from(&mut buf).expect("reply");
            assert_eq!(from, server_addr);
            assert_eq!(&buf[..len], &[i as u8 + 100; 7]);
        }
    }

    #[test]
    fn an_oversized_datagram_reads_as_empty_and_ipv6_peers_are_read() {
        let Ok(server) = UdpSocket::bind("[::1]:0") else {
            eprintln!("skipped: no IPv6 loopback here");
            return;
        };
        let client = UdpSocket::bind("[::1]:0").expect("bind client");
        let server_addr = server.local_addr().expect("server address");
        client
            .send_to(&vec![1u8; UDP_QUERY_MAX + 10], server_addr)
            .expect("send");
        let mut batch = UdpBatch::new(server.as_fd());
        assert_eq!(batch.receive().expect("receive"), 1);
        let (_, len, peer) = batch.query(0).expect("query");
        assert_eq!(len, 0);
        assert_eq!(peer, IpAddr::V6(Ipv6Addr::LOCALHOST));
    }
}
