//! The built-in provisioner ([`super::ProvisionerConfig`]): over HTTP against a tasks API, like
//! Coopr's provisioner with `MockWorker`s (`coopr-server/.../provisioner/mock/MockWorker.java`):
//! registers (`PUT /v2/provisioners/{id}`), heartbeats (`POST /v2/provisioners/{id}/heartbeat`),
//! takes (`POST /v2/tasks/take`) and finishes (`POST /v2/tasks/finish`, status 0) tasks, one at
//! a time per tenant, until its listener stops. A `CONFIRM` result carries `ssh-auth` with
//! [`super::SSH_PASSWORD`], plus `ipaddresses` and `hostname`. Sends `Authorization: Bearer`
//! when a token is set. Never fails a task; errors are logged and retried after `poll`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{ProvisionerConfig, SSH_PASSWORD, Shared};

/// How often the provisioner heartbeats.
const HEARTBEAT: Duration = Duration::from_secs(1);

struct Worker {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    token: Option<String>,
    cfg: ProvisionerConfig,
}

pub(crate) fn spawn(
    shared: Arc<Shared>,
    cfg: ProvisionerConfig,
    url: String,
    mut stop: watch::Receiver<bool>,
) {
    let token = cfg.token.clone().or(shared.cfg.security_token.clone());
    let name = shared.cfg.name.clone();
    drop(shared);
    let w = Worker {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: url.trim_end_matches('/').to_string(),
        token,
        cfg,
    };
    tokio::spawn(async move {
        tracing::info!(sim = %name, url = %w.base, id = %w.cfg.id, "built-in provisioner started");
        tokio::select! {
            _ = w.run() => {}
            _ = stop.wait_for(|s| *s) => {}
        }
        tracing::info!(sim = %name, "built-in provisioner stopped");
    });
}

impl Worker {
    async fn call(&self, method: Method, path: &str, body: &Value) -> Result<(u16, Value), String> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(t) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    async fn register(&self) -> bool {
        let id = &self.cfg.id;
        let body = json!({"id": id, "host": "127.0.0.1", "port": 0, "capacityTotal": 10,
                          "capacityFree": 10, "usage": {}, "assignments": {}});
        matches!(
            self.call(Method::PUT, &format!("/v2/provisioners/{id}"), &body)
                .await,
            Ok((200, _))
        )
    }

    async fn run(self) {
        let mut registered = false;
        let mut last_beat = tokio::time::Instant::now();
        loop {
            if !registered {
                registered = self.register().await;
            } else if last_beat.elapsed() >= HEARTBEAT {
                last_beat = tokio::time::Instant::now();
                let path = format!("/v2/provisioners/{}/heartbeat", self.cfg.id);
                if let Ok((404, _)) = self.call(Method::POST, &path, &json!({"usage": {}})).await {
                    registered = false;
                }
            }
            let mut worked = false;
            if registered {
                for tenant in &self.cfg.tenants {
                    worked |= self.one(tenant).await;
                }
            }
            if !worked {
                tokio::time::sleep(self.cfg.poll).await;
            }
        }
    }

    /// Takes and finishes one task of `tenant`; whether there was one.
    async fn one(&self, tenant: &str) -> bool {
        let who = json!({"provisionerId": self.cfg.id, "workerId": "worker-0", "tenantId": tenant});
        let task = match self.call(Method::POST, "/v2/tasks/take", &who).await {
            Ok((200, task)) => task,
            Ok((204, _)) => return false,
            Ok((status, _)) => {
                tracing::debug!(status, "take refused");
                return false;
            }
            Err(e) => {
                tracing::debug!(error = %e, "take failed");
                return false;
            }
        };
        tokio::time::sleep(self.cfg.poll).await;
        let task_id = task.get("taskId").cloned().unwrap_or(Value::Null);
        let mut body = who;
        body["taskId"] = task_id;
        body["status"] = json!(0);
        body["stdout"] = json!("");
        body["stderr"] = json!("");
        let mut result = json!({});
        if task.get("taskName").and_then(Value::as_str) == Some("CONFIRM") {
            let num = task
                .pointer("/config/nodenum")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let ip = format!("10.250.{}.{}", (num >> 8) & 0xff, num & 0xff);
            body["ipaddresses"] = json!({"access_v4": ip, "bind_v4": ip});
            body["hostname"] = json!(format!("host-{num}.sim.local"));
            result["ssh-auth"] = json!({"user": "root", "password": SSH_PASSWORD});
        }
        body["result"] = result;
        if let Err(e) = self.call(Method::POST, "/v2/tasks/finish", &body).await {
            tracing::debug!(error = %e, "finish failed");
        }
        true
    }
}
