//! Detectors of a wedged Wolf: its HTTPS handler deadlocked (F15), its pipelines blocked by a
//! lost type lock (F16). In both Wolf's process lives and its API answers, so neither is a
//! death (D2); what names them is evidence the driver gathers from Wolf itself — its own
//! probe of the HTTPS port, Wolf's health endpoint.

use super::*;

/// F15's evidence: the driver's probe found Wolf's HTTPS port accepting and silent, twice in a
/// row, while Wolf's API answered in between.
pub(super) struct HttpsDeadlock<'a> {
    addr: &'a str,
    /// When the first silent probe sent its hello.
    pub(super) since: EpochMs,
    /// When the port was last seen answering before that (the deadlock came after).
    pub(super) last_answer: Option<EpochMs>,
    confirmed_at: EpochMs,
    waited_ms: [f64; 2],
    api_answered_at: EpochMs,
}

/// Two consecutive probes of the HTTPS port that were accepted and got no byte back, the
/// second sent after the first had waited its whole time, with a poll of Wolf's API answered
/// between the first probe's hello and the second probe's end; probes while the driver
/// restarted Wolf do not count.
///
/// Differentials (tests in `tests.rs`):
/// - F12 (slow TLS under load): the same launch stall in moonlight-web's words (`Connect,
///   TimedOut`), but the port answers — late, or to another connection: any answered probe
///   between two silent ones breaks the run, so a slow port is never taken for a dead handler.
/// - D2 (Wolf died): the port refuses the connection (`NotAccepted`), and the API does not
///   answer either; a refused probe breaks the run too.
/// - A loaded host: one silent probe is not enough; twice in a row, 2 × the probe's wait apart,
///   with the API answering meanwhile, is a handler that is not coming back.
pub(super) fn https_deadlock<'a>(c: &Ctx<'a>) -> Option<HttpsDeadlock<'a>> {
    let mut last_answer = None;
    let mut run: Option<(EpochMs, &str, f64)> = None;
    for (at, probe) in c.https_probes.iter() {
        match probe {
            HttpsProbe::Silent { addr, waited_ms } if !c.restarting("wolf", *at) => match run {
                None => run = Some((at - waited_ms, addr.as_str(), *waited_ms)),
                Some((since, addr, first_wait)) => {
                    let api = c.service_polls.iter().find(|(t, s, r)| *s == "wolf" && r.is_ok() && *t >= since && *t <= *at).map(|(t, _, _)| *t);
                    match api {
                        Some(api_answered_at) => {
                            return Some(HttpsDeadlock { addr, since, last_answer, confirmed_at: *at, waited_ms: [first_wait, *waited_ms], api_answered_at })
                        }
                        // Silent, but so is the API: not this rule's to say (a dying Wolf).
                        None => run = Some((at - waited_ms, addr, *waited_ms)),
                    }
                }
            },
            HttpsProbe::Answered { .. } => {
                last_answer = Some(*at);
                run = None;
            }
            _ => run = None,
        }
    }
    None
}

pub(super) fn f15_https_deadlock(c: &Ctx) -> Option<Detection> {
    let d = https_deadlock(c)?;
    // A viewer that stalled at launch since: the symptom users saw (moonlight-web's words).
    let after = d.last_answer.unwrap_or(d.since);
    let stalled = c.viewers.iter().find(|v| {
        v.stages.iter().any(|s| s.stage == "Moonlight Stream" && s.at >= after) && v.connection_complete_at.is_none_or(|x| x < after) && !c.excused(v, c.end)
    });
    let timed_out = c.first_log("Error(Connect, TimedOut)", after);
    let mut message = format!(
        "Wolf's HTTPS port {} accepted the driver's TLS hello and answered nothing in {:.0} s, and again in {:.0} s {:.1} s later, while Wolf's API answered (at +{:.1} s): its HTTPS handler is deadlocked, so every new viewer stalls at launch",
        d.addr,
        secs(d.waited_ms[0]),
        secs(d.waited_ms[1]),
        secs(d.confirmed_at - d.waited_ms[1] - d.since),
        secs(d.api_answered_at - d.since)
    );
    if let Some(v) = stalled {
        message.push_str(&format!("; {} stalled in \"Moonlight Stream\"", who(v)));
    }
    if let Some((_, line)) = timed_out {
        message.push_str(&format!("; moonlight-web logged \"{}\"", line.chars().take(160).collect::<String>()));
    }
    Some(Detection {
        fault: FailureId::F15,
        name: "https-deadlock".into(),
        tab: stalled.map(|v| v.tab),
        message,
        first_symptom: d.since,
        decided_at: d.confirmed_at,
    })
}

/// When Wolf first said it cannot create pipelines (`can_create_new_pipelines: false`), if it
/// did while the driver was not restarting it.
pub(super) fn pipelines_lost_at(c: &Ctx) -> Option<EpochMs> {
    c.health.iter().find(|(at, h)| !h.can_create_new_pipelines && !c.restarting("wolf", *at)).map(|(at, _)| *at)
}

/// F16: Wolf's health says `can_create_new_pipelines: false` in `confirm_polls` consecutive
/// polls. Wolf's own word, from the same check its pipeline creation makes; the share of stuck
/// threads is quoted, not required — on the real host it was a minority (35 %), which a
/// "half the threads stuck" alarm misses.
///
/// Differential against F9 (a frozen picture, the producer stopped): the lost type lock stops
/// every lobby producer too, so F16's viewers show F9's frozen picture. Which evidence decides
/// when both fit: Wolf's health. A frozen picture while Wolf says pipelines cannot be created is
/// F16 (and F9 yields, see `f9_frozen_video`); a frozen picture while Wolf says they can (or a
/// Wolf without the health endpoint) is F9. A single poll saying `false` is not enough: the
/// check takes the lock for a moment and a busy Wolf may be caught creating a pipeline.
pub(super) fn f16_pipelines_blocked(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    let need = t.confirm_polls.max(1);
    let mut run: Vec<(EpochMs, &WolfHealth)> = Vec::new();
    for (at, h) in c.health.iter() {
        if h.can_create_new_pipelines || c.restarting("wolf", *at) {
            run.clear();
            continue;
        }
        run.push((*at, h));
        if run.len() < need {
            continue;
        }
        let (first, _) = run[0];
        let (_, last) = run[run.len() - 1];
        let share = if last.total_thread_count > 0 { 100.0 * last.stuck_thread_count as f64 / last.total_thread_count as f64 } else { 0.0 };
        // Viewers that connected since and never decoded a frame: what users saw.
        let starved: Vec<String> = c
            .viewers
            .iter()
            .filter(|v| v.connection_complete_at.is_some_and(|x| x >= first - 5_000.0) && v.frames.iter().all(|f| f.video_width == 0) && !c.excused(v, *at))
            .map(who)
            .collect();
        let mut message = format!(
            "Wolf's health said can_create_new_pipelines=false in {} consecutive polls over {:.1} s, with {}/{} threads stuck ({share:.0} %, overall \"{}\"): pipeline creation is blocked (a lost type lock), so new sessions get no first frame and producers stop",
            run.len(),
            secs(*at - first),
            last.stuck_thread_count,
            last.total_thread_count,
            last.overall_status
        );
        if !starved.is_empty() {
            message.push_str(&format!("; connected without a first frame: {}", starved.join(", ")));
        }
        return Some(Detection { fault: FailureId::F16, name: "pipelines-blocked".into(), tab: None, message, first_symptom: first, decided_at: *at });
    }
    None
}
