//! Wolf's log format: `HH:MM:SS.nnnnnnnnn LEVEL | message`, UTC time of day, level padded to 5.
//!
//! The stand-in writes its log exactly like Wolf so the driver's log parser is exercised on the
//! same lines it will meet in production.

use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct WolfLog {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl WolfLog {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self { out: Arc::new(Mutex::new(out)) }
    }

    pub fn stderr() -> Self {
        Self::new(Box::new(std::io::stderr()))
    }

    pub fn debug(&self, msg: impl AsRef<str>) {
        self.write("DEBUG", msg.as_ref());
    }
    pub fn info(&self, msg: impl AsRef<str>) {
        self.write("INFO ", msg.as_ref());
    }
    pub fn warn(&self, msg: impl AsRef<str>) {
        self.write("WARN ", msg.as_ref());
    }
    pub fn error(&self, msg: impl AsRef<str>) {
        self.write("ERROR", msg.as_ref());
    }

    fn write(&self, level: &str, msg: &str) {
        let now = chrono::Utc::now();
        let line = format!("{} {} | {}\n", now.format("%H:%M:%S%.9f"), level, msg);
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }
}
