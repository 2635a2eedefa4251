//! Exit codes, named and mapped in one place. The values are
//! consul-template's, so scripts and supervisors written for it keep working.

/// Everything went as asked (`-once` finished, or a clean stop).
pub const OK: u8 = 0;
/// An error not covered by a more specific code.
pub const ERROR: u8 = 11;
/// Stopped by SIGINT or SIGTERM before `-once` finished.
pub const INTERRUPTED: u8 = 12;
/// The command line could not be parsed.
pub const FLAG_ERROR: u8 = 13;
/// The run failed: a template could not be rendered or written, a command
/// failed in `-once` mode, or Consul retries were exhausted.
pub const RUNNER_ERROR: u8 = 14;
/// The flags parsed but describe an invalid configuration.
pub const CONFIG_ERROR: u8 = 15;
