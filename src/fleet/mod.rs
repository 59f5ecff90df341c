//! Fleet configuration through etcd: the configuration as one published,
//! versioned object that every member with `[cluster] config = "etcd"`
//! serves.
//!
//! - `bundle`: a version's content (the TOML, its zone files and latency
//!   tables; local files by path and SHA-256) and the configuration a
//!   member writes out from it.
//! - `store`: the versions in etcd (`PREFIX/config/…`), publishing with a
//!   compare-and-swap, retention.
//! - `member`: a member following the versions (start, watch, background
//!   build and swap, cache in `state_dir`, what it reports).
//! - `text_diff`, `report`: line diffs between two versions and what
//!   `gslb versions` and `gslb diff A B` print.
//!
//! Never on the query path: versions reach the data plane only through
//! [`crate::control::Control::apply_source`], which builds a whole snapshot
//! and swaps it in like a reload (a version that does not build changes
//! nothing).

pub mod bundle;
pub mod follow;
pub mod member;
pub mod report;
pub mod store;
pub mod text_diff;

pub use bundle::Bundle;
pub use store::{NewVersion, PublishBase, PublishError, Store, VersionMeta};
