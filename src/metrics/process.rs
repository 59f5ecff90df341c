//! This process's figures for `/metrics`: CPU time, resident memory and
//! open file descriptors, read from `/proc/self` at each scrape.

/// CPU, memory and file descriptors of this process, from `/proc/self`.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ProcessFigures {
    /// User and system CPU time.
    pub(super) cpu_seconds: f64,
    /// Resident set size.
    pub(super) resident_bytes: u64,
    /// Open file descriptors.
    pub(super) open_fds: u64,
}

/// Clock ticks per second of `/proc/self/stat` times: USER_HZ, which the
/// Linux ABI fixes at 100 for user space.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

impl ProcessFigures {
    /// Reads the figures now (zero for any that cannot be read).
    pub(super) fn read() -> Self {
        let mut figures = Self::default();
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the parenthesised command name; utime and stime
            // are fields 14 and 15 of the whole line.
            if let Some((_, rest)) = stat.rsplit_once(") ") {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let ticks = |i: usize| {
                    fields
                        .get(i)
                        .and_then(|f| f.parse::<f64>().ok())
                        .unwrap_or(0.0)
                };
                figures.cpu_seconds = (ticks(11) + ticks(12)) / CLOCK_TICKS_PER_SECOND;
            }
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            figures.resident_bytes = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|kb| kb.parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024);
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            figures.open_fds = entries.count() as u64;
        }
        figures
    }
}
