//! The machine-readable stamp every reference-stack picture carries.
//!
//! A tab's video is only useful evidence if the driver can tell *whose* picture it shows and
//! whether it is still moving. Colours and hashes cannot answer "is this lobby A or lobby B" once
//! H.264 and a browser downscale have blurred them, so each picture carries a strip of large
//! black/white blocks that survives both: a tag naming the producer (Wolf UI or one lobby) and a
//! frame counter.
//!
//! Layout, in a 320x180 picture: the top 40 rows hold 2 rows x 16 columns of 20x20 blocks. The
//! outer column of each row is a guard (row 0: white … black, row 1: black … white), so a
//! uniform or random picture is not mistaken for a stamp. Row 0 carries the 12 tag bits and the
//! top 2 bits of a CRC-6; row 1 carries the 10 counter bits and the low 4 CRC bits. The CRC covers
//! tag and counter together. Everything is expressed as fractions of the picture so the same
//! decoder reads the 64x36 probe sample (4x4 px per block) and a full-size screenshot.
//!
//! Below them, rows 2 and 3 (same blocks, same guards) carry the input echo: what the desktop
//! made of the input it received (events counted, the last key pressed, the modifiers held), so a
//! driver can send real input and read back from the pixels that it arrived, how long it took,
//! and whether a modifier stayed latched (F21). Row 2: 8 event-counter bits, 4 modifier bits and
//! the top 2 bits of a CRC-8; row 3: the 8 key-code bits and the low 6 CRC bits. The echo has its
//! own check bits, so a picture whose echo rows are damaged still yields its tag and counter.
//!
//! Why one file of over 400 lines: it is about 330 without its tests; the layout, the encoder and
//! the decoder must agree bit for bit, and the tests that hold them together belong beside them.

/// Tag of the Wolf UI picture (a session not in any lobby).
pub const WOLF_UI_TAG: u16 = 0;

/// Blocks per stamp row (guards included).
pub const COLUMNS: usize = 16;
/// Rows of the tag/counter part.
pub const ROWS: usize = 2;
/// Rows of the input echo, below the tag/counter rows.
pub const ECHO_ROWS: usize = 2;
/// Each row's height as a fraction of the picture height: 20 of 180 rows, i.e. one ninth per row.
const ROW_FRACTION_DEN: usize = 9;

/// Pixel rows the whole stamp (tag, counter and echo) covers at the top of a `height`-row picture:
/// a producer draws nothing else there.
pub fn strip_height(height: usize) -> usize {
    span(ROWS + ECHO_ROWS, ROW_FRACTION_DEN, height).0
}

/// Luma of a black block (video range).
pub const BLACK: u8 = 16;
/// Luma of a white block (video range).
pub const WHITE: u8 = 235;

/// Tag bits in row 0.
const TAG_BITS: u32 = 12;
/// Counter bits in row 1; the counter wraps at 1024.
const COUNTER_BITS: u32 = 10;
const CRC_BITS: u32 = 6;

/// Samples between these values are neither black nor white: the block is not a stamp block.
/// The band is wide because a browser canvas turns video-range 16/235 into 0/255 while raw decoder
/// output keeps 16/235; both must land clearly on one side.
const AMBIGUOUS_LOW: f64 = 80.0;
const AMBIGUOUS_HIGH: f64 = 176.0;

/// The tag a lobby's picture carries, derived from its id so the driver can compute it from
/// Wolf's API alone. Never `WOLF_UI_TAG`.
pub fn lobby_tag(lobby_id: &str) -> u16 {
    // FNV-1a: stable across builds and platforms, unlike std's randomly seeded hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in lobby_id.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    // Fold the high bits in so ids differing only late still spread over all 12 bits.
    let folded = (h ^ (h >> 12) ^ (h >> 24)) & 0x0fff;
    (folded % 4095) as u16 + 1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    pub tag: u16,
    /// Frame counter modulo 1024 (the stamp has 10 bits for it).
    pub counter: u16,
}

