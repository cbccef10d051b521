//! F20 (a resource grows with every connect): each service's open descriptors and memory fitted
//! against the connect/disconnect cycles the driver completed, by least squares.
//!
//! A cycle is complete when the driver ends (closes, reloads, reconnects) a tab whose viewer had
//! shown a frame: a viewer that streamed and then went away, as a user's does. The first sample
//! each service reports after a cycle completes is that cycle's point, so a series has one point
//! per cycle however often the monitor samples (points a second apart would be the same point
//! many times over, and make a wobble look significant).
//!
//! Why one file of over 400 lines: the cycle count, the fit, the rule and the growth it reports
//! are one reading of the same points; split, the report could fit what the detector did not.
//!
//! Why running sums: the fit needs only n, Σx, Σy, Σx², Σxy and Σy², so an evaluation costs
//! the same at cycle 300 as at cycle 30 (README "Cost"). The points themselves are kept too
//! (16 bytes each, one per cycle and series: a 10,000-cycle soak holds under 2 MB) for the
//! reports' charts and for the steadiness check below, which reads them only once the sums
//! already say "leak".
//!
//! The rule, and what keeps it apart from its look-alikes:
//! - *Noise.* A service's memory wobbles with the sessions it serves at the moment of the
//!   sample. A leak is named only when the growth per cycle is significant statistically *and*
//!   in size: the lower end of its 95 % interval is at least the threshold
//!   (`leak_fds_per_cycle`, `leak_memory_mib_per_cycle`), the line explains the points
//!   (R² ≥ `leak_min_r2`), and there are `leak_min_cycles` points after a warm-up of
//!   `leak_warmup_cycles` (allocators and caches grow at first and then level).
//! - *A step.* Memory that jumps once and then stays (an allocator's new arena, a cache filled
//!   once) fits a line badly but can still pass those tests over a short window. A leak grows
//!   with every cycle: the fitted points' earlier and later halves must each grow at least half
//!   as fast as the whole.
//! - *Things left alive* (F5 stuck sessions, F6 zombie streamers, F7 orphan Wolf sessions, a
//!   vanished tab's session): their resources grow with cycles too, but because what holds
//!   them is still there. The same fit is made of the service's live objects (Wolf's sessions,
//!   moonlight-web's sessions, the streamer processes); while those grow per cycle the growth
//!   is theirs, named by their own detectors, not a leak.

use super::*;
use crate::sut::replies::{Part, ResourceSample};
use crate::timeline::Reply;
use helix_e2e_shared::Service;

/// What a series measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resource {
    /// Open file descriptors.
    Fds,
    /// Resident memory, MiB.
    Memory,
    /// Live objects that hold resources: Wolf's or moonlight-web's sessions, streamer processes.
    Live,
}

impl Resource {
    pub fn unit(self) -> &'static str {
        match self {
            Resource::Fds => "fds",
            Resource::Memory => "MiB",
            Resource::Live => "live",
        }
    }

    /// How the evidence names it.
    fn describe(self) -> &'static str {
        match self {
            Resource::Fds => "open file descriptors",
            Resource::Memory => "resident memory",
            Resource::Live => "live sessions or processes",
        }
    }
}

/// A series: one service part's one resource.
pub type SeriesKey = (Service, Part, Resource);

/// A live object's growth per cycle below this is not "left alive": one leftover per 20
/// cycles is already far more than any clean run shows (none).
const LIVE_GROWTH_PER_CYCLE: f64 = 0.05;

/// Running sums of one series, shifted by its first point (memory in bytes squared would lose
/// the digits a slope needs).
#[derive(Debug, Clone, Default)]
struct Sums {
    origin: Option<(f64, f64)>,
    n: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
    syy: f64,
    first_at: EpochMs,
    last_at: EpochMs,
    first_y: f64,
    last_y: f64,
    first_x: f64,
    last_x: f64,
}

impl Sums {
    fn add(&mut self, at: EpochMs, x: f64, y: f64) {
        let (x0, y0) = *self.origin.get_or_insert((x, y));
        if self.n == 0.0 {
            (self.first_at, self.first_y, self.first_x) = (at, y, x);
        }
        (self.last_at, self.last_y, self.last_x) = (at, y, x);
        let (x, y) = (x - x0, y - y0);
        self.n += 1.0;
        self.sx += x;
        self.sy += y;
        self.sxx += x * x;
        self.sxy += x * y;
        self.syy += y * y;
    }

