//! Detectors of streams that were up and went wrong: the control peer dropped (F4), black
//! (F8) or frozen (F9) pictures, a data channel's SCTP corruption (F11).

use super::*;

pub(super) fn f4_control_stream_timeout(c: &Ctx) -> Option<Detection> {
    for (i, (at, _, m)) in c.logs.iter().enumerate() {
        if !m.contains("[ENET] disconnected client") {
            continue;
        }
        // Wolf follows the disconnect with the session leaving its lobby; a later disconnect's
        // line belongs to that one (tabs closing together disconnect within milliseconds).
        let over = c.logs[i + 1..].iter().take_while(|(t, _, m)| *t - at < 500.0 && !m.contains("[ENET] disconnected client")).find_map(|(t, _, m)| {
            let rest = m.strip_prefix("[LOBBY] Moonlight stream ")?;
            let (sid, lid) = rest.split_once(" over, leaving lobby ")?;
            Some((*t, sid.trim().to_string(), lid.trim().to_string()))
        });
        let Some((left_at, sid, lid)) = over else { continue };
        let Some(v) = c.viewers.iter().find(|v| v.client_id.as_deref() == Some(sid.as_str())) else { continue };
        // A streaming viewer the driver was not tearing down, whose tab learned of it after.
        // A tab whose own peer connection was lost first is not one: its streamer stops on the
        // peer's loss (moonlight-web's stop cascade), and the control stream's end is that
        // stop's, downstream of whatever cut the media path — not Wolf dropping the peer.
        let streaming = v.connection_complete_at.is_some_and(|t| t < *at) && v.closed_at.is_none_or(|x| x > *at);
        let told_after = Ctx::error_at(v, "PeerDisconnect").is_none_or(|p| p >= *at) && v.connection_lost_at.is_none_or(|l| l >= *at);
        // The line names no session: a leave that comes after the driver began tearing the
        // viewer down (its own close, a moment after another tab's disconnect) is the
        // teardown's, not the disconnect's.
        if !streaming || !told_after || c.excused(v, *at) || c.excused(v, left_at) {
            continue;
        }
        let joined = c.logs.iter().rev().find(|(t, _, m)| t <= at && parse_join(m).is_some_and(|(s, _)| s == sid)).map(|(t, _, _)| *t);
        return Some(Detection {
            fault: FailureId::F4,
            name: "control-stream-timeout".into(),
            tab: Some(v.tab),
            message: format!(
                "Wolf logged \"{m}\" for session {sid} of {}{}; it left lobby {lid} while the tab was streaming",
                who(v),
                joined.map(|j| format!(", {:.1} s after it joined", secs(at - j))).unwrap_or_default()
            ),
            first_symptom: *at,
            decided_at: *at,
        });
    }
    None
}

/// With Wolf's own buffer-pool error logged (it cannot get a buffer to encode into, and encodes
/// black), the first black sample after it decides: the line says why the picture is black.
/// Without the line a black picture may be a scene, and needs `black_secs`.
pub(super) const BLACK_WITH_POOL_ERROR_MS: f64 = 0.0;

pub(super) fn f8_black_frames(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    let pool_error = c.first_log("Failed to acquire buffer from pool", 0.0).map(|(at, _)| at);
    c.viewers
        .iter()
        .filter_map(|v| {
            let mut start: Option<EpochMs> = None;
            for f in v.frames.iter().filter(|f| f.video_width > 0) {
                if f.mean_luma < crate::frames::analysis::BLACK_LUMA {
                    let s = *start.get_or_insert(f.at);
                    let needed =
                        if pool_error.is_some_and(|p| p <= f.at) { BLACK_WITH_POOL_ERROR_MS.min(t.black_secs * 1000.0) } else { t.black_secs * 1000.0 };
                    if f.at - s >= needed && !c.excused(v, f.at) {
                        let decoding = v
                            .last_stats
                            .as_ref()
                            .and_then(|s| s.stats.frames_decoded)
                            .map(|n| format!("{n} frames decoded"))
                            .unwrap_or_else(|| format!("{} frames presented", f.presented));
                        let pool = c.first_log("Failed to acquire buffer from pool", 0.0).map(|(_, l)| format!("; Wolf logged \"{l}\"")).unwrap_or_default();
                        return Some(Detection {
                            fault: FailureId::F8,
                            name: "black-frames".into(),
                            tab: Some(v.tab),
                            message: format!(
                                "{} shows black frames (mean luma {:.0}) for {:.1} s while decoding ({decoding}){pool}",
                                who(v),
                                f.mean_luma,
                                secs(f.at - s)
                            ),
                            first_symptom: s,
                            decided_at: f.at,
                        });
                    }
                } else {
                    start = None;
                }
            }
            None
        })
        .min_by(|a, b| a.first_symptom.total_cmp(&b.first_symptom))
}