/// CRC-6 (polynomial x^6 + x + 1) over the 22 data bits, most significant first.
fn crc6(tag: u16, counter: u16) -> u8 {
    let data: u32 = (u32::from(tag & 0x0fff) << COUNTER_BITS) | u32::from(counter & 0x03ff);
    let mut crc: u8 = 0;
    for i in (0..TAG_BITS + COUNTER_BITS).rev() {
        let bit = ((data >> i) & 1) as u8;
        let top = (crc >> (CRC_BITS - 1)) & 1;
        crc = (crc << 1) & 0x3f;
        if top ^ bit == 1 {
            crc ^= 0x03;
        }
    }
    crc
}

/// Two rows with their guards set (first row: white … black, second: black … white), data blank.
fn guarded() -> [[bool; COLUMNS]; 2] {
    let mut rows = [[false; COLUMNS]; 2];
    rows[0][0] = true;
    rows[1][COLUMNS - 1] = true;
    rows
}

/// Whether two rows carry the guards of [`guarded`].
fn guards_ok(rows: &[[bool; COLUMNS]; 2]) -> bool {
    rows[0][0] && !rows[0][COLUMNS - 1] && !rows[1][0] && rows[1][COLUMNS - 1]
}

/// `n` bits of `row` from column `from`, most significant first.
fn bits(row: &[bool; COLUMNS], from: usize, n: usize) -> u16 {
    row[from..from + n].iter().fold(0u16, |acc, b| (acc << 1) | u16::from(*b))
}

/// Write the low `n` bits of `value` into `row` from column `from`, most significant first.
fn put(row: &mut [bool; COLUMNS], from: usize, n: usize, value: u16) {
    for i in 0..n {
        row[from + i] = (value >> (n - 1 - i)) & 1 == 1;
    }
}

/// The 2x16 block pattern of a stamp: `true` = white.
fn pattern(stamp: Stamp) -> [[bool; COLUMNS]; ROWS] {
    let tag = stamp.tag & 0x0fff;
    let counter = stamp.counter & 0x03ff;
    let crc = crc6(tag, counter);
    let mut rows = guarded();
    for i in 0..TAG_BITS as usize {
        rows[0][1 + i] = (tag >> (TAG_BITS as usize - 1 - i)) & 1 == 1;
    }
    rows[0][13] = (crc >> 5) & 1 == 1;
    rows[0][14] = (crc >> 4) & 1 == 1;
    for i in 0..COUNTER_BITS as usize {
        rows[1][1 + i] = (counter >> (COUNTER_BITS as usize - 1 - i)) & 1 == 1;
    }
    for i in 0..4 {
        rows[1][11 + i] = (crc >> (3 - i)) & 1 == 1;
    }
    rows
}

/// Pixel span `[start, end)` of block `index` out of `count` along an axis of `len` pixels.
fn span(index: usize, count: usize, len: usize) -> (usize, usize) {
    (index * len / count, (index + 1) * len / count)
}

/// Paint the stamp into the top strip of a luma plane (`width` x `height`, row-major, stride =
/// width). The counter is reduced modulo 1024, the tag to 12 bits.
pub fn draw(luma_plane: &mut [u8], width: usize, height: usize, stamp: Stamp) {
    paint(luma_plane, width, height, 0, &pattern(stamp));
}

/// Paint the input echo into rows 2 and 3 of the stamp strip (under [`draw`]'s rows).
pub fn draw_echo(luma_plane: &mut [u8], width: usize, height: usize, echo: InputEcho) {
    paint(luma_plane, width, height, ROWS, &echo_pattern(echo));
}

/// Paint two block rows starting at stamp row `first`.
fn paint(luma_plane: &mut [u8], width: usize, height: usize, first: usize, rows: &[[bool; COLUMNS]; 2]) {
    if width == 0 || height == 0 || luma_plane.len() < width * height {
        return;
    }
    for (r, row) in rows.iter().enumerate() {
        let (y0, y1) = span(first + r, ROW_FRACTION_DEN, height);
        for (c, white) in row.iter().enumerate() {
            let (x0, x1) = span(c, COLUMNS, width);
            let v = if *white { WHITE } else { BLACK };
            for y in y0..y1 {
                luma_plane[y * width + x0..y * width + x1].fill(v);
            }
        }
    }
}

