//! What a tab's video shows over a window of frame samples: nothing, black, frozen, moving,
//! and — when pictures are stamped — whose picture and whether its counter advances.

use super::stamp::{self, Stamp};
use crate::browser::viewers::TimedFrame;
use crate::timeline::EpochMs;
use serde::Serialize;

/// Mean luma under this is "black" (studio-range black is 16; allow for noise).
pub const BLACK_LUMA: f64 = 24.0;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PixelSummary {
    pub samples: usize,
    /// Samples whose video had a size (something decoded).
    pub with_video: usize,
    pub black: bool,
    /// Distinct frame hashes in the window: 1 with several samples means frozen.
    pub distinct_hashes: usize,
    /// The stamp most samples decoded to, if any.
    pub stamp: Option<Stamp>,
    /// Share of samples with a decodable stamp.
    pub stamped_share: f64,
    /// Whether the stamp counter (or, without stamps, the hash) moved across the window.
    pub advancing: bool,
    pub mean_luma: f64,
    pub presented_fps: f64,
}

impl PixelSummary {
    pub fn verdict(&self) -> &'static str {
        if self.with_video == 0 {
            "no video"
        } else if self.black {
            "black"
        } else if !self.advancing {
            "frozen"
        } else {
            "moving"
        }
    }
}

/// Summarise the samples taken in `[from, to]`.
pub fn summarize(frames: &[TimedFrame], from: EpochMs, to: EpochMs) -> PixelSummary {
    let window: Vec<&TimedFrame> = frames.iter().filter(|f| f.at >= from && f.at <= to).collect();
    let mut sum = PixelSummary { samples: window.len(), ..Default::default() };
    if window.is_empty() {
        return sum;
    }
    let live: Vec<&TimedFrame> = window.iter().copied().filter(|f| f.video_width > 0).collect();
    sum.with_video = live.len();
    if live.is_empty() {
        return sum;
    }
    sum.mean_luma = live.iter().map(|f| f.mean_luma).sum::<f64>() / live.len() as f64;
    sum.black = live.iter().all(|f| f.mean_luma < BLACK_LUMA);
    let mut hashes: Vec<u64> = live.iter().map(|f| f.hash).collect();
    hashes.sort();
    hashes.dedup();
    sum.distinct_hashes = hashes.len();
    let stamps: Vec<Stamp> = live.iter().filter_map(|f| f.stamp).collect();
    sum.stamped_share = stamps.len() as f64 / live.len() as f64;
    let mut tags: Vec<u16> = stamps.iter().map(|s| s.tag).collect();
    tags.sort();
    let top_tag = tags.chunk_by(|a, b| a == b).max_by_key(|c| c.len()).map(|c| c[0]);
    sum.stamp = top_tag.and_then(|t| stamps.iter().rev().find(|s| s.tag == t).copied());
    sum.advancing = if stamps.len() >= 2 {
        let counters: Vec<u16> = stamps.iter().filter(|s| Some(s.tag) == top_tag).map(|s| s.counter).collect();
        counters.windows(2).any(|w| w[0] != w[1])
    } else {
        live.len() >= 2 && sum.distinct_hashes > 1
    };
    if let (Some(first), Some(last)) = (live.first(), live.last()) {
        let dt = (last.at - first.at) / 1000.0;
        if dt > 0.0 {
            sum.presented_fps = last.presented.saturating_sub(first.presented) as f64 / dt;
        }
    }
    sum
}

/// Decode the stamp from a screenshot of a `<video>` element. The picture is letterboxed inside
/// the element (`object-fit: contain`), so the 16:9 content rectangle is cut out first.
pub fn stamp_from_png(png: &[u8]) -> Option<Stamp> {
    let img = image::load_from_memory_with_format(png, image::ImageFormat::Png).ok()?.to_luma8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (cw, ch) = if w * 9 > h * 16 { (h * 16 / 9, h) } else { (w, w * 9 / 16) };
    let (x0, y0) = ((w - cw) / 2, (h - ch) / 2);
    let mut luma = Vec::with_capacity(cw * ch);
    for y in y0..y0 + ch {
        let row = &img.as_raw()[y * w..(y + 1) * w];
        luma.extend_from_slice(&row[x0..x0 + cw]);
    }
    stamp::decode(&luma, cw, ch)
}