    /// The least-squares line's slope with its standard error, 95 % interval and R².
    fn trend(&self) -> Option<Trend> {
        let n = self.n;
        if n < 3.0 {
            return None;
        }
        let sxx = self.sxx - self.sx * self.sx / n;
        let sxy = self.sxy - self.sx * self.sy / n;
        let syy = (self.syy - self.sy * self.sy / n).max(0.0);
        if sxx <= 0.0 {
            return None;
        }
        let slope = sxy / sxx;
        let residual = (syy - slope * sxy).max(0.0);
        let se = (residual / (n - 2.0) / sxx).sqrt();
        let half = t975(n - 2.0) * se;
        // A flat series (a steady descriptor count) has nothing to explain: R² 0.
        let r2 = if syy > 0.0 { (slope * sxy / syy).clamp(0.0, 1.0) } else { 0.0 };
        Some(Trend {
            slope,
            se,
            low: slope - half,
            high: slope + half,
            r2,
            points: n as usize,
            first_cycle: self.first_x as u64,
            last_cycle: self.last_x as u64,
            first: self.first_y,
            last: self.last_y,
            first_at: self.first_at,
            last_at: self.last_at,
        })
    }
}

/// The two-sided 95 % quantile of Student's t with `dof` degrees of freedom (Cornish–Fisher
/// expansion around the normal's 1.96; within 0.5 % from 3 degrees of freedom on).
fn t975(dof: f64) -> f64 {
    let z: f64 = 1.959_964;
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * dof) + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * dof * dof) + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * dof.powi(3))
}

/// A fitted series: growth per completed cycle.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    pub slope: f64,
    /// The slope's standard error.
    pub se: f64,
    /// The slope's 95 % interval.
    pub low: f64,
    pub high: f64,
    pub r2: f64,
    /// Points fitted (one per sample that followed completed cycles, after the warm-up), and
    /// the completed cycles they span.
    pub points: usize,
    pub first_cycle: u64,
    pub last_cycle: u64,
    /// The first and last fitted values, and when they were sampled.
    pub first: f64,
    pub last: f64,
    pub first_at: EpochMs,
    pub last_at: EpochMs,
}

/// Completed cycles and each service's resources at them, folded one observation at a time.
#[derive(Debug, Clone)]
pub struct LeakFold {
    warmup: u64,
    /// Tabs whose current viewer has shown a frame.
    streamed: BTreeSet<TabId>,
    /// Tabs the driver is tearing down, whose viewer had streamed: a cycle once it is done.
    ending: BTreeSet<TabId>,
    cycles: u64,
    /// A cycle completed since the last sample (or none was taken yet): the next sample is its
    /// point.
    due: bool,
    wolf_sessions: Option<usize>,
    mlw_sessions: Option<usize>,
    sums: BTreeMap<SeriesKey, Sums>,
    points: BTreeMap<SeriesKey, Vec<(u64, f64)>>,
    /// Why a series has no figures, per service part (the latest reason).
    unavailable: BTreeMap<(Service, Part), String>,
}

/// The tab a driver operation ends the viewer of (`close tab 3`, `reload tab 3`, `reconnect
/// tab 3`, `cut tab 3`): the driver's own teardowns.
pub(super) fn torn_down_tab(op: &str) -> Option<TabId> {
    op.strip_prefix("close tab ")
        .or_else(|| op.strip_prefix("reload tab "))
        .or_else(|| op.strip_prefix("reconnect tab "))
        .or_else(|| op.strip_prefix("cut tab "))
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
}

impl LeakFold {
    pub fn new(warmup: u64) -> Self {
        LeakFold {
            warmup,
            streamed: BTreeSet::new(),
            ending: BTreeSet::new(),
            cycles: 0,
            // The first sample is the point before any cycle.
            due: true,
            wolf_sessions: None,
            mlw_sessions: None,
            sums: BTreeMap::new(),
            points: BTreeMap::new(),
            unavailable: BTreeMap::new(),
        }
    }

    /// Connect/disconnect cycles the driver completed so far.
    pub fn cycles(&self) -> u64 {
        self.cycles
    }

