//! WebSocket upgrades: checked like any request, then bridged to the upstream with
//! tungstenite framing on both sides, and kept in a registry so a policy change can
//! re-decide and close them.

mod bridge;
mod frames;
mod handler;
mod registry;
mod socket;
mod upgrade;

pub use handler::{UpgradeContext, handle};
pub use registry::{CloseOrder, WsRegistry};
pub use upgrade::{check_origin, is_upgrade};
