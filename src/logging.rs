//! Logging: the tracing subscriber (text or JSON), and a handle to change the filter at run
//! time (`POST /admin/log-level`).

use std::sync::OnceLock;
use tracing_subscriber::{
    EnvFilter, Registry, layer::SubscriberExt, reload, util::SubscriberInitExt,
};

static HANDLE: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();
static CURRENT: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// Installs the global subscriber; `RUST_LOG` sets the starting filter (default `info`).
pub fn init(json: bool) {
    let start = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string());
    let filter = EnvFilter::try_new(&start).unwrap_or_else(|_| EnvFilter::new("info"));
    let (layer, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(layer);
    let ok = if json {
        registry
            .with(tracing_subscriber::fmt::layer().json())
            .try_init()
            .is_ok()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer())
            .try_init()
            .is_ok()
    };
    if ok {
        let _ = HANDLE.set(handle);
        *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = start;
    }
}

/// The filter in force, if logging was initialised here.
pub fn level() -> Option<String> {
    HANDLE
        .get()
        .map(|_| CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

/// Replaces the filter (`info`, `debug`, `info,coopr_router::proxy=debug`, ...).
pub fn set_level(spec: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(spec).map_err(|e| format!("bad filter {spec:?}: {e}"))?;
    let handle = HANDLE
        .get()
        .ok_or("logging is not managed by this process")?;
    handle.reload(filter).map_err(|e| e.to_string())?;
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = spec.to_string();
    tracing::info!(filter = spec, "log level changed");
    Ok(())
}
