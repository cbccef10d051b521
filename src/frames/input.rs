//! Input that round-trips: the driver's probe keys and what the pictures echo of them.
//!
//! The driver presses keys no desktop acts on (F21–F24, rotating, so consecutive probes of a tab
//! differ) on a streaming tab's viewer, as a user's keyboard does, and the page's probe samples
//! each presented frame while that input is recent. A probe is *seen* at the first frame
//! presented after its dispatch whose input echo shows its key as the last one pressed; its
//! latency is dispatch → that presentation. What bounds it: Wolf draws input into the next
//! produced frame (up to one frame interval, 33 ms at 30 fps), then encoding, the WebRTC path
//! and the browser's jitter buffer, decoding and compositing; the presentation-time sampling
//! adds no delay of its own. A probe with no such frame within [`PROBE_DEADLINE_MS`] is lost.
//!
//! The same fold is the evidence of F21 (a latched modifier): a probe seen with a modifier set
//! on the desktop while the driver held none.

use crate::timeline::{EpochMs, Event, Observation, ProbeEvent, TabId};
use helix_e2e_shared::stamp::{InputEcho, Modifiers};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A key the driver presses: DOM `key` and `code`, and its Windows virtual-key code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    pub dom_code: &'static str,
    pub code: u16,
}

pub const SHIFT: Key = Key { name: "Shift", dom_code: "ShiftLeft", code: 0x10 };

/// Keys the probes use: function keys no desktop binds, so a probe changes nothing but the echo.
pub const PROBE_KEYS: [Key; 4] = [
    Key { name: "F21", dom_code: "F21", code: 0x84 },
    Key { name: "F22", dom_code: "F22", code: 0x85 },
    Key { name: "F23", dom_code: "F23", code: 0x86 },
    Key { name: "F24", dom_code: "F24", code: 0x87 },
];

/// How long a probe may take to show before it counts as lost.
pub const PROBE_DEADLINE_MS: EpochMs = 2000.0;

pub fn is_probe_key(code: u16) -> bool {
    PROBE_KEYS.iter().any(|k| k.code == code)
}

/// One probe and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    pub tab: TabId,
    pub key: u16,
    pub sent_at: EpochMs,
    /// Modifiers the driver held when it pressed the key.
    pub held: Modifiers,
    /// The first presented frame that showed it: when, and its echo.
    pub seen: Option<(EpochMs, InputEcho)>,
}

impl ProbeOutcome {
    pub fn latency_ms(&self) -> Option<f64> {
        self.seen.map(|(at, _)| at - self.sent_at)
    }
}

/// Folds observations into probe outcomes, incrementally (a cursor's worth at a time).
#[derive(Debug, Default)]
pub struct EchoFold {
    pending: BTreeMap<TabId, Vec<ProbeOutcome>>,
    done: Vec<ProbeOutcome>,
    /// The modifiers the driver holds in each tab (after its last key event there).
    held: BTreeMap<TabId, Modifiers>,
}

impl EchoFold {
    pub fn observe(&mut self, o: &Observation) {
        match &o.event {
            Event::KeySent { tab, key, down, held } => {
                self.held.insert(*tab, *held);
                if *down && is_probe_key(*key) {
                    // A lobby's desktop is shared: a modifier the driver holds in any tab is held.
                    let held = self.held.values().fold(Modifiers::NONE, |a, m| a.with(*m));
                    self.pending.entry(*tab).or_default().push(ProbeOutcome { tab: *tab, key: *key, sent_at: o.at, held, seen: None });
                }
            }
            Event::Tab { tab, probe: ProbeEvent::Presented { sample, .. } } => {
                let (Some(echo), Some(pending)) = (sample.echo, self.pending.get_mut(tab)) else { return };
                let at = sample.presented_at;
                let mut i = 0;
                while i < pending.len() {
                    let p = &pending[i];
                    if at >= p.sent_at && u16::from(echo.key) == (p.key & 0xff) {
                        let mut p = pending.remove(i);
                        p.seen = Some((at, echo));
                        self.done.push(p);
                    } else {
                        i += 1;
                    }
                }
            }
            _ => {}
        }
        // Probes past their deadline are lost. A tab's probes are pending in the order they were
        // sent, so when its oldest is not late none is: most observations cost one comparison.
        for pending in self.pending.values_mut() {
            let late = pending.iter().take_while(|p| o.at - p.sent_at > PROBE_DEADLINE_MS).count();
            self.done.extend(pending.drain(..late));
        }
    }

