//! The router's typed request errors and the one place they become HTTP responses: a status,
//! `Retry-After` where trying again can help, and a short JSON body
//! `{"error": "...", "request_id": "..."}` (plus the router's view for a 421).

use crate::body::ProxyBody;
use crate::classify::ClassifyError;
use crate::headers;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

/// Everything that can stop the router from passing a request on.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    Classify(#[from] ClassifyError),
    #[error(
        "the request body is larger than {limit} bytes, the most the router inspects for a cluster id"
    )]
    BodyTooLarge { limit: usize },
    #[error("the request target is longer than {limit} bytes (limits.max_uri_bytes)")]
    UriTooLong { limit: usize },
    #[error("bad request head: {0}")]
    BadHead(&'static str),
    #[error("the method {method} is not served by this router")]
    MethodNotAllowed { method: String },
    #[error("the request body could not be read: {0}")]
    BodyRead(String),
    #[error("the request body was not received in time")]
    BodyTimeout,
    #[error("no Coopr server of this DC could be reached: {0}")]
    BackendUnreachable(String),
    #[error("the Coopr server did not answer in time")]
    BackendTimeout,
    #[error("the Coopr server failed: {0}")]
    Backend(String),
    #[error("the router of DC {dc}, which owns this cluster, could not be reached: {reason}")]
    PeerUnreachable { dc: String, reason: String },
    #[error("the router of DC {dc} did not answer in time")]
    PeerTimeout { dc: String },
    #[error("the router of DC {dc} failed: {reason}")]
    Peer { dc: String, reason: String },
    #[error("this router (DC {dc}) does not own shard {shard:?}")]
    Misdirected {
        dc: String,
        shard: Option<u32>,
        owner: Option<String>,
        epoch: u64,
        revision: u64,
    },
    #[error(
        "DC {dc} refused the request as not its owner, and this router's map has no other owner"
    )]
    OwnerMoved { dc: String },
    #[error("no DC owns all of its home shards, so no Coopr server can create a cluster safely")]
    NoCreateTarget,
    #[error(
        "DC {dc} cannot prove its ownership is current (its etcd lease is not proven alive), so it refuses writes to the shards it owns; retry shortly"
    )]
    Fenced { dc: String, shard: Option<u32> },
    #[error(
        "shard {shard} is owned by DC {dc} after a failover, but its clusters live in DC {home}'s database, which this DC cannot serve (no standby server for {home}, or a read of a cluster the replica store has no copy of); retry later or once {home} is back"
    )]
    Adopted {
        dc: String,
        shard: u32,
        home: String,
    },
    #[error(
        "shard {shard} is being handed off from DC {dc} to DC {to}; its writes were held for {held_ms} ms and the move has not finished; retry shortly"
    )]
    HandoffHeld {
        dc: String,
        shard: u32,
        to: String,
        held_ms: u64,
    },
    #[error(
        "{path} is Coopr's internal API (server.tasks.port): provisioners reach it through the router's provisioner listener (listen.provisioner), never through this port"
    )]
    InternalRoute { path: String },
    #[error(
        "this DC has no standby server for DC {home} (standby.{home}.tasks_url): provisioners of a standby use /standby/{{home}}/ on the provisioner listener"
    )]
    NoStandby { home: String },
    #[error("replication is not enabled on this router")]
    ReplicationOff,
    #[error("bad replication batch: {0}")]
    ReplicationBatch(String),
    #[error("the replica store failed: {0}")]
    ReplicationStore(String),
    #[error(
        "a replication batch claiming to come from DC {claimed:?} arrived over a connection whose certificate names DC {certified:?}"
    )]
    ReplicationSender { claimed: String, certified: String },
    #[error(
        "a replication record for shard {shard} carries epoch {epoch}, newer than any map this router has seen for it ({newest}); send it again once the map caught up"
    )]
    ReplicationEpochAhead { shard: u32, epoch: u64, newest: u64 },
    #[error(
        "catalog writes are applied first at the catalog's home DC {home}, whose router could not be reached ({reason}); retry once {home} is back or the catalog home moved (catalog.home)"
    )]
    CatalogHomeDown { home: String, reason: String },
}

