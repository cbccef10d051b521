//! A synthetic viewer's pictures as the probe samples a `<video>`: every access unit counted as
//! presented, a 64x36 luma grid taken every 200 ms (or at each keyframe, when only keyframes are
//! decoded), with the probe's mean and hash.

use super::connection::Counters;
use super::SyntheticError;
use crate::timeline::{Event, FrameSample, ProbeEvent, SyntheticDecode, TabId, Timeline, LUMA_H, LUMA_W};
use helix_e2e_shared::h264::{Decode, Picture, TrackDecoder};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The probe's frame sampling period; in [`SyntheticDecode::Every`] a sample is taken this often.
const FRAME_EVERY_MS: f64 = 200.0;

/// Decodes a track's pictures and samples them as the probe samples a `<video>`.
pub(crate) struct Sampler {
    tab: TabId,
    timeline: Timeline,
    decode: SyntheticDecode,
    counters: Arc<Counters>,
    last_sample: f64,
}

impl Sampler {
    pub(crate) fn new(tab: TabId, timeline: Timeline, decode: SyntheticDecode, counters: Arc<Counters>) -> Self {
        Sampler { tab, timeline, decode, counters, last_sample: 0.0 }
    }

    pub(crate) fn decoder(&self) -> Result<TrackDecoder, SyntheticError> {
        Ok(TrackDecoder::new(match self.decode {
            SyntheticDecode::Every => Decode::Every,
            SyntheticDecode::Keyframes => Decode::Keyframes,
        })?)
    }

    /// One access unit: counted as received (presented), sampled when due.
    pub(crate) fn frame(&mut self, f: helix_e2e_shared::h264::Frame) {
        let presented = self.counters.received.fetch_add(1, Ordering::Relaxed) + 1;
        let Some(p) = f.picture else { return };
        self.counters.decoded.fetch_add(1, Ordering::Relaxed);
        *self.counters.size.lock().unwrap_or_else(|e| e.into_inner()) = (p.width as u32, p.height as u32);
        let now = crate::timeline::now_ms();
        let due = match self.decode {
            SyntheticDecode::Every => now - self.last_sample >= FRAME_EVERY_MS,
            SyntheticDecode::Keyframes => true,
        };
        if !due {
            return;
        }
        self.last_sample = now;
        let sample = sample_of(&p, presented);
        self.timeline.push(Event::Tab { tab: self.tab, probe: ProbeEvent::Frame { video: 0, sample } });
    }
}

/// The probe's frame sample of a picture: the luma downscaled to `LUMA_W x LUMA_H` (area
/// average), its mean and FNV-1a hash (the probe's, so equal pictures hash equal).
pub fn sample_of(p: &Picture, presented: u64) -> FrameSample {
    use base64::Engine;
    let mut grid = vec![0u8; LUMA_W * LUMA_H];
    for gy in 0..LUMA_H {
        let (y0, y1) = (gy * p.height / LUMA_H, ((gy + 1) * p.height / LUMA_H).max(gy * p.height / LUMA_H + 1));
        for gx in 0..LUMA_W {
            let (x0, x1) = (gx * p.width / LUMA_W, ((gx + 1) * p.width / LUMA_W).max(gx * p.width / LUMA_W + 1));
            let (mut sum, mut n) = (0u64, 0u64);
            for y in y0..y1.min(p.height) {
                for x in x0..x1.min(p.width) {
                    sum += u64::from(p.luma[y * p.width + x]);
                    n += 1;
                }
            }
            grid[gy * LUMA_W + gx] = sum.checked_div(n).unwrap_or(0) as u8;
        }
    }
    let mean = grid.iter().map(|&b| f64::from(b)).sum::<f64>() / grid.len() as f64;
    let hash = grid.iter().fold(0x811c9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x01000193));
    FrameSample {
        video_width: p.width as u32,
        video_height: p.height as u32,
        presented,
        mean_luma: mean,
        hash: format!("{hash:08x}"),
        luma: base64::engine::general_purpose::STANDARD.encode(&grid),
        stamp: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_the_probes_grid_of_the_picture() {
        // A 320x180 picture: left half black, right half white.
        let (w, h) = (320, 180);
        let luma: Vec<u8> = (0..w * h).map(|i| if i % w < w / 2 { 0 } else { 255 }).collect();
        let s = sample_of(&Picture { width: w, height: h, luma }, 7);
        assert_eq!((s.video_width, s.video_height, s.presented), (320, 180, 7));
        assert!((s.mean_luma - 127.5).abs() < 0.01, "{}", s.mean_luma);
        use base64::Engine;
        let grid = base64::engine::general_purpose::STANDARD.decode(&s.luma).unwrap();
        assert_eq!(grid.len(), LUMA_W * LUMA_H);
        assert_eq!((grid[0], grid[LUMA_W - 1]), (0, 255));
        // Equal pictures hash equal, different ones not.
        let again = sample_of(&Picture { width: w, height: h, luma: (0..w * h).map(|i| if i % w < w / 2 { 0 } else { 255 }).collect() }, 8);
        assert_eq!(s.hash, again.hash);
        assert_ne!(s.hash, sample_of(&Picture { width: w, height: h, luma: vec![9; w * h] }, 1).hash);
    }
}
