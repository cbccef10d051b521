//! The detectors' unit tests: each rule on the smallest timeline that shows it, and the healthy
//! timelines that must not satisfy it.
//!
//! Why one file of over 400 lines: it is test code only, one case per rule and edge; they share
//! the builders at the top (a viewer, a log line, a poll).

use super::connect::BIND_GRACE_MS;
use super::*;
use crate::timeline::{Direction, ProbeEvent};
use serde_json::json;

fn log(at: EpochMs, service: &str, message: &str) -> Observation {
    Observation { at, event: Event::Log { service: service.into(), level: "INFO".into(), message: message.into() } }
}
fn poll(at: EpochMs, service: &str, what: &str, data: serde_json::Value) -> Observation {
    Observation { at, event: Event::Poll { service: service.into(), reply: std::sync::Arc::new(crate::timeline::Reply::parse(service, what, data)) } }
}
fn tab(at: EpochMs, probe: ProbeEvent) -> Observation {
    Observation { at, event: Event::Tab { tab: 1, probe } }
}
fn received(at: EpochMs, msg: serde_json::Value) -> Observation {
    tab(at, ProbeEvent::WsMessage { ws: 0, dir: Direction::Received, msg })
}
/// A viewer of `ses` on tab 1 that got as far as WebRTC negotiation at t=1000.
pub(super) fn viewer(ses: &str) -> Vec<Observation> {
    vec![
        tab(0.0, ProbeEvent::PageLoad { url: "http://x/session".into() }),
        tab(10.0, ProbeEvent::WsOpen { ws: 0, url: "ws://x/moonlight/host/stream".into() }),
        tab(
            20.0,
            ProbeEvent::WsMessage {
                ws: 0,
                dir: Direction::Sent,
                msg: json!({"AuthenticateAndInit": {"session_id": format!("agent-{ses}-u"), "mode": "create", "client_unique_id": format!("helix-agent-{ses}-L-u")}}),
            },
        ),
        received(1000.0, json!({"StageStarting": {"stage": "WebRTC Peer Negotiation"}})),
    ]
}
/// A 320x180 picture as the probe samples it: grey, with the stand-in's stamp (tag 7, this
/// counter) when there is one; its hash never changes (only the stamp moves).
pub(super) fn frame_sample(presented: u64, stamp: Option<u16>) -> crate::timeline::FrameSample {
    use crate::frames::stamp::{draw, Stamp};
    use crate::timeline::{LUMA_H, LUMA_W};
    use base64::Engine;
    let mut luma = vec![128u8; LUMA_W * LUMA_H];
    if let Some(counter) = stamp {
        draw(&mut luma, LUMA_W, LUMA_H, Stamp { tag: 7, counter });
    }
    crate::timeline::FrameSample {
        video_width: 320,
        video_height: 180,
        presented,
        mean_luma: 120.0,
        hash: "same".into(),
        luma: base64::engine::general_purpose::STANDARD.encode(&luma),
        stamp: None,
    }
}
fn lobby(sessions: &[&str]) -> serde_json::Value {
    json!([{"id": "L", "name": "Agent", "runner": {"env": ["HELIX_SESSION_ID=ses_a"]}, "connected_sessions": sessions}])
}

#[test]
fn f2_names_a_viewer_whose_ice_never_connects_and_cites_the_bind_failure() {
    let mut obs = viewer("ses_a");
    obs.push(log(1100.0, "moonlight-web", "[Streamer x] WARN webrtc_ice: could not listen udp 198.51.100.2: no port available"));
    obs.push(log(1500.0, "moonlight-web", "still going"));
    let d = detect(&obs, &Thresholds::default());
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].label(), "F2 webrtc-ports-exhausted");
    assert_eq!((d[0].first_symptom, d[0].decided_at), (1100.0, 1400.0));
    assert!(d[0].message.contains("could not listen udp 198.51.100.2"), "{}", d[0].message);
}

#[test]
fn f2_gives_a_bind_failure_to_the_viewer_whose_session_moonlight_web_names() {
    // Tab 1 (ses_a) and tab 2 (ses_b) negotiate at once; only ses_b's streamer failed to bind.
    // The look-alike: tab 1 started first and its ICE is slow, but the failure is not its own.
    let mut obs = viewer("ses_a");
    obs.extend(viewer("ses_b").into_iter().map(|mut o| {
        if let Event::Tab { tab, .. } = &mut o.event {
            *tab = 2;
        }
        o.at += 5.0;
        o
    }));
    obs.sort_by(|a, b| a.at.total_cmp(&b.at));
    obs.push(log(1100.0, "moonlight-web", "[Streamer agent-ses_b-u] WARN webrtc_ice: could not listen udp 198.51.100.2: no port available"));
    obs.push(log(1500.0, "moonlight-web", "still going"));
    let d = detect(&obs, &Thresholds::default());
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].label(), d[0].tab), ("F2 webrtc-ports-exhausted".to_string(), Some(2)), "{}", d[0].message);
}

