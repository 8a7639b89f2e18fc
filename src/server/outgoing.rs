//! A request on its way upstream, kept in one place until a connection takes it.
//!
//! The guard's future holds the request and every phase after it borrows it: each `async fn` a
//! request passes through by value copies its 264 bytes into that function's future and again
//! into its locals, 18 copies a request from the guard to hyper's client before this.

use http::Request;
use hyper::body::Incoming;

use super::error::GatewayError;

pub struct Outgoing<B = Incoming>(Option<Request<B>>);

impl<B> Outgoing<B> {
    pub fn new(request: Request<B>) -> Self {
        Outgoing(Some(request))
    }

    pub fn get_mut(&mut self) -> Result<&mut Request<B>, GatewayError> {
        self.0.as_mut().ok_or_else(already_taken)
    }

    /// The request itself, for whatever sends or answers it; the slot is empty afterwards.
    pub fn take(&mut self) -> Result<Request<B>, GatewayError> {
        self.0.take().ok_or_else(already_taken)
    }

    /// Puts back a request a connection handed back unsent, for another connection to take.
    pub fn put_back(&mut self, request: Request<B>) {
        self.0 = Some(request);
    }
}

/// The guard fills the slot once and takes from it once (again only after a `put_back`), so
/// this is a bug, answered as a 500 rather than a panic.
fn already_taken() -> GatewayError {
    GatewayError::Internal("the request was already taken".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_taken_once_until_it_is_put_back() {
        let mut outgoing = Outgoing::new(Request::builder().uri("/a").body(()).unwrap());
        *outgoing.get_mut().unwrap().uri_mut() = "/b".parse().unwrap();
        let request = outgoing.take().unwrap();
        assert_eq!(request.uri(), "/b");

        for error in [outgoing.take().err(), outgoing.get_mut().err()] {
            let error = error.expect("an empty slot is an error, not a panic");
            assert_eq!(error.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        }

        outgoing.put_back(request);
        assert_eq!(outgoing.take().unwrap().uri(), "/b");
    }
}
