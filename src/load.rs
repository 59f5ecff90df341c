//! Load-aware answers' control loop (README "Load-aware answers"): learns
//! each pool's demand from the answer counters over a sliding window and,
//! at most once a second, plans the split of every load-aware service's
//! pool orders (`policy::spill::plan_split`) from one snapshot of health
//! and demand. The plans are published with the health state, where the
//! query path reads them like any other memoised choice; nothing here runs
//! on the query path, and the query path never waits for it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use std::sync::Arc;

use crate::health::{HealthView, ServiceSplits};
use crate::metrics::PoolTotals;
use crate::policy::spill::{PoolLoad, SPLIT_RANGE, Spill, Split, describe, plan_split};
use crate::policy::{Family, Pool, Service};

/// How often splits are re-planned (at most).
pub const PLAN_INTERVAL: Duration = Duration::from_secs(1);
/// The sliding window demand is averaged over.
pub const DEMAND_WINDOW: Duration = Duration::from_secs(30);
/// A split moves only when a pool's range moves by more than this share of
/// the hash space (1 %), so demand noise does not move clients.
const SPLIT_HYSTERESIS: u32 = SPLIT_RANGE / 100;

/// Answer counts of one pool in one service.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    /// Every answer it gave.
    answers: u64,
    /// Answers to clients whose first pool it is (not failover answers).
    own: u64,
}

/// One pool in one sample: running totals since the learner first saw it,
/// so a rate is the difference of two samples.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    /// Every answer it gave.
    answers: f64,
    /// The demand its own answers stand for: each counted as 1 / the share
    /// of its clients it kept when it gave it (1 unless it was shedding).
    demand: f64,
}

/// Demand per pool, learned from answer counters.
#[derive(Debug, Clone, Default)]
pub struct DemandLearner {
    /// Samples, oldest first; one older than the window is kept as the
    /// base the rates are taken from.
    samples: VecDeque<(Instant, HashMap<String, Totals>)>,
    /// The counters at the last sample by (service, pool), which the next
    /// one's increments are taken from.
    last: HashMap<(String, String), Counts>,
    /// Own demand per pool, answers per second (kept while it gives none
    /// because it is down: its normal demand).
    own: HashMap<String, f64>,
    /// All answers per second per pool (own and others').
    load: HashMap<String, f64>,
}

impl DemandLearner {
    /// Takes a sample of the counters (by service and pool, as
    /// `Metrics::pool_totals` gives them) at `now`. `usable` says whether a
    /// pool can answer now: an unusable pool's learned demand is kept.
    /// `keep(service, pool)` is the share of its own clients a pool kept in
    /// a service under the split in force since the last sample (below 1
    /// while it sheds), so what it shed still counts as its demand. Each increment is scaled by the
    /// share in force when it was answered, never by a later one: dividing
    /// a window of full-rate answers by a share that shrank since would
    /// inflate the demand, shed more, and feed on itself.
    pub fn handle_sample(
        &mut self,
        now: Instant,
        totals: &HashMap<(String, String), PoolTotals>,
        usable: &dyn Fn(&str) -> bool,
        keep: &dyn Fn(&str, &str) -> f64,
    ) {
        let mut sample: HashMap<String, Totals> = HashMap::new();
        let previous = self.samples.back().map(|(_, t)| t);
        for ((service, pool), t) in totals {
            if pool.is_empty() {
                continue;
            }
            let entry = sample.entry(pool.clone()).or_insert_with(|| {
                previous
                    .and_then(|p| p.get(pool))
                    .copied()
                    .unwrap_or_default()
            });
            // A (service, pool) seen for the first time starts from its
            // counters as they are; counters never go back, but a reload
            // may drop a service's, so an increment is never negative.
            if let Some(last) = self.last.get(&(service.clone(), pool.clone())) {
                let own = t.answers.saturating_sub(t.failovers);
                let kept = keep(service, pool).clamp(0.01, 1.0);
                entry.answers += t.answers.saturating_sub(last.answers) as f64;
                entry.demand += own.saturating_sub(last.own) as f64 / kept;
            }
        }
        self.last = totals
            .iter()
            .map(|(key, t)| {
                let counts = Counts {
                    answers: t.answers,
                    own: t.answers.saturating_sub(t.failovers),
                };
                (key.clone(), counts)
            })
            .collect();
        while self.samples.len() > 1
            && self
                .samples
                .get(1)
                .is_some_and(|(at, _)| now.duration_since(*at) >= DEMAND_WINDOW)
        {
            self.samples.pop_front();
        }
        if let Some((base_at, base)) = self.samples.front() {
            let secs = now.duration_since(*base_at).as_secs_f64();
            if secs > 0.0 {
                for (pool, t) in &sample {
                    let before = base.get(pool).copied().unwrap_or_default();
                    let rate = |now: f64, then: f64| (now - then).max(0.0) / secs;
                    self.load
                        .insert(pool.clone(), rate(t.answers, before.answers));
                    if usable(pool) {
                        self.own.insert(pool.clone(), rate(t.demand, before.demand));
                    }
                }
            }
        }
        self.samples.push_back((now, sample));
    }

