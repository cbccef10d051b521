//! A WebRTC video track's H.264, depacketized and decoded to luma pictures: what every reader of
//! the stand-in's stream without a browser needs (the driver's synthetic viewers, the stand-in's
//! streamer tests, the fault tests), once.
//!
//! Two ways to decode. [`Decode::Every`] decodes every access unit, as a browser does.
//! [`Decode::Keyframes`] decodes only the access units that carry an IDR picture and skips the
//! rest undecoded: an IDR references nothing before it, so the decoder stays correct however many
//! predicted frames it never saw, and no picture is ever made from a broken reference chain. That
//! is the honest cheap mode: the stand-in sends an IDR every second (wolf::stream), so a viewer
//! still sees a fresh picture each second, and every access unit still counts as received.
//! Dropping only non-reference frames would be the other honest way, but the stand-in's encoder
//! marks every frame a reference (one temporal layer), so it would save nothing.

use std::sync::Arc;
use webrtc::media::io::sample_builder::SampleBuilder;
use webrtc::rtp::codecs::h264::H264Packet;
use webrtc::track::track_remote::TrackRemote;

/// Which access units are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    Every,
    Keyframes,
}

/// A decoded picture's luma plane, rows packed (no stride padding).
#[derive(Debug, Clone)]
pub struct Picture {
    pub width: usize,
    pub height: usize,
    pub luma: Vec<u8>,
}

/// One complete access unit of the track.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Whether it carries an IDR picture.
    pub keyframe: bool,
    /// The decoded picture; `None` when the mode skipped it or the decoder gave none.
    pub picture: Option<Picture>,
}

#[derive(Debug, thiserror::Error)]
#[error("H.264 decoder: {0}")]
pub struct DecoderError(String);

/// Depacketizer and decoder of one track, fed RTP packets in arrival order.
pub struct TrackDecoder {
    builder: SampleBuilder<H264Packet>,
    decoder: openh264::decoder::Decoder,
    mode: Decode,
}

impl TrackDecoder {
    pub fn new(mode: Decode) -> Result<Self, DecoderError> {
        let decoder = openh264::decoder::Decoder::new().map_err(|e| DecoderError(e.to_string()))?;
        // 256 packets of reorder room: a 4K IDR of the stand-in is well under that.
        Ok(TrackDecoder { builder: SampleBuilder::new(256, H264Packet::default(), 90_000), decoder, mode })
    }

    /// Take one RTP packet; every access unit it completes goes to `out`.
    pub fn push(&mut self, pkt: webrtc::rtp::packet::Packet, out: &mut impl FnMut(Frame)) {
        self.builder.push(pkt);
        while let Some(sample) = self.builder.pop() {
            let keyframe = has_idr(&sample.data);
            let picture = if keyframe || self.mode == Decode::Every { self.decode(&sample.data) } else { None };
            out(Frame { keyframe, picture });
        }
    }

    fn decode(&mut self, annex_b: &[u8]) -> Option<Picture> {
        use openh264::formats::YUVSource;
        let yuv = self.decoder.decode(annex_b).ok()??;
        let (width, height) = yuv.dimensions();
        let stride = yuv.strides().0;
        let luma = (0..height).flat_map(|r| yuv.y()[r * stride..r * stride + width].iter().copied()).collect();
        Some(Picture { width, height, luma })
    }
}

/// Read `track` until it ends, handing every access unit to `out`.
pub async fn decode_track(track: Arc<TrackRemote>, mode: Decode, mut out: impl FnMut(Frame)) -> Result<(), DecoderError> {
    let mut decoder = TrackDecoder::new(mode)?;
    while let Ok((pkt, _)) = track.read_rtp().await {
        decoder.push(pkt, &mut out);
    }
    Ok(())
}

/// Whether an Annex-B access unit holds an IDR slice (NAL type 5).
pub fn has_idr(annex_b: &[u8]) -> bool {
    let mut i = 0;
    while i + 3 < annex_b.len() {
        if annex_b[i] == 0 && annex_b[i + 1] == 0 && annex_b[i + 2] == 1 {
            if annex_b[i + 3] & 0x1f == 5 {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idr_slices_are_told_from_predicted_ones() {
        // SPS, PPS, IDR with 4-byte start codes; a P slice (type 1) with a 3-byte one.
        assert!(has_idr(&[0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65, 3]));
        assert!(!has_idr(&[0, 0, 1, 0x41, 9, 9]));
        assert!(!has_idr(&[0x65, 0, 0]));
    }
}