#[test]
fn f2_decides_at_once_when_a_streamer_binds_none_of_the_addresses_streamers_offer() {
    // An earlier viewer (tab 2) was offered host candidates on .2 and .3 (and a srflx one,
    // which does not count).
    let offered = |at, candidate: &str| Observation {
        at,
        event: Event::Tab { tab: 2, probe: ProbeEvent::Candidate { pc: 9, local: false, candidate: candidate.into() } },
    };
    let mut base = vec![
        offered(100.0, "candidate:1 1 udp 2130706431 198.51.100.2 40000 typ host"),
        offered(101.0, "candidate:2 1 udp 2130706431 198.51.100.3 40000 typ host"),
        offered(102.0, "candidate:3 1 udp 1694498815 203.0.113.9 40000 typ srflx raddr 0.0.0.0 rport 0"),
    ];
    base.extend(viewer("ses_a"));
    let fail = |at, addr: &str| log(at, "moonlight-web", &format!("[Streamer s2] WARN webrtc_ice: could not listen udp {addr}: invalid port number"));
    // Both offered addresses failed: no grace, the second line is the decision.
    let mut obs = base.clone();
    obs.extend([fail(1100.0, "198.51.100.2"), fail(1101.0, "198.51.100.3"), log(1150.0, "moonlight-web", "still going")]);
    let d = detect(&obs, &Thresholds::default());
    assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F2 webrtc-ports-exhausted"]);
    assert_eq!((d[0].first_symptom, d[0].decided_at), (1100.0, 1101.0));
    assert!(d[0].message.contains("bind none of the addresses"), "{}", d[0].message);
    // One offered address still bound: the viewer may connect on it, so the grace applies.
    let mut partial = base.clone();
    partial.extend([fail(1100.0, "198.51.100.2"), log(1150.0, "moonlight-web", "still going")]);
    assert!(detect(&partial, &Thresholds::default()).is_empty(), "50 ms after a partial bind failure is too early");
    partial.push(log(1500.0, "moonlight-web", "later"));
    assert_eq!(detect(&partial, &Thresholds::default())[0].decided_at, 1100.0 + BIND_GRACE_MS);
    // Another streamer's failures do not add up with this one's.
    let mut two = base;
    two.extend([fail(1100.0, "198.51.100.2"), log(1101.0, "moonlight-web", "[Streamer s3] WARN webrtc_ice: could not listen udp 198.51.100.3: x")]);
    two.push(log(1150.0, "moonlight-web", "still going"));
    assert!(detect(&two, &Thresholds::default()).is_empty());
}

#[test]
fn f2_ignores_ipv6_link_local_noise_and_a_viewer_that_connects() {
    let mut obs = viewer("ses_a");
    obs.push(log(1100.0, "moonlight-web", "could not listen udp fe80::1: invalid port number"));
    obs.push(tab(1200.0, ProbeEvent::PcCreated { pc: 0, config: json!({}) }));
    obs.push(tab(1200.0, ProbeEvent::Link { ws: 0, pc: 0 }));
    obs.push(tab(1500.0, ProbeEvent::PcState { pc: 0, which: crate::timeline::PcStateKind::Connection, state: "connected".into() }));
    obs.push(log(20_000.0, "moonlight-web", "later"));
    assert!(detect(&obs, &Thresholds::default()).is_empty());
}

