//! Scenario parameters: how many sessions, cycles, tabs, operations and how long the waits are.
//!
//! They come from a TOML file (`--params e2e/scenarios/<name>.toml`) and from flags, flags
//! winning. A file's top-level keys apply to every scenario of the run; a table named after a
//! scenario (`[rapid-cycles]`) applies to that one only, so one file can shorten a whole suite.
//! Every field is optional: each scenario fills in the design's numbers for what is absent.

use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Agent sessions the scenario starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<usize>,
    /// Connect/disconnect cycles: per session (`rapid-cycles`), in all (`soak`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycles: Option<usize>,
    /// Seconds a viewer stays connected in one cycle, `[min, max]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_s: Option<[f64; 2]>,
    /// Seconds between a disconnect and the next connect, `[min, max]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_s: Option<[f64; 2]>,
    /// Tabs on one agent session (`multi-tab-same-lobby`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tabs: Option<usize>,
    /// Tabs closed of those (`multi-tab-same-lobby`) or sessions dropped (`concurrent-sessions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<usize>,
    /// Operations in a random walk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<usize>,
    /// Seconds a random walk may take before it stops (checked between operations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_s: Option<f64>,
    /// Seconds every viewer is watched once all stream, before the checks (failures of seed
    /// 001 showed 4–12 s after a join).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_s: Option<f64>,
    /// Synthetic viewers (`crate::synthetic`) beside the real tabs, spread over their sessions
    /// (`concurrent-sessions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic_viewers: Option<usize>,
    /// Which pictures the synthetic viewers decode (every one, or the keyframes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic_decode: Option<crate::timeline::SyntheticDecode>,
}

#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error("cannot read parameter file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("parameter file {path}: {detail}")]
    Parse { path: String, detail: String },
    #[error("parameter {name}: {detail}")]
    Invalid { name: &'static str, detail: String },
}

impl Params {
    /// `over`'s fields replace this one's where set.
    pub fn overlay(&self, over: &Params) -> Params {
        Params {
            sessions: over.sessions.or(self.sessions),
            cycles: over.cycles.or(self.cycles),
            active_s: over.active_s.or(self.active_s),
            idle_s: over.idle_s.or(self.idle_s),
            tabs: over.tabs.or(self.tabs),
            drop: over.drop.or(self.drop),
            ops: over.ops.or(self.ops),
            budget_s: over.budget_s.or(self.budget_s),
            hold_s: over.hold_s.or(self.hold_s),
            synthetic_viewers: over.synthetic_viewers.or(self.synthetic_viewers),
            synthetic_decode: over.synthetic_decode.or(self.synthetic_decode),
        }
    }

    /// Parse a parameter file's text for one scenario: top-level keys, then its own table.
    pub fn parse_for(path: &str, text: &str, scenario: &str) -> Result<Params, ParamsError> {
        let bad = |detail: String| ParamsError::Parse { path: path.to_string(), detail };
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| bad(e.to_string()))?;
        let own = table.get(scenario).and_then(|v| v.as_table()).cloned();
        // Tables are per-scenario sections; only plain keys are shared.
        table.retain(|_, v| !v.is_table());
        let base: Params = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| bad(e.to_string()))?;
        let own: Params = match own {
            Some(t) => toml::Value::Table(t).try_into().map_err(|e: toml::de::Error| bad(format!("[{scenario}]: {e}")))?,
            None => Params::default(),
        };
        let p = base.overlay(&own);
        p.validate()?;
        Ok(p)
    }

    pub fn load_for(path: &Path, scenario: &str) -> Result<Params, ParamsError> {
        let text = std::fs::read_to_string(path).map_err(|source| ParamsError::Read { path: path.display().to_string(), source })?;
        Self::parse_for(&path.display().to_string(), &text, scenario)
    }

    pub fn validate(&self) -> Result<(), ParamsError> {
        for (name, range) in [("active_s", self.active_s), ("idle_s", self.idle_s)] {
            if let Some([a, b]) = range {
                if !(a >= 0.0 && a <= b) {
                    return Err(ParamsError::Invalid { name, detail: format!("[{a}, {b}] is not a range of seconds (0 <= min <= max)") });
                }
            }
        }
        for (name, v) in [("sessions", self.sessions), ("tabs", self.tabs), ("cycles", self.cycles), ("ops", self.ops)] {
            if v == Some(0) {
                return Err(ParamsError::Invalid { name, detail: "must be at least 1".into() });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_tables_override_shared_keys_and_unknown_keys_are_refused() {
        let text = "hold_s = 1.0\nsessions = 4\n[rapid-cycles]\nsessions = 2\ncycles = 3\n[random-walk]\nops = 5\n";
        let p = Params::parse_for("f.toml", text, "rapid-cycles").unwrap();
        assert_eq!((p.sessions, p.cycles, p.hold_s, p.ops), (Some(2), Some(3), Some(1.0), None));
        let p = Params::parse_for("f.toml", text, "random-walk").unwrap();
        assert_eq!((p.sessions, p.ops), (Some(4), Some(5)));
        let e = Params::parse_for("f.toml", "sesions = 3\n", "x").unwrap_err().to_string();
        assert!(e.contains("sesions"), "{e}");
        let e = Params::parse_for("f.toml", "active_s = [5.0, 1.0]\n", "x").unwrap_err().to_string();
        assert!(e.contains("active_s"), "{e}");
    }

    #[test]
    fn flags_win_over_the_file() {
        let file = Params { sessions: Some(3), cycles: Some(20), ..Default::default() };
        let flags = Params { cycles: Some(2), ..Default::default() };
        let p = file.overlay(&flags);
        assert_eq!((p.sessions, p.cycles), (Some(3), Some(2)));
    }
}