    /// Own demand of `pool`, answers per second.
    pub fn demand(&self, pool: &str) -> f64 {
        self.own.get(pool).copied().unwrap_or(0.0)
    }

    /// Everything `pool` answers, per second.
    pub fn load(&self, pool: &str) -> f64 {
        self.load.get(pool).copied().unwrap_or(0.0)
    }
}

/// One load-aware service's plan: a split per pool order, and the loads it
/// was made from (for `/status`, `/metrics` and `explain`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePlan {
    /// `Service::serial` of the service planned.
    pub serial: u64,
    /// How its failed pools' clients spread.
    pub spill: Spill,
    /// By order index (`Service::orders`).
    pub splits: Vec<Split>,
    /// By pool index (`Service::pools`).
    pub loads: Vec<PoolLoad>,
}

impl ServicePlan {
    /// Whether `other` differs from it by more than demand noise: another
    /// pool in a split, or a range moved by more than the hysteresis.
    pub fn differs(&self, other: &ServicePlan) -> bool {
        self.serial != other.serial
            || self.splits.len() != other.splits.len()
            || self
                .splits
                .iter()
                .zip(&other.splits)
                .any(|(a, b)| split_differs(a, b))
    }

    /// For each order with a split: its pools, why, and the shares.
    pub fn report(&self, service: &Service) -> Vec<SplitReport> {
        (0..self.splits.len())
            .filter_map(|index| self.split_report(service, index))
            .collect()
    }

    /// The plan as the health state publishes it for the query path.
    pub fn to_splits(&self, service: &Service) -> ServiceSplits {
        ServiceSplits {
            serial: self.serial,
            splits: self.splits.clone().into_boxed_slice(),
            reasons: (0..self.splits.len())
                .map(|index| {
                    self.split_report(service, index)
                        .map(|r| r.text)
                        .unwrap_or_default()
                        .into()
                })
                .collect(),
        }
    }

    /// Where the clients of order `index` go and why (`None` without a split).
    fn split_report(&self, service: &Service, index: usize) -> Option<SplitReport> {
        let name = |p: u16| {
            service
                .pools
                .get(usize::from(p))
                .map_or_else(|| p.to_string(), |pool| pool.name.clone())
        };
        let split = self.splits.get(index).filter(|s| !s.is_none())?;
        let order: Vec<String> = service
            .order(index as u32)
            .iter()
            .map(|&p| name(p))
            .collect();
        let first = service
            .order(index as u32)
            .iter()
            .find(|&&p| self.loads.get(usize::from(p)).is_some_and(|l| !l.backup))
            .and_then(|&p| self.loads.get(usize::from(p)).map(|l| (p, l)));
        let why = match first {
            Some((p, load)) if !load.usable => format!("{} down", name(p)),
            Some((p, load)) => format!(
                "{} over {:.0} % of its capacity",
                name(p),
                100.0 * load.overflow_at.unwrap_or(1.0)
            ),
            None => "no primary".to_string(),
        };
        let text = format!(
            "{}: {why}: {}",
            order.join(", "),
            describe(split, &self.loads, name)
        );
        let shares = split
            .shares()
            .enumerate()
            .map(|(i, (pool, share))| SplitShare {
                pool: name(pool),
                percent: (share * 1000.0).round() / 10.0,
                kept: i == 0 && split.keeps_first,
            })
            .collect();
        Some(SplitReport {
            order,
            why,
            shares,
            text,
        })
    }
}

