//! Parse Wolf's log lines (`HH:MM:SS.nnnnnnnnn LEVEL | message`, optional ANSI colours, a
//! Docker engine timestamp and a docker compose `wolf-1  | ` prefix) into records detectors can
//! match on.

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogRecord {
    /// Time of day as written (UTC, no date).
    pub time: String,
    pub level: String,
    pub message: String,
    /// The engine's RFC3339Nano timestamp when the line came through Docker's log API: the
    /// full instant, so it is the better event time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_time: Option<String>,
}

/// Parse one line; `None` for lines that are not Wolf records (GStreamer debug output, blanks).
pub fn parse_line(line: &str) -> Option<LogRecord> {
    let clean = strip_ansi(line);
    let (docker_time, s) = unwrap_docker(&clean);
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
    Some(LogRecord { time: time.to_string(), level: level.to_string(), message: msg.to_string(), docker_time: docker_time.map(str::to_string) })
}

/// Take off what Docker puts around a service's own line: the engine's timestamp
/// (`docker logs -t`, the log capture's files) and compose's `wolf-1  | ` prefix, in either
/// order. Returns the timestamp, if any, and the service's line.
pub fn unwrap_docker(line: &str) -> (Option<&str>, &str) {
    let (mut stamp, mut rest) = split_docker_time(line);
    rest = strip_compose_prefix(rest);
    if stamp.is_none() {
        (stamp, rest) = split_docker_time(rest);
    }
    (stamp, rest)
}

/// A leading RFC3339 timestamp with a date (`2026-11-21T07:28:48.123456789Z `).
fn split_docker_time(line: &str) -> (Option<&str>, &str) {
    match line.split_once(' ') {
        Some((head, rest))
            if head.as_bytes().first().is_some_and(u8::is_ascii_digit) && head.contains('T') && chrono::DateTime::parse_from_rfc3339(head).is_ok() =>
        {
            (Some(head), rest)
        }
        _ => (None, line),
    }
}

/// `service-1  | ` as docker compose writes it: a name of letters, digits, `-`, `_` or `.`,
/// padding spaces, then `| `. Only in front of something that starts a record (a Wolf time, a
/// docker timestamp, env_logger's `[2026-`): a service's own `word | text` line stays whole.
fn strip_compose_prefix(line: &str) -> &str {
    let Some((prefix, rest)) = line.split_once(" | ") else { return line };
    let name = prefix.trim_end_matches(' ');
    let record_follows =
        looks_like_time(rest) || split_docker_time(rest).0.is_some() || rest.strip_prefix('[').is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()));
    if record_follows && !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        rest
    } else {
        line
    }
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
        assert_eq!(r.docker_time, None);
        assert!(parse_line("0:00:01.2 GST_DEBUG something").is_none());
        assert!(parse_line("").is_none());
    }

    #[test]
    fn docker_timestamps_and_compose_prefixes_come_off() {
        let r = parse_line("2026-11-21T07:28:48.123456789Z 07:28:48.123000000 INFO  | [LOBBY] Session 1 joining lobby x").unwrap();
        assert_eq!(r.docker_time.as_deref(), Some("2026-11-21T07:28:48.123456789Z"));
        assert_eq!(r.time, "07:28:48.123000000");
        assert_eq!(r.message, "[LOBBY] Session 1 joining lobby x");
        let r = parse_line("2026-11-21T07:28:48.5Z wolf-1  | \x1b[31m07:28:48.400000000 ERROR | Failed to acquire buffer from pool: -2\x1b[0m").unwrap();
        assert_eq!((r.docker_time.as_deref(), r.level.as_str()), (Some("2026-11-21T07:28:48.5Z"), "ERROR"));
        // `docker-compose logs -t` puts the prefix first.
        let r = parse_line("wolf-1  | 2026-11-21T07:28:48.5Z 07:28:48.400000000 WARN  | x").unwrap();
        assert_eq!((r.docker_time.as_deref(), r.message.as_str()), (Some("2026-11-21T07:28:48.5Z"), "x"));
        assert!(parse_line("2026-11-21T07:28:48.5Z [2026-11-21T07:28:48.4Z INFO  moonlight_web] hello").is_none());
        assert_eq!(
            unwrap_docker("2026-11-21T07:28:48.5Z moonlight-web-1  | [2026-11-21T07:28:48.4Z INFO  x] a | b"),
            (Some("2026-11-21T07:28:48.5Z"), "[2026-11-21T07:28:48.4Z INFO  x] a | b")
        );
        // A Wolf line's own ` | ` is no compose prefix.
        assert_eq!(unwrap_docker("07:28:48.400000000 WARN  | x"), (None, "07:28:48.400000000 WARN  | x"));
        assert_eq!(unwrap_docker("2026 is not a stamp"), (None, "2026 is not a stamp"));
        assert_eq!(unwrap_docker("2026-11-21T07:28:48.5Z gst | not a prefix"), (Some("2026-11-21T07:28:48.5Z"), "gst | not a prefix"));
    }
}
