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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::PresentedSample;
    use helix_e2e_shared::stamp::{InputEcho, Modifiers};

    fn key(at: EpochMs, tab: TabId, key: u16, down: bool, held: Modifiers) -> Observation {
        Observation { at, event: Event::KeySent { tab, key, down, held } }
    }
    fn shown(at: EpochMs, tab: TabId, key: u8, modifiers: Modifiers) -> Observation {
        let sample = PresentedSample { presented_at: at, luma: String::new(), echo: Some(InputEcho { events: 7, key, modifiers }) };
        Observation { at: at + 10.0, event: Event::Tab { tab, probe: ProbeEvent::Presented { video: 0, sample } } }
    }
    fn named(obs: &[Observation]) -> Vec<Detection> {
        detect(obs, &Thresholds::default()).into_iter().filter(|d| d.fault == FailureId::F21).collect()
    }

    #[test]
    fn a_plain_probe_that_shows_with_shift_held_names_f21_with_the_evidence() {
        let obs = vec![key(1000.0, 0, 0x87, true, Modifiers::NONE), key(1010.0, 0, 0x87, false, Modifiers::NONE), shown(1040.0, 0, 0x87, Modifiers::SHIFT)];
        let d = named(&obs);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].tab, Some(0));
        assert_eq!(d[0].first_symptom, 1040.0);
        assert!(d[0].message.contains("pressed F24 with no modifier held by the driver") && d[0].message.contains("echoes Shift held"), "{}", d[0].message);
    }

    #[test]
    fn a_modifier_the_driver_holds_in_any_tab_is_not_a_latch() {
        // The scenario holds Shift in tab 1 (same lobby); tab 0's probe shows it: no latch.
        let obs = vec![key(900.0, 1, 0x10, true, Modifiers::SHIFT), key(1000.0, 0, 0x86, true, Modifiers::NONE), shown(1040.0, 0, 0x86, Modifiers::SHIFT)];
        assert!(named(&obs).is_empty());
        // Released before the probe: the same echo is a latch.
        let obs = vec![
            key(900.0, 1, 0x10, true, Modifiers::SHIFT),
            key(950.0, 1, 0x10, false, Modifiers::NONE),
            key(1000.0, 0, 0x86, true, Modifiers::NONE),
            shown(1040.0, 0, 0x86, Modifiers::SHIFT),
        ];
        assert_eq!(named(&obs).len(), 1);
    }

    #[test]
    fn shift_seen_before_the_probe_shows_or_a_lost_probe_names_nothing() {
        // The release is in flight: frames before the probe's key still show Shift (and the
        // previous key); the frame that shows the probe shows it released.
        let obs = vec![
            key(950.0, 0, 0x10, false, Modifiers::NONE),
            key(1000.0, 0, 0x84, true, Modifiers::NONE),
            shown(1010.0, 0, 0x10, Modifiers::SHIFT),
            shown(1040.0, 0, 0x84, Modifiers::NONE),
        ];
        assert!(named(&obs).is_empty());
        // Frozen video: the probe never shows (only stale frames with Shift), lost after 2 s.
        let obs = vec![key(1000.0, 0, 0x85, true, Modifiers::NONE), shown(1500.0, 0, 0x10, Modifiers::SHIFT), shown(4000.0, 0, 0x10, Modifiers::SHIFT)];
        assert!(named(&obs).is_empty());
    }
}
