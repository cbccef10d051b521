//! F20's rules on made-up runs: the clean stack's noise is not named, a fixed leak per cycle
//! is (within 20 % of its size), and growth that comes with things left alive (F6's zombie
//! streamers, F7's orphan Wolf sessions) is left to their detectors.

use super::leak::{growth_of, Resource};
use super::*;
use crate::sut::replies::{Part, ResourceSample, WolfSession};
use crate::timeline::{FrameSample, Reply};
use helix_e2e_shared::Service;
use std::sync::Arc;

/// A seeded wobble in [-1, 1].
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
    }
}

/// A figure after `k` cycles, with the wobble of the moment.
type Figure<T> = Box<dyn Fn(u64, &mut Noise) -> T>;

/// What the services hold after `k` cycles.
struct Stack {
    wolf_fds: Figure<u64>,
    wolf_mib: Figure<f64>,
    wolf_sessions: Box<dyn Fn(u64) -> usize>,
    streamers: Box<dyn Fn(u64) -> u32>,
}

fn clean() -> Stack {
    Stack {
        // A few descriptors come and go with the sessions of the moment.
        wolf_fds: Box::new(|_, n| (40.0 + 3.0 * n.next()).round() as u64),
        // Memory grows while allocators warm up, then wobbles by a few MiB (and creeps by
        // 0.1 MiB per cycle: under the threshold).
        wolf_mib: Box::new(|k, n| 30.0 + (k.min(4) as f64) * 3.0 + 0.1 * k as f64 + 4.0 * n.next()),
        wolf_sessions: Box::new(|_| 0),
        streamers: Box::new(|_| 0),
    }
}

/// A run of `cycles` cycles: tab k streams, the driver closes it, the monitor samples.
fn run(cycles: u64, stack: &Stack) -> Vec<Observation> {
    let mut noise = Noise(7);
    let mut obs = Vec::new();
    let at = |k: u64, step: f64| 1000.0 + k as f64 * 1000.0 + step;
    let sample = |service, part, processes, fds, mib: f64| ResourceSample {
        service,
        part,
        processes,
        fds: Some(fds),
        memory_bytes: Some((mib * 1024.0 * 1024.0) as u64),
        unavailable: vec![],
    };
    for k in 0..=cycles {
        let tab = k as usize;
        if k > 0 {
            obs.push(Observation { at: at(k, 0.0), event: Event::Tab { tab, probe: ProbeEvent::Frame { video: 0, sample: FrameSample::default() } } });
            obs.push(Observation { at: at(k, 100.0), event: Event::Op { name: format!("close tab {tab}"), phase: OpPhase::Start } });
            obs.push(Observation { at: at(k, 200.0), event: Event::Op { name: format!("close tab {tab}"), phase: OpPhase::Ok } });
        }
        let sessions: Vec<WolfSession> = (0..(stack.wolf_sessions)(k))
            .map(|i| WolfSession {
                app_id: "1".into(),
                client_id: i.to_string(),
                client_ip: "127.0.0.1".into(),
                client_unique_id: String::new(),
                video_width: 0,
                video_height: 0,
            })
            .collect();
        obs.push(Observation { at: at(k, 300.0), event: Event::Poll { service: "wolf".into(), reply: Arc::new(Reply::WolfSessions(sessions)) } });
        let streamers = (stack.streamers)(k);
        let samples = vec![
            sample(Service::Wolf, Part::Main, 1, (stack.wolf_fds)(k, &mut noise), (stack.wolf_mib)(k, &mut noise)),
            sample(Service::MoonlightWeb, Part::Main, 1, (25.0 + 2.0 * noise.next()).round() as u64, 20.0 + 2.0 * noise.next()),
            sample(Service::MoonlightWeb, Part::Streamers, streamers, 30 * streamers as u64, 12.0 * streamers as f64),
            sample(Service::Api, Part::Main, 1, 18, 15.0 + noise.next()),
        ];
        obs.push(Observation { at: at(k, 400.0), event: Event::Resources { samples } });
    }
    obs
}

fn f20(obs: &[Observation]) -> Option<Detection> {
    model_of(obs).detect(&Thresholds::default()).into_iter().find(|d| d.fault == FailureId::F20)
}

/// F20 as the live detectors meet it: evaluated after every sample, the first detection.
fn f20_live(obs: &[Observation]) -> Option<Detection> {
    let t = Thresholds::default();
    let mut model = Model::new(&t);
    obs.iter().find_map(|o| {
        model.ingest(o);
        matches!(o.event, Event::Resources { .. }).then(|| model.detect(&t).into_iter().find(|d| d.fault == FailureId::F20)).flatten()
    })
}

