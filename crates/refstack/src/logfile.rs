//! Service log files written in each real service's own format, so the driver's log parsers
//! are exercised on the lines they will meet in production.
//!
//! Wolf: `HH:MM:SS.nnnnnnnnn LEVEL | message` (UTC time of day, level padded to five).
//! moonlight-web and Helix: `[<RFC 3339> LEVEL target] message`, as env_logger writes.

use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy)]
pub enum Style {
    Wolf,
    EnvLogger(&'static str),
}

#[derive(Clone)]
pub struct LogFile {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
    style: Style,
}

impl LogFile {
    pub fn new(out: Box<dyn Write + Send>, style: Style) -> Self {
        Self { out: Arc::new(Mutex::new(out)), style }
    }

    /// Append to a file (created if missing).
    pub fn open(path: &std::path::Path, style: Style) -> std::io::Result<Self> {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self::new(Box::new(f), style))
    }

    /// Where a service process writes: its supervisor or container engine keeps the lines.
    pub fn stdout(style: Style) -> Self {
        Self::new(Box::new(std::io::stdout()), style)
    }

    pub fn stderr(style: Style) -> Self {
        Self::new(Box::new(std::io::stderr()), style)
    }

    pub fn debug(&self, msg: impl AsRef<str>) {
        self.write("DEBUG", msg.as_ref());
    }
    pub fn info(&self, msg: impl AsRef<str>) {
        self.write("INFO", msg.as_ref());
    }
    pub fn warn(&self, msg: impl AsRef<str>) {
        self.write("WARN", msg.as_ref());
    }
    pub fn error(&self, msg: impl AsRef<str>) {
        self.write("ERROR", msg.as_ref());
    }

    fn write(&self, level: &str, msg: &str) {
        let now = chrono::Utc::now();
        let line = match self.style {
            Style::Wolf => format!("{} {:<5} | {}\n", now.format("%H:%M:%S%.9f"), level, msg),
            Style::EnvLogger(target) => format!("[{} {:<5} {}] {}\n", now.format("%Y-%m-%dT%H:%M:%S%.3fZ"), level, target, msg),
        };
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }
}

/// An in-memory log sink, for tests that assert on the lines a service wrote.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

#[cfg(test)]
impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
impl Captured {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}
