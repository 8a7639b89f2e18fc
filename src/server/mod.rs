//! The HTTP side: listeners, the per-request [`guard`], the upstream `proxy` and the
//! [`websocket`] bridge.

mod body;
mod caller;
mod carried;
mod deadline;
mod drain;
mod endpoints;
mod error;
mod gateway;
pub mod guard;
mod headers;
mod idle;
mod initiator;
mod listen;
mod login;
mod meters;
mod outgoing;
pub mod path;
mod pool;
mod proxy;
mod respond;
mod state;
mod tls;
pub mod websocket;
mod whoami;

pub use error::{ErrorSource, GatewayError};
pub use gateway::Gateway;
