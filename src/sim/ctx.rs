//! What a simulated handler gets: the simulator's shared state, the query and the request body,
//! with Coopr's answers for a body that is not JSON.

use bytes::Bytes;
use percent_encoding::percent_decode_str;

use super::Shared;
use super::reply::{self, Resp};

/// What a handler gets.
pub(crate) struct Ctx<'a> {
    pub shared: &'a Shared,
    pub query: Option<&'a str>,
    pub body: &'a Bytes,
}

impl Ctx<'_> {
    /// The values of query parameter `name` (comma lists are left to the caller).
    pub(crate) fn query_values(&self, name: &str) -> Vec<String> {
        let Some(q) = self.query else {
            return Vec::new();
        };
        q.split('&')
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let k = percent_decode_str(k).decode_utf8_lossy();
                (k == name).then(|| percent_decode_str(v).decode_utf8_lossy().into_owned())
            })
            .collect()
    }

    /// The body as JSON, or Coopr's plain-text 400.
    pub(crate) fn json(&self) -> Result<serde_json::Value, Resp> {
        serde_json::from_slice(self.body).map_err(|_| reply::text(400, "Invalid request body."))
    }

    /// Like [`Ctx::json`], but an empty body is `None`.
    pub(crate) fn optional_json(&self) -> Result<Option<serde_json::Value>, Resp> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        self.json().map(Some)
    }
}
