//! `when:` results remembered by the exact values the expression read.
//!
//! A `when:` expression is a pure function of the fields it reads ([`Needs`]): no function in
//! the environment has side effects or reads the clock, so the same values give the same
//! result. Requests repeat those values (one user, a few methods, a few paths), so a decision
//! looks the result up instead of running the interpreter again, which cost more than the rest
//! of an authenticated request's decision.
//!
//! Fail-safe by construction: an expression that reads `now`, `request.headers`, `user.claims`
//! or a whole `user`/`request` object is evaluated every time; an evaluation error is never
//! remembered; the key holds every value read, length-prefixed, so two inputs cannot share a
//! key; and each policy set has its own memo, so a reload starts empty.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::RequestInfo;
use super::expr::{Expr, Needs, REQUEST_FIELDS, USER_FIELDS};
use crate::identity::Identity;

/// Results remembered at most; the memo starts over when full.
const CAPACITY: usize = 8192;

/// Longer keys (long paths or queries) are not remembered, which bounds the memo's size.
const MAX_KEY_LEN: usize = 512;

/// Fields whose values are not worth a key (headers, claims): reading one means no memo.
const USER_UNKEYED: u16 = user_bit("claims");
const REQUEST_UNKEYED: u16 = request_bit("headers");

#[derive(Default)]
pub(crate) struct WhenMemo {
    results: Mutex<HashMap<Box<[u8]>, bool, foldhash::fast::RandomState>>,
}

impl std::fmt::Debug for WhenMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhenMemo").finish_non_exhaustive()
    }
}

impl WhenMemo {
    pub(crate) fn get(&self, key: &[u8]) -> Option<bool> {
        self.results.lock().get(key).copied()
    }

    pub(crate) fn remember(&self, key: Vec<u8>, result: bool) {
        let mut results = self.results.lock();
        if results.len() >= CAPACITY {
            results.clear();
        }
        results.insert(key.into_boxed_slice(), result);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.results.lock().len()
    }
}

/// Whether results of expressions that read `needs` can be remembered at all.
pub(crate) fn memoizable(needs: &Needs) -> bool {
    !needs.now && needs.user & USER_UNKEYED == 0 && needs.request & REQUEST_UNKEYED == 0
}

/// The key for `expr` evaluated on these values: the expression's id, then each field it reads
/// in a fixed order. `None` when the expression is not [`memoizable`] or the key is too long.
pub(crate) fn key(expr: &Expr, user: Option<&Identity>, request: &RequestInfo) -> Option<Vec<u8>> {
    let needs = &expr.needs;
    if !memoizable(needs) {
        return None;
    }
    let mut key = Key(Vec::with_capacity(64));
    key.0.extend_from_slice(&expr.id.to_le_bytes());
    if needs.user != 0 {
        match user {
            None => key.0.push(0),
            Some(user) => {
                key.0.push(1);
                key.user(needs.user, user);
            }
        }
    }
    key.request(needs.request, request);
    (key.0.len() <= MAX_KEY_LEN).then_some(key.0)
}

struct Key(Vec<u8>);

impl Key {
    fn text(&mut self, text: &str) {
        // A field is at most MAX_KEY_LEN long in a kept key, so u32 cannot truncate one.
        self.0
            .extend_from_slice(&(text.len().min(u32::MAX as usize) as u32).to_le_bytes());
        self.0.extend_from_slice(text.as_bytes());
    }

    fn optional(&mut self, text: Option<&str>) {
        match text {
            None => self.0.push(0),
            Some(text) => {
                self.0.push(1);
                self.text(text);
            }
        }
    }

    fn user(&mut self, needs: u16, user: &Identity) {
        if needs & const { user_bit("sub") } != 0 {
            self.text(&user.subject);
        }
        // `domain` is the email's, so the email keys it.
        if needs & (const { user_bit("email") } | const { user_bit("domain") }) != 0 {
            self.optional(user.email.as_deref());
        }
        if needs & const { user_bit("email_verified") } != 0 {
            self.0.push(u8::from(user.email_verified));
        }
        if needs & const { user_bit("name") } != 0 {
            self.optional(user.name.as_deref());
        }
        if needs & const { user_bit("groups") } != 0 {
            self.0
                .extend_from_slice(&(user.groups.len() as u32).to_le_bytes());
            for group in &user.groups {
                self.text(group);
            }
        }
        if needs & const { user_bit("provider") } != 0 {
            self.text(&user.provider);
        }
        // Unkeyed fields never reach here (see `memoizable`).
    }

    fn request(&mut self, needs: u16, request: &RequestInfo) {
        if needs & const { request_bit("method") } != 0 {
            self.text(request.method.as_str());
        }
        if needs & const { request_bit("scheme") } != 0 {
            self.text(request.scheme.as_str());
        }
        if needs & const { request_bit("host") } != 0 {
            self.text(&request.host);
        }
        if needs & const { request_bit("path") } != 0 {
            self.text(&request.path);
        }
        if needs & const { request_bit("query") } != 0 {
            self.optional(request.query.as_deref());
        }
        if needs & const { request_bit("websocket") } != 0 {
            self.0.push(u8::from(request.websocket));
        }
        if needs & const { request_bit("ip") } != 0 {
            match request.ip {
                std::net::IpAddr::V4(ip) => {
                    self.0.push(4);
                    self.0.extend_from_slice(&ip.octets());
                }
                std::net::IpAddr::V6(ip) => {
                    self.0.push(6);
                    self.0.extend_from_slice(&ip.octets());
                }
            }
        }
    }
}

/// The mask bit of a `user` field, for `const` blocks: a key is built on every decision, and
/// walking the field names with string matches cost more than the lookup it keys.
const fn user_bit(name: &str) -> u16 {
    1 << field_bit(&USER_FIELDS, name)
}

/// The mask bit of a `request` field, for `const` blocks.
const fn request_bit(name: &str) -> u16 {
    1 << field_bit(&REQUEST_FIELDS, name)
}

/// The bit of `name` in a [`Needs`] mask, checked when compiled.
const fn field_bit(fields: &[&str], name: &str) -> u32 {
    let mut i = 0;
    while i < fields.len() {
        if same(fields[i].as_bytes(), name.as_bytes()) {
            return i as u32;
        }
        i += 1;
    }
    panic!("no such field")
}

const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