/// Mean luma of the middle half (in each direction) of block (`r`, `c`): the edges are where
/// H.264 ringing and the downscale's blending live.
fn sample(luma: &[u8], width: usize, height: usize, r: usize, c: usize) -> f64 {
    let (x0, x1) = span(c, COLUMNS, width);
    let (y0, y1) = span(r, ROW_FRACTION_DEN, height);
    let inner = |a: usize, b: usize| {
        let quarter = (b - a) / 4;
        let (s, e) = (a + quarter, b - quarter);
        if e > s {
            (s, e)
        } else {
            (a, (a + 1).max(b))
        }
    };
    let (sx, ex) = inner(x0, x1);
    let (sy, ey) = inner(y0, y1);
    let mut sum = 0u64;
    let mut n = 0u64;
    for y in sy..ey.min(height) {
        for x in sx..ex.min(width) {
            sum += u64::from(luma[y * width + x]);
            n += 1;
        }
    }
    if n == 0 {
        return 128.0;
    }
    sum as f64 / n as f64
}

/// Decode the stamp from a luma plane (`width` x `height`, row-major). `None` when the picture
/// carries no stamp: a block is neither clearly black nor clearly white, a guard is wrong, or the
/// check bits disagree.
pub fn decode(luma: &[u8], width: usize, height: usize) -> Option<Stamp> {
    let rows = read(luma, width, height, 0)?;
    let tag = bits(&rows[0], 1, TAG_BITS as usize);
    let counter = bits(&rows[1], 1, COUNTER_BITS as usize);
    let crc = (bits(&rows[0], 13, 2) << 4) | bits(&rows[1], 11, 4);
    if crc as u8 != crc6(tag, counter) {
        return None;
    }
    Some(Stamp { tag, counter })
}

/// Read two guarded block rows starting at stamp row `first`; `None` when a block is neither
/// clearly black nor clearly white or a guard is wrong.
fn read(luma: &[u8], width: usize, height: usize, first: usize) -> Option<[[bool; COLUMNS]; 2]> {
    // At least one pixel per block, or sampling reads neighbours.
    if width < COLUMNS || height < ROW_FRACTION_DEN || luma.len() < width * height {
        return None;
    }
    let mut rows = [[false; COLUMNS]; 2];
    for (r, row) in rows.iter_mut().enumerate() {
        for (c, bit) in row.iter_mut().enumerate() {
            let v = sample(luma, width, height, first + r, c);
            if v > AMBIGUOUS_LOW && v < AMBIGUOUS_HIGH {
                return None;
            }
            *bit = v >= AMBIGUOUS_HIGH;
        }
    }
    guards_ok(&rows).then_some(rows)
}

/// Modifier keys held, in Moonlight's `MODIFIER_*` bits (the keyboard packet's modifier byte):
/// Shift 0x01, Ctrl 0x02, Alt 0x04, Meta 0x08.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Modifiers(pub u8);

impl Modifiers {
    pub const NONE: Modifiers = Modifiers(0);
    pub const SHIFT: Modifiers = Modifiers(0x01);
    pub const CTRL: Modifiers = Modifiers(0x02);
    pub const ALT: Modifiers = Modifiers(0x04);
    pub const META: Modifiers = Modifiers(0x08);
    const NAMES: [(Modifiers, &'static str); 4] = [(Self::SHIFT, "Shift"), (Self::CTRL, "Ctrl"), (Self::ALT, "Alt"), (Self::META, "Meta")];

    pub fn is_empty(self) -> bool {
        self.0 & 0x0f == 0
    }

    pub fn contains(self, other: Modifiers) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn with(self, other: Modifiers) -> Modifiers {
        Modifiers((self.0 | other.0) & 0x0f)
    }

    /// The modifier a key code (a Windows virtual-key code, as browsers and Moonlight send them)
    /// stands for: left, right and generic variants alike.
    pub fn of_key(key: u16) -> Modifiers {
        match key {
            0x10 | 0xA0 | 0xA1 => Self::SHIFT,
            0x11 | 0xA2 | 0xA3 => Self::CTRL,
            0x12 | 0xA4 | 0xA5 => Self::ALT,
            0x5B | 0x5C => Self::META,
            _ => Self::NONE,
        }
    }
}

impl std::fmt::Display for Modifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = Self::NAMES.iter().filter(|(m, _)| self.contains(*m)).map(|(_, n)| *n).collect();
        f.write_str(&names.join("+"))
    }
}

