//! PLACEHOLDER until OIDC lands: discovery, PKCE + state + nonce, code exchange, ID-token check.
