//! PLACEHOLDER: the server lands with the gateway core.
