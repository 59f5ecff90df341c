//! A day of DNS-steered traffic with a region outage, under `spill =
//! "ordered"` and `spill = "capacity"`: the peak load per surviving region
//! as a share of its capacity (README "Load-aware answers").
//!
//! Not a test and not timed: a deterministic simulation that drives the
//! same split planner (`policy::spill::plan_split`) and the same subnet
//! hash (`hash::hash_address`) the server uses.
//!
//! The world: 100,000 client /24 networks whose sizes follow a Zipf law
//! (exponent 0.8: the busiest /24 carries about 2 % of all traffic, the
//! top 1,000 about a third, a long tail the rest; heavy-tailed as ECS
//! client subnets seen by an authoritative server are), homed in four regions with a share of the traffic each; every
//! region's demand follows a day curve in its own time zone (low at 04:00,
//! high at 20:00 local). Each region's capacity is sized for its own peak
//! with 25 % headroom (what a region sized for its own traffic looks like).
//! Every network's pool order is its home region, then the others by
//! distance. Demand per pool is learned as the server learns it: own
//! answers per second averaged over a sliding window (5 minutes here), kept
//! while the pool is down. The largest region fails at its evening peak
//! for four hours.
//!
//! Run: `cargo bench --bench spill_sim`.

use std::net::{IpAddr, Ipv4Addr};

use gslb::hash::hash_address;
use gslb::policy::spill::{PoolLoad, SPLIT_RANGE, Spill, plan_split, split_position};

/// Regions: name, share of the world's traffic, UTC offset in hours, and
/// the order of the others by distance.
const REGIONS: [(&str, f64, f64, [usize; 4]); 4] = [
    ("eu", 0.36, 1.0, [0, 1, 2, 3]),
    ("us-east", 0.30, -5.0, [1, 2, 0, 3]),
    ("us-west", 0.14, -8.0, [2, 1, 3, 0]),
    ("ap", 0.20, 8.0, [3, 2, 1, 0]),
];
/// Client networks.
const NETWORKS: usize = 100_000;
/// Zipf exponent of network sizes.
const ZIPF: f64 = 0.8;
/// Requests per second of the whole world at the busiest minute.
const WORLD_PEAK: f64 = 100_000.0;
/// Capacity over a region's own peak.
const HEADROOM: f64 = 1.25;
/// Minutes in the simulated day.
const MINUTES: usize = 24 * 60;
/// Sliding window of the demand learner, in minutes.
const WINDOW: usize = 5;
/// The failed region, and its outage (UTC minutes).
const FAILED: usize = 0;
const OUTAGE: std::ops::Range<usize> = (19 * 60)..(23 * 60);

struct Network {
    home: usize,
    size: f64,
    hash: u16,
}

