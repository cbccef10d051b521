//! The driver's own look at Wolf's HTTPS (Moonlight) port: connect, send a TLS ClientHello, and
//! wait a bounded time for any byte back.
//!
//! Why: a Wolf whose HTTPS handler is deadlocked (F15) still accepts TCP — the kernel does that
//! — but answers nothing, while its API on the Unix socket answers as usual; moonlight-web only
//! reports `Connect, TimedOut`, the same words as a slow handshake under load (F12). Only a
//! probe that sees the port silent, and silent again later, tells the two apart. Real Wolf
//! answers the hello with a ServerHello (or an alert); the stand-in's plain-HTTP port with an
//! HTTP 400 or a close: any of these is an answer.

use super::replies::HttpsProbe;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a probe waits for the port to accept.
const CONNECT_DEADLINE: Duration = Duration::from_secs(2);

/// The first flight of a real TLS client (rustls's ClientHello: TLS 1.3 and 1.2, its usual
/// extensions) for `addr`'s host, as any TLS server expects to be greeted. Nothing is verified:
/// the probe reads one byte of the answer and hangs up.
fn client_hello(addr: &str) -> Vec<u8> {
    use rustls::pki_types::ServerName;
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_matches(['[', ']']);
    // An IP address is sent no name (SNI carries DNS names only); a name that is neither is
    // replaced by one that is.
    let name = ServerName::try_from(host.to_string()).unwrap_or_else(|_| ServerName::try_from("wolf").expect("a DNS name"));
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let hello = rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions().map(|b| {
        let config = b.with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth();
        rustls::ClientConnection::new(std::sync::Arc::new(config), name)
    });
    let mut bytes = Vec::new();
    match hello {
        Ok(Ok(mut conn)) => {
            // Into a Vec: cannot fail.
            let _ = conn.write_tls(&mut bytes);
        }
        // ring's defaults and rustls's versions always agree; this is not reached.
        Ok(Err(e)) => tracing::warn!("https probe: cannot start a TLS client: {e}"),
        Err(e) => tracing::warn!("https probe: cannot configure a TLS client: {e}"),
    }
    bytes
}

/// Probe `addr` (`host:port`) once, waiting at most `wait` for an answer.
pub async fn probe(addr: &str, wait: Duration) -> HttpsProbe {
    let not_accepted = |error: String| HttpsProbe::NotAccepted { addr: addr.to_string(), error };
    let mut conn = match tokio::time::timeout(CONNECT_DEADLINE, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return not_accepted(e.to_string()),
        Err(_) => return not_accepted(format!("not accepted within {CONNECT_DEADLINE:?}")),
    };
    let sent = Instant::now();
    // A write error means the peer already closed: that is an answer.
    let _ = conn.write_all(&client_hello(addr)).await;
    let mut byte = [0u8; 1];
    match tokio::time::timeout(wait, conn.read(&mut byte)).await {
        Ok(_) => HttpsProbe::Answered { addr: addr.to_string(), after_ms: sent.elapsed().as_secs_f64() * 1000.0 },
        Err(_) => HttpsProbe::Silent { addr: addr.to_string(), waited_ms: wait.as_secs_f64() * 1000.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hello_is_one_tls_handshake_record_naming_the_host() {
        for (addr, sni) in [("127.0.0.1:47984", None), ("[::1]:47984", None), ("wolf.example:47984", Some("wolf.example"))] {
            let h = client_hello(addr);
            // A handshake record whose length is the rest, holding one ClientHello.
            assert_eq!((h[0], h[1]), (0x16, 0x03), "{addr}: {h:02x?}");
            assert_eq!(u16::from_be_bytes([h[3], h[4]]) as usize, h.len() - 5, "{addr}");
            assert_eq!(h[5], 0x01, "{addr}: not a ClientHello");
            let names = h.windows(b"wolf.example".len()).any(|w| w == b"wolf.example");
            assert_eq!(names, sni.is_some(), "{addr}: SNI");
        }
    }

    #[tokio::test]
    async fn an_answering_port_a_silent_one_and_a_closed_one_are_told_apart() {
        // Answers: reads the hello, writes a byte.
        let answering = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = answering.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut c, _) = answering.accept().await.unwrap();
            let mut buf = [0u8; 64];
            let _ = c.read(&mut buf).await;
            let _ = c.write_all(b"\x15").await;
        });
        assert!(matches!(probe(&a, Duration::from_secs(2)).await, HttpsProbe::Answered { .. }));
        // Silent: the listener exists (the kernel accepts) but nobody ever reads.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = silent.local_addr().unwrap().to_string();
        let got = probe(&s, Duration::from_millis(300)).await;
        assert_eq!(got, HttpsProbe::Silent { addr: s, waited_ms: 300.0 });
        drop(silent);
        // Closed: nothing listens.
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let f = free.local_addr().unwrap().to_string();
        drop(free);
        assert!(matches!(probe(&f, Duration::from_millis(300)).await, HttpsProbe::NotAccepted { .. }));
    }
}