#[test]
fn the_clean_stacks_wobble_and_warm_up_are_not_a_leak() {
    let obs = run(60, &clean());
    assert_eq!(f20_live(&obs), None);
    let g = growth_of(&obs, Thresholds::default().leak_warmup_cycles).unwrap();
    assert_eq!(g.cycles, 60);
    let wolf_fds = g.series.iter().find(|s| s.label == "wolf" && s.resource == Resource::Fds).and_then(|s| s.trend).unwrap();
    assert!(wolf_fds.slope.abs() < 0.2 && wolf_fds.points == 48, "{wolf_fds:?}");
    // Every series is reported, named or not, with a point per cycle for the chart.
    assert!(g.series.iter().any(|s| s.label == "moonlight-web streamers (each)") && g.series.iter().all(|s| s.points.len() == 61));
}

#[test]
fn a_fixed_leak_per_cycle_is_named_with_its_slope_and_confidence() {
    let leak = Stack { wolf_fds: Box::new(|k, n| (40.0 + 14.0 * k as f64 + 3.0 * n.next()).round() as u64), ..clean() };
    let d = f20(&run(40, &leak)).expect("a leak of 14 descriptors per cycle is named");
    assert!(d.message.starts_with("wolf's open file descriptors grew 1"), "{}", d.message);
    let slope: f64 = d.message.split(" grew ").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|s| s.parse().ok()).unwrap();
    assert!((slope - 14.0).abs() <= 14.0 * 0.2, "{slope}");
    assert!(d.message.contains("95 % interval") && d.message.contains("R² ") && d.message.contains("28 points over cycles 13–40"), "{}", d.message);
    // The same leak in memory: 2 MiB per cycle over a 4 MiB wobble.
    let leak = Stack { wolf_mib: Box::new(|k, n| 30.0 + 2.0 * k as f64 + 4.0 * n.next()), ..clean() };
    let d = f20(&run(40, &leak)).expect("2 MiB per cycle is named");
    assert!(d.message.starts_with("wolf's resident memory grew"), "{}", d.message);
}

#[test]
fn a_step_in_memory_that_then_stays_flat_is_not_a_leak() {
    // The stand-in Wolf's memory steps up once when a round first loads it (about cycle 9 in
    // the soaks measured), then stays: the warm-up leaves the step out, and one even after it
    // is no line the points follow.
    for at in [9, 20] {
        let step = Stack { wolf_mib: Box::new(move |k, n| if k < at { 20.0 } else { 45.0 } + 0.3 * n.next()), ..clean() };
        assert_eq!(f20_live(&run(60, &step)), None, "a step at cycle {at}");
    }
}

#[test]
fn too_few_cycles_decide_nothing() {
    let leak = Stack { wolf_fds: Box::new(|k, _| 40 + 14 * k), ..clean() };
    assert_eq!(f20(&run(24, &leak)), None, "12 cycles after the warm-up are not enough");
    assert!(f20(&run(30, &leak)).is_some());
}

#[test]
fn growth_held_by_what_stays_alive_is_not_a_leak() {
    // F6: a zombie streamer per cycle; the streamers' descriptors grow 30 per cycle with them.
    let zombies = Stack { streamers: Box::new(|k| k as u32), ..clean() };
    assert_eq!(f20(&run(40, &zombies)), None);
    // F7: Wolf keeps every session; its descriptors grow with them.
    let orphans = Stack { wolf_fds: Box::new(|k, _| 40 + 6 * k), wolf_sessions: Box::new(|k| k as usize), ..clean() };
    assert_eq!(f20(&run(40, &orphans)), None);
}

#[test]
fn a_cycle_needs_a_viewer_that_streamed() {
    // Tabs closed before they showed a frame are not cycles.
    let obs: Vec<Observation> = run(30, &clean()).into_iter().filter(|o| !matches!(o.event, Event::Tab { .. })).collect();
    assert_eq!(growth_of(&obs, 5).map(|g| g.cycles), Some(0));
}

/// Streamers come and go with sessions: fewer alive at the later samples (a soak's last cycles
/// end them all) is no shrinking, and more is no leak. Their figures are per streamer.
#[test]
fn streamers_are_measured_each_not_by_how_many_are_alive() {
    let stack = Stack { streamers: Box::new(|k| if k < 40 { 4 } else { (60 - k as u32) / 5 }), ..clean() };
    let obs = run(60, &stack);
    assert_eq!(f20(&obs), None);
    let g = growth_of(&obs, Thresholds::default().leak_warmup_cycles).unwrap();
    let each = |r: Resource| g.series.iter().find(|s| s.label == "moonlight-web streamers (each)" && s.resource == r).and_then(|s| s.trend).unwrap();
    assert!(each(Resource::Fds).slope.abs() < 1e-9 && each(Resource::Memory).slope.abs() < 1e-9, "{:?}", each(Resource::Fds));
    // A moment without a streamer is no point: cycles 56–60 had none.
    assert_eq!(g.series.iter().find(|s| s.label == "moonlight-web streamers (each)" && s.resource == Resource::Fds).unwrap().points.len(), 56);
}
