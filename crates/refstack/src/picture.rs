//! The pictures the stand-in Wolf encodes: one look per producer, plus the F8 black picture.
//!
//! Each producer (the Wolf UI, each lobby) gets its own background colour and a bar that moves
//! with the frame counter, so a human looking at a screenshot sees at a glance whose picture it is
//! and whether it moves; the stamp in the top strip says the same to the driver. `black` renders
//! what a session whose CUDA buffer pool ran dry shows: frames keep coming, all black.

use super::wolf::state::PictureSpec;
use helix_e2e_shared::stamp::{self, Stamp};
use openh264::formats::YUVSource;

/// An I420 picture (full-resolution Y, half-resolution U and V, no padding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YuvFrame {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl YUVSource for YuvFrame {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.width / 2, self.width / 2)
    }

    fn y(&self) -> &[u8] {
        &self.y
    }

    fn u(&self) -> &[u8] {
        &self.u
    }

    fn v(&self) -> &[u8] {
        &self.v
    }
}

/// Video-range BT.601 conversion: the encoder signals no colour description, and browsers then
/// assume BT.601 limited range.
fn rgb_to_yuv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let (r, g, b) = (f64::from(r), f64::from(g), f64::from(b));
    let y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0;
    let u = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0;
    let v = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0;
    let c = |x: f64| x.round().clamp(16.0, 240.0) as u8;
    (c(y), c(u), c(v))
}

/// Background colour of a producer. The Wolf UI is a neutral grey-blue; lobbies get a hue from
/// their tag. Every background stays mid-bright so it never reads as black (F8) or as a stamp
/// block.
pub fn background_rgb(tag: u16) -> (u8, u8, u8) {
    if tag == stamp::WOLF_UI_TAG {
        return (96, 112, 140);
    }
    // Golden-ratio steps spread neighbouring tags far apart on the hue circle.
    let hue = (f64::from(tag) * 0.618_033_988_75).fract() * 6.0;
    let sector = hue.floor() as u32;
    let f = hue - hue.floor();
    let (hi, lo) = (200.0, 70.0);
    let up = lo + (hi - lo) * f;
    let down = hi - (hi - lo) * f;
    let (r, g, b) = match sector {
        0 => (hi, up, lo),
        1 => (down, hi, lo),
        2 => (lo, hi, up),
        3 => (lo, down, hi),
        4 => (up, lo, hi),
        _ => (hi, lo, down),
    };
    (r as u8, g as u8, b as u8)
}

/// Render one picture. `width` and `height` must be even (I420).
pub fn render(spec: &PictureSpec, width: u32, height: u32) -> YuvFrame {
    let (w, h) = (width as usize & !1, height as usize & !1);
    let (cw, ch) = (w / 2, h / 2);
    if spec.black {
        return YuvFrame { width: w, height: h, y: vec![stamp::BLACK; w * h], u: vec![128; cw * ch], v: vec![128; cw * ch] };
    }
    let (by, bu, bv) = {
        let (r, g, b) = background_rgb(spec.tag);
        rgb_to_yuv(r, g, b)
    };
    let mut y = vec![by; w * h];
    let mut u = vec![bu; cw * ch];
    let mut v = vec![bv; cw * ch];

    // The bar lives below the stamp strip (tag, counter and input echo) so it never disturbs it.
    let strip = stamp::strip_height(h);
    let bar_w = (w / 20).max(2) & !1;
    let travel = w.saturating_sub(bar_w).max(1);
    // Bounce rather than wrap: a wrap would make frame N and N+travel identical in a way a
    // freeze detector could not tell from a stall.
    let step = (spec.counter as usize * 4) % (2 * travel);
    let bar_x = if step < travel { step } else { 2 * travel - step } & !1;
    let bar_top = strip + (h - strip) / 4;
    let bar_bottom = h - (h - strip) / 4;
    for row in bar_top..bar_bottom {
        y[row * w + bar_x..row * w + bar_x + bar_w].fill(220);
    }
    for row in bar_top / 2..bar_bottom / 2 {
        u[row * cw + bar_x / 2..row * cw + (bar_x + bar_w) / 2].fill(128);
        v[row * cw + bar_x / 2..row * cw + (bar_x + bar_w) / 2].fill(128);
    }

    stamp::draw(&mut y, w, h, Stamp { tag: spec.tag, counter: (spec.counter % 1024) as u16 });
    stamp::draw_echo(&mut y, w, h, spec.echo);
    // Neutral chroma under the stamp keeps its blocks pure black and white after the browser's
    // YUV to RGB conversion.
    for v_or_u in [&mut u, &mut v] {
        v_or_u[..cw * (strip / 2)].fill(128);
    }
    YuvFrame { width: w, height: h, y, u, v }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tag: u16, counter: u32) -> PictureSpec {
        PictureSpec { tag, counter, black: false, echo: stamp::InputEcho::default() }
    }

    #[test]
    fn every_picture_carries_its_stamp() {
        for (tag, counter) in [(0, 0), (17, 5), (4095, 2047)] {
            let f = render(&spec(tag, counter), 320, 180);
            assert_eq!(f.y.len(), 320 * 180);
            assert_eq!(f.u.len(), 160 * 90);
            assert_eq!(stamp::decode(&f.y, 320, 180), Some(Stamp { tag, counter: (counter % 1024) as u16 }));
            assert_eq!(stamp::decode_echo(&f.y, 320, 180), Some(stamp::InputEcho::default()));
        }
        let echo = stamp::InputEcho { events: 3, key: 0x87, modifiers: stamp::Modifiers::SHIFT };
        let f = render(&PictureSpec { echo, ..spec(9, 1) }, 320, 180);
        assert_eq!(stamp::decode_echo(&f.y, 320, 180), Some(echo));
    }

    #[test]
    fn black_is_all_black_with_no_stamp() {
        let f = render(&PictureSpec { tag: 5, counter: 9, black: true, echo: stamp::InputEcho::default() }, 320, 180);
        assert!(f.y.iter().all(|&p| p == stamp::BLACK));
        assert_eq!(stamp::decode(&f.y, 320, 180), None);
    }

    #[test]
    fn the_bar_moves_with_the_counter() {
        let a = render(&spec(3, 10), 320, 180);
        let b = render(&spec(3, 11), 320, 180);
        let below = 320 * stamp::strip_height(180);
        assert_ne!(a.y[below..], b.y[below..]);
    }

    #[test]
    fn producers_get_distinct_backgrounds() {
        let ui = background_rgb(stamp::WOLF_UI_TAG);
        let tags = [1u16, 2, 3, 100, 4095];
        for t in tags {
            assert_ne!(background_rgb(t), ui);
            for u in tags {
                if u != t {
                    assert_ne!(background_rgb(t), background_rgb(u), "tags {t} and {u}");
                }
            }
        }
    }

    #[test]
    fn backgrounds_are_never_dark_enough_to_look_black() {
        for t in 0..4096u16 {
            let (r, g, b) = background_rgb(t);
            let (y, _, _) = rgb_to_yuv(r, g, b);
            assert!(y > 60, "tag {t} background luma {y}");
        }
    }
}
