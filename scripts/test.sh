#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine (Rust, Python, Node and npm present),
# then runs every test: formatting, lints, unit and integration tests against real processes.
set -euo pipefail
cd "$(dirname "$0")/.."

# Node packages for the real OpenID provider the login tests start on 127.0.0.1.
if [ -f tests/oidc/package-lock.json ]; then
  (cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error)
fi

# Headless Chromium and playwright-core for the real-browser tests (tests/browser.rs).
if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium
fi
if [ -f tests/browser/package-lock.json ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

# PAM headers for the optional `pam` feature, whose tests use PAM service files of their own.
if ! dpkg -s libpam0g-dev >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq libpam0g-dev
fi

# Python packages for the downstream verification example (biscuit-python) and Panel.
if [ -f requirements-test.txt ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
  export PORTCULLIS_PYTHON="$PWD/.venv/bin/python"
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# The downstream verifier builds on its own, without the gateway.
cargo test --locked --no-default-features --features verify --lib
cargo test --locked
# Basic auth through PAM (optional feature): real service files, a real system account.
cargo test --locked --features pam --lib identity::basic
