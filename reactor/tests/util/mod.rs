//! The in-process harness the reactor's integration tests share, from `testkit`'s `server` feature.
#![allow(unused_imports)] // each test file uses its own subset

pub use testkit::server::{Echo, Server, any_local_address, init};
