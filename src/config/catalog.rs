//! The `[catalog]` section: where the shared catalog (tenants, catalog entities, plugin types
//! and resources) is applied first, and its validation.

use super::ConfigError;
use serde::{Deserialize, Serialize};

/// One catalog everywhere (issue 24): a global write is applied first at `home`, whose answer is
/// the client's, then delivered in order to every other DC through replication's outbox.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// The DC whose Coopr applies catalog writes first. None (the default): catalog writes stay
    /// local to the DC that received them, as before. Shared mode ignores it (one database).
    /// Delivery to the other DCs needs `replication.enabled`.
    pub home: Option<String>,
}

/// Checks the section against the DCs of the file; errors name the key.
pub fn validate(
    c: &CatalogConfig,
    dcs: &std::collections::BTreeMap<String, super::DcConfig>,
) -> Result<(), ConfigError> {
    let Some(home) = &c.home else {
        return Ok(());
    };
    let err = |message: String| ConfigError {
        key: "catalog.home".into(),
        line: None,
        message,
    };
    if !dcs.contains_key(home) {
        return Err(err(format!("{home:?} is not a DC of [dcs]")));
    }
    Ok(())
}