#[test]
fn f3_needs_consecutive_polls_missing_a_logged_join() {
    let sessions = json!([{"app_id": "1", "client_id": "42", "client_ip": "127.0.0.1", "client_unique_id": "helix-agent-ses_a-L-u"}]);
    let mut obs = vec![
        log(1000.0, "wolf", "[LOBBY] Session 42 joining lobby L"),
        poll(1050.0, "wolf", "sessions", sessions.clone()),
        poll(1060.0, "wolf", "lobbies", lobby(&[])),
    ];
    assert!(detect(&obs, &Thresholds::default()).is_empty(), "a poll racing the join is no evidence");
    obs.push(poll(1500.0, "wolf", "sessions", sessions.clone()));
    obs.push(poll(1510.0, "wolf", "lobbies", lobby(&[])));
    assert!(detect(&obs, &Thresholds::default()).is_empty(), "one late poll is not enough");
    obs.push(poll(2000.0, "wolf", "sessions", sessions.clone()));
    obs.push(poll(2010.0, "wolf", "lobbies", lobby(&[])));
    let d = detect(&obs, &Thresholds::default());
    assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F3 join-not-counted"]);
    assert_eq!((d[0].first_symptom, d[0].decided_at), (1510.0, 2010.0));
    // Counted: nothing to say.
    let ok = vec![
        log(1000.0, "wolf", "[LOBBY] Session 42 joining lobby L"),
        poll(1500.0, "wolf", "sessions", sessions.clone()),
        poll(1510.0, "wolf", "lobbies", lobby(&["42"])),
        poll(2000.0, "wolf", "sessions", sessions),
        poll(2010.0, "wolf", "lobbies", lobby(&["42"])),
    ];
    assert!(detect(&ok, &Thresholds::default()).is_empty());
}

/// Tab 1's viewer of ses_a, connected at 2000 as Wolf session 42, which joined lobby L at 3000.
fn joined_lobby_l() -> Vec<Observation> {
    let mut obs = viewer("ses_a");
    obs.push(received(2000.0, json!({"ConnectionComplete": {"capabilities": {"touch": false}, "width": 320, "height": 180, "client_id": "42"}})));
    obs.push(log(3000.0, "wolf", "[LOBBY] Session 42 joining lobby L"));
    obs
}

#[test]
fn f4_is_an_enet_drop_of_a_streaming_viewer_not_one_the_driver_closed() {
    let mut obs = joined_lobby_l();
    obs.push(log(7000.0, "wolf", "[ENET] disconnected client: 127.0.0.1:5000"));
    obs.push(log(7001.0, "wolf", "[LOBBY] Moonlight stream 42 over, leaving lobby L"));
    obs.push(received(7100.0, json!("PeerDisconnect")));
    let d = detect(&obs, &Thresholds::default());
    assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F4 control-stream-timeout"]);
    assert!(d[0].message.contains("4.0 s after it joined"), "{}", d[0].message);
    // The same lines after the driver started closing the tab are the driver's doing.
    obs.insert(5, Observation { at: 6900.0, event: Event::Op { name: "close tab 1".into(), phase: OpPhase::Start } });
    obs.sort_by(|a, b| a.at.total_cmp(&b.at));
    assert!(detect(&obs, &Thresholds::default()).is_empty());
}

