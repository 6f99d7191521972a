//! Replication as the proxy sees it: the proxy's [`Replicas`] trait, implemented by
//! [`Replication`] (the proxy never names this module's types).

use super::answer::{merge_list, read_answer, read_target};
use super::store::Store;
use super::visibility::Caller;
use super::{ApplyError, Replication};
use crate::error::ProxyError;
use crate::ids::ClusterId;
use crate::proxy::{
    AcceptedWrite, BoxFut, CALLBACK_PATH, CatalogWrite, RESYNC_PATH, ReplicaAnswer, Replicas,
};
use crate::routing::RoutingTable;
use crate::tls::PeerDc;
use bytes::Bytes;
use http::HeaderMap;
use std::sync::Arc;

impl Replicas for Replication {
    fn endpoint<'a>(
        &'a self,
        path: &'a str,
        extensions: &'a http::Extensions,
        body: Bytes,
    ) -> BoxFut<'a, Result<String, ProxyError>> {
        Box::pin(async move {
            if path == CALLBACK_PATH {
                let woke = self.callback(&body);
                return Ok(serde_json::json!({ "woke": woke }).to_string());
            }
            let certified = extensions.get::<PeerDc>().map(|d| d.0.as_str());
            let done = if path == RESYNC_PATH {
                self.resync_requested(&body, certified).await
            } else {
                self.apply(body, certified).await.map(|a| {
                    serde_json::json!({
                        "applied": a.applied,
                        "ignored": a.ignored,
                        "refused": a.refused,
                    })
                    .to_string()
                })
            };
            match done {
                Ok(answer) => Ok(answer),
                Err(ApplyError::Malformed) => Err(ProxyError::ReplicationBatch(
                    "the body is not a replication batch or request".into(),
                )),
                Err(ApplyError::Store(e)) => Err(ProxyError::ReplicationStore(e.to_string())),
                Err(ApplyError::Sender { claimed, certified }) => {
                    Err(ProxyError::ReplicationSender { claimed, certified })
                }
                Err(ApplyError::Ahead {
                    shard,
                    epoch,
                    newest,
                }) => Err(ProxyError::ReplicationEpochAhead {
                    shard,
                    epoch,
                    newest,
                }),
            }
        })
    }

    fn batch_body_bytes(&self) -> usize {
        self.inner.cfg.batch_body_bytes
    }

    fn accepted<'a>(&'a self, table: &'a RoutingTable, write: AcceptedWrite<'a>) -> BoxFut<'a, ()> {
        Box::pin(self.on_write(table, write))
    }

    fn read<'a>(
        &'a self,
        cluster: ClusterId,
        path: &'a str,
        headers: &'a HeaderMap,
    ) -> BoxFut<'a, Option<ReplicaAnswer>> {
        Box::pin(async move {
            let target = read_target(path)?;
            let entry = self.replica(cluster).await?;
            let a = read_answer(&entry, &target, Caller::from_headers(headers))?;
            Some(ReplicaAnswer {
                status: a.status,
                body: a.body,
                json: a.json,
                epoch: a.epoch,
                age_seconds: Store::age_seconds(a.captured_ms),
            })
        })
    }

    fn merge_list<'a>(
        &'a self,
        table: Arc<RoutingTable>,
        local: Vec<serde_json::Value>,
        query: Option<&'a str>,
        headers: &'a HeaderMap,
    ) -> BoxFut<'a, Vec<serde_json::Value>> {
        Box::pin(async move {
            let caller = Caller::from_headers(headers);
            let (user, tenant) = (
                caller.user.map(String::from),
                caller.tenant.map(String::from),
            );
            let remote = self.remote_summaries(table, user, tenant).await;
            merge_list(local, remote, query, caller)
        })
    }

    fn cluster_of_node<'a>(&'a self, node: &'a str) -> BoxFut<'a, Option<ClusterId>> {
        Box::pin(Replication::cluster_of_node(self, node.to_string()))
    }

    fn list_body_bytes(&self) -> usize {
        self.inner.cfg.list_body_bytes
    }

    fn catalog_accepted<'a>(&'a self, write: CatalogWrite<'a>) -> BoxFut<'a, ()> {
        Box::pin(self.on_catalog_write(write))
    }
}
