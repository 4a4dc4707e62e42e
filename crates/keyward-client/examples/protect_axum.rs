//! An axum API protected by Keyward: only requests with a valid secret key or a valid
//! signature reach the handlers, which see the verified key.
//!
//!   keyward serve &                                    # Keyward on 127.0.0.1:5399
//!   cargo run -p keyward-client --example protect_axum # this API on 127.0.0.1:8080
//!   curl -H "X-API-Key: kw_test_sk_…" http://127.0.0.1:8080/v2/wallets
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::{Extension, Json, Router};
use keyward_client::layer::VerifyLayer;
use keyward_client::{Client, VerifyResponse};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keyward = Client::new(&std::env::var("KEYWARD_URL").unwrap_or("http://127.0.0.1:5399".into()), None)?;
    let app = Router::new()
        .route(
            "/v2/wallets",
            get(|Extension(key): Extension<VerifyResponse>| async move {
                Json(serde_json::json!({"wallets": [], "caller": key.key_id, "environment": key.environment}))
            }),
        )
        .layer(
            VerifyLayer::new(keyward)
                .require("wallet.read")
                .client_ip(|p| p.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
