//! `/moonlight/host/stream`: Helix's WebSocket reverse proxy to moonlight-web. The browser is
//! authenticated by its Helix token (cookie, header or query, else the first message's
//! `credentials`); that first `AuthenticateAndInit` gets moonlight-web's credentials swapped in,
//! because the browser never learns them. After that, frames pass through untouched, and so
//! does how a side ended: a close frame is passed on as one, and a browser socket that ended
//! without one (its renderer crashed, the network dropped) ends the upstream socket without one
//! too, as a byte-level proxy does. A proxy that made up a close frame the browser never sent
//! would hide from moonlight-web exactly the vanished tabs it must notice (F18).

use super::{auth, Helix};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as UpMessage;

/// moonlight-web gives a silent socket 15 s; the proxy waits as long before giving up.
const INIT_DEADLINE: Duration = Duration::from_secs(15);
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// How long a closing handshake may take before the socket is simply dropped.
const CLOSE_DEADLINE: Duration = Duration::from_secs(2);
/// RFC 6455 close codes.
const POLICY_VIOLATION: u16 = 1008;
const INTERNAL_ERROR: u16 = 1011;

pub async fn stream(State(helix): State<Arc<Helix>>, headers: HeaderMap, uri: Uri, ws: WebSocketUpgrade) -> Response {
    let pre_authed = auth::token_from(&headers, uri.query()).is_some_and(|t| helix.token_valid(&t));
    ws.on_upgrade(move |socket| relay(socket, helix, pre_authed))
}

/// The first frame to send upstream, or `None` when the browser proved no Helix identity.
/// Anything but an `AuthenticateAndInit` is passed on as is (moonlight-web will refuse it).
pub fn swap_credentials(first: &str, pre_authed: bool, valid: impl Fn(&str) -> bool, replacement: Option<&str>) -> Option<String> {
    let mut v: Value = match serde_json::from_str(first) {
        Ok(v) => v,
        Err(_) => return pre_authed.then(|| first.to_string()),
    };
    let Some(init) = v.get_mut("AuthenticateAndInit").and_then(Value::as_object_mut) else {
        return pre_authed.then(|| first.to_string());
    };
    let offered_valid = init.get("credentials").and_then(Value::as_str).is_some_and(valid);
    if !pre_authed && !offered_valid {
        return None;
    }
    init.insert("credentials".into(), replacement.map_or(Value::Null, |c| json!(c)));
    Some(v.to_string())
}

/// `http://host:port` → `ws://host:port/api/host/stream`.
pub fn upstream_url(moonlight_web: &str) -> String {
    let base = moonlight_web.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        format!("ws://{base}")
    };
    format!("{base}/api/host/stream")
}

async fn close_browser(mut socket: WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame { code, reason: reason.into() };
    let _ = tokio::time::timeout(CLOSE_DEADLINE, socket.send(Message::Close(Some(frame)))).await;
}

