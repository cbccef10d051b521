//! Unit tests of the wedged-Wolf detectors (F15, F16) and Wolf's crash (F17): each rule on the
//! smallest timeline that shows it, and the look-alikes that must not be named as it.

use super::*;
use crate::sut::replies::HttpsProbe;
use crate::timeline::{Casualty, Direction, PcStateKind, ProbeEvent, Reply};
use serde_json::json;
use std::sync::Arc;

const ADDR: &str = "127.0.0.1:47984";

fn reply(at: EpochMs, service: &str, reply: Reply) -> Observation {
    Observation { at, event: Event::Poll { service: service.into(), reply: Arc::new(reply) } }
}
fn silent(at: EpochMs) -> Observation {
    reply(at, "wolf", Reply::WolfHttps(HttpsProbe::Silent { addr: ADDR.into(), waited_ms: 3000.0 }))
}
fn answered(at: EpochMs) -> Observation {
    reply(at, "wolf", Reply::WolfHttps(HttpsProbe::Answered { addr: ADDR.into(), after_ms: 2.0 }))
}
fn refused(at: EpochMs) -> Observation {
    reply(at, "wolf", Reply::WolfHttps(HttpsProbe::NotAccepted { addr: ADDR.into(), error: "Connection refused (os error 111)".into() }))
}
fn api_up(at: EpochMs) -> Observation {
    reply(at, "wolf", Reply::WolfSessions(Vec::new()))
}
fn api_down(at: EpochMs) -> Observation {
    reply(at, "wolf", Reply::Unreachable("wolf is unreachable at /var/run/wolf/wolf.sock: connection refused".into()))
}
fn health(at: EpochMs, can_create: bool, stuck: u64) -> Observation {
    let data = json!({"stuck_thread_count": stuck, "total_thread_count": 11, "can_create_new_pipelines": can_create,
        "overall_status": if stuck > 0 { "degraded" } else { "healthy" }, "threads": []});
    reply(at, "wolf", Reply::parse("wolf", "health", data))
}
fn log(at: EpochMs, service: &str, message: &str) -> Observation {
    Observation { at, event: Event::Log { service: service.into(), level: "INFO".into(), message: message.into() } }
}
fn on_tab(at: EpochMs, probe: ProbeEvent) -> Observation {
    Observation { at, event: Event::Tab { tab: 1, probe } }
}
/// A viewer on tab 1 that opened at `at` and started "Moonlight Stream" 1 s later.
fn launching_viewer(at: EpochMs) -> Vec<Observation> {
    vec![
        on_tab(at, ProbeEvent::PageLoad { url: "http://x/session".into() }),
        on_tab(at + 10.0, ProbeEvent::WsOpen { ws: 0, url: "ws://x/moonlight/host/stream".into() }),
        on_tab(
            at + 20.0,
            ProbeEvent::WsMessage {
                ws: 0,
                dir: Direction::Sent,
                msg: json!({"AuthenticateAndInit": {"session_id": "agent-ses_a-u", "mode": "create", "client_unique_id": "helix-agent-ses_a-L-u"}}),
            },
        ),
        on_tab(at + 1000.0, ProbeEvent::WsMessage { ws: 0, dir: Direction::Received, msg: json!({"StageStarting": {"stage": "Moonlight Stream"}}) }),
    ]
}
const TIMED_OUT: &str = "[Streamer agent-ses_a-u] ERROR moonlight: launching app: Error(Connect, TimedOut)";

fn labels(obs: &mut [Observation]) -> Vec<String> {
    obs.sort_by(|a, b| a.at.total_cmp(&b.at));
    detect(obs, &Thresholds::default()).iter().map(|d| d.label()).collect()
}

#[test]
fn f15_is_the_https_port_silent_twice_while_the_api_answers_and_f12_yields_to_it() {
    let mut obs = vec![answered(1000.0), api_up(1500.0), silent(5000.0), api_up(5500.0), silent(9000.0)];
    let d = detect(&obs, &Thresholds::default());
    assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F15 https-deadlock"]);
    // The first silent probe sent its hello at 2000; the second ended at 9000.
    assert_eq!((d[0].first_symptom, d[0].decided_at), (2000.0, 9000.0));
    assert!(d[0].message.contains(ADDR) && d[0].message.contains("answered nothing in 3 s"), "{}", d[0].message);
    // A viewer that stalls at launch after the port's last answer is F15's symptom, not F12.
    obs.extend(launching_viewer(10_000.0));
    obs.push(log(21_500.0, "moonlight-web", TIMED_OUT));
    obs.push(api_up(22_000.0));
    assert_eq!(labels(&mut obs), vec!["F15 https-deadlock"]);
    let d = detect(&obs, &Thresholds::default());
    assert_eq!(d[0].tab, Some(1));
    assert!(d[0].message.contains("stalled in \"Moonlight Stream\"") && d[0].message.contains("Error(Connect, TimedOut)"), "{}", d[0].message);
    // One silent probe is not enough.
    assert!(labels(&mut [answered(1000.0), silent(5000.0), api_up(5500.0)]).is_empty());
}