/// One split as `/status` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SplitReport {
    /// The pool order whose clients are split, by pool name.
    pub order: Vec<String>,
    /// Why: `"eu down"` or `"eu over 90 % of its capacity"`.
    pub why: String,
    /// Where the clients go.
    pub shares: Vec<SplitShare>,
    /// All of it in one line, as `explain` shows it.
    pub text: String,
}

/// One pool's share of a split.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SplitShare {
    /// Pool name.
    pub pool: String,
    /// Share of the order's clients, in percent (one decimal).
    pub percent: f64,
    /// Whether this is the first pool keeping part of its own clients
    /// (it sheds the rest).
    pub kept: bool,
}

/// The control loop's state: the learner and the plans in force, by
/// service serial. Held by `Control` and locked by the control plane only
/// (the loop, `/status`, `/metrics`).
#[derive(Debug, Default)]
pub struct LoadState {
    /// Demand per pool.
    pub demand: DemandLearner,
    /// The plans published, by `Service::serial`.
    pub plans: HashMap<u64, ServicePlan>,
}

impl LoadState {
    /// One tick: takes the counters' sample at `now`, re-plans every
    /// load-aware service of `services` with `usable` saying which pools
    /// can answer, and returns the plans when one of them moved by more
    /// than noise (`None`: keep what is published).
    pub fn handle_tick(
        &mut self,
        now: Instant,
        services: &[Service],
        totals: &HashMap<(String, String), PoolTotals>,
        usable: &dyn Fn(&Pool) -> bool,
    ) -> Option<Vec<(usize, ServicePlan)>> {
        let by_name: HashMap<&str, &Pool> = services
            .iter()
            .flat_map(|s| s.pools.iter())
            .map(|p| (p.name.as_str(), &**p))
            .collect();
        let kept = kept_shares(
            services
                .iter()
                .filter_map(|s| self.plans.get(&s.serial).map(|p| (s, p))),
        );
        self.demand.handle_sample(
            now,
            totals,
            &|pool| by_name.get(pool).is_none_or(|p| usable(p)),
            &|service, pool| {
                kept.get(&(service.to_string(), pool.to_string()))
                    .copied()
                    .unwrap_or(1.0)
            },
        );
        let mut changed = false;
        let mut plans = Vec::new();
        let mut next = HashMap::new();
        for (index, service) in services.iter().enumerate() {
            let Some(plan) = plan_service(service, usable, &self.demand) else {
                continue;
            };
            let plan = match self.plans.get(&service.serial) {
                // Noise: keep the published split (the figures refresh).
                Some(old) if !old.differs(&plan) => ServicePlan {
                    loads: plan.loads,
                    ..old.clone()
                },
                _ => {
                    changed = true;
                    plan
                }
            };
            next.insert(service.serial, plan.clone());
            plans.push((index, plan));
        }
        changed |= next.len() != self.plans.len();
        self.plans = next;
        changed.then_some(plans)
    }
}

fn split_differs(a: &Split, b: &Split) -> bool {
    if a.len != b.len || a.keeps_first != b.keeps_first || a.pools != b.pools {
        return true;
    }
    a.bounds
        .iter()
        .zip(&b.bounds)
        .take(usize::from(a.len))
        .any(|(x, y)| u32::from(x.abs_diff(*y)) > SPLIT_HYSTERESIS)
}

