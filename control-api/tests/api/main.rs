//! Integration tests of the control plane: a real SQLite file in a temp dir,
//! the real engine, the real HTTP server on 127.0.0.1:0 and a real client.

mod auth;
mod cli;
mod engine_events;
mod lifecycle;
mod sessions;
mod support;
