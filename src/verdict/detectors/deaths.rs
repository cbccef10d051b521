//! Deaths: the browser (B2), a tab's renderer (B1), a tab that stopped answering (B3), a
//! service process (D2) or a streamer (D1) ended without the driver ending it.
//!
//! A dead part breaks everything downstream of it, and the catalog's detectors read exactly
//! those downstream symptoms: a killed streamer looks to Wolf like a control peer that went away
//! (F4), a dead browser like every viewer losing its stream, a dead moonlight-web like stuck and
//! orphaned sessions. So deaths are named from their own evidence — the watcher's report (the
//! browser process's exit status, Chromium's crash event, the stand-in supervisor's exit
//! status, a service that stops answering at all) or the log line of the one who reaped it
//! (moonlight-web's `Streamer of session … exited` with a signal) — never inferred from what
//! they broke, and they take precedence by this rule ([`explained_by_deaths`], the one place it
//! is applied):
//!
//! **A death explains every catalog failure (`F…`) whose first symptom comes after it, less
//! [`DEATH_LEAD_MS`]; those are dropped.** The lead covers the order in which two witnesses
//! of one moment write it down (Wolf logs the control peer's end and moonlight-web reaps the
//! streamer within milliseconds of each other, in either order). It is global, not per tab: a
//! run with a death is a failed run named after the death, and a symptom that happened to
//! start in another tab in that second is not worth a second, doubtful name. Deaths never
//! explain each other away: each is named once.

use super::*;
use crate::timeline::Casualty;

/// How far before a death a catalog symptom may start and still be the death's doing.
pub const DEATH_LEAD_MS: f64 = 1000.0;

/// Whether a detection names a death (`B…`, `D…`) rather than a catalog failure.
pub fn is_death(d: &Detection) -> bool {
    d.fault.is_death()
}

/// Drop the catalog failures a death explains (see the module's rule).
pub fn explained_by_deaths(found: &mut Vec<Detection>) {
    let Some(first_death) = found.iter().filter(|d| is_death(d)).map(|d| d.first_symptom).min_by(|a, b| a.total_cmp(b)) else { return };
    found.retain(|d| is_death(d) || d.first_symptom < first_death - DEATH_LEAD_MS);
}

pub(super) fn deaths(c: &Ctx, t: &Thresholds) -> Vec<Detection> {
    let mut out = Vec::new();
    let mut named = |d: Detection| {
        if !out.iter().any(|o: &Detection| o.fault == d.fault) {
            out.push(d);
        }
    };
    // A viewer tab's crash names B1 before the webrtc-internals page's (killed together, the
    // viewer is what the user lost).
    let mut deaths: Vec<_> = c.deaths.iter().collect();
    deaths.sort_by_key(|(_, what, _)| matches!(what, Casualty::TabCrashed { tab: None }));
    for (at, what, detail) in deaths {
        let (fault, tab) = match what {
            Casualty::Browser => (FailureId::B2, None),
            Casualty::TabCrashed { tab } => (FailureId::B1, *tab),
            Casualty::TabUnresponsive { tab } => (FailureId::B3, Some(*tab)),
            Casualty::Service { service } => {
                named(d2(*at, service, format!("the {service} process died: {detail} (the driver did not stop it)")));
                continue;
            }
        };
        named(Detection { fault, name: fault.name().into(), tab, message: detail.to_string(), first_symptom: *at, decided_at: *at });
    }
    if let Some(d) = streamer_died(c) {
        named(d);
    }
    if let Some(d) = service_unreachable(c, t) {
        named(d);
    }
    out
}

fn d2(at: EpochMs, service: &str, message: String) -> Detection {
    // The name carries the service, so a report line says which one without reading on.
    let name = format!("{} {service}", FailureId::D2.name());
    Detection { fault: FailureId::D2, name: name.into(), tab: None, message, first_symptom: at, decided_at: at }
}

/// D1: moonlight-web reaped a streamer that died by a signal. A streamer that ends by itself
/// exits with a code (0 after a stop, non-zero after an error it reported): those are the
/// symptoms of something else, not a death. A restart of moonlight-web the driver caused signals
/// its whole process group, streamers included: those deaths are the driver's.
fn streamer_died(c: &Ctx) -> Option<Detection> {
    c.logs.iter().filter(|(at, s, _)| *s == "moonlight-web" && !c.restarting("moonlight-web", *at)).find_map(|(at, _, m)| {
        let (session, status) = m.split_once("Streamer of session ")?.1.split_once(" exited: ")?;
        let signal = killed_by(status)?;
        Some(Detection {
            fault: FailureId::D1,
            name: "streamer-died".into(),
            tab: c.viewers.iter().find(|v| v.session_id.as_deref() == Some(session.trim())).map(|v| v.tab),
            message: format!("the streamer of moonlight-web session {} died by signal {signal}: moonlight-web logged \"{m}\"", session.trim()),
            first_symptom: *at,
            decided_at: *at,
        })
    })
}