fn main() {
    let networks = networks();
    // Per home region: its networks' split positions, sorted, with prefix
    // sums of their sizes, so the demand in any hash range is two lookups.
    let homes: Vec<Home> = (0..4).map(|r| Home::new(&networks, r)).collect();
    let raw_peak = (0..MINUTES)
        .map(|m| (0..4).map(|r| homes[r].total() * curve(r, m)).sum::<f64>())
        .fold(0.0, f64::max);
    let scale = WORLD_PEAK / raw_peak;
    let own_by_minute: Vec<[f64; 4]> = (0..MINUTES)
        .map(|m| std::array::from_fn(|r| homes[r].total() * curve(r, m) * scale))
        .collect();
    let capacity: Vec<f64> = (0..4)
        .map(|r| HEADROOM * own_by_minute.iter().map(|o| o[r]).fold(0.0, f64::max))
        .collect();
    let busiest_network = networks.iter().map(|n| n.size).fold(0.0, f64::max)
        / networks.iter().map(|n| n.size).sum::<f64>();

    println!(
        "spill simulation: {NETWORKS} client networks (Zipf {ZIPF}, busiest {:.1} % of traffic), {WORLD_PEAK} req/s at the world's peak,",
        100.0 * busiest_network
    );
    println!(
        "capacity = {HEADROOM} x each region's own peak; {} down {:02}:00-{:02}:00 UTC\n",
        REGIONS[FAILED].0,
        OUTAGE.start / 60,
        OUTAGE.end / 60
    );
    let world = World {
        homes: &homes,
        own_by_minute: &own_by_minute,
        capacity: &capacity,
        scale,
    };
    let baseline = world.run(None, Spill::Ordered, None);
    let ordered = world.run(Some(FAILED), Spill::Ordered, None);
    let spread = world.run(Some(FAILED), Spill::Capacity, None);
    let shed = world.run(Some(FAILED), Spill::Capacity, Some(0.9));
    println!(
        "region    capacity  peak, no outage  peak, ordered  peak, capacity  capacity + overflow_at 0.9"
    );
    for r in 0..4 {
        println!(
            "{:<9} {:>8.0}  {:>14.1} %  {:>12.1} %  {:>13.1} %  {:>25.1} %",
            REGIONS[r].0,
            capacity[r],
            100.0 * baseline[r] / capacity[r],
            100.0 * ordered[r] / capacity[r],
            100.0 * spread[r] / capacity[r],
            100.0 * shed[r] / capacity[r],
        );
    }
    let busiest = |peaks: &[f64; 4]| {
        (0..4)
            .filter(|&r| r != FAILED)
            .map(|r| 100.0 * peaks[r] / capacity[r])
            .fold(0.0, f64::max)
    };
    println!(
        "\npeak load on the busiest surviving region: {:.0} % of its capacity instead of {:.0} %",
        busiest(&spread),
        busiest(&ordered)
    );
    // How closely the subnet hash realises the planned shares when
    // networks are as unequal as these: the planned share of eu's clients
    // per receiver at the outage's start, against the share of eu's
    // traffic whose networks hash into that receiver's range.
    println!(
        "\nsplit accuracy, {} down at {:02}:00 (capacity spill): planned share of its clients -> share of its traffic",
        REGIONS[FAILED].0,
        OUTAGE.start / 60
    );
    for (pool, planned, realised) in world.accuracy(OUTAGE.start) {
        println!(
            "  {:<8} {:>5.1} % -> {:>5.1} %",
            REGIONS[pool].0,
            100.0 * planned,
            100.0 * realised
        );
    }
}

/// A region's demand by local time of day: low at 04:00, high at 20:00 (a
/// smooth two-harmonic day, the shape of residential traffic), 1 at peak.
fn curve(region: usize, minute: usize) -> f64 {
    let local = (minute as f64 / 60.0 + REGIONS[region].2).rem_euclid(24.0);
    let phase = (local - 20.0) / 24.0 * std::f64::consts::TAU;
    0.55 + 0.35 * phase.cos() + 0.10 * (2.0 * phase).cos()
}

/// The networks homed in one region, by split position.
struct Home {
    positions: Vec<u16>,
    /// `sums[i]`: total size of the first `i` networks.
    sums: Vec<f64>,
}

impl Home {
    fn new(networks: &[Network], region: usize) -> Home {
        let mut mine: Vec<(u16, f64)> = networks
            .iter()
            .filter(|n| n.home == region)
            .map(|n| (n.hash, n.size))
            .collect();
        mine.sort_by_key(|&(hash, _)| hash);
        let mut sums = vec![0.0];
        for &(_, size) in &mine {
            sums.push(sums.last().copied().unwrap_or(0.0) + size);
        }
        Home {
            positions: mine.iter().map(|&(hash, _)| hash).collect(),
            sums,
        }
    }

    fn total(&self) -> f64 {
        self.sums.last().copied().unwrap_or(0.0)
    }

    /// Total size of the networks with positions in `low..high`.
    fn between(&self, low: u32, high: u32) -> f64 {
        let index = |bound: u32| self.positions.partition_point(|&p| u32::from(p) < bound);
        self.sums[index(high)] - self.sums[index(low)]
    }
}

struct World<'w> {
    homes: &'w [Home],
    own_by_minute: &'w [[f64; 4]],
    capacity: &'w [f64],
    scale: f64,
}

