//! The streamer's client for Wolf's Moonlight HTTP endpoint (pair, serverinfo, launch/resume,
//! cancel).
//!
//! Real Moonlight identifies the client by its TLS client certificate; on loopback plain HTTP the
//! certificate travels in `X-Client-Cert` instead, so Wolf's "which client is this" logic (and its
//! historical bug) still keys on the certificate moonlight-web generated.

use base64::Engine;
use serde_json::Value;
use std::time::Duration;

pub const CLIENT_CERT_HEADER: &str = "X-Client-Cert";
/// What moonlight clients send as `uniqueid` when they have none of their own.
pub const DEFAULT_UNIQUE_ID: &str = "0123456789ABCDEF";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("client certificate: {0}")]
    Certificate(String),
    #[error("request to Wolf failed: {0}")]
    Http(reqwest::Error),
    /// Wolf answered with an error status; `error` is its `{"error": ...}` text.
    #[error("Wolf answered {status}: {error}")]
    Status { status: u16, error: String },
    #[error("unexpected reply from Wolf: {0}")]
    BadReply(String),
    /// Wolf accepted the connection but did not answer within the deadline; worded as
    /// moonlight-web's Moonlight library reports it.
    #[error("Error(Connect, TimedOut)")]
    TimedOut,
}

impl From<reqwest::Error> for HostError {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            HostError::TimedOut
        } else {
            HostError::Http(e)
        }
    }
}

impl HostError {
    /// Wolf refused the launch because this certificate already streams.
    pub fn is_already_streaming(&self) -> bool {
        matches!(self, HostError::Status { status: 409, .. })
    }
}

/// What a successful launch or resume returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Wolf's session id (decimal digits).
    pub session_id: String,
    pub stream_port: u16,
}

#[derive(Debug, Clone)]
pub struct LaunchParams {
    pub app_id: String,
    pub unique_id: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

pub struct HostClient {
    base: String,
    cert_b64: String,
    http: reqwest::Client,
}

/// DER of the first certificate in a PEM text.
pub fn cert_der_from_pem(pem: &str) -> Result<Vec<u8>, HostError> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find(BEGIN).ok_or_else(|| HostError::Certificate("no BEGIN CERTIFICATE".into()))? + BEGIN.len();
    let len = pem[start..].find(END).ok_or_else(|| HostError::Certificate("no END CERTIFICATE".into()))?;
    let body: String = pem[start..start + len].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(body).map_err(|e| HostError::Certificate(e.to_string()))
}

impl HostClient {
    /// `wolf_http` is `host:port` of the endpoint; `cert_pem` the client certificate.
    pub fn new(wolf_http: &str, cert_pem: &str) -> Result<Self, HostError> {
        Self::with_timeout(wolf_http, cert_pem, REQUEST_TIMEOUT)
    }

    /// As [`Self::new`] with another deadline per request.
    pub fn with_timeout(wolf_http: &str, cert_pem: &str, timeout: Duration) -> Result<Self, HostError> {
        let der = cert_der_from_pem(cert_pem)?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            // Proxy variables in the environment must never route loopback calls elsewhere.
            .no_proxy()
            .build()?;
        Ok(Self {
            base: format!("http://{}", wolf_http.trim_start_matches("http://").trim_end_matches('/')),
            cert_b64: base64::engine::general_purpose::STANDARD.encode(der),
            http,
        })
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value, HostError> {
        let resp = req.header(CLIENT_CERT_HEADER, &self.cert_b64).send().await?;
        let status = resp.status();
        let body = resp.text().await?;
        let json: Option<Value> = serde_json::from_str(&body).ok();
        if !status.is_success() {
            let error = json.as_ref().and_then(|j| j.get("error")).and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| body.trim().to_owned());
            return Err(HostError::Status { status: status.as_u16(), error });
        }
        // Some routes answer with an empty body; that is a success too.
        Ok(json.unwrap_or(Value::Null))
    }

    pub async fn pair(&self) -> Result<(), HostError> {
        self.call(self.http.post(format!("{}/pair", self.base))).await.map(|_| ())
    }

    /// The app this client's session runs, `None` when it has no session.
    pub async fn current_game(&self) -> Result<Option<String>, HostError> {
        let info = self.call(self.http.get(format!("{}/serverinfo", self.base))).await?;
        let game = match info.get("currentgame") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            other => return Err(HostError::BadReply(format!("currentgame: {other:?}"))),
        };
        Ok(if game == "0" { None } else { Some(game) })
    }

    /// `GET /launch` (`resume == false`) or `GET /resume`.
    pub async fn start(&self, resume: bool, p: &LaunchParams) -> Result<StreamInfo, HostError> {
        let route = if resume { "resume" } else { "launch" };
        let req = self.http.get(format!("{}/{route}", self.base)).query(&[
            ("appid", p.app_id.clone()),
            ("uniqueid", p.unique_id.clone()),
            ("width", p.width.to_string()),
            ("height", p.height.to_string()),
            ("fps", p.fps.to_string()),
        ]);
        let reply = self.call(req).await?;
        let session_id = match reply.get("session_id") {
            Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.clone(),
            other => return Err(HostError::BadReply(format!("session_id: {other:?}"))),
        };
        let stream_port = reply
            .get("stream_port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| HostError::BadReply(format!("stream_port: {:?}", reply.get("stream_port"))))?;
        Ok(StreamInfo { session_id, stream_port })
    }

    pub async fn cancel(&self) -> Result<(), HostError> {
        self.call(self.http.get(format!("{}/cancel", self.base))).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_body_becomes_der() {
        let ck = rcgen::generate_simple_self_signed(vec!["moonlight-test".into()]).unwrap();
        let der = cert_der_from_pem(&ck.cert.pem()).unwrap();
        assert_eq!(der, ck.cert.der().to_vec());
        assert!(cert_der_from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
    }

    #[tokio::test]
    async fn replies_and_refusals_are_read_as_wolf_means_them() {
        use axum::http::{HeaderMap, StatusCode};
        use axum::routing::get;
        use axum::Json;
        use serde_json::json;
        let ck = rcgen::generate_simple_self_signed(vec!["moonlight-host".into()]).unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode(ck.cert.der());
        let app = axum::Router::new()
            .route(
                "/serverinfo",
                get(move |headers: HeaderMap| {
                    let ok = headers.get(CLIENT_CERT_HEADER).and_then(|v| v.to_str().ok()) == Some(expected.as_str());
                    async move { Json(json!({"currentgame": if ok { "134906179" } else { "no certificate" }})) }
                }),
            )
            .route("/launch", get(|| async { (StatusCode::CONFLICT, Json(json!({"error": "AlreadyStreaming"}))) }))
            .route("/resume", get(|| async { Json(json!({"session_id": "7388522614789140160", "stream_port": 40123})) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let host = HostClient::new(&addr, &ck.cert.pem()).unwrap();
        assert_eq!(host.current_game().await.unwrap().as_deref(), Some("134906179"));
        let p = LaunchParams { app_id: "1".into(), unique_id: "u".into(), width: 320, height: 180, fps: 30 };
        let err = host.start(false, &p).await.unwrap_err();
        assert!(err.is_already_streaming(), "{err}");
        assert!(err.to_string().contains("AlreadyStreaming"));
        assert_eq!(host.start(true, &p).await.unwrap(), StreamInfo { session_id: "7388522614789140160".into(), stream_port: 40123 });
        // A route Wolf lacks is a plain error, not "already streaming".
        let missing = host.cancel().await.unwrap_err();
        assert!(!missing.is_already_streaming());
    }
}