/// Plans `service`'s splits (`None` for services with classic failover),
/// with `usable` saying which of its pools can answer now.
pub fn plan_service(
    service: &Service,
    usable: &dyn Fn(&Pool) -> bool,
    demand: &DemandLearner,
) -> Option<ServicePlan> {
    let rules = service.load.as_ref()?;
    let loads: Vec<PoolLoad> = service
        .pools
        .iter()
        .enumerate()
        .map(|(i, pool)| PoolLoad {
            usable: usable(pool),
            backup: pool.backup,
            capacity: pool.capacity,
            overflow_at: rules.overflow_at.get(i).copied().flatten(),
            demand: demand.demand(&pool.name),
        })
        .collect();
    let splits = service
        .orders
        .iter()
        .map(|order| plan_split(order, &loads, rules.spill))
        .collect();
    Some(ServicePlan {
        serial: service.serial,
        spill: rules.spill,
        splits,
        loads,
    })
}

/// Whether `pool` can answer now: enough healthy endpoints (its
/// `min_healthy`) of a family it serves, as failover counts them.
pub fn pool_usable(pool: &Pool, health: &HealthView) -> bool {
    [Family::V4, Family::V6].into_iter().any(|family| {
        let census = pool.census(health, family);
        let total = census.total as usize;
        total > 0 && census.healthy as usize >= pool.min_healthy.needed(total)
    })
}

/// `plans` (by service index, as [`LoadState::handle_tick`] gives them) as
/// the health view holds them: by `LoadRules::slot`.
pub fn published_splits(
    services: &[Service],
    plans: &[(usize, ServicePlan)],
) -> Vec<Option<Arc<ServiceSplits>>> {
    let mut slots: Vec<Option<Arc<ServiceSplits>>> = Vec::new();
    for (index, plan) in plans {
        let Some(service) = services.get(*index) else {
            continue;
        };
        let Some(rules) = &service.load else {
            continue;
        };
        let slot = rules.slot as usize;
        if slots.len() <= slot {
            slots.resize(slot + 1, None);
        }
        slots[slot] = Some(Arc::new(plan.to_splits(service)));
    }
    slots
}

