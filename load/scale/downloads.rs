//! Phase `downloads` of `load/scale.rs`.

use serde_json::Value;

pub async fn run(_n: usize) -> (Value, String) {
    (Value::Null, String::new())
}
