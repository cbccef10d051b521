//! Chromium instances that already run elsewhere, reached only over the DevTools protocol.
//!
//! One machine holds only so many real tabs; a Chromium container per host, a Selenium Grid 4
//! node's CDP endpoint or a hosted browser holds more. The driver connects to such a browser
//! instead of launching one and uses it as it uses its own — with two differences that follow
//! from owning no process. Its death cannot be read from an exit status: it is the DevTools
//! connection going away (the endpoint refusing connections, or the browser no longer answering
//! on it). And ending the run must not end the browser: the run closes its own tabs and browser
//! contexts (created `disposeOnDetach`, so even a killed run leaves none behind) and leaves.

use super::{deadline, BrowserError, CDP_DEADLINE};
use chromiumoxide::cdp::browser_protocol::browser::GetVersionParams;
use chromiumoxide::handler::HandlerConfig;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long resolving an `http://` endpoint and opening its DevTools WebSocket may take.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// How often a remote browser's endpoint is checked for life (a TCP connect: a refused one means
/// the browser is gone, seen within this long).
pub(super) const LIFE_CHECK_EVERY: Duration = Duration::from_millis(200);
/// A remote browser that does not answer `Browser.getVersion` within this long has lost its
/// DevTools connection (closed under the driver, or the browser hangs): the run cannot use it.
/// This plus [`ASK_EVERY`] is shorter than a tab's answer deadline (3 s, `health.rs`): when the
/// connection goes, every page on it falls silent too, and the browser's loss (B2) must be on
/// record before any of its tabs would be called unresponsive (B3).
const ANSWER_DEADLINE: Duration = Duration::from_secs(2);
/// How often the browser is asked for its version.
const ASK_EVERY: Duration = Duration::from_millis(500);

/// Where a remote browser's DevTools are: `ws://HOST:PORT/devtools/browser/<id>` as Chromium
/// prints it, or `http://HOST:PORT`, resolved through `/json/version` when connecting (the id
/// changes at every start of the browser; the port does not).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RemoteBrowser {
    WebSocket(String),
    Http(String),
}

impl std::str::FromStr for RemoteBrowser {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (scheme, rest) = s.split_once("://").ok_or_else(|| format!("{s:?} is not a URL (want ws://HOST:PORT/devtools/browser/… or http://HOST:PORT)"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() || !authority.contains(':') {
            return Err(format!("{s:?}: want HOST:PORT after {scheme}://"));
        }
        match scheme {
            "ws" | "wss" if path.starts_with("/devtools/browser/") => Ok(RemoteBrowser::WebSocket(s.to_string())),
            "ws" | "wss" => Err(format!("{s:?}: a browser's DevTools WebSocket is ws://HOST:PORT/devtools/browser/<id> (a page's /devtools/page/… is not)")),
            "http" | "https" if path.trim_end_matches('/').is_empty() => Ok(RemoteBrowser::Http(s.trim_end_matches('/').to_string())),
            "http" | "https" => Err(format!("{s:?}: give the DevTools address alone, http://HOST:PORT")),
            other => Err(format!("{s:?}: unknown scheme {other:?} (want ws:// or http://)")),
        }
    }
}

impl TryFrom<String> for RemoteBrowser {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<RemoteBrowser> for String {
    fn from(b: RemoteBrowser) -> String {
        b.to_string()
    }
}

impl std::fmt::Display for RemoteBrowser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteBrowser::WebSocket(u) | RemoteBrowser::Http(u) => f.write_str(u),
        }
    }
}

impl RemoteBrowser {
    /// `HOST:PORT` of the DevTools endpoint: what the life check connects to.
    pub fn authority(&self) -> &str {
        let (RemoteBrowser::WebSocket(u) | RemoteBrowser::Http(u)) = self;
        let rest = u.split_once("://").map_or(u.as_str(), |(_, r)| r);
        &rest[..rest.find('/').unwrap_or(rest.len())]
    }

