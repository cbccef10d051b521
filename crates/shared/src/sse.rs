//! A tolerant server-sent-events frame parser (Wolf's `/api/v1/events`).

/// One event: `event: <name>` and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub name: String,
    pub data: String,
}

/// Accumulates bytes and yields complete events; comments (`:keepalive`) are skipped.
#[derive(Default)]
pub struct SseParser {
    buf: String,
}

impl SseParser {
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.push_str(&String::from_utf8_lossy(chunk));
        if self.buf.contains('\r') {
            self.buf = self.buf.replace("\r\n", "\n");
        }
        let mut out = Vec::new();
        while let Some(end) = self.buf.find("\n\n") {
            let block: String = self.buf.drain(..end + 2).collect();
            let mut name = String::from("message");
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if line.starts_with(':') || line.is_empty() {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => name = value.to_string(),
                    "data" => data.push(value),
                    _ => {}
                }
            }
            if !data.is_empty() {
                out.push(SseEvent { name, data: data.join("\n") });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_across_chunks_and_skips_keepalives() {
        let mut p = SseParser::default();
        assert!(p.push(b":keepalive\n\nevent: wolf::core::events::StopStreamEvent\nda").is_empty());
        let ev = p.push(b"ta: {\"session_id\":\"42\"}\n\n");
        assert_eq!(ev, vec![SseEvent { name: "wolf::core::events::StopStreamEvent".into(), data: "{\"session_id\":\"42\"}".into() }]);
    }
}
