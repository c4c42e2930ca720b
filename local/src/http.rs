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

/// The `Authorization` header value of HTTP basic authentication (RFC 7617).
pub fn basic_authorization(username: &str, password: &str) -> String {
    use base64::Engine;
    let pair = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// Whether `req` carries the `Authorization` a simulated system was told to require (any
/// request does when it requires none).
pub fn authorized<B>(req: &Request<B>, required: Option<&str>) -> bool {
    required.is_none_or(|want| {
        req.headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some(want)
    })
}

/// 401 with the challenge a client sees from an authenticating server or proxy.
pub fn unauthorized(realm: &str, body: &'static str) -> Answer {
    let mut a = answer(hyper::StatusCode::UNAUTHORIZED, "text/plain", body);
    if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")) {
        a.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, v);
    }
    a
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

/// A TLS front for a plain loopback server: terminates TLS with `cert_pem` / `key_pem` and
/// copies the bytes to `backend`, so any simulated system can be reached over HTTPS as in
/// production (a private CA, a `ca_file` setting). Stops when the returned task is aborted.
pub async fn tls_front(
    backend: std::net::SocketAddr,
    cert_pem: &std::path::Path,
    key_pem: &std::path::Path,
) -> std::io::Result<(std::net::SocketAddr, JoinHandle<()>)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_pem)
        .map_err(|e| bad(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&e))?;
    let key = PrivateKeyDer::from_pem_file(key_pem).map_err(|e| bad(&e))?;
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(&e))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| bad(&e))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            connections.spawn(async move {
                // A client that does not trust the certificate fails the handshake: nothing
                // reaches the backend.
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                if let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
            while connections.try_join_next().is_some() {}
        }
    });
    Ok((addr, task))
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
