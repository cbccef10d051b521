//! A modifier key latched on the remote desktop (F21). A key release lost on the way (the
//! viewer's input channels are closed while it reconnects, or the page lost focus mid-press)
//! leaves Shift/Ctrl/Alt/Meta held on the desktop, and everything the user types arrives
//! modified. Nothing in any log says so: the driver finds it only by sending input and reading
//! the result — its probe keys (`frames::input`) and the input echo in the pictures.
//!
//! Named when a probe key the driver pressed with no modifier held (in any tab: a lobby's
//! desktop is shared) shows in the first presented frame that echoes it with a modifier held.
//! Differential rules:
//! - a modifier the driver itself holds (e.g. a scenario holding Shift) is not a latch: the
//!   probe's `held` is not empty, nothing is named;
//! - frames that show a modifier *before* the probe's key appears are not evidence: the release
//!   the driver sent before the probe travels on the same ordered channel, so only a frame
//!   showing the probe's own key proves the release had its chance to land;
//! - a probe whose echo never shows (frozen or black video, F8/F9; a tab that stopped streaming)
//!   is lost, not latched: it names nothing here.

use super::*;
use crate::frames::input::PROBE_KEYS;

pub(super) fn f21_modifier_latched(c: &Ctx) -> Option<Detection> {
    let p = c.modified_echoes.iter().find(|p| p.held.is_empty())?;
    let (seen_at, echo) = p.seen?;
    let key = PROBE_KEYS.iter().find(|k| k.code == p.key).map_or_else(|| format!("{:#04x}", p.key), |k| k.name.to_string());
    Some(Detection {
        fault: FailureId::F21,
        name: FailureId::F21.name().into(),
        tab: Some(p.tab),
        message: format!(
            "tab {} pressed {key} with no modifier held by the driver; the first picture showing it ({:.0} ms later) echoes {} held on the remote desktop (echo: {} input events, last key {:#04x}, modifiers {})",
            p.tab,
            seen_at - p.sent_at,
            echo.modifiers,
            echo.events,
            echo.key,
            echo.modifiers
        ),
        first_symptom: seen_at,
        decided_at: c.end,
    })
}