#[test]
fn f15_look_alikes_a_slow_port_that_answers_and_a_dead_wolf_are_not_named_as_it() {
    // F12: the same stall and the same words, but the port answers between silent probes.
    let mut slow = vec![answered(1000.0), silent(5000.0), api_up(5500.0), answered(7000.0), silent(11_000.0), api_up(11_500.0)];
    slow.extend(launching_viewer(3000.0));
    slow.push(log(14_000.0, "moonlight-web", TIMED_OUT));
    assert_eq!(labels(&mut slow), vec!["F12 slow-launch"]);
    // D2: the port refuses and the API is gone.
    let mut dead = vec![answered(1000.0), api_up(1500.0), refused(2000.0), api_down(2000.0), api_down(2600.0), refused(3100.0), api_down(3200.0)];
    assert_eq!(labels(&mut dead), vec!["D2 service-died wolf"]);
    // A Wolf whose API is silent as well is not this rule's to name.
    let mut both = vec![answered(1000.0), silent(5000.0), api_down(5500.0), silent(9000.0)];
    assert!(!labels(&mut both).contains(&"F15 https-deadlock".to_string()));
    // Probes while the driver restarts Wolf do not count.
    let op = |at: EpochMs, phase: OpPhase| Observation { at, event: Event::Op { name: "restart wolf".into(), phase } };
    let mut restart = vec![op(1500.0, OpPhase::Start), silent(5000.0), api_up(5500.0), silent(9000.0), op(9100.0, OpPhase::Ok)];
    assert!(labels(&mut restart).is_empty());
}

#[test]
fn f16_needs_consecutive_polls_of_wolf_saying_it_cannot_create_pipelines() {
    let mut obs = vec![health(1000.0, true, 0), health(1500.0, false, 2), health(2000.0, false, 3)];
    let d = detect(&obs, &Thresholds::default());
    assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F16 pipelines-blocked"]);
    assert_eq!((d[0].first_symptom, d[0].decided_at), (1500.0, 2000.0));
    assert!(d[0].message.contains("3/11 threads stuck (27 %"), "a minority, quoted: {}", d[0].message);
    // One poll catching a pipeline being created is not it.
    obs[2] = health(2000.0, true, 0);
    assert!(labels(&mut obs).is_empty());
    // Stuck threads alone (F9's frozen producer) are not it either.
    assert!(labels(&mut [health(1000.0, true, 1), health(1500.0, true, 1), health(2000.0, true, 1)]).is_empty());
}

/// A viewer on tab 1 connected at 1500 whose stamped picture moves for a second and then stands
/// still from 2800 (the F9 test's timeline).
fn freezing_viewer() -> Vec<Observation> {
    let sample = |presented: u64, counter: u16| super::tests::frame_sample(presented, Some(counter));
    let mut obs = launching_viewer(0.0);
    obs.push(on_tab(1100.0, ProbeEvent::PcCreated { pc: 0, config: json!({}) }));
    obs.push(on_tab(1110.0, ProbeEvent::Link { ws: 0, pc: 0 }));
    obs.push(on_tab(1500.0, ProbeEvent::PcState { pc: 0, which: PcStateKind::Connection, state: "connected".into() }));
    obs.push(on_tab(1600.0, ProbeEvent::VideoLink { pc: 0, video: 0 }));
    for i in 0..8u64 {
        let counter = if i < 5 { 6 * i as u16 } else { 24 };
        obs.push(on_tab(2000.0 + 200.0 * i as f64, ProbeEvent::Frame { video: 0, sample: sample(1 + 6 * i, counter) }));
    }
    obs
}

