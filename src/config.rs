//! PLACEHOLDER: gateway.yaml lands with the gateway core.