impl World<'_> {
    /// The failed region's capacity split at `minute` (it just went down):
    /// per receiver, its planned share of the clients and the share of the
    /// failed region's traffic its hash range holds.
    fn accuracy(&self, minute: usize) -> Vec<(usize, f64, f64)> {
        let from = minute.saturating_sub(WINDOW);
        let window = &self.own_by_minute[from..minute];
        let loads: Vec<PoolLoad> = (0..4)
            .map(|r| PoolLoad {
                usable: r != FAILED,
                backup: false,
                capacity: Some(self.capacity[r]),
                overflow_at: None,
                demand: window.iter().map(|o| o[r]).sum::<f64>() / window.len() as f64,
            })
            .collect();
        let order: Vec<u16> = REGIONS[FAILED].3.iter().map(|&p| p as u16).collect();
        let split = plan_split(&order, &loads, Spill::Capacity);
        let home = &self.homes[FAILED];
        let mut low = 0u32;
        let len = usize::from(split.len);
        split
            .shares()
            .enumerate()
            .map(|(i, (pool, planned))| {
                let high = if i + 1 == len {
                    SPLIT_RANGE
                } else {
                    u32::from(split.bounds[i]).max(low)
                };
                let realised = home.between(low, high) / home.total();
                low = high;
                (usize::from(pool), planned, realised)
            })
            .collect()
    }

    /// Peak load per region over the day (requests per second).
    fn run(&self, failed: Option<usize>, spill: Spill, overflow_at: Option<f64>) -> [f64; 4] {
        let mut peaks = [0f64; 4];
        let mut learned = [0f64; 4];
        for minute in 0..MINUTES {
            let down = |r: usize| failed == Some(r) && OUTAGE.contains(&minute);
            // The learner: own demand over the last WINDOW minutes, kept
            // while the pool is down (it gives no answers then).
            for (r, value) in learned.iter_mut().enumerate() {
                if !down(r) {
                    let from = minute.saturating_sub(WINDOW - 1);
                    let window = &self.own_by_minute[from..=minute];
                    *value = window.iter().map(|o| o[r]).sum::<f64>() / window.len() as f64;
                }
            }
            let loads: Vec<PoolLoad> = (0..4)
                .map(|r| PoolLoad {
                    usable: !down(r),
                    backup: false,
                    capacity: Some(self.capacity[r]),
                    overflow_at,
                    demand: learned[r],
                })
                .collect();
            let mut load = [0f64; 4];
            for (home, region) in REGIONS.iter().enumerate() {
                let order: Vec<u16> = region.3.iter().map(|&p| p as u16).collect();
                let split = plan_split(&order, &loads, spill);
                let rate = curve(home, minute) * self.scale;
                if split.is_none() {
                    load[home] += self.homes[home].total() * rate;
                    continue;
                }
                // The ranges `Split::pool_for` maps positions to.
                let len = usize::from(split.len);
                let mut low = 0u32;
                for i in 0..len {
                    let high = if i + 1 == len {
                        SPLIT_RANGE
                    } else {
                        u32::from(split.bounds[i]).max(low)
                    };
                    let pool = usize::from(split.pools[i]);
                    load[pool] += self.homes[home].between(low, high) * rate;
                    low = high;
                }
            }
            for r in 0..4 {
                peaks[r] = peaks[r].max(load[r]);
            }
        }
        peaks
    }
}

/// Client /24s with Zipf sizes, homed by the regions' traffic shares
/// (deterministic).
fn networks() -> Vec<Network> {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut out = Vec::with_capacity(NETWORKS);
    for rank in 0..NETWORKS {
        let size = 1.0 / ((rank + 1) as f64).powf(ZIPF);
        // Regions by traffic share: draw the home.
        let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
        let mut home = 0;
        let mut cumulative = 0.0;
        for (r, region) in REGIONS.iter().enumerate() {
            cumulative += region.1;
            if u < cumulative {
                home = r;
                break;
            }
        }
        let address = Ipv4Addr::from(0x0a00_0000 + ((next() as u32) & 0x00ff_ff00));
        out.push(Network {
            home,
            size,
            hash: split_position(hash_address(IpAddr::V4(address))),
        });
    }
    out
}
