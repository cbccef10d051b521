//! Parse Wolf's log lines (`HH:MM:SS.nnnnnnnnn LEVEL | message`, optional ANSI colours and a
//! docker compose `wolf-1  | ` prefix) into records detectors can match on.

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogRecord {
    /// Time of day as written (UTC, no date).
    pub time: String,
    pub level: String,
    pub message: String,
}

/// Parse one line; `None` for lines that are not Wolf records (GStreamer debug output, blanks).
pub fn parse_line(line: &str) -> Option<LogRecord> {
    let mut s = strip_ansi(line);
    // docker compose prefix: "wolf-1  | "
    if let Some((prefix, rest)) = s.split_once(" | ") {
        if !prefix.contains(':') && !prefix.contains(' ') || prefix.trim_end().chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            if looks_like_time(rest.trim_start()) {
                s = rest.trim_start().to_string();
            }
        }
    }
    let (time, rest) = s.split_at_checked(18)?;
    if !looks_like_time(time) {
        return None;
    }
    let rest = rest.strip_prefix(' ')?;
    let (level, msg) = rest.split_at_checked(5)?;
    let msg = msg.strip_prefix(" | ")?;
    let level = level.trim_end();
    if !["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"].contains(&level) {
        return None;
    }
    Some(LogRecord { time: time.to_string(), level: level.to_string(), message: msg.to_string() })
}

fn looks_like_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 18
        && b[2] == b':'
        && b[5] == b':'
        && b[8] == b'.'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| b[i].is_ascii_digit())
        && b[9..18].iter().all(u8::is_ascii_digit)
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_coloured_and_compose_prefixed_lines() {
        let r = parse_line("17:13:37.123456789 DEBUG | [ENET] disconnected client: 172.19.0.14:31964").unwrap();
        assert_eq!(r.level, "DEBUG");
        assert_eq!(r.message, "[ENET] disconnected client: 172.19.0.14:31964");
        let r = parse_line("\x1b[33m17:13:37.123456789 WARN  | [HTTPS] Received resume event from an unregistered session, ip: 1.2.3.4\x1b[0m").unwrap();
        assert_eq!(r.level, "WARN");
        assert!(r.message.starts_with("[HTTPS] Received resume event"));
        let r = parse_line("wolf-1  | 21:04:06.364000000 INFO  | [LOBBY] Session 1 joining lobby x").unwrap();
        assert_eq!(r.time, "21:04:06.364000000");
        assert_eq!(r.message, "[LOBBY] Session 1 joining lobby x");
        assert!(parse_line("0:00:01.2 GST_DEBUG something").is_none());
        assert!(parse_line("").is_none());
    }
}
