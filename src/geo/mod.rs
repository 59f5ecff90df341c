//! GeoIP data: mmdb databases and CIDR maps compiled into prefix tables.
//!
//! Owns everything between an mmdb file on disk and an in-memory
//! [`PrefixTable`] answering "where is this client, and over which prefix is
//! that answer uniform". It reads files only in `load_*`/`build_*` functions
//! (at snapshot build time) and never on the query path; lookups allocate
//! nothing and take no locks.
//!
//! * `prefix_trie`: arena-allocated binary tries over address bits, with
//!   collapse so lookup depth is an honest ECS scope.
//! * `continent`: built-in ISO 3166-1 country → continent table.
//! * `mmdb_writer`: a small MaxMind DB writer, and the demo database builder.
//! * `database`: loads an mmdb into a [`LocationTable`] of interned locations.
//! * `subdivision`: the ISO 3166-2 table that normalises subdivisions.

pub mod continent;
pub mod database;
pub mod mmdb_writer;
pub mod prefix_trie;
pub mod subdivision;

use std::path::PathBuf;

pub use continent::continent_of_country;
pub use database::{FieldPaths, LoadStats, Location, LocationId, LocationTable};
pub use mmdb_writer::{
    BUILD_EPOCH, Layout, MmdbValue, build_demo_mmdb, build_mmdb_from_csv, write_mmdb,
    write_mmdb_with_epoch,
};
pub use prefix_trie::{Family, PrefixTable, PrefixTrie, addr_bits, net_bits};

/// Errors from loading, parsing or writing GeoIP data.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The database file could not be read (missing, unreadable).
    #[error("cannot read geoip database {}: {source}", path.display())]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid MaxMind DB.
    #[error("{} is not a valid MaxMind DB file: {source}", path.display())]
    NotMmdb {
        /// The file that was opened.
        path: PathBuf,
        /// What the mmdb reader rejected.
        source: maxminddb::MaxMindDbError,
    },
    /// The database is a valid mmdb but its search tree or data is corrupt.
    #[error("corrupt geoip database {}: {source}", path.display())]
    Corrupt {
        /// The file that was being read.
        path: PathBuf,
        /// What the mmdb reader rejected.
        source: maxminddb::MaxMindDbError,
    },
    /// A record field could not be decoded where the field path points.
    #[error("geoip database {}: field {field} (path \"{field_path}\") of network {network}: {message}", path.display())]
    FieldDecode {
        /// The database file.
        path: PathBuf,
        /// Which location field (`country`, `latitude`...).
        field: &'static str,
        /// The configured dotted path.
        field_path: String,
        /// The network whose record failed.
        network: String,
        /// What was wrong with the value.
        message: String,
    },
    /// None of the configured field paths resolved in any record, so the
    /// field layout does not fit this database.
    #[error("geoip database {}: none of the field paths ({fields}) was found in any of its {networks} networks", path.display())]
    FieldsNotFound {
        /// The database file.
        path: PathBuf,
        /// The configured paths, as `field=dotted.path` list.
        fields: String,
        /// How many networks were searched.
        networks: usize,
    },
    /// The field layout could not be guessed from the metadata or records.
    #[error("geoip database {}: cannot detect the field layout of database type \"{database_type}\"; configure field paths", path.display())]
    UnknownLayout {
        /// The database file.
        path: PathBuf,
        /// The metadata `database_type`.
        database_type: String,
    },
    /// A dotted field path is malformed.
    #[error("invalid field path \"{path}\": {message}")]
    FieldPath {
        /// The path as written.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The database has more distinct locations than a `LocationId` can hold.
    #[error("geoip database {}: more than {max} distinct locations", path.display())]
    TooManyLocations {
        /// The database file.
        path: PathBuf,
        /// The limit.
        max: u32,
    },
    /// A line of the demo CSV source is invalid.
    #[error("demo csv line {line}: {message}")]
    DemoCsv {
        /// 1-based line number.
        line: usize,
        /// What is wrong on that line.
        message: String,
    },
    /// The mmdb writer cannot encode its input.
    #[error("cannot write mmdb: {message}")]
    MmdbWrite {
        /// What could not be encoded.
        message: String,
    },
}
