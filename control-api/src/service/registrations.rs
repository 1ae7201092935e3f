//! Softphone registrations: persist every change the engine reports, and
//! give the stored bindings back to the engine at start.

use maskline_engine::sip::registrar::Binding;
use maskline_engine::{EngineHandle, RegistrationEvent};
use tokio::sync::mpsc;

use crate::store::{registrations, Store, StoreError};
use crate::util::time::Clock;

/// Store each change, in order, until the engine stops.
pub async fn run(store: Store, clock: Clock, mut rx: mpsc::UnboundedReceiver<RegistrationEvent>) {
    while let Some(ev) = rx.recv().await {
        let json = serde_json::to_string(&ev.bindings).unwrap_or_else(|_| "[]".into());
        if let Err(e) = registrations::save(store.pool(), &ev.username, &json, clock.now_ms()).await
        {
            tracing::error!(error = %e, "cannot store a registration");
        }
    }
}

/// Load stored bindings into the engine (expired ones are dropped by the
/// engine's own sweep and lookups). Returns how many users were restored.
pub async fn restore(store: &Store, engine: &EngineHandle) -> Result<usize, StoreError> {
    let rows = registrations::load_all(store.pool()).await?;
    let users: Vec<RegistrationEvent> = rows
        .into_iter()
        .filter_map(|(username, json)| {
            let bindings: Vec<Binding> = serde_json::from_str(&json).ok()?;
            (!bindings.is_empty()).then_some(RegistrationEvent { username, bindings })
        })
        .collect();
    let n = users.len();
    engine.restore_registrations(users);
    Ok(n)
}