    pub fn ingest(&mut self, o: &Observation) {
        match &o.event {
            // Frames arrive several a second: look before inserting.
            Event::Tab { tab, probe: ProbeEvent::Frame { .. } } if !self.streamed.contains(tab) => {
                self.streamed.insert(*tab);
            }
            Event::Op { name, phase } => {
                let Some(tab) = torn_down_tab(name) else { return };
                match phase {
                    OpPhase::Start => {
                        if self.streamed.remove(&tab) {
                            self.ending.insert(tab);
                        }
                    }
                    OpPhase::Ok => {
                        if self.ending.remove(&tab) {
                            self.cycles += 1;
                            self.due = true;
                        }
                    }
                    OpPhase::Failed { .. } => {
                        self.ending.remove(&tab);
                    }
                }
            }
            Event::Poll { service, reply } => match (service.as_str(), &**reply) {
                ("wolf", Reply::WolfSessions(s)) => self.wolf_sessions = Some(s.len()),
                ("moonlight-web", Reply::MlwSessions(s)) => self.mlw_sessions = Some(s.len()),
                _ => {}
            },
            Event::Resources { samples } if self.due => {
                self.due = false;
                for s in samples {
                    self.point(o.at, s);
                }
            }
            _ => {}
        }
    }

    fn point(&mut self, at: EpochMs, s: &ResourceSample) {
        let live = match (s.service, s.part) {
            (_, Part::Streamers) => Some(s.processes as usize),
            (Service::Wolf, Part::Main) => self.wolf_sessions,
            (Service::MoonlightWeb, Part::Main) => self.mlw_sessions,
            (Service::Api, Part::Main) => None,
        };
        // Streamers come and go with sessions: their sum follows how many happen to be alive at
        // the sample (a soak's last cycles end them all), not what each holds. So their figures
        // are per streamer — one that starts bigger every cycle is their leak — and a moment
        // without a streamer is no point.
        let per = match s.part {
            Part::Main => Some(1.0),
            Part::Streamers => (s.processes > 0).then_some(f64::from(s.processes)),
        };
        let values = [
            (Resource::Fds, s.fds.zip(per).map(|(n, p)| n as f64 / p)),
            (Resource::Memory, s.memory_bytes.zip(per).map(|(b, p)| b as f64 / (1024.0 * 1024.0) / p)),
            (Resource::Live, live.map(|n| n as f64)),
        ];
        if let Some(why) = s.unavailable.first() {
            self.unavailable.insert((s.service, s.part), why.clone());
        }
        let x = self.cycles;
        for (r, v) in values {
            let Some(y) = v else { continue };
            let key = (s.service, s.part, r);
            self.points.entry(key).or_default().push((x, y));
            if x > self.warmup {
                self.sums.entry(key).or_default().add(at, x as f64, y);
            }
        }
    }

    pub fn trend(&self, key: &SeriesKey) -> Option<Trend> {
        self.sums.get(key)?.trend()
    }

    /// Whether the live objects of this series' holder grow with cycles (see the module's
    /// differential rules).
    fn holders_grow(&self, key: &SeriesKey) -> Option<Trend> {
        self.trend(&(key.0, key.1, Resource::Live)).filter(|t| t.low > 0.0 && t.slope >= LIVE_GROWTH_PER_CYCLE)
    }

    /// Whether the fitted points of a series grow in both halves, each at least half as fast as
    /// the whole (see the module's rules): a line, not a step.
    fn steady(&self, key: &SeriesKey, slope: f64) -> bool {
        let fitted: Vec<&(u64, f64)> = self.points.get(key).map(|p| p.iter().filter(|(x, _)| *x > self.warmup).collect()).unwrap_or_default();
        let (early, late) = fitted.split_at(fitted.len() / 2);
        [early, late].iter().all(|half| {
            let mut s = Sums::default();
            for (x, y) in half.iter() {
                s.add(0.0, *x as f64, *y);
            }
            s.trend().is_some_and(|t| t.slope >= slope / 2.0)
        })
    }

