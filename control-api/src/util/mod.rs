//! Small self-contained helpers: identifiers and time.

pub mod ids;
pub mod time;
