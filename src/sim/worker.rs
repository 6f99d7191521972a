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
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{ProvisionerConfig, SSH_PASSWORD, Shared};

/// How often the provisioner heartbeats.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Not the router's pooled `upstream` client (that one needs the router's config and TLS
/// material): a plain HTTP/1.1 exchange per call over a fresh connection is all a simulated
/// provisioner needs, and it sends each request exactly as written.
struct Worker {
    /// `host:port` of the tasks API.
    authority: String,
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
    let base = url.trim_end_matches('/').to_string();
    let authority = base
        .strip_prefix("http://")
        .unwrap_or(&base)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let w = Worker {
        authority,
        base,
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
            .uri(path)
            .header(http::header::HOST, self.authority.as_str())
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(t) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("{}: {e}", self.base))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
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
