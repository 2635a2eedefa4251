//! consul-render's integration tests: the real binary against a real Consul
//! agent and a real nginx (from the test bed), asserted on files, exit
//! codes, logs, and HTTP through nginx. One test binary, one module per
//! capability.

mod cli;
mod config_file;
mod connection;
mod crash;
mod faults;
mod go_dialect;
mod hostile;
mod image;
mod log_file;
mod metrics;
mod offline;
mod ownership;
mod reloads;
mod scale;
mod seed;
mod supervise;
mod support;
mod watching;
