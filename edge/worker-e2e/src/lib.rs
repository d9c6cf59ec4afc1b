//! Runs the edge Worker (`edge/worker`) the way Cloudflare would, on this machine:
//! [`toolchain`] finds the tools and builds it with `worker-build`, [`workerd`]
//! serves the build with `workerd serve` on loopback, and [`cache_service`] gives
//! local workerd the Cache API backend that Cloudflare's data centres provide.
//! The tests in `tests/` put a scripted origin behind it; the `edge-worker-local`
//! binary runs it in front of real origins for manual use.

pub mod cache_service;
pub mod toolchain;
pub mod workerd;
