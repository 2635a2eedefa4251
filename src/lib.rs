//! consul-render keeps nginx configuration in step with Consul's service
//! catalog, as a drop-in replacement for consul-template that never breaks
//! nginx.

pub mod cli;
pub mod command;
pub mod config;
pub mod consul;
pub mod duration;
pub mod exit;
pub mod output;
pub mod template;
