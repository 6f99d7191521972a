//! Phase `dcs` of `load/scale.rs`.

use serde_json::Value;
use std::time::Duration;

pub async fn run(_sizes: &[usize], _budget: Duration) -> (Value, String) {
    (Value::Null, String::new())
}
