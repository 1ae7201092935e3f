//! Integration tests of the control plane: a real SQLite file in a temp dir
//! (or a fresh PostgreSQL database when `MASKLINE_TEST_PG_URL` is set, see
//! `backend`), the real engine, the real HTTP server on 127.0.0.1:0 and a
//! real client.

mod auth;
mod backend;
mod cli;
mod commands;
mod engine_events;
mod idempotency;
mod isolation;
mod lifecycle;
mod listing;
mod openapi;
mod originate;
mod receiver;
mod sessions;
mod shared_store;
mod sse;
mod sse_client;
mod support;
mod webhooks;
