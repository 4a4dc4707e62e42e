use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::routing::post;
use axum::Router;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// The answer to send: a real verify answer, so both sides send the same bytes.
    #[arg(long)]
    body_file: std::path::PathBuf,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let body = Bytes::from(std::fs::read(&a.body_file)?);
    let app = Router::new().route(
        "/v1/keys/verify",
        post(move |_req: Bytes| {
            let body = body.clone();
            async move { ([(CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(a.listen).await?;
    eprintln!("ceiling listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