    /// The browser's DevTools WebSocket URL. An `http://` endpoint is asked (`/json/version`);
    /// the host it answers with is replaced by the one the user gave, since a browser behind a
    /// container's port mapping or a proxy names its own address, which the driver may not reach.
    async fn websocket_url(&self) -> Result<String, BrowserError> {
        let base = match self {
            RemoteBrowser::WebSocket(u) => return Ok(u.clone()),
            RemoteBrowser::Http(u) => u,
        };
        #[derive(Deserialize)]
        struct Version {
            #[serde(rename = "webSocketDebuggerUrl")]
            url: String,
        }
        let what = format!("{base}/json/version");
        let fail = |why: String| BrowserError::Launch(format!("remote browser {base}: {why}"));
        let version: Version = deadline(&what, CONNECT_DEADLINE, async {
            let reply = reqwest::get(&what).await.map_err(|e| fail(format!("GET /json/version: {e}")))?;
            let reply = reply.error_for_status().map_err(|e| fail(format!("GET /json/version: {e}")))?;
            reply.json::<Version>().await.map_err(|e| fail(format!("/json/version has no webSocketDebuggerUrl: {e}")))
        })
        .await?;
        let path = version
            .url
            .split_once("://")
            .and_then(|(_, r)| r.find('/').map(|i| &r[i..]))
            .ok_or_else(|| fail(format!("odd webSocketDebuggerUrl {:?}", version.url)))?;
        let scheme = if base.starts_with("https") { "wss" } else { "ws" };
        Ok(format!("{scheme}://{}{path}", self.authority()))
    }

    /// Opens the DevTools connection; returns it with the URL it went to.
    pub(super) async fn connect(&self) -> Result<(chromiumoxide::Browser, chromiumoxide::Handler, String), BrowserError> {
        let url = self.websocket_url().await?;
        let config = HandlerConfig { request_timeout: CDP_DEADLINE, viewport: None, ..HandlerConfig::default() };
        let what = format!("connect to the remote browser {url}");
        let (browser, handler) = deadline(&what, CONNECT_DEADLINE, async {
            chromiumoxide::Browser::connect_with_config(url.clone(), config).await.map_err(|e| BrowserError::Launch(format!("{what}: {e}")))
        })
        .await?;
        Ok((browser, handler, url))
    }
}

/// Why a remote browser is gone, once it is; `None` while it answers. Two witnesses, because
/// chromiumoxide's handler does not end when its WebSocket closes (a request on a closed
/// connection only waits out its deadline): the endpoint refusing a TCP connection (the browser
/// process is gone: seen within [`LIFE_CHECK_EVERY`]) and the browser not answering a
/// `Browser.getVersion` on the run's own connection within [`ANSWER_DEADLINE`] (the connection
/// closed, or nothing answers on it; asked every [`ASK_EVERY`] through the webrtc-internals page's
/// session, which lives as long as the browser). They run side by side: a request left hanging
/// by a dead connection must not hold up the quick witness.
pub(super) async fn watch(endpoint: &RemoteBrowser, page: &chromiumoxide::Page) -> String {
    let authority = endpoint.authority().to_string();
    let refused = async {
        loop {
            tokio::time::sleep(LIFE_CHECK_EVERY).await;
            if let Ok(Err(e)) = tokio::time::timeout(ANSWER_DEADLINE, tokio::net::TcpStream::connect(authority.as_str())).await {
                return format!("its DevTools endpoint {authority} refuses connections ({e}): the browser is gone");
            }
        }
    };
    let silent = async {
        loop {
            tokio::time::sleep(ASK_EVERY).await;
            match tokio::time::timeout(ANSWER_DEADLINE, page.execute(GetVersionParams::default())).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return format!("its DevTools connection failed: {e}"),
                Err(_) => return format!("it did not answer on its DevTools connection within {:.0} s", ANSWER_DEADLINE.as_secs_f64()),
            }
        }
    };
    tokio::select! {
        why = refused => why,
        why = silent => why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_a_browser_websocket_or_a_devtools_address_and_refuses_the_rest() {
        let ws: RemoteBrowser = "ws://127.0.0.1:9301/devtools/browser/0a1b".parse().unwrap();
        assert_eq!((ws.authority(), ws.to_string().as_str()), ("127.0.0.1:9301", "ws://127.0.0.1:9301/devtools/browser/0a1b"));
        let http: RemoteBrowser = "http://127.0.0.1:9302/".parse().unwrap();
        assert_eq!(http, RemoteBrowser::Http("http://127.0.0.1:9302".into()));
        assert_eq!(http.authority(), "127.0.0.1:9302");
        for bad in ["127.0.0.1:9301", "ws://127.0.0.1:9301/devtools/page/1", "http://127.0.0.1:9301/json", "ftp://h:1", "http://host/"] {
            assert!(bad.parse::<RemoteBrowser>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn reads_back_from_json_as_the_url_it_was_given() {
        let b: RemoteBrowser = "http://127.0.0.1:9302".parse().unwrap();
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "\"http://127.0.0.1:9302\"");
        assert_eq!(serde_json::from_str::<RemoteBrowser>(&json).unwrap(), b);
        assert!(serde_json::from_str::<RemoteBrowser>("\"ws://h:1/x\"").is_err());
    }
}
