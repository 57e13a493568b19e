//! The HTTP side besides `/ws`: the API for backends (`/api/*`), `/health`, `/metrics`
//! and the static pages (`--static DIR`).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use crate::server::{HttpResponse, Hub, json_error};

/// Answers every request that is not the WebSocket upgrade.
pub async fn handle(hub: Arc<Hub>, req: Request<Incoming>) -> HttpResponse {
    let _ = (&hub, &req);
    json_error(StatusCode::NOT_FOUND, "not_found", "no such resource")
}
