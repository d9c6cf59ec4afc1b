//! The Worker's clock. Workers freeze `Date.now()` while code runs and advance it
//! only at I/O, so durations measured here are as coarse as the I/O between them.

/// Milliseconds since the Unix epoch, the unit of every cache decision.
pub fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}
