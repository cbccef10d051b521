//! Login and the token rules of Helix's auth middleware: a token is taken from
//! `Authorization: Bearer`, then the `access_token` cookie, then `?access_token=`; tokens issued
//! by login and the runner token are accepted.

use super::{Helix, HelixError};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// A JWT-shaped token, because Helix's frontend and tools treat access tokens as JWTs. The
/// signature is random: only the stand-in checks it, by lookup in its store.
fn new_token(user_id: &str, email: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let iat = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let claims = URL_SAFE_NO_PAD.encode(json!({"sub": user_id, "email": email, "iat": iat}).to_string());
    let sig = URL_SAFE_NO_PAD.encode([uuid::Uuid::new_v4().into_bytes(), uuid::Uuid::new_v4().into_bytes()].concat());
    format!("{header}.{claims}.{sig}")
}

/// The token a request carries, in Helix's order of precedence.
pub fn token_from(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(t) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) {
        let t = t.trim();
        if !t.is_empty() {
            return Some(t.to_string());
        }
    }
    if let Some(t) = cookie(headers, "access_token") {
        return Some(t);
    }
    query?.split('&').find_map(|pair| pair.strip_prefix("access_token=")).filter(|t| !t.is_empty()).map(percent_decode)
}

/// A cookie's value from every `Cookie` header of the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Helix {
    pub fn token_valid(&self, token: &str) -> bool {
        token == self.cfg.runner_token || self.store.has_token(token)
    }
}

/// Middleware for every API route but login: no valid token, no handler.
pub async fn require(State(helix): State<Arc<Helix>>, req: Request, next: Next) -> Response {
    match token_from(req.headers(), req.uri().query()) {
        Some(t) if helix.token_valid(&t) => next.run(req).await,
        Some(_) => HelixError::Unauthorized("invalid token").into_response(),
        None => HelixError::Unauthorized("missing token").into_response(),
    }
}

#[derive(Deserialize)]
pub struct Login {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn login(State(helix): State<Arc<Helix>>, Json(body): Json<Login>) -> Result<Response, HelixError> {
    if !body.email.eq_ignore_ascii_case(&helix.cfg.user_email) || body.password != helix.cfg.user_password {
        tracing::info!(email = %body.email, "login refused");
        return Err(HelixError::Unauthorized("invalid email or password"));
    }
    let token = new_token(&helix.user_id, &helix.cfg.user_email);
    helix.store.add_token(token.clone());
    let refresh = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().into_bytes());
    tracing::info!(email = %body.email, "login");
    let mut resp = Json(json!({"id": helix.user_id, "email": helix.cfg.user_email, "token": token, "name": helix.user_name()})).into_response();
    for (name, value) in [("access_token", &token), ("refresh_token", &refresh)] {
        let c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        resp.headers_mut().append(SET_COOKIE, HeaderValue::from_str(&c).map_err(|_| HelixError::Internal("cookie value".into()))?);
    }
    Ok(resp)
}

/// `GET /api/v1/auth/authenticated`: whether the `access_token` cookie holds a valid token.
/// Always 200, as Helix's: the app asks it first, before it knows whether anyone is logged in.
pub async fn authenticated(State(helix): State<Arc<Helix>>, headers: HeaderMap) -> Json<serde_json::Value> {
    let ok = cookie(&headers, "access_token").is_some_and(|t| helix.token_valid(&t));
    Json(json!({"authenticated": ok}))
}

/// `GET /api/v1/auth/user`: the logged-in user with the token the request carried, which is how
/// the app's account context (and so the viewer) gets a token it can send as a Bearer.
pub async fn user(State(helix): State<Arc<Helix>>, req: Request) -> Result<Json<serde_json::Value>, HelixError> {
    let token = token_from(req.headers(), req.uri().query()).ok_or(HelixError::Unauthorized("missing token"))?;
    Ok(Json(json!({"id": helix.user_id, "email": helix.cfg.user_email, "name": helix.user_name(), "token": token})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_wins_over_cookie_wins_over_query() {
        let all = headers(&[("authorization", "Bearer b"), ("cookie", "x=1; access_token=c")]);
        assert_eq!(token_from(&all, Some("access_token=q")).as_deref(), Some("b"));
        let cookie_only = headers(&[("cookie", "refresh_token=r; access_token=c")]);
        assert_eq!(token_from(&cookie_only, Some("access_token=q")).as_deref(), Some("c"));
        assert_eq!(token_from(&HeaderMap::new(), Some("a=1&access_token=q%2Fx")).as_deref(), Some("q/x"));
        assert_eq!(token_from(&HeaderMap::new(), Some("a=1")), None);
        assert_eq!(token_from(&headers(&[("authorization", "Basic abc")]), None), None);
    }

    #[test]
    fn issued_tokens_are_jwt_shaped_and_distinct() {
        let a = new_token("u", "e@x");
        let b = new_token("u", "e@x");
        assert_ne!(a, b);
        assert_eq!(a.split('.').count(), 3);
    }
}
