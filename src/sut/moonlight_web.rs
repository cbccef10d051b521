//! moonlight-web's HTTP API (`/api/sessions`, `/api/admin/status`), Bearer-authenticated.

use super::{excerpt, SutError, REQUEST_TIMEOUT};
use serde::{Deserialize, Serialize};

const SERVICE: &str = "moonlight-web";

pub use super::replies::MlwSession;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MlwStatus {
    pub total_clients: u64,
    pub total_sessions: u64,
    pub active_websockets: u64,
    #[serde(default)]
    pub clients: Vec<serde_json::Value>,
    #[serde(default)]
    pub sessions: Vec<MlwSession>,
}

#[derive(Clone)]
pub struct MoonlightWebClient {
    base: String,
    credentials: Option<String>,
    http: reqwest::Client,
}

impl MoonlightWebClient {
    /// `base` like `http://127.0.0.1:8081` (no trailing `/api`).
    pub fn new(base: impl Into<String>, credentials: Option<String>) -> Self {
        let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).no_proxy().build().expect("reqwest client");
        Self { base: base.into().trim_end_matches('/').to_string(), credentials, http }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, SutError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.get(&url);
        if let Some(c) = &self.credentials {
            req = req.bearer_auth(c);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                SutError::Timeout { service: SERVICE, endpoint: url.clone(), secs: REQUEST_TIMEOUT.as_secs_f64() }
            } else {
                SutError::Unreachable { service: SERVICE, endpoint: url.clone(), detail: e.to_string() }
            }
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| SutError::Unreachable { service: SERVICE, endpoint: url.clone(), detail: e.to_string() })?;
        if status != 200 {
            return Err(SutError::Status { service: SERVICE, endpoint: url, status, body: excerpt(&text) });
        }
        serde_json::from_str(&text).map_err(|e| SutError::Malformed { service: SERVICE, endpoint: url, detail: format!("{e}; body: {}", excerpt(&text)) })
    }

    pub async fn sessions(&self) -> Result<Vec<MlwSession>, SutError> {
        #[derive(Deserialize)]
        struct Body {
            sessions: Vec<MlwSession>,
        }
        Ok(self.get::<Body>("/api/sessions").await?.sessions)
    }

    pub async fn status(&self) -> Result<MlwStatus, SutError> {
        self.get("/api/admin/status").await
    }
}