/// The share of its own clients each pool keeps in each service under the
/// splits of `plans` (absent: 1, it sheds nothing), by (service, pool) name
/// as the answer counters are keyed.
pub fn kept_shares<'p>(
    plans: impl IntoIterator<Item = (&'p Service, &'p ServicePlan)>,
) -> HashMap<(String, String), f64> {
    let mut kept = HashMap::new();
    for (service, plan) in plans {
        for split in plan.splits.iter().filter(|s| s.keeps_first) {
            let Some((index, share)) = split.shares().next() else {
                continue;
            };
            if let Some(pool) = service.pools.get(usize::from(index)) {
                // Orders sharing a first pool are planned from the same
                // load; the published ones differ by hysteresis at most.
                kept.entry((service.name.clone(), pool.name.clone()))
                    .or_insert(share);
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(rows: &[(&str, u64, u64)]) -> HashMap<(String, String), PoolTotals> {
        rows.iter()
            .map(|&(pool, answers, failovers)| {
                (
                    ("www.".to_string(), pool.to_string()),
                    PoolTotals {
                        answers,
                        failovers,
                        fail_open: 0,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn demand_is_own_answers_per_second_over_the_window_and_kept_while_down() {
        let mut learner = DemandLearner::default();
        let start = Instant::now();
        let up = |_: &str| true;
        let full = |_: &str, _: &str| 1.0;
        learner.handle_sample(start, &totals(&[("a", 0, 0), ("b", 0, 0)]), &up, &full);
        // 10 s later: a answered 1,000 (its own), b 500 of which 300 for others.
        let later = start + Duration::from_secs(10);
        learner.handle_sample(
            later,
            &totals(&[("a", 1000, 0), ("b", 500, 300)]),
            &up,
            &full,
        );
        assert_eq!(learner.demand("a"), 100.0);
        assert_eq!(learner.demand("b"), 20.0);
        assert_eq!(learner.load("b"), 50.0);
        // a goes down: it answers nothing more, its demand is kept.
        let down = |pool: &str| pool != "a";
        learner.handle_sample(
            later + Duration::from_secs(10),
            &totals(&[("a", 1000, 0), ("b", 2700, 2300)]),
            &down,
            &full,
        );
        assert_eq!(learner.demand("a"), 100.0);
        assert_eq!(learner.demand("b"), 20.0);
        assert_eq!(learner.load("b"), 135.0);
    }

    #[test]
    fn a_shedding_pool_counts_what_it_sheds_and_old_samples_leave_the_window() {
        let mut learner = DemandLearner::default();
        let start = Instant::now();
        let up = |_: &str| true;
        let half = |_: &str, _: &str| 0.5;
        learner.handle_sample(start, &totals(&[("a", 0, 0)]), &up, &half);
        learner.handle_sample(
            start + Duration::from_secs(10),
            &totals(&[("a", 500, 0)]),
            &up,
            &half,
        );
        assert_eq!(learner.demand("a"), 100.0);
        // Past the window the base moves up: the rate is of the last stretch.
        let mut at = start + Duration::from_secs(10);
        let mut answers = 500;
        for _ in 0..40 {
            at += Duration::from_secs(1);
            answers += 10;
            learner.handle_sample(at, &totals(&[("a", answers, 0)]), &up, &|_, _| 1.0);
        }
        assert!(
            (learner.demand("a") - 10.0).abs() < 1e-9,
            "{}",
            learner.demand("a")
        );
    }

    #[test]
    fn answers_count_at_the_share_kept_when_they_were_given() {
        // a's clients ask 100/s throughout. For 10 s it keeps them all (1,000
        // own answers), then for 10 s it keeps half (500 more): its demand
        // is 100/s, not the 20 s of own answers divided by today's half.
        let mut learner = DemandLearner::default();
        let start = Instant::now();
        let up = |_: &str| true;
        learner.handle_sample(start, &totals(&[("a", 0, 0)]), &up, &|_, _| 1.0);
        let at = |s: u64| start + Duration::from_secs(s);
        learner.handle_sample(at(10), &totals(&[("a", 1000, 0)]), &up, &|_, _| 1.0);
        learner.handle_sample(at(20), &totals(&[("a", 1500, 0)]), &up, &|_, _| 0.5);
        assert!(
            (learner.demand("a") - 100.0).abs() < 1e-9,
            "{}",
            learner.demand("a")
        );
        assert!(
            (learner.load("a") - 75.0).abs() < 1e-9,
            "{}",
            learner.load("a")
        );
    }

    #[test]
    fn counters_before_the_first_sample_are_not_demand() {
        let mut learner = DemandLearner::default();
        let start = Instant::now();
        let up = |_: &str| true;
        learner.handle_sample(start, &totals(&[("a", 50_000, 0)]), &up, &|_, _| 1.0);
        learner.handle_sample(
            start + Duration::from_secs(10),
            &totals(&[("a", 50_100, 0)]),
            &up,
            &|_, _| 1.0,
        );
        assert_eq!(learner.demand("a"), 10.0);
    }

    #[test]
    fn small_moves_are_noise_and_other_pools_are_not() {
        let mut a = Split::NONE;
        a.len = 2;
        a.pools[..2].copy_from_slice(&[1, 2]);
        a.bounds[0] = 49152;
        let mut b = a;
        b.bounds[0] = 49152 + 300;
        assert!(!split_differs(&a, &b));
        b.bounds[0] = 49152 + 1000;
        assert!(split_differs(&a, &b));
        let mut c = a;
        c.pools[1] = 3;
        assert!(split_differs(&a, &c));
    }
}
