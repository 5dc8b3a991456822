//! The tower layer that puts the REST API in front of the gRPC stack on one listener: a request
//! whose path is under `/v1` goes to the API's router (which has its own gate and renders its
//! refusals as problem+json); every other request goes on to the gRPC services unchanged.

use axum::body::{Bytes, HttpBody};
use axum::http;
use axum::BoxError;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::ServiceExt as _;

/// Whether a request path belongs to the REST API.
pub fn is_rest(path: &str) -> bool {
    path == super::BASE || path.starts_with("/v1/")
}

/// See the module docs. Add it as the outermost layer of the server.
#[derive(Clone)]
pub struct RestLayer {
    router: axum::Router,
}

impl RestLayer {
    pub fn new(router: axum::Router) -> Self {
        Self { router }
    }
}

impl<S> tower::Layer<S> for RestLayer {
    type Service = RestFront<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RestFront {
            inner,
            router: self.router.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RestFront<S> {
    inner: S,
    router: axum::Router,
}

impl<S, ResBody> tower::Service<http::Request<tonic::body::Body>> for RestFront<S>
where
    S: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if is_rest(request.uri().path()) {
            let router = self.router.clone();
            return Box::pin(async move {
                match router.oneshot(request).await {
                    Ok(response) => Ok(response.map(tonic::body::Body::new)),
                    Err(never) => match never {},
                }
            });
        }
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(async move {
            let response = inner.call(request).await?;
            Ok(response.map(tonic::body::Body::new))
        })
    }
}
