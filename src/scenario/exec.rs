//! Runs a [`Plan`] against the system through the [`Driver`], checking the design's pass
//! criteria after every step and at the end, and always tearing down what the plan created.
//!
//! After every operation the cheap invariants (distinct `client_unique_id`s, `create` mode, no
//! stuck session, no zombie streamer) are checked at once; at a `check` step the executor waits
//! until every open tab streams (or a deadline passes), watches them for the hold time, and
//! checks everything. The verdict of a tab is taken from its *latest* viewer: a reload starts a
//! new one, a Reconnect press a new connection of the same one.
//!
//! Why one file of over 400 lines: one match over the plan's operations, each arm the driver's call
//! and the checks after it; split up, the arms would be read apart from the order they run in.

use super::driver::{Driver, OpError};
use super::plan::{Expect, Op, Plan, SessionNo, TabNo};
use crate::browser::ViewerFacts;
use crate::correlate::{self, Row};
use crate::report::progress::say;
use crate::scenario::spec::RunSpec;
use crate::sut::monitor::ServerState;
use crate::timeline::{now_ms, EpochMs, TabId};
use crate::verdict::checks::{self, agent_session_of, HealthWatch};
use crate::verdict::restarts;
use crate::verdict::InvariantResult;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// How long tabs may take from an operation to streaming their lobby.
const SETTLE_DEADLINE: Duration = Duration::from_secs(45);
/// How long the servers may take to forget what was stopped or closed.
const CLEANUP_DEADLINE: Duration = Duration::from_secs(20);
/// The design calls a session stuck after 60 s without its WebSocket; time-scaled, not below this.
const MIN_STUCK_MS: f64 = 5000.0;
const STUCK_MS: f64 = 60_000.0;
const TICK: Duration = Duration::from_millis(250);
/// How long a tab may stay silent after a restart. A viewer that only learns of the outage from
/// its peer connection hears of it when Chromium's ICE consent checks give up (about 30 s).
const CLEAR_ERROR_DEADLINE: Duration = Duration::from_secs(45);

#[derive(Default)]
struct State {
    sessions: BTreeMap<SessionNo, String>,
    /// Created by this plan and stopped by one of its steps.
    stopped: Vec<String>,
    tabs: BTreeMap<TabNo, TabId>,
    /// Every browser tab this plan opened.
    all_tabs: Vec<TabId>,
    /// A tab's viewer must have started after this (set by reload and Reconnect).
    fresh_after: BTreeMap<TabId, EpochMs>,
    /// The lobby of each session at the last check.
    lobby_at_check: BTreeMap<SessionNo, String>,
    watch: HealthWatch,
    limit_ms: f64,
    /// Operations done so far (checks not counted): the random walk's `--ops` for a replay.
    ops_done: usize,
    /// When the last service restart began.
    restarted_at: Option<EpochMs>,
}

/// Run `plan` within the run `spec` describes (its time scale; its replay commands).
pub async fn execute(d: &mut Driver, plan: &Plan, spec: &RunSpec) -> Result<(), OpError> {
    let mut st = State { limit_ms: (STUCK_MS * spec.time_scale).max(MIN_STUCK_MS), ..State::default() };
    let outcome = run_steps(d, plan, spec, &mut st).await;
    teardown(d, &mut st).await;
    outcome
}