/// The kinds of [`ProxyError`], as named in `x-coopr-router-error` and in metrics. A router
/// reads a peer's error kind back with [`ErrorKind::parse`], never by comparing strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    BadHead,
    MethodNotAllowed,
    BodyTooLarge,
    BodyRead,
    BodyTimeout,
    UriTooLong,
    BackendUnreachable,
    BackendTimeout,
    BackendError,
    PeerUnreachable,
    PeerTimeout,
    PeerError,
    Misdirected,
    OwnerMoved,
    NoCreateTarget,
    Fenced,
    Adopted,
    HandoffHeld,
    InternalRoute,
    NoStandby,
    ReplicationOff,
    ReplicationBatch,
    ReplicationStore,
    ReplicationSender,
    ReplicationEpochAhead,
    CatalogHomeDown,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 27] = [
        ErrorKind::BadRequest,
        ErrorKind::BadHead,
        ErrorKind::MethodNotAllowed,
        ErrorKind::BodyTooLarge,
        ErrorKind::BodyRead,
        ErrorKind::BodyTimeout,
        ErrorKind::UriTooLong,
        ErrorKind::BackendUnreachable,
        ErrorKind::BackendTimeout,
        ErrorKind::BackendError,
        ErrorKind::PeerUnreachable,
        ErrorKind::PeerTimeout,
        ErrorKind::PeerError,
        ErrorKind::Misdirected,
        ErrorKind::OwnerMoved,
        ErrorKind::NoCreateTarget,
        ErrorKind::Fenced,
        ErrorKind::Adopted,
        ErrorKind::HandoffHeld,
        ErrorKind::InternalRoute,
        ErrorKind::NoStandby,
        ErrorKind::ReplicationOff,
        ErrorKind::ReplicationBatch,
        ErrorKind::ReplicationStore,
        ErrorKind::ReplicationSender,
        ErrorKind::ReplicationEpochAhead,
        ErrorKind::CatalogHomeDown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::BadHead => "bad_head",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::BodyRead => "body_read",
            ErrorKind::BodyTimeout => "body_timeout",
            ErrorKind::UriTooLong => "uri_too_long",
            ErrorKind::BackendUnreachable => "backend_unreachable",
            ErrorKind::BackendTimeout => "backend_timeout",
            ErrorKind::BackendError => "backend_error",
            ErrorKind::PeerUnreachable => "peer_unreachable",
            ErrorKind::PeerTimeout => "peer_timeout",
            ErrorKind::PeerError => "peer_error",
            ErrorKind::Misdirected => "misdirected",
            ErrorKind::OwnerMoved => "owner_moved",
            ErrorKind::NoCreateTarget => "no_create_target",
            ErrorKind::Fenced => "fenced",
            ErrorKind::Adopted => "adopted",
            ErrorKind::HandoffHeld => "handoff_held",
            ErrorKind::InternalRoute => "internal_route",
            ErrorKind::NoStandby => "no_standby",
            ErrorKind::ReplicationOff => "replication_off",
            ErrorKind::ReplicationBatch => "replication_batch",
            ErrorKind::ReplicationStore => "replication_store",
            ErrorKind::ReplicationSender => "replication_sender",
            ErrorKind::ReplicationEpochAhead => "replication_epoch_ahead",
            ErrorKind::CatalogHomeDown => "catalog_home_down",
        }
    }

    /// The kind a header value names, if any.
    pub fn parse(v: &[u8]) -> Option<ErrorKind> {
        ErrorKind::ALL
            .into_iter()
            .find(|k| k.as_str().as_bytes() == v)
    }
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        use ProxyError::*;
        match self {
            Classify(_) | BadHead(_) | BodyRead(_) | ReplicationBatch(_) => StatusCode::BAD_REQUEST,
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ReplicationOff | InternalRoute { .. } | NoStandby { .. } => StatusCode::NOT_FOUND,
            ReplicationStore(_) | ReplicationEpochAhead { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ReplicationSender { .. } => StatusCode::FORBIDDEN,
            BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            BackendUnreachable(_) | Backend(_) | Peer { .. } => StatusCode::BAD_GATEWAY,
            BackendTimeout | PeerTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            PeerUnreachable { .. }
            | OwnerMoved { .. }
            | NoCreateTarget
            | Fenced { .. }
            | Adopted { .. }
            | HandoffHeld { .. }
            | CatalogHomeDown { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Misdirected { .. } => StatusCode::MISDIRECTED_REQUEST,
        }
    }

    /// A short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        self.error_kind().as_str()
    }

    /// The kind of error: what `x-coopr-router-error` says, and what metrics count.
    pub fn error_kind(&self) -> ErrorKind {
        use ProxyError::*;
        match self {
            Classify(_) => ErrorKind::BadRequest,
            BadHead(_) => ErrorKind::BadHead,
            MethodNotAllowed { .. } => ErrorKind::MethodNotAllowed,
            BodyTooLarge { .. } => ErrorKind::BodyTooLarge,
            BodyRead(_) => ErrorKind::BodyRead,
            BodyTimeout => ErrorKind::BodyTimeout,
            UriTooLong { .. } => ErrorKind::UriTooLong,
            BackendUnreachable(_) => ErrorKind::BackendUnreachable,
            BackendTimeout => ErrorKind::BackendTimeout,
            Backend(_) => ErrorKind::BackendError,
            PeerUnreachable { .. } => ErrorKind::PeerUnreachable,
            PeerTimeout { .. } => ErrorKind::PeerTimeout,
            Peer { .. } => ErrorKind::PeerError,
            Misdirected { .. } => ErrorKind::Misdirected,
            OwnerMoved { .. } => ErrorKind::OwnerMoved,
            NoCreateTarget => ErrorKind::NoCreateTarget,
            Fenced { .. } => ErrorKind::Fenced,
            Adopted { .. } => ErrorKind::Adopted,
            HandoffHeld { .. } => ErrorKind::HandoffHeld,
            InternalRoute { .. } => ErrorKind::InternalRoute,
            NoStandby { .. } => ErrorKind::NoStandby,
            ReplicationOff => ErrorKind::ReplicationOff,
            ReplicationBatch(_) => ErrorKind::ReplicationBatch,
            ReplicationStore(_) => ErrorKind::ReplicationStore,
            ReplicationSender { .. } => ErrorKind::ReplicationSender,
            ReplicationEpochAhead { .. } => ErrorKind::ReplicationEpochAhead,
            CatalogHomeDown { .. } => ErrorKind::CatalogHomeDown,
        }
    }

    /// The response a client sees. `dc` is the DC of the router answering.
    pub fn to_response(&self, request_id: &HeaderValue, dc: &str) -> Response<ProxyBody> {
        let rid = request_id.to_str().unwrap_or("");
        let mut body = json!({ "error": self.to_string(), "request_id": rid });
        if let ProxyError::Misdirected {
            dc,
            shard,
            owner,
            epoch,
            revision,
        } = self
        {
            body["dc"] = json!(dc);
            body["shard"] = json!(shard);
            body["owner"] = json!(owner);
            body["epoch"] = json!(epoch);
            body["revision"] = json!(revision);
        }
        if let ProxyError::Adopted { shard, home, .. } = self {
            body["shard"] = json!(shard);
            body["home_dc"] = json!(home);
        }
        if let ProxyError::HandoffHeld { shard, to, .. } = self {
            body["shard"] = json!(shard);
            body["to"] = json!(to);
        }
        if let ProxyError::ReplicationSender { claimed, certified } = self {
            body["from"] = json!(claimed);
            body["certified_dc"] = json!(certified);
        }
        if let ProxyError::Fenced { shard, .. } = self {
            body["shard"] = json!(shard);
        }
        if let ProxyError::CatalogHomeDown { home, .. } = self {
            body["home_dc"] = json!(home);
        }
        let mut resp = Response::new(ProxyBody::full(body.to_string()));
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(headers::REQUEST_ID, request_id.clone());
        if let Ok(v) = HeaderValue::from_str(dc) {
            h.insert(headers::DC, v);
        }
        h.insert(headers::ROUTE, HeaderValue::from_static("error"));
        h.insert(headers::ERROR, HeaderValue::from_static(self.kind()));
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        // Which DC the client waits for: the catalog's home.
        if let ProxyError::CatalogHomeDown { home, .. } = self
            && let Ok(v) = HeaderValue::from_str(home)
        {
            h.insert(headers::CATALOG_HOME, v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(k.as_str().as_bytes()), Some(k));
        }
        assert_eq!(ErrorKind::parse(b"backend_unreachable "), None);
    }
}
