//! The config loader (`sip-config`): parsing, environment overrides and
//! validation never panic, errors render, and an accepted config is stable:
//! serialised back to TOML it loads again into the same value.
//!
//! Input: a TOML document, optionally followed by a NUL byte and
//! `MASKLINE_*=value` lines used as the environment.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_config::Config;

fuzz_target!(|data: &[u8]| {
    let (doc, env) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], data.get(at + 1..).unwrap_or_default()),
        None => (data, &[][..]),
    };
    let Ok(doc) = std::str::from_utf8(doc) else {
        return;
    };
    let env_text = String::from_utf8_lossy(env);
    let vars: Vec<(&str, &str)> = env_text.lines().filter_map(|l| l.split_once('=')).collect();
    let lookup = |name: &str| {
        vars.iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_string())
    };
    let config = match Config::from_toml_str_with_env(doc, &lookup) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let text = match toml::to_string(&config) {
        Ok(t) => t,
        Err(e) => panic!("an accepted config does not serialise: {e}\n{config:#?}"),
    };
    match Config::from_toml_str(&text) {
        Ok(again) => assert_eq!(again, config, "the config changed on a round trip:\n{text}"),
        Err(e) => panic!("an accepted config does not load again: {e}\n--- serialised ---\n{text}"),
    }
});
