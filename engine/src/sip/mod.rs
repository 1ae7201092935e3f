//! SIP: wire helpers, numbers, causes, transports, transactions, dialogs,
//! digest authentication and the registrar.

pub mod auth;
pub mod dialog;
pub mod e164;
pub mod framing;
mod head;
pub mod ids;
pub mod message;
pub mod q850;
pub mod registrar;
pub mod transaction;
pub mod transport;