/// F9's quick rule: `freeze_frames` new frames *presented* with one unchanged stamp. A teardown
/// cannot satisfy it: a stream that ends stops presenting frames (the count stands still), while
/// a frozen producer keeps the connection delivering identical ones (the stamp's counter moves
/// with every source frame, 30 per second, so ten presented frames with one stamp span ~0.3 s of
/// a source that did not move). An unstamped picture may stand still on purpose and still needs
/// `freeze_secs`.
/// A connected viewer's picture stands still: the same stamp over `freeze_frames` new frames,
/// or the same picture for `freeze_secs`.
///
/// Differential against F16 (pipelines blocked: the lost type lock stops every producer too,
/// so its viewers freeze the same way): Wolf's health decides. Where Wolf reports its health,
/// F9 needs a poll since the picture stood still that says pipelines can still be created, and
/// a freeze after Wolf said they cannot is F16's, never F9's. Without a health endpoint the
/// picture alone decides.
pub(super) fn f9_frozen_video(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    let lost = pipelines_lost_at(c);
    c.viewers
        .iter()
        .filter_map(|v| {
            let connected = v.first_connected_at?;
            // (first sample, its key, frames presented by then)
            let mut run: Option<(EpochMs, (u64, u64), u64)> = None;
            for f in v.frames.iter().filter(|f| f.at > connected && f.video_width > 0 && f.mean_luma >= crate::frames::analysis::BLACK_LUMA) {
                // With stamps the counter must move; without, the picture hash.
                let key = f.stamp.map_or((0, f.hash), |s| (1 + u64::from(s.tag), u64::from(s.counter)));
                let (s, p0) = match &run {
                    Some((s, k, p0)) if *k == key => (*s, *p0),
                    _ => {
                        run = Some((f.at, key, f.presented));
                        (f.at, f.presented)
                    }
                };
                // A stamp's counter moves with every source frame: new frames presented with the
                // same stamp prove the source froze, long before a duration would. (A picture
                // without a stamp may be still on purpose, so it needs the duration.)
                let new_frames = f.presented.saturating_sub(p0);
                let proven = f.stamp.is_some() && new_frames >= t.freeze_frames.max(1);
                if lost.is_some_and(|l| l <= f.at) {
                    return None;
                }
                let pipelines_fine = c.health.iter().find(|(at, h)| *at >= s && h.can_create_new_pipelines).map(|(at, _)| *at);
                if c.health.is_empty() || pipelines_fine.is_some() {
                    // Decided once both the picture and Wolf's word are in.
                    let decided = pipelines_fine.map_or(f.at, |p| p.max(f.at));
                    if (proven || f.at - s >= t.freeze_secs * 1000.0) && v.closed_at.is_none_or(|x| x > f.at) && !c.excused(v, f.at) {
                        return Some(Detection {
                            fault: FailureId::F9,
                            name: "frozen-video".into(),
                            tab: Some(v.tab),
                            message: format!(
                                "{} picture has not changed for {:.1} s ({new_frames} new frames presented) while the peer connection is {}",
                                who(v),
                                secs(f.at - s),
                                v.connection_state.as_deref().unwrap_or("?")
                            ),
                            first_symptom: s,
                            decided_at: decided,
                        });
                    }
                }
            }
            None
        })
        .min_by(|a, b| a.first_symptom.total_cmp(&b.first_symptom))
}

pub(super) fn f11_sctp_corruption(c: &Ctx, t: &Thresholds) -> Option<Detection> {
    let lines: Vec<EpochMs> = c.logs.iter().filter(|(_, _, m)| m.contains("chunk too short")).map(|(t, _, _)| *t).collect();
    let n = t.sctp_lines.max(1);
    lines.windows(n).find(|w| w[n - 1] - w[0] <= t.sctp_window_secs * 1000.0).map(|w| Detection {
        fault: FailureId::F11,
        name: "sctp-corruption".into(),
        tab: None,
        message: format!("moonlight-web logged `chunk too short` {n} times in {:.1} s", secs(w[n - 1] - w[0])),
        first_symptom: w[0],
        decided_at: w[n - 1],
    })
}
