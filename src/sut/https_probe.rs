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

/// A TLS 1.2 ClientHello with no extensions: enough for any TLS server to answer.
fn client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend((0u8..32).map(|i| i.wrapping_mul(37)));
    body.push(0); // no session id
    let suites: [u8; 8] = [0xc0, 0x2f, 0xc0, 0x30, 0x00, 0x9c, 0x00, 0x2f];
    body.extend((suites.len() as u16).to_be_bytes());
    body.extend(suites);
    body.extend([1, 0]); // compression: null
    let mut handshake = vec![0x01];
    handshake.extend(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
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
    let _ = conn.write_all(&client_hello()).await;
    let mut byte = [0u8; 1];
    match tokio::time::timeout(wait, conn.read(&mut byte)).await {
        Ok(_) => HttpsProbe::Answered { addr: addr.to_string(), after_ms: sent.elapsed().as_secs_f64() * 1000.0 },
        Err(_) => HttpsProbe::Silent { addr: addr.to_string(), waited_ms: wait.as_secs_f64() * 1000.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(client_hello()[0], 0x16, "a TLS handshake record");
    }
}
