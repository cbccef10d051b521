//! Wolf's REST API over its Unix socket (hyperlocal).
//!
//! Wolf answers HTTP/1.0, one request per connection, often without `Content-Type`, with every
//! body carrying `"success"`. The client therefore never pools connections and judges a reply by
//! its `success` field, not by its status line (Wolf says `OK` even for a 500).

use super::sse::{SseEvent, SseParser};
use super::{excerpt, SutError, REQUEST_TIMEOUT};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyperlocal::UnixConnector;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

const SERVICE: &str = "wolf";

pub use super::replies::{LobbyMemory, WolfLobby, WolfMemory, WolfSession};

#[derive(Clone)]
pub struct WolfClient {
    socket: PathBuf,
    http: Client<UnixConnector, Full<Bytes>>,
}

impl WolfClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        // Wolf closes every connection after one reply: a pooled connection would be stale.
        let http = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build(UnixConnector);
        Self { socket: socket.into(), http }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn request(&self, method: hyper::Method, path: &str, body: Option<&Value>) -> Result<Value, SutError> {
        let endpoint = format!("{} {}", method, path);
        let uri: hyper::Uri = hyperlocal::Uri::new(&self.socket, path).into();
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let req = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .header("content-length", payload.len())
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| SutError::Unreachable { service: SERVICE, endpoint: endpoint.clone(), detail: e.to_string() })?;
        let work = async {
            let resp = self.http.request(req).await.map_err(|e| SutError::Unreachable {
                service: SERVICE,
                endpoint: format!("{} (socket {})", endpoint, self.socket.display()),
                detail: error_chain(&e),
            })?;
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await.map_err(|e| SutError::Unreachable {
                service: SERVICE,
                endpoint: endpoint.clone(),
                detail: format!("reply cut short: {e}"),
            })?;
            Ok::<_, SutError>((status, bytes.to_bytes()))
        };
        let (status, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, work).await.map_err(|_| SutError::Timeout {
            service: SERVICE,
            endpoint: endpoint.clone(),
            secs: REQUEST_TIMEOUT.as_secs_f64(),
        })??;
        let text = String::from_utf8_lossy(&bytes);
        if status == 404 && text.trim().is_empty() {
            return Err(SutError::Status { service: SERVICE, endpoint, status, body: "(no such route)".into() });
        }
        let value: Value = serde_json::from_str(&text).map_err(|e| SutError::Malformed {
            service: SERVICE,
            endpoint: endpoint.clone(),
            detail: format!("{e}; body: {}", excerpt(&text)),
        })?;
        match value.get("success").and_then(Value::as_bool) {
            Some(true) => Ok(value),
            Some(false) => Err(SutError::Refused {
                service: SERVICE,
                endpoint,
                error: value.get("error").and_then(Value::as_str).unwrap_or("(no error text)").to_string(),
            }),
            None => Err(SutError::Malformed { service: SERVICE, endpoint, detail: format!("no \"success\" field; body: {}", excerpt(&text)) }),
        }
    }

    /// GET a path and return the whole JSON body (secrets included: redact before storing).
    pub async fn get_raw(&self, path: &str) -> Result<Value, SutError> {
        self.request(hyper::Method::GET, path, None).await
    }

    pub async fn post_raw(&self, path: &str, body: &Value) -> Result<Value, SutError> {
        self.request(hyper::Method::POST, path, Some(body)).await
    }

    fn field<T: serde::de::DeserializeOwned>(value: Value, path: &str, key: &str) -> Result<T, SutError> {
        let v = value.get(key).cloned().unwrap_or(Value::Null);
        serde_json::from_value(v).map_err(|e| SutError::Malformed { service: SERVICE, endpoint: format!("GET {path}"), detail: format!("field {key}: {e}") })
    }

    pub async fn apps(&self) -> Result<Vec<Value>, SutError> {
        let p = "/api/v1/apps";
        Self::field(self.get_raw(p).await?, p, "apps")
    }

    pub async fn sessions(&self) -> Result<Vec<WolfSession>, SutError> {
        let p = "/api/v1/sessions";
        Self::field(self.get_raw(p).await?, p, "sessions")
    }

    pub async fn lobbies(&self) -> Result<Vec<WolfLobby>, SutError> {
        let p = "/api/v1/lobbies";
        Self::field(self.get_raw(p).await?, p, "lobbies")
    }

    pub async fn memory(&self) -> Result<WolfMemory, SutError> {
        let p = "/api/v1/system/memory";
        let v = self.get_raw(p).await?;
        serde_json::from_value(v).map_err(|e| SutError::Malformed { service: SERVICE, endpoint: format!("GET {p}"), detail: e.to_string() })
    }

    pub async fn health(&self) -> Result<Value, SutError> {
        self.get_raw("/api/v1/system/health").await
    }

    /// Create a lobby; returns its id.
    pub async fn create_lobby(&self, body: &Value) -> Result<String, SutError> {
        let p = "/api/v1/lobbies/create";
        Self::field(self.post_raw(p, body).await?, p, "lobby_id")
    }

    pub async fn join_lobby(&self, lobby_id: &str, session_id: &str, pin: Option<&[u8]>) -> Result<(), SutError> {
        let mut body = json!({"lobby_id": lobby_id, "moonlight_session_id": session_id});
        if let Some(pin) = pin {
            body["pin"] = json!(pin);
        }
        self.post_raw("/api/v1/lobbies/join", &body).await.map(drop)
    }

    pub async fn leave_lobby(&self, lobby_id: &str, session_id: &str) -> Result<(), SutError> {
        let body = json!({"lobby_id": lobby_id, "moonlight_session_id": session_id, "skip_producer_switch": false});
        self.post_raw("/api/v1/lobbies/leave", &body).await.map(drop)
    }

    pub async fn stop_lobby(&self, lobby_id: &str, pin: Option<&[u8]>) -> Result<(), SutError> {
        let mut body = json!({"lobby_id": lobby_id});
        if let Some(pin) = pin {
            body["pin"] = json!(pin);
        }
        self.post_raw("/api/v1/lobbies/stop", &body).await.map(drop)
    }

    pub async fn stop_session(&self, session_id: &str) -> Result<(), SutError> {
        self.post_raw("/api/v1/sessions/stop", &json!({"session_id": session_id})).await.map(drop)
    }

    /// Subscribe to `/api/v1/events`. The receiver ends when Wolf closes the stream (a restart);
    /// callers reconnect if they want more.
    pub async fn events(&self) -> Result<mpsc::Receiver<SseEvent>, SutError> {
        let path = "/api/v1/events";
        let uri: hyper::Uri = hyperlocal::Uri::new(&self.socket, path).into();
        let req = hyper::Request::get(uri).body(Full::new(Bytes::new())).expect("static request");
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.http.request(req))
            .await
            .map_err(|_| SutError::Timeout { service: SERVICE, endpoint: path.into(), secs: REQUEST_TIMEOUT.as_secs_f64() })?
            .map_err(|e| SutError::Unreachable { service: SERVICE, endpoint: path.into(), detail: error_chain(&e) })?;
        let (tx, rx) = mpsc::channel(256);
        let mut body = resp.into_body();
        tokio::spawn(async move {
            let mut parser = SseParser::default();
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                if let Some(data) = frame.data_ref() {
                    for ev in parser.push(data) {
                        if tx.send(ev).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(rx)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
