-- Media quality of a finished call, per leg (JSON: {"a": {...}, "b": {...}}
-- with packets, lost, loss_pct, jitter_ms and the peer's RTCP figures).
ALTER TABLE calls ADD COLUMN quality TEXT;
