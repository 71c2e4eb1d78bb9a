//! runnerctl: runs fleets of self-hosted GitHub Actions runners on virtual machines and
//! containers. See ARCHITECTURE.md for the map of this crate.

pub mod addr_limit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conn;
pub mod error;
pub mod fake_server;
pub mod model;
pub mod prom;

pub use error::{Error, ExitCode, Result};
pub mod backend;
pub mod bootstrap;
pub mod broker;
pub mod budget;
pub mod demo;
pub mod forge;
pub mod hook;
pub mod listener;
pub mod manager;
pub mod memory;
pub mod queue;
pub mod records;
pub mod server;
pub mod simulate;
pub mod store;
pub mod wiring;
pub mod worker;