async fn run_steps(d: &mut Driver, plan: &Plan, spec: &RunSpec, st: &mut State) -> Result<(), OpError> {
    let start = Instant::now();
    for step in &plan.steps {
        if let Some(b) = plan.budget_ms {
            if start.elapsed() > Duration::from_millis(b) {
                say!("  {}: time budget of {:.0} s spent after {} operations", plan.scenario, b as f64 / 1000.0, st.ops_done);
                break;
            }
        }
        if let Some(at) = step.at_ms {
            let due = start + Duration::from_millis(at);
            while Instant::now() < due {
                tokio::time::sleep(TICK.min(due - Instant::now())).await;
                observe(d, st);
            }
        }
        let failed_before = d.results().iter().filter(|r| !r.passed).count();
        match &step.op {
            Op::Check { label, hold_ms, expect } => {
                check(d, st, label, Duration::from_millis(*hold_ms), expect, !plan.stop_at_first_failure).await;
            }
            Op::ExpectErrors { label } => expect_errors(d, st, label).await,
            op => {
                perform(d, st, op).await?;
                st.ops_done += 1;
                quick_checks(d, st, step.step);
            }
        }
        if d.results().iter().filter(|r| !r.passed).count() > failed_before {
            if plan.stop_at_first_failure {
                d.note_broke_after(st.ops_done);
                let first = d.results().iter().find(|r| !r.passed).map(|r| r.name.clone()).unwrap_or_default();
                let (scenario, ops, dir) = (&plan.scenario, st.ops_done, d.artifacts.root().display());
                say!("  {scenario} broke at operation {ops} ({}): {first}", d.failed_op().unwrap_or("?"));
                say!("  seed {}; replay exactly: helix-e2e replay {dir}\n  or the minimal walk: {}", spec.seed, spec.scenario_command(scenario, Some(ops)));
            }
            // Later steps would only pile consequences on the first failure.
            break;
        }
    }
    Ok(())
}

async fn perform(d: &mut Driver, st: &mut State, op: &Op) -> Result<(), OpError> {
    let tab_of = |st: &State, t: &TabNo| st.tabs.get(t).copied().ok_or_else(|| OpError { op: format!("{op:?}"), detail: format!("plan tab {t} is not open") });
    match op {
        Op::CreateSessions { sessions } => {
            for s in sessions {
                let ses = d.create_session().await?;
                st.sessions.insert(*s, ses);
            }
        }
        Op::StopSession { session } => {
            let ses = st.sessions.remove(session).ok_or_else(|| OpError { op: format!("{op:?}"), detail: format!("plan session {session} is not live") })?;
            if d.created_here(&ses) {
                d.stop_session(&ses).await?;
                st.stopped.push(ses);
            }
        }
        Op::OpenTabs { tabs } => {
            let mut sessions = Vec::new();
            for t in tabs {
                sessions.push(
                    st.sessions
                        .get(&t.session)
                        .cloned()
                        .ok_or_else(|| OpError { op: format!("{op:?}"), detail: format!("plan session {} is not live", t.session) })?,
                );
            }
            let opened = if sessions.len() == 1 { vec![d.open_viewer(&sessions[0]).await?] } else { d.open_viewers(&sessions).await? };
            for (t, id) in tabs.iter().zip(opened) {
                st.tabs.insert(t.tab, id);
                st.all_tabs.push(id);
            }
        }
        Op::OpenSynthetic { tabs, decode } => {
            let mut sessions = Vec::new();
            for t in tabs {
                sessions.push(
                    st.sessions
                        .get(&t.session)
                        .cloned()
                        .ok_or_else(|| OpError { op: format!("{op:?}"), detail: format!("plan session {} is not live", t.session) })?,
                );
            }
            for (t, id) in tabs.iter().zip(d.open_synthetic(&sessions, *decode)?) {
                st.tabs.insert(t.tab, id);
                st.all_tabs.push(id);
            }
        }
        Op::CloseTab { tab } => {
            let id = tab_of(st, tab)?;
            st.tabs.remove(tab);
            d.close_tab(id).await?;
        }
        Op::CutTab { tab } => {
            let id = tab_of(st, tab)?;
            st.tabs.remove(tab);
            d.cut_tab(id).await?;
        }
        Op::ReloadTab { tab } => {
            let id = tab_of(st, tab)?;
            st.fresh_after.insert(id, now_ms());
            d.reload_tab(id).await?;
        }
        Op::Reconnect { tab } => {
            let id = tab_of(st, tab)?;
            st.fresh_after.insert(id, now_ms());
            d.reconnect(id).await?;
        }
        Op::Shift { tab, down } => {
            let id = tab_of(st, tab)?;
            d.shift(id, *down).await?;
        }
        Op::Idle { ms } => {
            let mut watch = std::mem::take(&mut st.watch);
            let (limit, mut sessions) = (st.limit_ms, live_sessions(st));
            sessions.extend(st.stopped.iter().cloned());
            d.keep_idle(Duration::from_millis(*ms), |d| watch.observe(&d.server_state(), &sessions, limit)).await;
            st.watch = watch;
        }
        Op::Watch { tabs, hold_ms } => {
            let ids = tabs.iter().map(|t| tab_of(st, t)).collect::<Result<Vec<TabId>, _>>()?;
            let end = Instant::now() + SETTLE_DEADLINE;
            while let Some(waiting) = d.not_streaming(&ids) {
                if Instant::now() >= end {
                    return Err(OpError { op: format!("{op:?}"), detail: format!("tabs {waiting:?} showed no frame within {} s", SETTLE_DEADLINE.as_secs()) });
                }
                tokio::time::sleep(TICK).await;
                observe(d, st);
            }
            let hold_end = Instant::now() + Duration::from_millis(*hold_ms);
            while Instant::now() < hold_end {
                tokio::time::sleep(TICK.min(hold_end - Instant::now())).await;
                observe(d, st);
            }
        }
        Op::RestartService { service } => {
            st.restarted_at = Some(now_ms());
            d.restart_service(*service).await?;
        }
        Op::Check { .. } | Op::ExpectErrors { .. } => unreachable!("checks are not operations"),
    }
    Ok(())
}

