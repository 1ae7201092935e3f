//! Integration tests of the control plane: a real SQLite file in a temp dir,
//! the real engine, the real HTTP server on 127.0.0.1:0 and a real client.

mod auth;
mod cli;
mod commands;
mod engine_events;
mod idempotency;
mod isolation;
mod lifecycle;
mod listing;
mod openapi;
mod receiver;
mod sessions;
mod sse;
mod sse_client;
mod support;
mod webhooks;