#[test]
fn a_frozen_picture_is_f16_when_wolf_says_it_cannot_create_pipelines_and_f9_when_it_says_it_can() {
    // The lost lock stopped the producer: Wolf says so before the freeze is proven.
    let mut locked = freezing_viewer();
    locked.extend([health(2900.0, false, 2), health(3400.0, false, 2)]);
    assert_eq!(labels(&mut locked), vec!["F16 pipelines-blocked"]);
    // F9's frozen producer: Wolf can still create pipelines; F9 is decided at that poll.
    let mut frozen = freezing_viewer();
    frozen.extend([health(1000.0, true, 0), health(3400.0, true, 1)]);
    let d = detect(&frozen, &Thresholds::default());
    assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F9 frozen-video"]);
    assert_eq!((d[0].first_symptom, d[0].decided_at), (2800.0, 3400.0));
    // Until Wolf's word after the freeze is in, a Wolf with a health endpoint leaves F9 open.
    let mut pending = freezing_viewer();
    pending.push(health(1000.0, true, 0));
    assert!(labels(&mut pending).is_empty());
}

#[test]
fn f17_is_wolfs_death_after_its_crash_line_and_no_d2_is_named_beside_it() {
    let died = |at: EpochMs| Observation {
        at,
        event: Event::Died { what: Casualty::Service { service: "wolf".into() }, detail: "wolf (pid 7) signal: 6 (SIGABRT) (core dumped)".into() },
    };
    let crash = log(1000.0, "wolf", "ERROR | Unhandled exception: The state of the promise has already been set");
    let mut obs = vec![crash.clone(), died(1150.0)];
    let d = detect(&obs, &Thresholds::default());
    assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F17 audio-crash"]);
    assert_eq!((d[0].first_symptom, d[0].decided_at), (1000.0, 1150.0));
    assert!(d[0].message.contains("The state of the promise has already been set") && d[0].message.contains("SIGABRT"), "{}", d[0].message);
    // Like a death, it explains what follows: the viewers' streams ending with it.
    obs.extend([log(1200.0, "wolf", "[LOBBY] Session 1 joining lobby L"), log(1300.0, "moonlight-web", "chunk too short")]);
    obs.extend([log(1400.0, "moonlight-web", "chunk too short"), log(1500.0, "moonlight-web", "chunk too short")]);
    assert_eq!(labels(&mut obs), vec!["F17 audio-crash"]);
    // The death's evidence may come first (the reaper is quicker than the log follower).
    assert_eq!(labels(&mut [died(900.0), crash.clone()]), vec!["F17 audio-crash"]);
    // Without the line it is a plain death; the line without a death is nothing yet.
    assert_eq!(labels(&mut [died(1150.0)]), vec!["D2 service-died wolf"]);
    assert!(labels(&mut [crash.clone(), api_up(1500.0)]).is_empty());
    // A Wolf death long after the line is another death.
    assert_eq!(labels(&mut [crash, died(9000.0)]), vec!["D2 service-died wolf"]);
}

#[test]
fn a_streamer_waiting_for_a_silent_wolf_to_answer_its_cancel_is_no_zombie_until_its_deadline() {
    // A process named like a streamer stands for it (the rule reads its command line).
    let mut streamer = std::process::Command::new("sh").args(["-c", "sleep 30; :", "__streamer"]).spawn().unwrap();
    let pid = streamer.id();
    // Until `sh` has exec'd, the child's command line is still this test binary's.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.contains("__streamer")) {
        assert!(std::time::Instant::now() < deadline, "the stand-in streamer process never exec'd");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let listed = |at: EpochMs| {
        let s = json!([{"session_id": "agent-ses_k-2", "client_unique_id": "helix-agent-ses_k-L-2", "mode": "create", "has_websocket": true, "streamer_pid": pid, "streamer_alive": true}]);
        reply(at, "moonlight-web", Reply::parse("moonlight-web", "sessions", s))
    };
    let none = |at: EpochMs| reply(at, "moonlight-web", Reply::MlwSessions(Vec::new()));
    let line =
        |at: EpochMs, text: &str| log(at, "moonlight-web", &format!("[Streamer agent-ses_k-2] 2026-12-02T14:11:16Z  INFO streamer{{pid={pid}}}: stop: {text}"));
    let base = || vec![listed(1000.0), line(1600.0, "cancelling the Wolf session 17"), none(1500.0), none(2000.0), none(2500.0), none(3000.0)];
    // F15's look-alike: the session left the list, its streamer still runs, waiting on Wolf.
    assert!(labels(&mut base()).is_empty());
    // Once the wait ended, a streamer still running is a zombie.
    let mut ended = base();
    ended.push(line(1900.0, "cancel timed out"));
    let named = labels(&mut ended);
    let _ = streamer.kill();
    let _ = streamer.wait();
    assert_eq!(named, vec!["F6 zombie-streamer"]);
}
