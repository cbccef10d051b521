//! Building the streamer's webrtc-rs peer the way moonlight-web builds it.
//!
//! The codec line, payload type, port-range behaviour and trickle format are what the browser
//! sees of moonlight-web, so they live in one place that tests can share with the browser stand-in.

use super::ipc::{IceServer, PortRange};
use std::sync::Arc;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_H264};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice::udp_network::{EphemeralUDP, UDPNetwork};
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType};
use webrtc::rtp_transceiver::RTCPFeedback;

pub const H264_PAYLOAD_TYPE: u8 = 96;
pub const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
pub const H264_CLOCK_RATE: u32 = 90_000;

/// The data channels the browser opens for input (all forwarded to Wolf).
pub const INPUT_CHANNELS: [&str; 6] = ["keyboard", "mouseClicks", "mouseAbsolute", "mouseRelative", "touch", "controllers"];
/// The channel the streamer opens for status and the termination notice.
pub const GENERAL_CHANNEL: &str = "general";

/// Environment variable that restricts the streamer's ICE to the loopback interface; tests that
/// pair two webrtc-rs peers on one host set it so no media touches a real interface.
pub const LOOPBACK_ONLY_ENV: &str = "HELIX_E2E_WEBRTC_LOOPBACK_ONLY";

pub fn h264_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: H264_CLOCK_RATE,
        channels: 0,
        sdp_fmtp_line: H264_FMTP.to_owned(),
        rtcp_feedback: ["goog-remb:", "ccm:fir", "nack:", "nack:pli"]
            .iter()
            .map(|f| {
                let (typ, parameter) = f.split_once(':').unwrap_or((f, ""));
                RTCPFeedback { typ: typ.to_owned(), parameter: parameter.to_owned() }
            })
            .collect(),
    }
}

#[derive(Debug, Clone, Default)]
pub struct PeerOptions {
    pub ice_servers: Vec<IceServer>,
    pub port_range: Option<PortRange>,
    /// Gather only loopback candidates (tests on a shared host).
    pub loopback_only: bool,
}

impl PeerOptions {
    pub fn loopback_only_from_env() -> bool {
        std::env::var(LOOPBACK_ONLY_ENV).map(|v| v == "1" || v.eq_ignore_ascii_case("true")).unwrap_or(false)
    }
}

/// A peer connection with H.264 on payload type 96 and the ICE policy of `opts`.
pub async fn new_peer(opts: &PeerOptions) -> Result<Arc<RTCPeerConnection>, webrtc::Error> {
    let mut media = MediaEngine::default();
    media
        .register_codec(RTCRtpCodecParameters { capability: h264_capability(), payload_type: H264_PAYLOAD_TYPE, ..Default::default() }, RTPCodecType::Video)?;
    let registry = register_default_interceptors(Registry::new(), &mut media)?;

    let mut settings = SettingEngine::default();
    if let Some(range) = opts.port_range {
        // One socket per candidate inside the range, no mux: moonlight-web's behaviour, and the
        // reason a narrow range caps concurrency.
        settings.set_udp_network(UDPNetwork::Ephemeral(EphemeralUDP::new(range.min, range.max)?));
    }
    // mDNS would multicast queries on every interface; Chromium's `.local` candidates are not
    // needed because the pair forms through peer-reflexive candidates.
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    if opts.loopback_only {
        settings.set_include_loopback_candidate(true);
        settings.set_interface_filter(Box::new(|name: &str| name == "lo"));
        settings.set_network_types(vec![NetworkType::Udp4]);
    }

    let api = APIBuilder::new().with_media_engine(media).with_interceptor_registry(registry).with_setting_engine(settings).build();
    let config = RTCConfiguration {
        ice_servers: opts
            .ice_servers
            .iter()
            .map(|s| RTCIceServer { urls: s.urls.clone(), username: s.username.clone(), credential: s.credential.clone() })
            .collect(),
        ..Default::default()
    };
    Ok(Arc::new(api.new_peer_connection(config).await?))
}

/// The signalling form of a local candidate: `candidate:...` without `a=`, like the browser's
/// `RTCIceCandidate.candidate`.
pub fn candidate_message(candidate: &RTCIceCandidateInit, sdp_mid: &str) -> serde_json::Value {
    serde_json::json!({"Signaling": {"AddIceCandidate": {
        "candidate": candidate.candidate,
        "sdp_mid": sdp_mid,
        "sdp_mline_index": 0,
        "username_fragment": null,
    }}})
}

/// Parse the browser's `AddIceCandidate` body. `None` for the empty end-of-candidates marker.
pub fn parse_candidate(body: &serde_json::Value) -> Option<RTCIceCandidateInit> {
    let candidate = body.get("candidate")?.as_str()?;
    if candidate.is_empty() {
        return None;
    }
    Some(RTCIceCandidateInit {
        candidate: candidate.to_owned(),
        sdp_mid: body.get("sdp_mid").and_then(|v| v.as_str()).map(str::to_owned),
        sdp_mline_index: body.get("sdp_mline_index").and_then(|v| v.as_u64()).map(|v| v as u16),
        username_fragment: body.get("username_fragment").and_then(|v| v.as_str()).map(str::to_owned),
    })
}

/// The mid of the first media section: the one trickled candidates belong to (the browser's
/// data channel section, since the browser offers first).
pub fn first_mid(sdp: &str) -> Option<String> {
    sdp.lines().find_map(|l| l.trim_end().strip_prefix("a=mid:")).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn candidates_round_trip_in_the_browser_format() {
        let init = RTCIceCandidateInit { candidate: "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host".into(), ..Default::default() };
        let msg = candidate_message(&init, "0");
        let body = &msg["Signaling"]["AddIceCandidate"];
        assert_eq!(body["sdp_mid"], "0");
        assert_eq!(body["sdp_mline_index"], 0);
        assert!(body["username_fragment"].is_null());
        let back = parse_candidate(body).unwrap();
        assert_eq!(back.candidate, init.candidate);
        assert_eq!(back.sdp_mid.as_deref(), Some("0"));
        assert_eq!(parse_candidate(&json!({"candidate": "", "sdp_mid": "0"})), None);
    }

    #[test]
    fn first_mid_reads_the_first_section() {
        assert_eq!(first_mid("v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\nm=video\r\na=mid:1\r\n").as_deref(), Some("0"));
        assert_eq!(first_mid("v=0\r\n"), None);
    }
}