/// What a desktop shows of the input it received (rows 2 and 3 of the stamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct InputEcho {
    /// Input events applied to the desktop, modulo 256 (keys, buttons, moves, scrolls).
    pub events: u8,
    /// The last key pressed (Windows virtual-key code, low 8 bits); 0 before any.
    pub key: u8,
    /// The modifier keys held on the desktop now.
    pub modifiers: Modifiers,
}

/// CRC-8 (polynomial x^8 + x^2 + x + 1) over the echo's 20 data bits, most significant first.
fn crc8(echo: InputEcho) -> u8 {
    let data: u32 = (u32::from(echo.events) << 12) | (u32::from(echo.modifiers.0 & 0x0f) << 8) | u32::from(echo.key);
    let mut crc: u8 = 0;
    for i in (0..20).rev() {
        let bit = ((data >> i) & 1) as u8;
        let top = crc >> 7;
        crc <<= 1;
        if top ^ bit == 1 {
            crc ^= 0x07;
        }
    }
    crc
}

fn echo_pattern(echo: InputEcho) -> [[bool; COLUMNS]; 2] {
    let echo = InputEcho { modifiers: Modifiers(echo.modifiers.0 & 0x0f), ..echo };
    let crc = u16::from(crc8(echo));
    let mut rows = guarded();
    put(&mut rows[0], 1, 8, u16::from(echo.events));
    put(&mut rows[0], 9, 4, u16::from(echo.modifiers.0));
    put(&mut rows[0], 13, 2, crc >> 6);
    put(&mut rows[1], 1, 8, u16::from(echo.key));
    put(&mut rows[1], 9, 6, crc & 0x3f);
    rows
}

/// Decode the input echo (rows 2 and 3) from a luma plane. `None` when the picture carries none:
/// a block is ambiguous, a guard is wrong, or the check bits disagree.
pub fn decode_echo(luma: &[u8], width: usize, height: usize) -> Option<InputEcho> {
    let rows = read(luma, width, height, ROWS)?;
    let echo = InputEcho { events: bits(&rows[0], 1, 8) as u8, key: bits(&rows[1], 1, 8) as u8, modifiers: Modifiers(bits(&rows[0], 9, 4) as u8) };
    let crc = (bits(&rows[0], 13, 2) << 6) | bits(&rows[1], 9, 6);
    (crc as u8 == crc8(echo)).then_some(echo)
}

#[cfg(test)]
mod tests {
    use super::*;
    /// The probe's sample of a picture (`timeline::LUMA_W` x `LUMA_H` in the driver).
    const LUMA_W: usize = 64;
    const LUMA_H: usize = 36;
    use openh264::decoder::Decoder;
    use openh264::encoder::{BitRate, Encoder, EncoderConfig, FrameRate, RateControlMode};
    use openh264::formats::{YUVBuffer, YUVSource};
    use openh264::OpenH264API;

    const W: usize = 320;
    const H: usize = 180;

    /// A busy picture around the stamp, so the encoder spends bits elsewhere as a game would.
    fn picture(stamp: Stamp, frame: usize) -> Vec<u8> {
        let mut yuv = vec![128u8; W * H * 3 / 2];
        let (y, _) = yuv.split_at_mut(W * H);
        for row in 0..H {
            for col in 0..W {
                y[row * W + col] = (((row * 7 + col * 3 + frame * 11) % 200) + 28) as u8;
            }
        }
        draw(y, W, H, stamp);
        yuv
    }

