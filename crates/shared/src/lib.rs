//! What the driver and the reference stack both speak, and nothing else: the picture stamp
//! that says whose lobby a frame shows, the names of the services, and the framing of Wolf's
//! event stream.
//!
//! It is its own crate so that neither side has to import the other to agree on these: the
//! stand-in (`helix-refstack`) depends on this crate only, never on the driver, and the
//! compiler holds that wall.

#[cfg(feature = "h264")]
pub mod h264;
pub mod sse;
pub mod stamp;

/// The three services a restart scenario can bounce, named as in Helix's compose files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    Wolf,
    MoonlightWeb,
    Api,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::Wolf, Service::MoonlightWeb, Service::Api];

    pub fn name(self) -> &'static str {
        match self {
            Service::Wolf => "wolf",
            Service::MoonlightWeb => "moonlight-web",
            Service::Api => "api",
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Service {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Service::ALL.into_iter().find(|x| x.name() == s).ok_or_else(|| format!("unknown service `{s}` (expected wolf, moonlight-web or api)"))
    }
}
