//! One refresh per session at a time.
//!
//! Providers that rotate refresh tokens revoke the whole grant when an old token is replayed,
//! so concurrent requests of one session must share a single refresh. The result is kept for a
//! short while: requests that still carry the old cookie get the same new session instead of
//! replaying the old refresh token.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::Shared;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::error::RefreshError;
use crate::session::Session;

/// How long a finished refresh answers for the same (session, old refresh token).
const KEEP: Duration = Duration::from_secs(60);

type Outcome = Result<Session, RefreshError>;
type Key = ([u8; 16], [u8; 32]);
type Flight = Shared<Pin<Box<dyn Future<Output = Outcome> + Send>>>;

#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<Key, (Instant, Flight)>>,
}

impl Flights {
    /// Runs `refresh` once per (session id, refresh token); concurrent and slightly later
    /// callers get the same outcome. `refresh` runs on its own task, so a caller that goes away
    /// (client disconnect) cannot abandon a refresh half-way and cause a replay.
    pub(crate) async fn run<F>(
        &self,
        session_id: [u8; 16],
        refresh_token: &str,
        refresh: F,
    ) -> Outcome
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let key = (session_id, Sha256::digest(refresh_token.as_bytes()).into());
        let flight = {
            let mut map = self.map.lock();
            map.retain(|_, (started, _)| started.elapsed() < KEEP);
            map.entry(key)
                .or_insert_with(|| {
                    let task = tokio::spawn(refresh);
                    let joined: Pin<Box<dyn Future<Output = Outcome> + Send>> =
                        Box::pin(async move {
                            task.await.unwrap_or_else(|_| {
                                Err(RefreshError::ProviderProtocol {
                                    provider: String::new(),
                                    reason: "refresh task failed".into(),
                                })
                            })
                        });
                    (Instant::now(), joined.shared())
                })
                .1
                .clone()
        };
        flight.await
    }
}
