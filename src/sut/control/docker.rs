//! Docker flavour of service control (bollard). Being written.
