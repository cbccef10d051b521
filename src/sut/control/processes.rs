//! Process flavour of service control. Being written.
