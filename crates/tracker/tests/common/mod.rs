//! Helpers shared by the tracker's tests.
pub mod redis_server;
