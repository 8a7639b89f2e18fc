//! PLACEHOLDER until pages land: login, error and logout pages rendered with minijinja.
