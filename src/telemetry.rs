//! PLACEHOLDER until telemetry lands: metric names, tracing setup, decision log.