fn live_sessions(st: &State) -> Vec<String> {
    st.sessions.values().cloned().collect()
}

/// The latest viewer of every open tab.
fn latest_viewers(d: &Driver, st: &State) -> Vec<ViewerFacts> {
    let all = d.viewers();
    st.tabs.values().filter_map(|t| all.iter().rfind(|v| v.tab == *t).cloned()).collect()
}

fn rows_of(viewers: &[ViewerFacts], state: &ServerState) -> Vec<Row> {
    correlate::table(viewers, state, now_ms())
}

fn observe(d: &Driver, st: &mut State) {
    let mut sessions = live_sessions(st);
    sessions.extend(st.stopped.iter().cloned());
    st.watch.observe(&d.server_state(), &sessions, st.limit_ms);
}

/// Invariants that must hold at every moment; recorded only when broken, to keep the report
/// about what went wrong.
fn quick_checks(d: &mut Driver, st: &mut State, step: usize) {
    observe(d, st);
    let rows = rows_of(&latest_viewers(d, st), &d.server_state());
    let broken = [checks::unique_client_ids(&rows), checks::create_mode(&rows), st.watch.no_stuck_sessions(), st.watch.no_zombie_streamers()];
    d.in_phase(&format!("step-{step}"), |d| {
        for r in broken.into_iter().filter(|r| !r.passed) {
            d.check(r);
        }
    });
}

/// Every open tab streams its own lobby with a viewer started after its last reload or
/// Reconnect; every live session has one lobby counting exactly its streaming tabs; nothing of
/// a stopped session remains.
fn settled(viewers: &[ViewerFacts], rows: &[Row], state: &ServerState, st: &State, stamped: bool) -> bool {
    let live = live_sessions(st);
    viewers.len() == st.tabs.len()
        && viewers
            .iter()
            .zip(rows)
            .all(|(v, r)| !v.closed() && st.fresh_after.get(&v.tab).is_none_or(|t| v.started_at > *t) && checks::streams_own_lobby(r, state, stamped))
        && checks::one_lobby_per_session(state, &live).passed
        && checks::client_count_matches(rows, state, &live).passed
}

