//! The DNS data plane: wire format, answering queries from a snapshot, sockets.
pub mod answer;
mod choice_memo;
mod name_table;
pub mod precompiled;
pub mod reply_buffer;
pub mod rrl;
pub mod served;
pub mod server;
pub mod udp_batch;
pub mod wire;
