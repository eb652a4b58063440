//! Byte-rate limits for uploads and downloads: [`shoal_net::rate`], which
//! the relay shares.

pub use shoal_net::rate::RateLimit;
