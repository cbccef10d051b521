//! A server-sent-events parser (Wolf's `/api/v1/events`), fed by whatever chunks the socket
//! gives.
//!
//! Why not `eventsource-stream`: both readers of Wolf's events (the driver's client and the
//! stand-in Helix's) pull chunks off a hyper body inside their own loops and want events out
//! of a plain push; an adapter around a `Stream` would cost more code than these rules. The
//! rules are the spec's (HTML, "Interpreting an event stream"): lines end at CRLF, LF or a lone
//! CR; a blank line dispatches; a line starting with `:` is a comment. Bytes are kept until a
//! line is complete, so a UTF-8 character split across two reads decodes whole.

/// One event: `event: <name>` (default `message`) and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub name: String,
    pub data: String,
}

/// Accumulates bytes and yields complete events; comments (`:keepalive`) are skipped.
#[derive(Default)]
pub struct SseParser {
    /// The bytes of the line not yet ended.
    line: Vec<u8>,
    /// The last byte seen was a CR: a LF right after it ends nothing more.
    after_cr: bool,
    /// Past the stream's first line (a UTF-8 BOM may only come before it).
    started: bool,
    name: Option<String>,
    data: Option<String>,
}

impl SseParser {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in chunk {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(ev) = self.line_ended(&line) {
                        out.push(ev);
                    }
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                }
            }
        }
        out
    }

    fn line_ended(&mut self, line: &[u8]) -> Option<SseEvent> {
        let mut line = String::from_utf8_lossy(line);
        if !std::mem::replace(&mut self.started, true) {
            if let Some(rest) = line.strip_prefix('\u{feff}') {
                line = rest.to_string().into();
            }
        }
        if line.is_empty() {
            // Dispatch: an event with no data line is none (the spec's rule).
            let name = self.name.take().unwrap_or_else(|| "message".into());
            return self.data.take().map(|data| SseEvent { name, data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((&line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            // `id` and `retry` steer reconnection, which the readers do themselves.
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        chunks.iter().flat_map(|c| p.push(c)).collect()
    }

    fn ev(name: &str, data: &str) -> SseEvent {
        SseEvent { name: name.into(), data: data.into() }
    }

    #[test]
    fn splits_events_across_chunks_and_skips_keepalives() {
        let mut p = SseParser::default();
        assert!(p.push(b":keepalive\n\nevent: wolf::core::events::StopStreamEvent\nda").is_empty());
        let got = p.push(b"ta: {\"session_id\":\"42\"}\n\n");
        assert_eq!(got, vec![ev("wolf::core::events::StopStreamEvent", "{\"session_id\":\"42\"}")]);
    }

    #[test]
    fn a_character_split_across_reads_decodes_whole() {
        let text = "data: Zed équipe\n\n".as_bytes();
        // Cut inside the two bytes of 'é', and at every other point.
        for cut in 1..text.len() {
            assert_eq!(all(&[&text[..cut], &text[cut..]]), vec![ev("message", "Zed équipe")], "cut at byte {cut}");
        }
    }

    #[test]
    fn every_line_end_the_spec_allows() {
        for nl in ["\n", "\r", "\r\n"] {
            let s = format!("event: a{nl}data: 1{nl}data: 2{nl}{nl}data: 3{nl}{nl}");
            assert_eq!(all(&[s.as_bytes()]), vec![ev("a", "1\n2"), ev("message", "3")], "line end {nl:?}");
        }
        // A CRLF cut between its CR and its LF is one line end, not two.
        assert_eq!(all(&[b"data: x\r", b"\ndata: y\r\n\r\n"]), vec![ev("message", "x\ny")]);
    }

    #[test]
    fn bom_comments_and_dataless_events() {
        assert_eq!(all(&["\u{feff}data: a\n\n".as_bytes()]), vec![ev("message", "a")]);
        // An event with no data dispatches nothing, and does not name the next one.
        assert_eq!(all(&[b"event: lonely\n\ndata:b\n\n"]), vec![ev("message", "b")]);
        assert_eq!(all(&[b": hi\ndata\n\n"]), vec![ev("message", "")]);
    }
}