/// Nothing of the sessions stopped mid-plan remains: no lobby, and no Wolf or moonlight-web
/// session of their viewers.
fn leftovers_of_stopped(all_viewers: &[ViewerFacts], state: &ServerState, st: &State) -> InvariantResult {
    let of_stopped: Vec<&ViewerFacts> =
        all_viewers.iter().filter(|v| v.client_unique_id.as_deref().and_then(agent_session_of).is_some_and(|s| st.stopped.iter().any(|x| x == s))).collect();
    let uids: Vec<String> = of_stopped.iter().filter_map(|v| v.client_unique_id.clone()).collect();
    let mlw: Vec<String> = of_stopped.iter().filter_map(|v| v.session_id.clone()).collect();
    checks::no_leftovers(state, &st.stopped, &uids, &mlw)
}

/// A tab that will not recover by waiting: its connection failed or the server told it off.
/// A viewer older than the tab's last reload or Reconnect is on its way out, not hopeless.
fn hopeless(viewers: &[ViewerFacts], st: &State) -> bool {
    viewers
        .iter()
        .filter(|v| st.fresh_after.get(&v.tab).is_none_or(|t| v.started_at > *t))
        .any(|v| v.connection_state.as_deref() == Some("failed") || v.errors.iter().any(|e| e.message != "AlreadyStreaming"))
}

async fn check(d: &mut Driver, st: &mut State, label: &str, hold: Duration, expect: &[Expect], screenshots: bool) {
    let stamped = d.target.stamped;
    let end = Instant::now() + SETTLE_DEADLINE;
    // Settle, hold, and settle again: a hold that ends unsettled (a viewer dropped meanwhile)
    // goes back to waiting until the deadline.
    loop {
        let all = d.viewers();
        let viewers = latest_viewers(d, st);
        let state = d.server_state();
        let rows = rows_of(&viewers, &state);
        let ok = settled(&viewers, &rows, &state, st, stamped) && leftovers_of_stopped(&all, &state, st).passed;
        if ok {
            let hold_end = Instant::now() + hold;
            while Instant::now() < hold_end {
                tokio::time::sleep(TICK.min(hold_end - Instant::now())).await;
                observe(d, st);
            }
            // Judge the end of the hold on a fresh poll, the one the verdict will read: a poll
            // from before a Reconnect's old session was cancelled can still show its lobby
            // counting a session the new viewer has not joined yet (auto-join is 1 s after
            // ConnectionComplete).
            d.monitor.refresh().await;
            let viewers = latest_viewers(d, st);
            let state = d.server_state();
            if settled(&viewers, &rows_of(&viewers, &state), &state, st, stamped) {
                break;
            }
        }
        if Instant::now() >= end || hopeless(&viewers, st) {
            tracing::warn!("{label}: not settled\n{}", correlate::render(&rows));
            break;
        }
        tokio::time::sleep(TICK).await;
        observe(d, st);
    }
    d.monitor.refresh().await;
    observe(d, st);
    let all = d.viewers();
    let viewers = latest_viewers(d, st);
    let state = d.server_state();
    let rows = rows_of(&viewers, &state);
    tracing::info!("{label}: correlation\n{}", correlate::render(&rows));
    let live = live_sessions(st);
    let open: Vec<TabId> = st.tabs.values().copied().collect();
    d.set_phase(label);
    d.check(checks::viewers_present(&open, &rows));
    if !rows.is_empty() {
        d.check(checks::tabs_connected(&rows));
        d.check(checks::own_lobby_video(&rows, &state, stamped));
    }
    d.check(checks::no_viewer_errors(&rows));
    d.check(checks::client_count_matches(&rows, &state, &live));
    d.check(checks::unique_client_ids(&rows));
    d.check(checks::create_mode(&rows));
    d.check(checks::one_lobby_per_session(&state, &live));
    if !st.stopped.is_empty() {
        d.check(leftovers_of_stopped(&all, &state, st));
    }
    d.check(st.watch.no_stuck_sessions());
    d.check(st.watch.no_zombie_streamers());
    for e in expect {
        let r = match e {
            Expect::AllSessionsReconnect => checks::all_sessions_reconnect(&rows, &state, &live, stamped),
            Expect::SeveralTabsOneLobby { session, tabs } => {
                checks::several_tabs_one_lobby(&rows, &state, st.sessions.get(session).map(String::as_str).unwrap_or("?"), *tabs, stamped)
            }
            Expect::LobbySurvivesTabClose { session } => {
                let ses = st.sessions.get(session).map(String::as_str).unwrap_or("?");
                checks::lobby_survives_tab_close(&rows, &state, ses, st.lobby_at_check.get(session).map(String::as_str), stamped)
            }
            Expect::NoGhostLobbies => restarts::no_ghost_lobbies(&state, &live),
        };
        d.check(r);
    }
    d.set_phase("");
    for (no, ses) in &st.sessions {
        if let Some(l) = state.lobbies.iter().find(|l| l.helix_session() == Some(ses.as_str())) {
            st.lobby_at_check.insert(*no, l.id.clone());
        }
    }
    let failed = d.results().iter().any(|r| !r.passed);
    if screenshots || failed {
        for t in open {
            d.screenshot_videos(t, 1, label).await;
        }
    }
}