    /// Every series' growth, for `summary.json` and the reports.
    pub fn growth(&self) -> ResourceGrowth {
        let keys: BTreeSet<SeriesKey> = self.points.keys().chain(self.sums.keys()).copied().collect();
        let series = keys
            .into_iter()
            .map(|key| SeriesGrowth {
                label: label(key.0, key.1),
                service: key.0,
                part: key.1,
                resource: key.2,
                unit: key.2.unit().to_string(),
                trend: self.trend(&key),
                points: self.points.get(&key).cloned().unwrap_or_default(),
            })
            .collect();
        let unavailable = self.unavailable.iter().map(|((s, p), why)| format!("{}: {why}", label(*s, *p))).collect();
        ResourceGrowth { cycles: self.cycles, warmup_cycles: self.warmup, series, unavailable }
    }
}

fn label(service: Service, part: Part) -> String {
    match part {
        Part::Main => service.name().to_string(),
        Part::Streamers => format!("{} streamers (each)", service.name()),
    }
}

/// The run's per-cycle growth, read from its whole timeline; `None` when no resource was
/// sampled.
pub fn growth_of(obs: &[Observation], warmup_cycles: u64) -> Option<ResourceGrowth> {
    let mut ordered: Vec<&Observation> =
        obs.iter().filter(|o| matches!(o.event, Event::Resources { .. } | Event::Op { .. } | Event::Poll { .. } | Event::Tab { .. })).collect();
    if !ordered.iter().any(|o| matches!(o.event, Event::Resources { .. })) {
        return None;
    }
    ordered.sort_by(|a, b| a.at.total_cmp(&b.at));
    let mut fold = LeakFold::new(warmup_cycles);
    for o in ordered {
        fold.ingest(o);
    }
    Some(fold.growth())
}

/// Per-cycle growth of every service, named or not (`summary.json`'s `resources`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceGrowth {
    /// Connect/disconnect cycles the driver completed.
    pub cycles: u64,
    /// Cycles left out of the fits at the start.
    pub warmup_cycles: u64,
    pub series: Vec<SeriesGrowth>,
    /// Figures the run could not sample, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesGrowth {
    /// `wolf`, `moonlight-web streamers`, …
    pub label: String,
    pub service: Service,
    pub part: Part,
    pub resource: Resource,
    pub unit: String,
    /// The fit; none before enough cycles.
    pub trend: Option<Trend>,
    /// (completed cycles, value) per point, warm-up included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<(u64, f64)>,
}

/// F20: a service's descriptors or memory grow by a significant amount with every cycle while
/// nothing it holds stays alive (see the module's rules).
pub(super) fn f20_resource_leak(fold: &LeakFold, t: &Thresholds) -> Option<Detection> {
    let found = fold.sums.keys().filter(|k| k.2 != Resource::Live).find_map(|key| {
        let trend = fold.trend(key)?;
        let least = match key.2 {
            Resource::Fds => t.leak_fds_per_cycle,
            Resource::Memory => t.leak_memory_mib_per_cycle,
            Resource::Live => return None,
        };
        let leaks = trend.points >= t.leak_min_cycles && trend.low >= least && trend.r2 >= t.leak_min_r2;
        if !leaks {
            return None;
        }
        if !fold.steady(key, trend.slope) {
            tracing::debug!("{} grew {:.2} {}/cycle, but not steadily: a step, not a leak", label(key.0, key.1), trend.slope, key.2.unit());
            return None;
        }
        if let Some(live) = fold.holders_grow(key) {
            tracing::debug!(
                "{} grows {:.2} {}/cycle, but its live objects grow {:.2}/cycle: left alive, not leaked",
                label(key.0, key.1),
                trend.slope,
                key.2.unit(),
                live.slope
            );
            return None;
        }
        Some((*key, trend))
    })?;
    let ((service, part, resource), tr) = found;
    let unit = resource.unit();
    let message = format!(
        "{}'s {} grew {:.2} {unit} per connect/disconnect cycle (95 % interval {:.2}–{:.2}, R² {:.2}; {} points over cycles {}–{}, after a warm-up of {}; {:.1} → {:.1} {unit}), while its live sessions and processes did not grow: a leak per cycle",
        label(service, part),
        resource.describe(),
        tr.slope,
        tr.low,
        tr.high,
        tr.r2,
        tr.points,
        tr.first_cycle,
        tr.last_cycle,
        fold.warmup,
        tr.first,
        tr.last,
    );
    Some(Detection { fault: FailureId::F20, name: FailureId::F20.name().into(), tab: None, message, first_symptom: tr.first_at, decided_at: tr.last_at })
}
