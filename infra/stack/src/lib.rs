//! Placeholder until this crate lands.
pub mod postgres;
pub mod redis;
