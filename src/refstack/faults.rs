//! Fault switches: each reproduces a documented failure (see the failure catalog) through the
//! same mechanism as the real stack, so the driver sees genuine symptoms.

use crate::refstack::streamer::ipc::PortRange;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// F2: moonlight-web's `webrtc_port_range`; every streamer peer binds its own UDP sockets
    /// inside it, so a range too small for two peers makes the second one's ICE fail.
    WebrtcPortRange(PortRange),
}

/// Names and value syntax of every switch, for help and error messages.
pub const KNOWN: &[(&str, &str)] = &[("webrtc-port-range", "MIN-MAX")];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultError {
    #[error("unknown fault {0:?}; known: {list}", list = known_list())]
    Unknown(String),
    #[error("fault {name} needs a value: {name}={syntax}")]
    MissingValue { name: &'static str, syntax: &'static str },
    #[error("fault {name}: {detail}")]
    BadValue { name: &'static str, detail: String },
}

fn known_list() -> String {
    KNOWN.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(", ")
}

impl FromStr for Fault {
    type Err = FaultError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, value) = match s.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        match name {
            "webrtc-port-range" => {
                const NAME: &str = "webrtc-port-range";
                let v = value.ok_or(FaultError::MissingValue { name: NAME, syntax: "MIN-MAX" })?;
                let bad = |detail: &str| FaultError::BadValue { name: NAME, detail: format!("{detail} in {v:?} (expected MIN-MAX, e.g. 40000-40001)") };
                let (a, b) = v.split_once('-').ok_or_else(|| bad("no '-'"))?;
                let min: u16 = a.parse().map_err(|_| bad("MIN is not a port"))?;
                let max: u16 = b.parse().map_err(|_| bad("MAX is not a port"))?;
                if min == 0 || min > max {
                    return Err(bad("MIN must be 1..=MAX"));
                }
                Ok(Fault::WebrtcPortRange(PortRange { min, max }))
            }
            other => Err(FaultError::Unknown(other.to_string())),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::WebrtcPortRange(r) => write!(f, "webrtc-port-range={}-{}", r.min, r.max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_switches_and_names_what_is_wrong() {
        let f: Fault = "webrtc-port-range=40000-40001".parse().unwrap();
        assert_eq!(f, Fault::WebrtcPortRange(PortRange { min: 40000, max: 40001 }));
        assert_eq!(f.to_string(), "webrtc-port-range=40000-40001");
        assert!("webrtc-port-range".parse::<Fault>().unwrap_err().to_string().contains("needs a value"));
        assert!("webrtc-port-range=9-1".parse::<Fault>().unwrap_err().to_string().contains("MIN must be"));
        assert!("nope".parse::<Fault>().unwrap_err().to_string().contains("known: webrtc-port-range=MIN-MAX"));
    }
}
