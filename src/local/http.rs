//! A minimal HTTP/1 server loop shared by the front door and the simulated gateways.

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The response type of every local server.
pub type Answer = Response<Full<Bytes>>;

/// Serves `handler` on `listener` until the returned task is aborted; aborting it also closes
/// every open connection (they live in a set owned by the task).
pub fn serve<F, Fut>(listener: TcpListener, handler: F) -> JoinHandle<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let handler = handler.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let answer = handler(req);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
            while connections.try_join_next().is_some() {}
        }
    })
}

/// A plain answer with a status, a content type and a body.
pub fn answer(
    status: hyper::StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Answer {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

/// The whole body of a request to a simulated system (empty when it cannot be read: the
/// handler then answers as to an empty body).
pub async fn body_bytes(req: Request<Incoming>) -> Bytes {
    use http_body_util::BodyExt;
    req.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

/// Binds a free loopback port and serves `handler` with `state` shared by every request: the
/// start of every simulated outside system.
pub async fn serve_state<S, F, Fut>(
    state: std::sync::Arc<S>,
    handler: F,
) -> std::io::Result<(std::net::SocketAddr, JoinHandle<()>)>
where
    S: Send + Sync + 'static,
    F: Fn(std::sync::Arc<S>, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let task = serve(listener, move |req| handler(state.clone(), req));
    Ok((addr, task))
}
