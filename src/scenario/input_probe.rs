//! The driver's keyboard and its input probes: real key events to the viewers, as a user types.
//!
//! Every key the driver sends goes through [`Keyboard`], which records it on the timeline
//! (`Event::KeySent`, with the modifiers the driver holds after it) just before the CDP dispatch,
//! so the echo in the pictures can be matched to it (`frames::input`). The probe task sends the
//! probe keys to every streaming tab: a burst of [`BURST`] presses when a tab starts streaming or
//! its picture switches producer (it joined a lobby), then one every [`EVERY`] while it streams.
//! Each probe first gives the viewer the focus as a user does, by a click on the `<video>` when
//! the focus is not in the viewer already (the viewer forwards clicks to the desktop). The
//! keys (F21–F24) are bound to nothing on a desktop, so probes change nothing but the echo; they
//! are spaced further apart than F4's shortest control-idle timeout is short, so a tab that gets
//! no other input still meets it.

use crate::browser::{Browser, VideoInput};
use crate::frames::input::{Key, PROBE_KEYS};
use crate::timeline::{now_ms, EpochMs, Event, ProbeEvent, TabId, Timeline};
use helix_e2e_shared::stamp::Modifiers;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Presses per burst, and the pause between them (longer than the echo takes).
const BURST: usize = 3;
const BURST_GAP: Duration = Duration::from_millis(300);
/// One probe per streaming tab this often between bursts.
const EVERY: Duration = Duration::from_secs(5);
/// A tab streams while its last stamped picture is this recent.
const STREAMING_WITHIN_MS: EpochMs = 1000.0;
/// Each CDP step of a probe gets this long.
const STEP_DEADLINE: Duration = Duration::from_secs(2);

/// The driver's keyboard: what it holds in each tab, and every key event on the timeline.
#[derive(Clone)]
pub struct Keyboard {
    browser: Arc<Browser>,
    timeline: Timeline,
    held: Arc<Mutex<BTreeMap<TabId, Modifiers>>>,
}

impl Keyboard {
    pub fn new(browser: Arc<Browser>, timeline: Timeline) -> Self {
        Keyboard { browser, timeline, held: Arc::default() }
    }

    /// Press (`down`) or release a key in `tab`.
    pub async fn key(&self, tab: TabId, key: Key, down: bool) -> Result<(), crate::browser::BrowserError> {
        let held = {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            let m = held.entry(tab).or_default();
            let k = Modifiers::of_key(key.code);
            *m = if down { m.with(k) } else { Modifiers(m.0 & !k.0) };
            *m
        };
        self.timeline.push(Event::KeySent { tab, key: key.code, down, held });
        self.browser.key_event(tab, key.name, key.dom_code, i64::from(key.code), down).await
    }
}

/// The running probe loop; stop it before the browser is closed (it holds a share of it).
pub struct InputProbes {
    task: JoinHandle<()>,
}

impl InputProbes {
    pub fn start(keyboard: Keyboard, video_selector: String) -> Self {
        InputProbes { task: tokio::spawn(run(keyboard, video_selector)) }
    }

    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for InputProbes {
    /// A run dropped mid-way (Ctrl-C) must not leave the loop holding the browser.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the loop knows of a tab's pictures.
#[derive(Default)]
struct Seen {
    /// The last stamped picture: when, and whose (tag).
    last: Option<(EpochMs, u16)>,
    /// The producer the last burst was for, and when the last probe went out.
    probed_tag: Option<u16>,
    probed_at: EpochMs,
}

async fn run(kb: Keyboard, video_selector: String) {
    let mut cursor = kb.timeline.cursor();
    let mut tabs: BTreeMap<TabId, Seen> = BTreeMap::new();
    let mut next_key = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        kb.timeline.take_new(&mut cursor, |o| {
            if let Event::Tab { tab, probe: ProbeEvent::Frame { sample, .. } } = &o.event {
                if let Some(s) = sample.stamp {
                    tabs.entry(*tab).or_default().last = Some((o.at, s.tag));
                }
            }
        });
        let now = now_ms();
        let open = kb.browser.open_tabs();
        tabs.retain(|t, _| open.contains(t));
        for (&tab, seen) in tabs.iter_mut() {
            let Some((at, tag)) = seen.last.filter(|(at, _)| now - at < STREAMING_WITHIN_MS) else {
                seen.probed_tag = None;
                continue;
            };
            let burst = seen.probed_tag != Some(tag);
            if !burst && now - seen.probed_at < EVERY.as_secs_f64() * 1000.0 {
                continue;
            }
            seen.probed_tag = Some(tag);
            seen.probed_at = at.max(now);
            if let Err(e) = probe(&kb, tab, &video_selector, if burst { BURST } else { 1 }, &mut next_key).await {
                tracing::debug!(tab, "input probe not sent: {e}");
            }
        }
    }
}

/// Give the viewer the focus (a click on its video, when it lacks it), then press and release `n`
/// probe keys.
async fn probe(kb: &Keyboard, tab: TabId, video_selector: &str, n: usize, next_key: &mut usize) -> Result<(), String> {
    let step = |what: &'static str| move |_| format!("{what}: no answer within {STEP_DEADLINE:?}");
    let videos = tokio::time::timeout(STEP_DEADLINE, kb.browser.video_input(tab, video_selector, VideoInput::Focus))
        .await
        .map_err(step("focus"))?
        .map_err(|e| e.to_string())?;
    if videos == 0 {
        return Ok(());
    }
    for i in 0..n {
        if i > 0 {
            tokio::time::sleep(BURST_GAP).await;
        }
        let key = PROBE_KEYS[*next_key % PROBE_KEYS.len()];
        *next_key += 1;
        for down in [true, false] {
            tokio::time::timeout(STEP_DEADLINE, kb.key(tab, key, down)).await.map_err(step("key"))?.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
