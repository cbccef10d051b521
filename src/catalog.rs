//! The failure catalog, once: every failure the driver can name, with its detector's name, how
//! the stand-in or the harness brings it about, and what it means.
//!
//! Everything else that lists failures is checked against this table by the tests at the
//! bottom: the stand-in's fault switches (`refstack::faults::KNOWN`), the detection matrix's
//! rows (`matrix::CASES`), the names detectors give their detections, and the README's two
//! tables. A switch without a detector or a matrix row, or a detector the README does not
//! describe, fails the build's tests instead of drifting.

/// How a failure is brought about for the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A fault switch of the stand-in (`--fault NAME[=VALUE]`).
    Switch(&'static str),
    /// The harness kills a process (`kill:<what>` in the matrix).
    Kill(&'static str),
    /// Nothing brings it about on purpose (observed on real deployments only).
    None,
}

/// A failure's id: `F1` … `F21` (the stack's failures), `B1` … (the browser's), `D1` … (deaths).
/// Serialized as its name (`"F2"`), which is how summaries, timelines and the matrix write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum FailureId {
    F1,
    F2,
    F3,
    F4,
    F5,
    F6,
    F7,
    F8,
    F9,
    F10,
    F11,
    F12,
    F13,
    F14,
    F15,
    F16,
    F17,
    F18,
    F19,
    F20,
    F21,
    B1,
    B2,
    B3,
    D1,
    D2,
}

impl FailureId {
    pub const ALL: [FailureId; 26] = {
        use FailureId::*;
        [F1, F2, F3, F4, F5, F6, F7, F8, F9, F10, F11, F12, F13, F14, F15, F16, F17, F18, F19, F20, F21, B1, B2, B3, D1, D2]
    };

    /// This id's catalog entry (every id has exactly one; a test holds it).
    pub fn entry(self) -> &'static Entry {
        CATALOG.iter().find(|e| e.id == self).expect("every FailureId has a catalog entry")
    }

    /// The detector's name, e.g. `webrtc-ports-exhausted`.
    pub fn name(self) -> &'static str {
        self.entry().name
    }

    /// A death (B…, D…, and F17: Wolf's death named for its cause): the rule of
    /// `verdict/detectors/deaths.rs` lets it explain what follows.
    pub fn is_death(self) -> bool {
        matches!(self, FailureId::F17 | FailureId::B1 | FailureId::B2 | FailureId::B3 | FailureId::D1 | FailureId::D2)
    }
}

impl std::fmt::Display for FailureId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The variant's name is the id.
        std::fmt::Debug::fmt(self, f)
    }
}

impl std::str::FromStr for FailureId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FailureId::ALL.into_iter().find(|id| id.to_string() == s).ok_or_else(|| format!("no failure {s:?} in the catalog"))
    }
}

/// One failure of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub id: FailureId,
    /// The detector's name, e.g. `webrtc-ports-exhausted` (`D2` adds the service to it).
    pub name: &'static str,
    pub causes: &'static [Cause],
    pub summary: &'static str,
}

impl Entry {
    /// Whether a detection's name is this entry's (D2 names its service after it).
    pub fn names(&self, name: &str) -> bool {
        name == self.name || name.strip_prefix(self.name).is_some_and(|rest| rest.starts_with(' '))
    }
}

use Cause::{Kill, Switch};