    /// Outcomes decided since the last call (seen, or lost past the deadline): a live reader
    /// takes them, so the fold holds only what is pending.
    pub fn take_decided(&mut self) -> Vec<ProbeOutcome> {
        std::mem::take(&mut self.done)
    }

    /// Every outcome at the end of a run: probes still pending are lost.
    pub fn finish(mut self) -> Vec<ProbeOutcome> {
        for (_, p) in std::mem::take(&mut self.pending) {
            self.done.extend(p);
        }
        self.done.sort_by(|a, b| a.sent_at.total_cmp(&b.sent_at));
        self.done
    }
}

/// Input-to-picture latency of one tab, in `summary.json`, the reports and `junit.xml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputLatency {
    pub tab: TabId,
    /// Probes sent.
    pub probes: usize,
    /// Probes whose echo never showed within the deadline.
    pub lost: usize,
    pub median_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

impl std::fmt::Display for InputLatency {
    /// `tab 0: median 52 ms, p95 80 ms (9 probes, 0 lost)`: the one wording of every report.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.0} ms"));
        write!(f, "tab {}: median {}, p95 {} ({} probes, {} lost)", self.tab, ms(self.median_ms), ms(self.p95_ms), self.probes, self.lost)
    }
}

/// Per tab that got probes, from the whole run.
pub fn latencies(observations: &[Observation]) -> Vec<InputLatency> {
    let mut fold = EchoFold::default();
    for o in observations {
        fold.observe(o);
    }
    let mut by_tab: BTreeMap<TabId, Vec<ProbeOutcome>> = BTreeMap::new();
    for p in fold.finish() {
        by_tab.entry(p.tab).or_default().push(p);
    }
    by_tab
        .into_iter()
        .map(|(tab, ps)| {
            let mut ms: Vec<f64> = ps.iter().filter_map(ProbeOutcome::latency_ms).collect();
            ms.sort_by(f64::total_cmp);
            InputLatency { tab, probes: ps.len(), lost: ps.len() - ms.len(), median_ms: percentile(&ms, 0.5), p95_ms: percentile(&ms, 0.95) }
        })
        .collect()
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::PresentedSample;

    pub(crate) fn sent(at: EpochMs, tab: TabId, key: u16, held: Modifiers) -> Observation {
        Observation { at, event: Event::KeySent { tab, key, down: true, held } }
    }

    pub(crate) fn presented(at: EpochMs, tab: TabId, key: u8, modifiers: Modifiers) -> Observation {
        let echo = InputEcho { events: 1, key, modifiers };
        Observation {
            at: at + 5.0,
            event: Event::Tab {
                tab,
                probe: ProbeEvent::Presented { video: 0, sample: PresentedSample { presented_at: at, luma: String::new(), echo: Some(echo) } },
            },
        }
    }

    #[test]
    fn latency_is_dispatch_to_the_first_presented_frame_that_shows_the_key() {
        let obs = vec![
            presented(990.0, 0, 0x84, Modifiers::NONE),
            sent(1000.0, 0, 0x85, Modifiers::NONE),
            // A frame still showing the previous probe's key is not this probe.
            presented(1020.0, 0, 0x84, Modifiers::NONE),
            presented(1050.0, 0, 0x85, Modifiers::NONE),
            presented(1080.0, 0, 0x85, Modifiers::NONE),
            sent(2000.0, 0, 0x86, Modifiers::NONE),
            presented(2070.0, 0, 0x86, Modifiers::NONE),
            // Tab 1's probe never shows: lost.
            sent(2000.0, 1, 0x84, Modifiers::NONE),
            presented(5000.0, 0, 0x86, Modifiers::NONE),
        ];
        let l = latencies(&obs);
        assert_eq!(l[0], InputLatency { tab: 0, probes: 2, lost: 0, median_ms: Some(50.0), p95_ms: Some(70.0) });
        assert_eq!(l[1], InputLatency { tab: 1, probes: 1, lost: 1, median_ms: None, p95_ms: None });
    }

    #[test]
    fn a_tab_s_latency_reads_as_one_line() {
        let l = InputLatency { tab: 2, probes: 9, lost: 1, median_ms: Some(52.4), p95_ms: None };
        assert_eq!(l.to_string(), "tab 2: median 52 ms, p95 – (9 probes, 1 lost)");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(10.0));
        assert_eq!(percentile(&v, 0.95), Some(19.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