/// The signal in an exit status as Rust prints it: `signal: 9 (SIGKILL)` (Display) or
/// `unix_wait_status(9)` (Debug; a raw wait status whose low 7 bits are the signal).
fn killed_by(status: &str) -> Option<i32> {
    if let Some(rest) = status.split_once("signal: ").map(|(_, r)| r) {
        return rest.split(|ch: char| !ch.is_ascii_digit()).next()?.parse().ok();
    }
    let raw: i32 = status.split_once("unix_wait_status(")?.1.split(')').next()?.trim().parse().ok()?;
    let sig = raw & 0x7f;
    (sig != 0 && sig != 0x7f).then_some(sig)
}

/// D2 from the outside, for any target: a service that stops answering at all (connection
/// refused, socket gone) in `confirm_polls` consecutive polls, with no answer in between, while
/// the driver was not restarting it. One failed poll can be a hiccup; a service that answers
/// nothing for a second is down.
fn service_unreachable(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    let mut best: Option<Detection> = None;
    for service in ["wolf", "moonlight-web", "api"] {
        let mut run: Vec<(EpochMs, &str)> = Vec::new();
        for (at, s, outcome) in &c.service_polls {
            if *s != service {
                continue;
            }
            match outcome {
                Ok(()) => run.clear(),
                Err(_) if c.restarting(service, *at) => run.clear(),
                Err(detail) => {
                    // One poll round can report several failed calls to one service.
                    if run.last().is_none_or(|(t0, _)| at - t0 >= 100.0) {
                        run.push((*at, detail));
                    }
                }
            }
            if run.len() >= t.confirm_polls.max(1) {
                let (first, detail) = run[0];
                let mut d =
                    d2(first, service, format!("{service} answered nothing in {} consecutive polls over {:.1} s: {detail}", run.len(), secs(at - first)));
                d.decided_at = *at;
                if best.as_ref().is_none_or(|b| b.first_symptom > first) {
                    best = Some(d);
                }
                break;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(fault: FailureId, at: f64) -> Detection {
        Detection { fault, name: "x".into(), tab: None, message: String::new(), first_symptom: at, decided_at: at }
    }

    #[test]
    fn a_death_explains_what_follows_it_and_nothing_long_before() {
        use FailureId::*;
        let mut found = vec![det(F4, 9_500.0), det(D1, 10_000.0), det(F7, 10_600.0), det(F2, 2_000.0)];
        explained_by_deaths(&mut found);
        let names: Vec<_> = found.iter().map(|d| d.fault).collect();
        assert_eq!(names, vec![D1, F2], "F4 0.5 s before the death and F7 after it are its doing; F2 8 s earlier is not");
        // Without a death, nothing is dropped.
        let mut clean = vec![det(F4, 1.0), det(F7, 2.0)];
        explained_by_deaths(&mut clean);
        assert_eq!(clean.len(), 2);
    }

    #[test]
    fn a_streamer_killed_by_a_restart_the_driver_caused_is_not_a_death() {
        use crate::timeline::{Event, Observation, OpPhase};
        let line = "[Stream] Streamer of session S exited: Ok(ExitStatus(unix_wait_status(15)))";
        let log = |at: f64| Observation { at, event: Event::Log { service: "moonlight-web".into(), level: "INFO".into(), message: line.into() } };
        let op = |at: f64, phase: OpPhase| Observation { at, event: Event::Op { name: "restart moonlight-web".into(), phase } };
        let t = Thresholds::default();
        let during = vec![op(1000.0, OpPhase::Start), log(1100.0), op(1500.0, OpPhase::Ok)];
        assert!(detect(&during, &t).is_empty());
        let alone = vec![log(1100.0)];
        assert_eq!(detect(&alone, &t).iter().map(|d| d.label()).collect::<Vec<_>>(), vec!["D1 streamer-died"]);
    }

    #[test]
    fn exit_statuses_say_whether_a_signal_killed() {
        assert_eq!(killed_by("signal: 9 (SIGKILL)"), Some(9));
        assert_eq!(killed_by("Ok(ExitStatus(unix_wait_status(9)))"), Some(9));
        assert_eq!(killed_by("Ok(ExitStatus(unix_wait_status(15)))"), Some(15));
        // Exit code 2 is a raw status of 2 << 8: the streamer ended itself.
        assert_eq!(killed_by("Ok(ExitStatus(unix_wait_status(512)))"), None);
        assert_eq!(killed_by("Ok(ExitStatus(unix_wait_status(0)))"), None);
        assert_eq!(killed_by("exit status: 0"), None);
    }
}
