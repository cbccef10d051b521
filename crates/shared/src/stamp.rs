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

/// Tag of the Wolf UI picture (a session not in any lobby).
pub const WOLF_UI_TAG: u16 = 0;

/// Blocks per stamp row (guards included).
pub const COLUMNS: usize = 16;
/// Stamp rows.
pub const ROWS: usize = 2;
/// The stamp's height as a fraction of the picture height: 40 of 180 rows, i.e. one ninth per row.
const ROW_FRACTION_DEN: usize = 9;

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

/// The 2x16 block pattern of a stamp: `true` = white.
fn pattern(stamp: Stamp) -> [[bool; COLUMNS]; ROWS] {
    let tag = stamp.tag & 0x0fff;
    let counter = stamp.counter & 0x03ff;
    let crc = crc6(tag, counter);
    let mut rows = [[false; COLUMNS]; ROWS];
    rows[0][0] = true;
    rows[0][COLUMNS - 1] = false;
    rows[1][0] = false;
    rows[1][COLUMNS - 1] = true;
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
    if width == 0 || height == 0 || luma_plane.len() < width * height {
        return;
    }
    let rows = pattern(stamp);
    for (r, row) in rows.iter().enumerate() {
        let (y0, y1) = span(r, ROW_FRACTION_DEN, height);
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
    // At least one pixel per block, or sampling reads neighbours.
    if width < COLUMNS || height < ROW_FRACTION_DEN || luma.len() < width * height {
        return None;
    }
    let mut rows = [[false; COLUMNS]; ROWS];
    for (r, row) in rows.iter_mut().enumerate() {
        for (c, bit) in row.iter_mut().enumerate() {
            let v = sample(luma, width, height, r, c);
            if v > AMBIGUOUS_LOW && v < AMBIGUOUS_HIGH {
                return None;
            }
            *bit = v >= AMBIGUOUS_HIGH;
        }
    }
    let guards_ok = rows[0][0] && !rows[0][COLUMNS - 1] && !rows[1][0] && rows[1][COLUMNS - 1];
    if !guards_ok {
        return None;
    }
    let bits = |row: &[bool; COLUMNS], from: usize, n: usize| -> u16 { row[from..from + n].iter().fold(0u16, |acc, b| (acc << 1) | u16::from(*b)) };
    let tag = bits(&rows[0], 1, TAG_BITS as usize);
    let counter = bits(&rows[1], 1, COUNTER_BITS as usize);
    let crc = (bits(&rows[0], 13, 2) << 4) | bits(&rows[1], 11, 4);
    if crc as u8 != crc6(tag, counter) {
        return None;
    }
    Some(Stamp { tag, counter })
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

    #[test]
    fn h264_round_trip_at_low_bitrate_decodes_from_the_probe_sample() {
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(150_000))
            .max_frame_rate(FrameRate::from_hz(30.0))
            .rate_control_mode(RateControlMode::Bitrate)
            // Without frame skipping openh264 ignores the bitrate target.
            .skip_frames(true);
        let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config).expect("encoder");
        let mut decoder = Decoder::new().expect("decoder");
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
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *px = (x >> 24) as u8;
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

    #[test]
    fn undersized_input_is_rejected_not_read_out_of_bounds() {
        assert_eq!(decode(&[0u8; 10], LUMA_W, LUMA_H), None);
        assert_eq!(decode(&[0u8; 8 * 4], 8, 4), None);
    }
}