/// Every open tab tells its user something went wrong after the last restart: an error alert
/// on the page or an error from the server on its socket. Silence (a frozen picture, a spinner)
/// is the failure the design's "clear errors" criterion is about.
async fn expect_errors(d: &mut Driver, st: &mut State, label: &str) {
    let since = st.restarted_at.unwrap_or(0.0);
    let end = Instant::now() + CLEAR_ERROR_DEADLINE;
    let open: Vec<TabId> = st.tabs.values().copied().collect();
    let said = loop {
        let obs = d.timeline.snapshot();
        let said: Vec<(TabId, Option<(EpochMs, String)>)> = open.iter().map(|t| (*t, restarts::error_shown(&obs, *t, since))).collect();
        if said.iter().all(|(_, s)| s.is_some()) || Instant::now() >= end {
            break said;
        }
        tokio::time::sleep(TICK).await;
        observe(d, st);
    };
    let obs = d.timeline.snapshot();
    let servers = restarts::services_said(&obs, since, &["moonlight-web", "wolf"]);
    d.set_phase(label);
    d.check(restarts::clear_errors(&said, since, &d.viewers(), &servers, CLEAR_ERROR_DEADLINE));
    d.set_phase("");
    for t in open {
        d.screenshot(t, label).await;
    }
}

/// Close every tab and stop every session the plan created, then check that nothing of them
/// remains, and the health watch over the whole scenario.
async fn teardown(d: &mut Driver, st: &mut State) {
    let uids_and_mlw = |d: &Driver, st: &State| {
        let vs: Vec<ViewerFacts> = d.viewers().into_iter().filter(|v| st.all_tabs.contains(&v.tab)).collect();
        (vs.iter().filter_map(|v| v.client_unique_id.clone()).collect::<Vec<_>>(), vs.iter().filter_map(|v| v.session_id.clone()).collect::<Vec<_>>())
    };
    for (_, tab) in std::mem::take(&mut st.tabs) {
        if let Err(e) = d.close_tab(tab).await {
            tracing::warn!("teardown: {e}");
        }
    }
    for (_, ses) in std::mem::take(&mut st.sessions) {
        if d.created_here(&ses) {
            match d.stop_session(&ses).await {
                Ok(()) => st.stopped.push(ses),
                Err(e) => tracing::warn!("teardown: {e}"),
            }
        }
    }
    let (uids, mlw) = uids_and_mlw(d, st);
    let sessions = st.stopped.clone();
    let end = Instant::now() + CLEANUP_DEADLINE;
    while Instant::now() < end && !checks::no_leftovers(&d.server_state(), &sessions, &uids, &mlw).passed {
        tokio::time::sleep(TICK).await;
        observe(d, st);
    }
    d.monitor.refresh().await;
    observe(d, st);
    d.set_phase("");
    d.check(checks::no_leftovers(&d.server_state(), &sessions, &uids, &mlw));
    d.check(st.watch.no_stuck_sessions());
    d.check(st.watch.no_zombie_streamers());
}