    /// Box-average a plane down to `ow` x `oh`, as a canvas downscale does.
    fn box_downscale(src: &[u8], sw: usize, sh: usize, stride: usize, ow: usize, oh: usize) -> Vec<u8> {
        let mut out = vec![0u8; ow * oh];
        for oy in 0..oh {
            for ox in 0..ow {
                let (x0, x1) = (ox * sw / ow, (ox + 1) * sw / ow);
                let (y0, y1) = (oy * sh / oh, (oy + 1) * sh / oh);
                let mut sum = 0u32;
                for yy in y0..y1 {
                    for xx in x0..x1 {
                        sum += u32::from(src[yy * stride + xx]);
                    }
                }
                out[oy * ow + ox] = (sum / ((x1 - x0) * (y1 - y0)) as u32) as u8;
            }
        }
        out
    }

    #[test]
    fn lobby_tags_are_never_the_wolf_ui_tag_and_fit_twelve_bits() {
        for i in 0..5000 {
            let t = lobby_tag(&format!("{:08x}-0000-4000-8000-{:012x}", i * 7919, i));
            assert!((1..=4095).contains(&t), "tag {t} out of range");
        }
        assert_eq!(lobby_tag("abc"), lobby_tag("abc"));
    }

    #[test]
    fn lobby_tags_spread_over_the_range() {
        let tags: std::collections::BTreeSet<u16> = (0..200).map(|_| lobby_tag(&uuid::Uuid::new_v4().to_string())).collect();
        // 200 random ids into 4095 tags: a handful of collisions at most.
        assert!(tags.len() > 185, "only {} distinct tags", tags.len());
    }

    #[test]
    fn full_size_round_trip_without_compression() {
        for (tag, counter) in [(0, 0), (1, 1), (4095, 1023), (2730, 341), (1365, 682)] {
            let s = Stamp { tag, counter };
            let yuv = picture(s, 3);
            assert_eq!(decode(&yuv[..W * H], W, H), Some(s));
        }
    }

    #[test]
    fn counter_wraps_at_1024() {
        let yuv = picture(Stamp { tag: 9, counter: 1024 + 5 }, 0);
        assert_eq!(decode(&yuv[..W * H], W, H), Some(Stamp { tag: 9, counter: 5 }));
    }

