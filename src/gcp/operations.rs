//! Waiting for long-running operations: poll `GET v2/{operation}` with backoff until it is
//! done, under a per-kind timeout, and turn an operation's `error` into a `GcpError`.

use super::{GcpClient, GcpError, Service};
use reqwest::Method;
use serde_json::Value as Json;
use std::time::{Duration, Instant};

/// Waits for `operation` (as a create/patch/delete returned it) and returns its `response`.
pub async fn wait_for_operation(
    client: &GcpClient,
    service: Service,
    operation: Json,
    timeout: Duration,
) -> Result<Json, GcpError> {
    let name = operation["name"].as_str().unwrap_or_default().to_string();
    let started = Instant::now();
    let mut delay = Duration::from_millis(50);
    let mut current = operation;
    loop {
        if current["done"] == true {
            if let Some(error) = current.get("error").filter(|error| !error.is_null()) {
                return Err(GcpError::Operation {
                    name,
                    code: error["code"].as_i64().unwrap_or(2),
                    message: error["message"]
                        .as_str()
                        .unwrap_or("the operation failed")
                        .to_string(),
                });
            }
            return Ok(current.get("response").cloned().unwrap_or(Json::Null));
        }
        if name.is_empty() {
            return Err(GcpError::Decode {
                method: "GET".into(),
                url: "(operation)".into(),
                message: "the operation has no name".into(),
            });
        }
        if started.elapsed() >= timeout {
            return Err(GcpError::Timeout {
                what: format!("operation {name}"),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
        current = client
            .call(Method::GET, service, &format!("v2/{name}"), &[], None)
            .await?;
    }
}