async fn relay(mut browser: WebSocket, helix: Arc<Helix>, pre_authed: bool) {
    let first = match tokio::time::timeout(INIT_DEADLINE, browser.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
        Ok(_) => return,
        Err(_) => return close_browser(browser, POLICY_VIOLATION, "no init message").await,
    };
    let ids = serde_json::from_str::<Value>(&first).ok().and_then(|v| v.get("AuthenticateAndInit").cloned()).unwrap_or(Value::Null);
    let session_id = ids.get("session_id").and_then(Value::as_str).unwrap_or("?").to_string();
    let client = ids.get("client_unique_id").and_then(Value::as_str).unwrap_or("?").to_string();
    let Some(first) = swap_credentials(&first, pre_authed, |t| helix.token_valid(t), helix.cfg.moonlight_credentials.as_deref()) else {
        tracing::warn!(session_id = %session_id, "stream proxy: browser not authenticated");
        return close_browser(browser, POLICY_VIOLATION, "unauthorized").await;
    };
    let url = upstream_url(&helix.cfg.moonlight_web);
    let upstream = match tokio::time::timeout(CONNECT_DEADLINE, tokio_tungstenite::connect_async(url.as_str())).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => {
            tracing::warn!(url = %url, "stream proxy: moonlight-web refused: {e}");
            return close_browser(browser, INTERNAL_ERROR, "moonlight-web unreachable").await;
        }
        Err(_) => {
            tracing::warn!(url = %url, "stream proxy: moonlight-web did not accept within {CONNECT_DEADLINE:?}");
            return close_browser(browser, INTERNAL_ERROR, "moonlight-web unreachable").await;
        }
    };
    tracing::info!(session_id = %session_id, client_unique_id = %client, "stream proxy: connected");
    let (mut up_tx, mut up_rx) = upstream.split();
    let (mut b_tx, mut b_rx) = browser.split();
    if up_tx.send(UpMessage::Text(first.into())).await.is_err() {
        let _ = tokio::time::timeout(CLOSE_DEADLINE, b_tx.close()).await;
        return;
    }
    let to_upstream = async {
        while let Some(Ok(m)) = b_rx.next().await {
            let out = match m {
                Message::Text(t) => UpMessage::Text(t.as_str().into()),
                Message::Binary(b) => UpMessage::Binary(b),
                // Pings stay on this hop: moonlight-web takes any non-text frame for a disconnect.
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Close(_) => return Ended::Closed("browser"),
            };
            if up_tx.send(out).await.is_err() {
                return Ended::Closed("moonlight-web");
            }
        }
        Ended::BrowserVanished
    };
    let to_browser = async {
        while let Some(Ok(m)) = up_rx.next().await {
            let out = match m {
                UpMessage::Text(t) => Message::Text(t.as_str().into()),
                UpMessage::Binary(b) => Message::Binary(b),
                UpMessage::Ping(_) | UpMessage::Pong(_) | UpMessage::Frame(_) => continue,
                UpMessage::Close(_) => break,
            };
            if b_tx.send(out).await.is_err() {
                return Ended::BrowserVanished;
            }
        }
        Ended::Closed("moonlight-web")
    };
    let ended = tokio::select! {
        e = to_upstream => e,
        e = to_browser => e,
    };
    match ended {
        // Whichever side left, the other is told: each close has a deadline of its own.
        Ended::Closed(side) => {
            let _ = tokio::join!(tokio::time::timeout(CLOSE_DEADLINE, up_tx.close()), tokio::time::timeout(CLOSE_DEADLINE, b_tx.close()));
            tracing::info!(session_id = %session_id, client_unique_id = %client, "stream proxy: closed by {side}");
        }
        // Dropping the upstream halves ends that TCP connection without a close frame.
        Ended::BrowserVanished => {
            tracing::info!(session_id = %session_id, client_unique_id = %client, "stream proxy: the browser's socket ended without a close frame")
        }
    }
}

/// How a relayed socket ended.
enum Ended {
    /// A side sent a close frame (or could no longer be written to): the other gets one.
    Closed(&'static str),
    /// The browser's socket ended without a close frame.
    BrowserVanished,
}

#[cfg(test)]
mod tests {
    use super::*;

    const INIT: &str = r#"{"AuthenticateAndInit":{"credentials":"helix-token","session_id":"agent-ses_x-u","mode":"create","app_id":134906179}}"#;

    #[test]
    fn swaps_credentials_only_in_the_init_message() {
        let out = swap_credentials(INIT, true, |_| false, Some("mlw-secret")).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["AuthenticateAndInit"]["credentials"], "mlw-secret");
        assert_eq!(v["AuthenticateAndInit"]["session_id"], "agent-ses_x-u");
        assert_eq!(v["AuthenticateAndInit"]["app_id"], 134906179);
        let none = swap_credentials(INIT, true, |_| false, None).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&none).unwrap()["AuthenticateAndInit"]["credentials"], Value::Null);
    }

    #[test]
    fn a_valid_token_in_the_message_authenticates_without_a_cookie() {
        assert!(swap_credentials(INIT, false, |t| t == "helix-token", Some("m")).is_some());
        assert!(swap_credentials(INIT, false, |t| t == "other", Some("m")).is_none());
        assert!(swap_credentials(r#"{"Signaling":{}}"#, false, |_| true, Some("m")).is_none());
        assert_eq!(swap_credentials("not json", true, |_| false, Some("m")).as_deref(), Some("not json"));
    }

    #[test]
    fn upstream_url_targets_the_stream_route() {
        assert_eq!(upstream_url("http://127.0.0.1:8081/"), "ws://127.0.0.1:8081/api/host/stream");
        assert_eq!(upstream_url("https://h:1"), "wss://h:1/api/host/stream");
    }
}