    /// The next byte of a xorshift64 stream: noise that is the same on every run.
    fn xorshift(x: &mut u64) -> u8 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 24) as u8
    }

    /// An H.264 encoder at a low bitrate (the stamp must survive it) and a decoder.
    fn low_bitrate_codec() -> (Encoder, Decoder) {
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(150_000))
            .max_frame_rate(FrameRate::from_hz(30.0))
            .rate_control_mode(RateControlMode::Bitrate)
            // Without frame skipping openh264 ignores the bitrate target.
            .skip_frames(true);
        (Encoder::with_api_config(OpenH264API::from_source(), config).expect("encoder"), Decoder::new().expect("decoder"))
    }

    #[test]
    fn h264_round_trip_at_low_bitrate_decodes_from_the_probe_sample() {
        let (mut encoder, mut decoder) = low_bitrate_codec();
        let stamps: Vec<Stamp> = [0u16, 1, 77, 2048, 4095, lobby_tag("0d5c2f7e-8a41-4a8e-9a43-2d1b7c9b1e22")]
            .iter()
            .enumerate()
            .flat_map(|(i, &tag)| (0..5u16).map(move |k| Stamp { tag, counter: (i as u16 * 211 + k * 97) % 1024 }))
            .collect();
        let mut decoded_frames = 0;
        let mut bytes = 0;
        for (frame, s) in stamps.iter().enumerate() {
            let yuv = YUVBuffer::from_vec(picture(*s, frame), W, H);
            let bitstream = encoder.encode(&yuv).expect("encode").to_vec();
            bytes += bitstream.len();
            if bitstream.is_empty() {
                continue;
            }
            let Some(out) = decoder.decode(&bitstream).expect("decode") else { continue };
            let (dw, dh) = out.dimensions();
            assert_eq!((dw, dh), (W, H));
            let (ystride, _, _) = out.strides();
            let full: Vec<u8> = (0..H).flat_map(|r| out.y()[r * ystride..r * ystride + W].to_vec()).collect();
            assert_eq!(decode(&full, W, H), Some(*s), "full-size frame {frame}");
            let small = box_downscale(out.y(), W, H, ystride, LUMA_W, LUMA_H);
            assert_eq!(decode(&small, LUMA_W, LUMA_H), Some(*s), "64x36 sample of frame {frame}");
            decoded_frames += 1;
        }
        let kbps = bytes as f64 * 8.0 * 30.0 / stamps.len() as f64 / 1000.0;
        assert!(kbps < 400.0, "not a low-bitrate stream: {kbps:.0} kbps");
        assert!(decoded_frames * 2 >= stamps.len(), "only {decoded_frames} of {} frames decoded", stamps.len());
    }

    #[test]
    fn pictures_without_a_stamp_decode_to_none() {
        let grey = vec![128u8; LUMA_W * LUMA_H];
        assert_eq!(decode(&grey, LUMA_W, LUMA_H), None);
        let black = vec![BLACK; W * H];
        assert_eq!(decode(&black, W, H), None);
        let white = vec![WHITE; LUMA_W * LUMA_H];
        assert_eq!(decode(&white, LUMA_W, LUMA_H), None);
        // Random black/white blocks hit the colours but not the guards and check bits together.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut accepted = 0;
        for _ in 0..2000 {
            let mut luma = vec![0u8; LUMA_W * LUMA_H];
            for px in luma.iter_mut() {
                *px = xorshift(&mut x);
            }
            if decode(&luma, LUMA_W, LUMA_H).is_some() {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 0, "random noise decoded as a stamp");
    }

    #[test]
    fn a_flipped_data_block_is_rejected_by_the_check_bits() {
        let s = Stamp { tag: 1234, counter: 567 };
        let mut y = picture(s, 0)[..W * H].to_vec();
        // Invert the block holding tag bit 5 (row 0, column 7).
        for row in 0..20 {
            for px in &mut y[row * W + 140..row * W + 160] {
                *px = if *px == WHITE { BLACK } else { WHITE };
            }
        }
        assert_eq!(decode(&y, W, H), None);
    }

    /// A busy picture with a stamp and an input echo.
    fn echoed(stamp: Stamp, echo: InputEcho, frame: usize) -> Vec<u8> {
        let mut yuv = picture(stamp, frame);
        draw_echo(&mut yuv[..W * H], W, H, echo);
        yuv
    }

    fn echoes() -> Vec<InputEcho> {
        let m = |b| Modifiers(b);
        vec![
            InputEcho::default(),
            InputEcho { events: 255, key: 255, modifiers: m(0x0f) },
            InputEcho { events: 1, key: 0x87, modifiers: Modifiers::NONE },
            InputEcho { events: 17, key: 0x87, modifiers: Modifiers::SHIFT },
            InputEcho { events: 128, key: 0x10, modifiers: Modifiers::SHIFT.with(Modifiers::CTRL) },
            InputEcho { events: 85, key: 0xAA, modifiers: m(0x05) },
        ]
    }

    #[test]
    fn echo_round_trips_beside_the_stamp_at_full_size_and_leaves_tag_and_counter_intact() {
        for (i, echo) in echoes().into_iter().enumerate() {
            let s = Stamp { tag: 1000 + i as u16, counter: 7 * i as u16 };
            let yuv = echoed(s, echo, i);
            assert_eq!(decode(&yuv[..W * H], W, H), Some(s));
            assert_eq!(decode_echo(&yuv[..W * H], W, H), Some(echo));
        }
        // A picture without an echo has its stamp and no echo.
        let plain = picture(Stamp { tag: 3, counter: 4 }, 0);
        assert_eq!(decode(&plain[..W * H], W, H), Some(Stamp { tag: 3, counter: 4 }));
        assert_eq!(decode_echo(&plain[..W * H], W, H), None);
        assert_eq!(strip_height(H), 80);
    }

    #[test]
    fn echo_survives_h264_and_the_probe_downscale() {
        let (mut encoder, mut decoder) = low_bitrate_codec();
        let frames: Vec<(Stamp, InputEcho)> = echoes()
            .into_iter()
            .cycle()
            .take(30)
            .enumerate()
            .map(|(i, e)| (Stamp { tag: 77 + i as u16, counter: (i * 37) as u16 % 1024 }, InputEcho { events: e.events.wrapping_add(i as u8), ..e }))
            .collect();
        let mut decoded = 0;
        for (frame, (s, e)) in frames.iter().enumerate() {
            let yuv = YUVBuffer::from_vec(echoed(*s, *e, frame), W, H);
            let bitstream = encoder.encode(&yuv).expect("encode").to_vec();
            if bitstream.is_empty() {
                continue;
            }
            let Some(out) = decoder.decode(&bitstream).expect("decode") else { continue };
            let (ystride, _, _) = out.strides();
            let full: Vec<u8> = (0..H).flat_map(|r| out.y()[r * ystride..r * ystride + W].to_vec()).collect();
            assert_eq!(decode_echo(&full, W, H), Some(*e), "full-size frame {frame}");
            let small = box_downscale(out.y(), W, H, ystride, LUMA_W, LUMA_H);
            assert_eq!(decode_echo(&small, LUMA_W, LUMA_H), Some(*e), "64x36 sample of frame {frame}");
            assert_eq!(decode(&small, LUMA_W, LUMA_H), Some(*s), "64x36 stamp of frame {frame}");
            decoded += 1;
        }
        assert!(decoded * 2 >= frames.len(), "only {decoded} of {} frames decoded", frames.len());
    }

    #[test]
    fn noise_and_a_flipped_echo_block_never_read_as_an_echo() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let (mut noise_accepted, mut blocky_accepted) = (0, 0);
        for _ in 0..2000 {
            let mut luma = vec![0u8; LUMA_W * LUMA_H];
            for px in luma.iter_mut() {
                *px = xorshift(&mut x);
            }
            noise_accepted += usize::from(decode_echo(&luma, LUMA_W, LUMA_H).is_some());
            // The hardest case: uniform 4x4 blocks of pure black or white, every block clear-cut.
            let blocky: Vec<u8> = (0..LUMA_W * LUMA_H).map(|i| if luma[(i / LUMA_W / 4) * LUMA_W + (i % LUMA_W) / 4] >= 128 { WHITE } else { BLACK }).collect();
            blocky_accepted += usize::from(decode_echo(&blocky, LUMA_W, LUMA_H).is_some());
        }
        assert_eq!(noise_accepted, 0, "random noise decoded as an echo");
        // Guards (4 bits) and CRC-8 let 1 in 4096 random block patterns through: about 0.5 here.
        assert!(blocky_accepted <= 2, "{blocky_accepted} random block patterns decoded as an echo");
        let e = InputEcho { events: 9, key: 0x87, modifiers: Modifiers::SHIFT };
        let mut y = echoed(Stamp { tag: 5, counter: 6 }, e, 0)[..W * H].to_vec();
        // Invert the block holding modifier bit 0 (row 2, column 12): Shift would read as gone.
        for row in 40..60 {
            for px in &mut y[row * W + 240..row * W + 260] {
                *px = if *px == WHITE { BLACK } else { WHITE };
            }
        }
        assert_eq!(decode_echo(&y, W, H), None);
        assert_eq!(decode(&y, W, H), Some(Stamp { tag: 5, counter: 6 }), "a damaged echo does not cost the stamp");
    }

    #[test]
    fn modifiers_name_themselves_and_map_key_codes() {
        assert_eq!(Modifiers::SHIFT.with(Modifiers::CTRL).to_string(), "Shift+Ctrl");
        assert_eq!(Modifiers::NONE.to_string(), "none");
        assert_eq!(Modifiers::of_key(0x10), Modifiers::SHIFT);
        assert_eq!(Modifiers::of_key(0xA3), Modifiers::CTRL);
        assert_eq!(Modifiers::of_key(0x5B), Modifiers::META);
        assert_eq!(Modifiers::of_key(0x87), Modifiers::NONE);
    }

    #[test]
    fn undersized_input_is_rejected_not_read_out_of_bounds() {
        assert_eq!(decode(&[0u8; 10], LUMA_W, LUMA_H), None);
        assert_eq!(decode(&[0u8; 8 * 4], 8, 4), None);
    }
}
