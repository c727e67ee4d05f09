//! systemg: a process supervisor that composes programs into systems.

pub mod argv;
pub mod backend;
pub mod cli;
pub mod config;
pub mod control;
pub mod core;
pub mod health;
pub mod logs;
pub mod metrics;
pub mod notify;
pub mod os;
pub mod runtime;
pub mod sandbox;
pub mod signals;
pub mod spec;