#[test]
fn f4_is_not_a_control_stream_ended_by_a_streamer_whose_peer_was_lost_first() {
    // Seen on a 10-minute hold: every tab's media path died at once (the browser's peer went
    // `disconnected` first), each streamer stopped on it, and Wolf logged the control peers'
    // ends 7 s later. The control stream ended because the streamer stopped, not the reverse.
    let pc_state = |at, state: &str| tab(at, ProbeEvent::PcState { pc: 0, which: crate::timeline::PcStateKind::Connection, state: state.into() });
    let mut obs = joined_lobby_l();
    obs.push(tab(1500.0, ProbeEvent::PcCreated { pc: 0, config: json!({}) }));
    obs.push(tab(1500.0, ProbeEvent::Link { ws: 0, pc: 0 }));
    obs.push(pc_state(1900.0, "connected"));
    obs.push(pc_state(6000.0, "disconnected"));
    obs.push(log(7000.0, "wolf", "[ENET] disconnected client: 127.0.0.1:5000"));
    obs.push(log(7001.0, "wolf", "[LOBBY] Moonlight stream 42 over, leaving lobby L"));
    obs.push(log(7500.0, "wolf", "later"));
    obs.sort_by(|a, b| a.at.total_cmp(&b.at));
    assert!(detect(&obs, &Thresholds::default()).iter().all(|d| d.fault != FailureId::F4), "{:?}", detect(&obs, &Thresholds::default()));
    // Still connected when Wolf dropped the peer: F4.
    let mut live = obs.clone();
    live.retain(|o| !matches!(&o.event, Event::Tab { probe: ProbeEvent::PcState { state, .. }, .. } if state == "disconnected"));
    live.push(pc_state(7200.0, "disconnected"));
    assert_eq!(detect(&live, &Thresholds::default()).iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F4 control-stream-timeout"]);
}

#[test]
fn f4_pairs_each_leave_with_its_own_disconnect_when_tabs_close_together() {
    // Another tab's disconnect at 6700 (nothing of ours), then ours at 7000 once its close
    // began at 6950: the leave at 7001 belongs to the 7000 line, which the close excuses.
    let mut obs = joined_lobby_l();
    obs.push(log(6700.0, "wolf", "[ENET] disconnected client: 127.0.0.1:5001"));
    obs.push(Observation { at: 6950.0, event: Event::Op { name: "close tab 1".into(), phase: OpPhase::Start } });
    obs.push(log(7000.0, "wolf", "[ENET] disconnected client: 127.0.0.1:5000"));
    obs.push(log(7001.0, "wolf", "[LOBBY] Moonlight stream 42 over, leaving lobby L"));
    assert!(detect(&obs, &Thresholds::default()).is_empty(), "{:?}", detect(&obs, &Thresholds::default()));
}

#[test]
fn f4_leaves_a_leave_the_driver_caused_to_the_driver_even_after_another_tabs_disconnect() {
    // Seen in a default suite: another tab's disconnect at 6700 (its close), then our own close at
    // 7060 and its cascade's leave at 7077 — with no disconnect line of ours in between.
    let mut obs = joined_lobby_l();
    obs.push(log(6700.0, "wolf", "[ENET] disconnected client: 127.0.0.1:5001"));
    obs.push(Observation { at: 7060.0, event: Event::Op { name: "close tab 1".into(), phase: OpPhase::Start } });
    obs.push(log(7077.0, "wolf", "[LOBBY] Moonlight stream 42 over, leaving lobby L"));
    assert!(detect(&obs, &Thresholds::default()).is_empty(), "{:?}", detect(&obs, &Thresholds::default()));
    // Without the close, the same leave after a disconnect is F4.
    obs.retain(|o| !matches!(o.event, Event::Op { .. }));
    assert_eq!(detect(&obs, &Thresholds::default()).iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F4 control-stream-timeout"]);
}

fn mlw(at: EpochMs, mode: &str, has_websocket: bool) -> Observation {
    poll(
        at,
        "moonlight-web",
        "sessions",
        json!([{"session_id": "agent-ses_a-u", "client_unique_id": "helix-agent-ses_a-L-u", "mode": mode, "has_websocket": has_websocket, "streamer_pid": null, "streamer_alive": true}]),
    )
}

#[test]
fn f5_waits_stuck_secs_unless_the_streamer_is_seen_running_here() {
    // The quick two-poll rule for create sessions needs the streamer's pid alive on this machine
    // (checked in the e2e detection runs); without a pid only `stuck_secs` counts, as for
    // keepalive sessions, which live without a socket anyway.
    let t = Thresholds { stuck_secs: 4.0, ..Thresholds::default() };
    for mode in ["create", "keepalive"] {
        let mut obs: Vec<_> = (0..8).map(|i| mlw(1000.0 + 500.0 * i as f64, mode, false)).collect();
        assert!(detect(&obs, &t).is_empty(), "{mode}: 3.5 s is not 4");
        obs.push(mlw(5000.0, mode, false));
        let d = detect(&obs, &t);
        assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F5 stuck-session"], "{mode}");
        assert_eq!((d[0].first_symptom, d[0].decided_at), (1000.0, 5000.0));
    }
}

/// A viewer on tab `n` whose session_id is `sid`, streaming from t=2000 (`ConnectionComplete`).
fn streaming_viewer(n: TabId, sid: &str, at: EpochMs) -> Vec<Observation> {
    let ev = |at: EpochMs, probe| Observation { at, event: Event::Tab { tab: n, probe } };
    vec![
        ev(at, ProbeEvent::PageLoad { url: "http://x/session".into() }),
        ev(at + 10.0, ProbeEvent::WsOpen { ws: 0, url: "ws://x/moonlight/host/stream".into() }),
        ev(
            at + 20.0,
            ProbeEvent::WsMessage {
                ws: 0,
                dir: Direction::Sent,
                msg: json!({"AuthenticateAndInit": {"session_id": sid, "mode": "create", "client_unique_id": format!("helix-agent-ses_a-L-{n}")}}),
            },
        ),
        ev(
            at + 1000.0,
            ProbeEvent::WsMessage {
                ws: 0,
                dir: Direction::Received,
                msg: json!({"ConnectionComplete": {"capabilities": {}, "width": 1, "height": 1, "client_id": format!("{n}")}}),
            },
        ),
    ]
}

#[test]
fn f13_decides_on_the_first_busy_answer_when_another_tab_streams_with_that_session_id() {
    let mut obs = streaming_viewer(1, "agent-ses_a-shared", 0.0);
    obs.extend(streaming_viewer(2, "agent-ses_a-shared", 3000.0).into_iter().take(3));
    obs.push(Observation {
        at: 3500.0,
        event: Event::Tab { tab: 2, probe: ProbeEvent::WsMessage { ws: 0, dir: Direction::Received, msg: json!("AlreadyStreaming") } },
    });
    let d = detect(&obs, &Thresholds::default());
    assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F13 already-streaming-loop"]);
    assert_eq!((d[0].tab, d[0].first_symptom, d[0].decided_at), (Some(2), 3500.0, 3500.0));
    assert!(d[0].message.contains("tab 1"), "{}", d[0].message);
    // Not while the holder's tab is being closed: its session may still be going away.
    obs.push(Observation { at: 3200.0, event: Event::Op { name: "close tab 1".into(), phase: OpPhase::Start } });
    obs.sort_by(|a, b| a.at.total_cmp(&b.at));
    assert!(detect(&obs, &Thresholds::default()).is_empty());
}

#[test]
fn f9_takes_new_frames_with_one_stamp_as_proof_but_an_unstamped_still_picture_must_last() {
    use crate::timeline::PcStateKind;
    let sample = frame_sample;
    let frames = |stamped: bool| {
        let mut obs = viewer("ses_a");
        let ev = |at: EpochMs, probe| Observation { at, event: Event::Tab { tab: 1, probe } };
        obs.push(ev(1100.0, ProbeEvent::PcCreated { pc: 0, config: json!({}) }));
        obs.push(ev(1110.0, ProbeEvent::Link { ws: 0, pc: 0 }));
        obs.push(ev(1500.0, ProbeEvent::PcState { pc: 0, which: PcStateKind::Connection, state: "connected".into() }));
        obs.push(ev(1600.0, ProbeEvent::VideoLink { pc: 0, video: 0 }));
        // Moving for a second, then 6 frames per 200 ms sample with one picture.
        for i in 0..5u64 {
            obs.push(ev(2000.0 + 200.0 * i as f64, ProbeEvent::Frame { video: 0, sample: sample(1 + 6 * i, stamped.then_some(6 * i as u16)).clone() }));
        }
        for i in 5..8u64 {
            let mut s = sample(1 + 6 * i, stamped.then_some(24));
            if !stamped {
                s.hash = "frozen".into();
            }
            obs.push(ev(2000.0 + 200.0 * i as f64, ProbeEvent::Frame { video: 0, sample: s }));
        }
        obs
    };
    let d = detect(&frames(true), &Thresholds::default());
    assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F9 frozen-video"]);
    // Counter 24 first showed at 2800; 12 more frames with it by 3200.
    assert_eq!((d[0].first_symptom, d[0].decided_at), (2800.0, 3200.0));
    let more = Thresholds { freeze_frames: 100, ..Thresholds::default() };
    assert!(detect(&frames(true), &more).is_empty(), "12 frames are not 100, and 0.4 s is not freeze_secs");
    assert!(detect(&frames(false), &Thresholds::default()).is_empty(), "a still picture without a stamp needs freeze_secs");
}

#[test]
fn f10_decides_when_a_viewer_fails_to_join_while_helix_believes_in_a_lost_lobby() {
    // Wolf restarted and lists no lobby; Helix still names L for ses_a.
    let mut obs = streaming_viewer(1, "agent-ses_a-u", 0.0);
    let believe =
        |at: EpochMs| vec![poll(at - 5.0, "wolf", "lobbies", json!([])), poll(at, "api", "session-lobbies", json!([{"session": "ses_a", "lobby_id": "L"}]))];
    obs.extend(believe(3000.0));
    obs.extend(believe(3500.0));
    let t = Thresholds::default();
    assert!(detect(&obs, &t).is_empty(), "a belief alone is not a failure before ghost_secs: Helix may recreate the lobby");
    // The evidence is the auto-join's HTTP answer: the real viewer logs only an error object.
    let text = |at: EpochMs, body: &str| Observation {
        at,
        event: Event::Tab {
            tab: 1,
            probe: ProbeEvent::Http {
                method: "POST".into(),
                path: "/api/v1/external-agents/ses_a/auto-join-lobby".into(),
                status: Some(500),
                body: Some(body.into()),
                error: None,
            },
        },
    };
    let logged = Observation {
        at: 3550.0,
        event: Event::Tab {
            tab: 1,
            probe: ProbeEvent::Console {
                level: "error".into(),
                text: "[AUTO-JOIN] Error calling auto-join endpoint: AxiosError: Request failed with status code 500".into(),
            },
        },
    };
    obs.push(logged);
    // Helix not finding the viewer's stream yet is not about the lobby.
    obs.push(text(3600.0, "{\"error\":\"failed to join lobby: Wolf UI session not found - client may not have connected yet\"}"));
    obs.extend(believe(4000.0));
    assert!(detect(&obs, &t).is_empty());
    obs.push(text(4100.0, "{\"error\":\"failed to join lobby: Lobby or session not found\"}"));
    assert!(detect(&obs, &t).is_empty(), "decided only once a later poll shows Helix still believing");
    obs.extend(believe(4500.0));
    let d = detect(&obs, &t);
    assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F10 restart-ghost"]);
    assert_eq!((d[0].tab, d[0].first_symptom, d[0].decided_at), (Some(1), 4100.0, 4500.0));
}

#[test]
fn f11_counts_lines_in_a_window_and_f13_counts_busy_answers() {
    let obs = vec![
        log(0.0, "moonlight-web", "chunk too short"),
        log(20_000.0, "moonlight-web", "chunk too short"),
        log(21_000.0, "moonlight-web", "chunk too short"),
    ];
    assert!(detect(&obs, &Thresholds::default()).is_empty(), "3 lines over 21 s is not 3 in 10 s");
    let mut obs = obs;
    obs.push(log(22_000.0, "moonlight-web", "chunk too short"));
    assert_eq!(detect(&obs, &Thresholds::default())[0].label(), "F11 sctp-corruption");

    let mut obs = viewer("ses_a");
    obs.push(received(1500.0, json!("AlreadyStreaming")));
    assert!(detect(&obs, &Thresholds::default()).is_empty(), "one busy answer is a retry, not a loop");
    obs.push(tab(3500.0, ProbeEvent::WsOpen { ws: 1, url: "ws://x/moonlight/host/stream".into() }));
    obs.push(tab(
        3510.0,
        ProbeEvent::WsMessage {
            ws: 1,
            dir: Direction::Sent,
            msg: json!({"AuthenticateAndInit": {"session_id": "agent-ses_a-u", "mode": "create", "client_unique_id": "helix-agent-ses_a-L-u"}}),
        },
    ));
    obs.push(tab(3600.0, ProbeEvent::WsMessage { ws: 1, dir: Direction::Received, msg: json!("AlreadyStreaming") }));
    let d = detect(&obs, &Thresholds::default());
    assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F13 already-streaming-loop"]);
}

#[test]
fn f7_lets_an_ordinary_teardown_pass_two_polls_but_not_an_orphan_that_stays() {
    // moonlight-web dropped the entry; Wolf keeps the session while the old streamer's cascade
    // flushes for 0.5 s before its `/cancel` — two polls can see that, and it is not F7.
    let wolf = |at: EpochMs, present: bool| {
        poll(
            at,
            "wolf",
            "sessions",
            if present {
                json!([{"app_id": "1", "client_id": "42", "client_ip": "127.0.0.1", "client_unique_id": "helix-agent-ses_a-L-u"}])
            } else {
                json!([])
            },
        )
    };
    let empty_mlw = |at: EpochMs| poll(at, "moonlight-web", "sessions", json!([]));
    let t = Thresholds::default();
    let teardown: Vec<Observation> = vec![empty_mlw(0.0), wolf(1.0, true), empty_mlw(500.0), wolf(501.0, true), empty_mlw(1000.0), wolf(1001.0, false)];
    assert!(detect(&teardown, &t).is_empty(), "a 0.5 s teardown seen by two polls");
    let mut stays = teardown[..4].to_vec();
    stays.extend([empty_mlw(1000.0), wolf(1001.0, true), empty_mlw(1500.0), wolf(1501.0, true)]);
    let d = detect(&stays, &t);
    assert_eq!(d.iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["F7 lobby-mismatch"]);
    assert_eq!((d[0].first_symptom, d[0].decided_at), (1.0, 1501.0));
}
