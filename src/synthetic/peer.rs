//! The synthetic viewer's WebRTC peer (webrtc-rs): built from moonlight-web's `WebRtcConfig` as
//! the browser builds its `RTCPeerConnection`, and wired to report what the in-page probe reports
//! of a browser's peer (connection and ICE states, local candidates, the video) and to do what the
//! real viewer does on them (the error of a failed, disconnected or closed peer; the `general`
//! channel's messages handled like the socket's).

use super::connection::Counters;
use super::sample::Sampler;
use crate::timeline::{Event, PcStateKind, ProbeEvent, SyntheticDecode, TabId, Timeline};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::mpsc;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::data_channel::RTCDataChannel;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::RTCPeerConnection;

/// What the peer's callbacks need of their viewer.
pub(super) struct Hooks {
    pub tab: TabId,
    pub timeline: Timeline,
    pub client_unique_id: String,
    pub decode: SyntheticDecode,
    pub counters: Arc<Counters>,
    pub outgoing: mpsc::UnboundedSender<Value>,
    pub general: mpsc::UnboundedSender<Value>,
}

/// A peer with the browser's codecs, the ICE servers of `WebRtcConfig`, and host candidates
/// including loopback (the run's network namespace may have nothing else).
pub(super) async fn new_peer(config: &Value) -> Result<Arc<RTCPeerConnection>, webrtc::Error> {
    let mut media = MediaEngine::default();
    media.register_default_codecs()?;
    let registry = register_default_interceptors(Registry::new(), &mut media)?;
    let mut settings = SettingEngine::default();
    // Chromium's `.local` names are not needed: pairs form through peer-reflexive candidates.
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    settings.set_include_loopback_candidate(true);
    let api = APIBuilder::new().with_media_engine(media).with_interceptor_registry(registry).with_setting_engine(settings).build();
    let ice_servers = config
        .get("ice_servers")
        .and_then(Value::as_array)
        .map(|servers| {
            servers
                .iter()
                .map(|s| {
                    let urls = match s.get("urls") {
                        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                        Some(Value::String(u)) => vec![u.clone()],
                        _ => Vec::new(),
                    };
                    let text = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                    RTCIceServer { urls, username: text("username"), credential: text("credential") }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Arc::new(api.new_peer_connection(RTCConfiguration { ice_servers, ..Default::default() }).await?))
}

/// Wire the peer's callbacks; `id` is its probe id.
pub(super) fn wire(pc: &Arc<RTCPeerConnection>, id: u32, hooks: Hooks) {
    let hooks = Arc::new(hooks);
    let emit = {
        let hooks = hooks.clone();
        move |probe: ProbeEvent| hooks.timeline.push(Event::Tab { tab: hooks.tab, probe })
    };
    let h = hooks.clone();
    let e = emit.clone();
    pc.on_ice_candidate(Box::new(move |c| {
        if let Some(init) = c.and_then(|c| c.to_json().ok()) {
            e(ProbeEvent::Candidate { pc: id, local: true, candidate: init.candidate.clone() });
            let _ = h.outgoing.send(json!({"Signaling": {"AddIceCandidate": {
                "candidate": init.candidate,
                "sdp_mid": init.sdp_mid,
                "sdp_mline_index": init.sdp_mline_index,
                "username_fragment": init.username_fragment,
            }}}));
        }
        Box::pin(async {})
    }));
    let h = hooks.clone();
    let e = emit.clone();
    pc.on_peer_connection_state_change(Box::new(move |s: RTCPeerConnectionState| {
        e(ProbeEvent::PcState { pc: id, which: PcStateKind::Connection, state: s.to_string() });
        // The real client raises its error on all three (IDX:465-475).
        if matches!(s, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Disconnected | RTCPeerConnectionState::Closed) {
            e(ProbeEvent::UiText { text: format!("Connection state is {s} (client: {})", h.client_unique_id), role: "alert".into() });
        }
        Box::pin(async {})
    }));
    let e = emit.clone();
    pc.on_ice_connection_state_change(Box::new(move |s| {
        e(ProbeEvent::PcState { pc: id, which: PcStateKind::IceConnection, state: s.to_string() });
        Box::pin(async {})
    }));
    let h = hooks.clone();
    pc.on_data_channel(Box::new(move |dc: Arc<RTCDataChannel>| {
        let h = h.clone();
        Box::pin(async move {
            if dc.label() != "general" {
                return;
            }
            dc.on_message(Box::new(move |m| {
                // Every message is JSON to the real client; bare text throws in its page.
                if let Ok(v) = serde_json::from_slice::<Value>(&m.data) {
                    let _ = h.general.send(v);
                }
                Box::pin(async {})
            }));
        })
    }));
    let h = hooks;
    pc.on_track(Box::new(move |track, _, _| {
        let h = h.clone();
        Box::pin(async move {
            if track.kind() != webrtc::rtp_transceiver::rtp_codec::RTPCodecType::Video {
                return;
            }
            h.timeline.push(Event::Tab { tab: h.tab, probe: ProbeEvent::VideoLink { pc: id, video: 0 } });
            let mut sampler = Sampler::new(h.tab, h.timeline.clone(), h.decode, h.counters.clone());
            let mut decoder = match sampler.decoder() {
                Ok(d) => d,
                Err(e) => return tracing::warn!(tab = h.tab, "synthetic viewer: {e}"),
            };
            // The decoder works on the runtime's threads: a 320x180 picture is well under a
            // millisecond, and the track's packets must be taken in order anyway.
            tokio::spawn(async move {
                while let Ok((pkt, _)) = track.read_rtp().await {
                    decoder.push(pkt, &mut |f| sampler.frame(f));
                }
            });
        })
    }));
}