pub const CATALOG: &[Entry] = &[
    Entry {
        id: FailureId::F1,
        name: "treated-as-resume",
        causes: &[Switch("cert-subject-collision")],
        summary: "a new viewer was taken for a resume: Wolf logged an unregistered resume and the tab got PeerDisconnect before ConnectionComplete",
    },
    Entry {
        id: FailureId::F2,
        name: "webrtc-ports-exhausted",
        causes: &[Switch("webrtc-port-range")],
        summary: "a viewer's ICE never connected (the streamer could not bind WebRTC ports)",
    },
    Entry {
        id: FailureId::F3,
        name: "join-not-counted",
        causes: &[Switch("join-not-counted")],
        summary: "Wolf logged a lobby join but the lobby's client_count does not include the session",
    },
    Entry {
        id: FailureId::F4,
        name: "control-stream-timeout",
        causes: &[Switch("control-idle-timeout")],
        summary: "Wolf dropped a streaming viewer's control peer ([ENET] disconnected client) and the tab lost its stream",
    },
    Entry { id: FailureId::F5, name: "stuck-session", causes: &[Switch("stuck-session")], summary: "a moonlight-web session kept has_websocket:false" },
    Entry {
        id: FailureId::F6,
        name: "zombie-streamer",
        causes: &[Switch("zombie-streamer")],
        summary: "a streamer outlived its session, or a dead streamer stayed listed",
    },
    Entry { id: FailureId::F7, name: "lobby-mismatch", causes: &[Switch("orphan-wolf-session")], summary: "Wolf kept a session moonlight-web no longer has" },
    Entry { id: FailureId::F8, name: "black-frames", causes: &[Switch("black-after")], summary: "frames keep decoding but every pixel is black" },
    Entry { id: FailureId::F9, name: "frozen-video", causes: &[Switch("freeze-after")], summary: "the connection is up but the picture stands still" },
    Entry {
        id: FailureId::F10,
        name: "restart-ghost",
        causes: &[Switch("no-lobby-recreate")],
        summary: "Helix still believes in a lobby Wolf no longer has (lost in a restart and never recreated)",
    },
    Entry { id: FailureId::F11, name: "sctp-corruption", causes: &[Switch("sctp-errors")], summary: "moonlight-web logged `chunk too short` repeatedly" },
    Entry {
        id: FailureId::F12,
        name: "slow-launch",
        causes: &[Switch("slow-tls")],
        summary: "a viewer stalled in the Moonlight Stream stage (launch against Wolf timed out)",
    },
    Entry {
        id: FailureId::F13,
        name: "already-streaming-loop",
        causes: &[Switch("session-id-reuse")],
        summary: "a viewer was answered AlreadyStreaming again and again",
    },
    Entry {
        id: FailureId::F14,
        name: "reconnect-teardown-race",
        causes: &[Switch("reconnect-teardown-race")],
        summary: "a reconnected viewer's new streamer resumed the client's Wolf session and the client's previous streamer, still tearing down, cancelled it",
    },
    Entry {
        id: FailureId::F15,
        name: "https-deadlock",
        causes: &[Switch("https-deadlock")],
        summary: "Wolf's HTTPS port accepts and never answers while its API does (a handler deadlocked by a /cancel racing a teardown): every new viewer stalls at launch",
    },
    Entry {
        id: FailureId::F16,
        name: "pipelines-blocked",
        causes: &[Switch("pipeline-lock")],
        summary: "Wolf can no longer create pipelines (a thread died holding the type lock): new sessions get no first frame, producers stop",
    },
    Entry {
        id: FailureId::F17,
        name: "audio-crash",
        causes: &[Switch("audio-disconnect")],
        summary: "Wolf died of an unhandled exception (a promise set twice) when its audio server dropped it; every stream ended at once",
    },
    Entry {
        id: FailureId::F18,
        name: "vanished-tab-leak",
        causes: &[Switch("no-silent-close-detection")],
        summary: "a tab vanished without a close frame and the server kept its moonlight-web (and Wolf) session as if it were still connected",
    },
    Entry {
        id: FailureId::F19,
        name: "lobby-setup-leak",
        causes: &[Switch("lobby-socket-leak")],
        summary: "lobby setups kept timing out (Lobby setup timed out) with none set up since: failed setups had leaked every display socket",
    },
    Entry {
        id: FailureId::F20,
        name: "resource-leak",
        causes: &[Switch("leak-per-cycle")],
        summary: "a service's open descriptors or memory grew by a fixed amount with every connect/disconnect cycle while nothing it holds stayed alive",
    },
    Entry {
        id: FailureId::F21,
        name: "modifier-latched",
        causes: &[Switch("lost-key-release")],
        summary: "a plain key the driver pressed arrived on the remote desktop with a modifier held (a lost key release left it latched)",
    },
    // Deaths (src/verdict/detectors/deaths.rs): parts that ended without the driver ending them.
    // They explain the catalog failures that follow them (the rule is written there).
    Entry { id: FailureId::B1, name: "tab-crashed", causes: &[Kill("renderer")], summary: "a tab's renderer crashed (Chromium's crash event for its target)" },
    Entry { id: FailureId::B2, name: "browser-died", causes: &[Kill("browser")], summary: "the Chromium browser process ended (its exit status)" },
    Entry { id: FailureId::B3, name: "tab-unresponsive", causes: &[], summary: "a tab stopped answering DevTools" },
    Entry { id: FailureId::D1, name: "streamer-died", causes: &[Kill("streamer")], summary: "a streamer died by a signal (moonlight-web's log of its exit)" },
    Entry {
        id: FailureId::D2,
        name: "service-died",
        causes: &[Kill("wolf"), Kill("moonlight-web"), Kill("api")],
        summary: "a service process died, or answered nothing in consecutive polls, without the driver restarting it",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn switches() -> Vec<&'static str> {
        CATALOG.iter().flat_map(|e| e.causes).filter_map(|c| if let Switch(s) = c { Some(*s) } else { None }).collect()
    }

    #[test]
    fn every_switch_of_the_stand_in_has_one_entry_and_every_entry_switch_exists() {
        let known: Vec<&str> = crate::refstack::faults::KNOWN.iter().map(|(n, _)| *n).collect();
        for s in &known {
            assert_eq!(switches().iter().filter(|x| *x == s).count(), 1, "switch {s} has no (or more than one) catalog entry");
        }
        for s in switches() {
            assert!(known.contains(&s), "the catalog names switch {s}, which the stand-in does not have");
        }
        for id in &FailureId::ALL {
            assert_eq!(CATALOG.iter().filter(|e| e.id == *id).count(), 1, "{id} has no (or more than one) catalog entry");
            assert_eq!(id.to_string().parse::<FailureId>().ok(), Some(*id));
        }
    }

    #[test]
    fn every_cause_has_a_matrix_row_and_every_row_a_catalog_entry() {
        use crate::matrix::CASES;
        for e in CATALOG {
            for c in e.causes {
                let found = CASES.iter().any(|case| {
                    case.fault == Some(e.id)
                        && match (c, case.switch) {
                            (Switch(s), Some(sw)) => sw == *s || sw.starts_with(&format!("{s}=")),
                            (Kill(k), Some(sw)) => sw == format!("kill:{k}"),
                            _ => false,
                        }
                });
                assert!(found, "{} ({c:?}) has no row in the detection matrix", e.id);
            }
        }
    }

    #[test]
    fn the_readme_describes_every_detector_and_every_switch() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        for e in CATALOG {
            let name = if e.id == FailureId::D2 { "service-died <name>".to_string() } else { e.name.to_string() };
            let row = format!("| {} | `{name}` |", e.id);
            assert!(readme.contains(&row), "README's detector table lacks {row}");
        }
        for s in switches() {
            assert!(readme.lines().any(|l| l.starts_with(&format!("| `{s}")) && l.contains(" (F")), "README's switch table lacks {s}");
        }
        for case in crate::matrix::CASES {
            let switch = case.switch.map(|s| format!("`{s}`")).unwrap_or_else(|| "(none)".into());
            let row = format!("| {} | {switch} | {} |", case.label(), case.scenario);
            assert!(readme.contains(&row), "README's matrix table lacks {row}");
        }
    }
}
