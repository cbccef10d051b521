//! The stand-in Helix's own client of Wolf's API, over Wolf's Unix socket.
//!
//! Real Helix has its own Wolf client; so does the stand-in, apart from the driver's
//! (`helix_e2e::sut::wolf`). Were they one, a bug in the client under test would be repeated by
//! the stand-in that tests it, and cancel out. This one is deliberately small: one HTTP/1.1
//! connection per call (Wolf closes every connection after one reply), a reply judged by its
//! `success` field (Wolf says `OK` even for a 500), and only the fields Helix reads.

use bytes::Bytes;
use helix_e2e_shared::sse::{SseEvent, SseParser};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long one call may take (Wolf answers in milliseconds when it answers at all).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum WolfCallError {
    #[error("Wolf at {socket}: {path}: {detail}")]
    Unreachable { socket: String, path: String, detail: String },
    #[error("Wolf refused {path}: {error}")]
    Refused { path: String, error: String },
    #[error("Wolf's answer to {path} is not what Helix expects: {detail}")]
    Malformed { path: String, detail: String },
    #[error("Wolf did not answer {path} within {} s", CALL_TIMEOUT.as_secs())]
    Timeout { path: String },
}

/// A Moonlight session as Helix reads it from Wolf.
#[derive(Debug, Clone, Deserialize)]
pub struct Session {
    /// The session id (a digit string), despite its name.
    pub client_id: String,
    #[serde(default)]
    pub client_unique_id: String,
    pub app_id: String,
}

/// A lobby as Helix reads it from Wolf.
#[derive(Debug, Clone, Deserialize)]
pub struct Lobby {
    pub id: String,
    #[serde(default)]
    runner: Value,
}

impl Lobby {
    /// The Helix session that owns this lobby: `HELIX_SESSION_ID=<ses>` in its runner's env.
    pub fn helix_session(&self) -> Option<&str> {
        self.runner.get("env")?.as_array()?.iter().filter_map(Value::as_str).find_map(|e| e.strip_prefix("HELIX_SESSION_ID="))
    }
}

#[derive(Clone)]
pub struct Wolf {
    socket: PathBuf,
}

impl Wolf {
    pub fn new(socket: PathBuf) -> Self {
        Wolf { socket }
    }

    /// Open a connection and send one request; the response's body is read by the caller.
    async fn send(&self, method: hyper::Method, path: &str, body: Option<&Value>) -> Result<hyper::Response<hyper::body::Incoming>, WolfCallError> {
        let unreachable = |detail: String| WolfCallError::Unreachable { socket: self.socket.display().to_string(), path: path.to_string(), detail };
        let stream = tokio::net::UnixStream::connect(&self.socket).await.map_err(|e| unreachable(e.to_string()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(connection);
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "wolf")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| unreachable(e.to_string()))?;
        sender.send_request(request).await.map_err(|e| unreachable(e.to_string()))
    }

    /// One call; the whole body when Wolf says `success: true`.
    async fn call(&self, method: hyper::Method, path: &str, body: Option<&Value>) -> Result<Value, WolfCallError> {
        let work = async {
            let response = self.send(method, path, body).await?;
            let bytes = response.into_body().collect().await.map_err(|e| WolfCallError::Unreachable {
                socket: self.socket.display().to_string(),
                path: path.to_string(),
                detail: format!("reply cut short: {e}"),
            })?;
            Ok::<_, WolfCallError>(bytes.to_bytes())
        };
        let bytes = tokio::time::timeout(CALL_TIMEOUT, work).await.map_err(|_| WolfCallError::Timeout { path: path.to_string() })??;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| WolfCallError::Malformed { path: path.to_string(), detail: e.to_string() })?;
        match value.get("success").and_then(Value::as_bool) {
            Some(true) => Ok(value),
            Some(false) => Err(WolfCallError::Refused {
                path: path.to_string(),
                error: value.get("error").and_then(Value::as_str).unwrap_or("(no error text)").to_string(),
            }),
            None => Err(WolfCallError::Malformed { path: path.to_string(), detail: "no \"success\" field".into() }),
        }
    }

    /// GET a path: the whole body, secrets included (callers redact what they pass on).
    pub async fn get(&self, path: &str) -> Result<Value, WolfCallError> {
        self.call(hyper::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, WolfCallError> {
        self.call(hyper::Method::POST, path, Some(&body)).await
    }

    /// One field of a GET's answer, typed.
    async fn get_field<T: DeserializeOwned>(&self, path: &str, key: &str) -> Result<T, WolfCallError> {
        let mut v = self.get(path).await?;
        serde_json::from_value(v[key].take()).map_err(|e| WolfCallError::Malformed { path: path.to_string(), detail: format!("{key}: {e}") })
    }

    pub async fn apps(&self) -> Result<Vec<Value>, WolfCallError> {
        self.get_field("/api/v1/apps", "apps").await
    }

    pub async fn sessions(&self) -> Result<Vec<Session>, WolfCallError> {
        self.get_field("/api/v1/sessions", "sessions").await
    }

    pub async fn lobbies(&self) -> Result<Vec<Lobby>, WolfCallError> {
        self.get_field("/api/v1/lobbies", "lobbies").await
    }

    pub async fn health(&self) -> Result<Value, WolfCallError> {
        self.get("/api/v1/system/health").await
    }

    /// Create a lobby; its id.
    pub async fn create_lobby(&self, body: &Value) -> Result<String, WolfCallError> {
        let path = "/api/v1/lobbies/create";
        let mut v = self.post(path, body.clone()).await?;
        serde_json::from_value(v["lobby_id"].take()).map_err(|e| WolfCallError::Malformed { path: path.into(), detail: format!("lobby_id: {e}") })
    }

    pub async fn join_lobby(&self, lobby_id: &str, session_id: &str, pin: &[u8]) -> Result<(), WolfCallError> {
        self.post("/api/v1/lobbies/join", json!({"lobby_id": lobby_id, "moonlight_session_id": session_id, "pin": pin})).await.map(drop)
    }

    pub async fn stop_lobby(&self, lobby_id: &str, pin: &[u8]) -> Result<(), WolfCallError> {
        self.post("/api/v1/lobbies/stop", json!({"lobby_id": lobby_id, "pin": pin})).await.map(drop)
    }

    pub async fn stop_session(&self, session_id: &str) -> Result<(), WolfCallError> {
        self.post("/api/v1/sessions/stop", json!({"session_id": session_id})).await.map(drop)
    }

    /// Wolf's event stream; the receiver ends when Wolf closes it (a restart).
    pub async fn events(&self) -> Result<mpsc::Receiver<SseEvent>, WolfCallError> {
        let path = "/api/v1/events";
        let response = tokio::time::timeout(CALL_TIMEOUT, self.send(hyper::Method::GET, path, None))
            .await
            .map_err(|_| WolfCallError::Timeout { path: path.to_string() })??;
        let (tx, rx) = mpsc::channel(256);
        let mut body = response.into_body();
        tokio::spawn(async move {
            let mut parser = SseParser::default();
            while let Some(Ok(frame)) = body.frame().await {
                for event in frame.data_ref().map(|d| parser.push(d)).unwrap_or_default() {
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }
}
