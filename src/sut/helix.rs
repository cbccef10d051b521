//! The Helix API as the driver uses it: log in, start and stop agent sessions the way the UI
//! does, and read the debug views.

use super::{excerpt, SutError, REQUEST_TIMEOUT};
use serde_json::{json, Value};

const SERVICE: &str = "helix";

#[derive(Clone)]
pub struct HelixClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl HelixClient {
    /// `base` like `http://127.0.0.1:8080`.
    pub fn new(base: impl Into<String>) -> Self {
        let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).no_proxy().build().expect("reqwest client");
        Self { base: base.into().trim_end_matches('/').to_string(), token: None, http }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The token the browser contexts get as their `access_token` cookie.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Result<Value, SutError> {
        let url = format!("{}{}", self.base, path);
        let endpoint = format!("{method} {path}");
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                SutError::Timeout { service: SERVICE, endpoint: endpoint.clone(), secs: REQUEST_TIMEOUT.as_secs_f64() }
            } else {
                SutError::Unreachable { service: SERVICE, endpoint: url.clone(), detail: e.to_string() }
            }
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| SutError::Unreachable { service: SERVICE, endpoint: url.clone(), detail: e.to_string() })?;
        if !(200..300).contains(&status) {
            return Err(SutError::Status { service: SERVICE, endpoint, status, body: excerpt(&text) });
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| SutError::Malformed { service: SERVICE, endpoint, detail: format!("{e}; body: {}", excerpt(&text)) })
    }

    /// `POST /api/v1/auth/login`; keeps the token for later calls.
    pub async fn login(&mut self, email: &str, password: &str) -> Result<(), SutError> {
        let v = self.call(reqwest::Method::POST, "/api/v1/auth/login", Some(&json!({"email": email, "password": password}))).await?;
        let token = v.get("token").and_then(Value::as_str).ok_or_else(|| SutError::Malformed {
            service: SERVICE,
            endpoint: "POST /api/v1/auth/login".into(),
            detail: "no \"token\" in the reply".into(),
        })?;
        self.token = Some(token.to_string());
        Ok(())
    }

    /// Start an agent session as the UI does; returns its `ses_` id.
    pub async fn create_agent_session(&self, name: &str) -> Result<String, SutError> {
        let body = json!({"agent_type": "zed_external", "type": "text", "stream": false, "session_id": "",
                          "messages": [{"role": "user", "content": {"content_type": "text", "parts": [name]}}]});
        let v = self.call(reqwest::Method::POST, "/api/v1/sessions/chat", Some(&body)).await?;
        v.get("id").and_then(Value::as_str).filter(|id| id.starts_with("ses_")).map(str::to_string).ok_or_else(|| SutError::Malformed {
            service: SERVICE,
            endpoint: "POST /api/v1/sessions/chat".into(),
            detail: format!("no ses_ id in the reply: {}", excerpt(&v.to_string())),
        })
    }

    pub async fn stop_agent_session(&self, ses_id: &str) -> Result<(), SutError> {
        self.call(reqwest::Method::DELETE, &format!("/api/v1/sessions/{ses_id}/stop-external-agent"), None).await.map(drop)
    }

    /// The Wolf lobby Helix believes the session owns (`config.wolf_lobby_id` of
    /// `GET /api/v1/sessions/<ses_id>`); `None` when the session has none.
    pub async fn session_lobby(&self, ses_id: &str) -> Result<Option<String>, SutError> {
        let v = self.call(reqwest::Method::GET, &format!("/api/v1/sessions/{ses_id}"), None).await?;
        Ok(v.pointer("/config/wolf_lobby_id").and_then(Value::as_str).filter(|l| !l.is_empty()).map(str::to_string))
    }

    pub async fn moonlight_status(&self) -> Result<Value, SutError> {
        self.call(reqwest::Method::GET, "/api/v1/moonlight/status", None).await
    }

    pub async fn sandboxes_debug(&self) -> Result<Value, SutError> {
        self.call(reqwest::Method::GET, "/api/v1/admin/agent-sandboxes/debug", None).await
    }
}
