"""Verify portcullis capability tokens offline, with biscuit-python.

The gateway sends every allowed request with an ``X-Auth-Capability`` header: a Biscuit token
signed with one of the gateway's Ed25519 keys. This module checks it with the gateway's public
keys only (``/.well-known/portcullis/keys.json``), no shared secret, no call back::

    from portcullis_token import KeySet, Verifier, TokenError

    verifier = Verifier(KeySet.from_url("https://gateway.example.com/.well-known/portcullis/keys.json"))
    try:
        claims = verifier.verify(headers["X-Auth-Capability"], route="panel", right="read")
    except TokenError as err:
        ...  # err.reason: expired, bad_signature, unknown_key, wrong_route, missing_right, ...

It mirrors ``portcullis::verify`` in Rust: same checks, same reasons, same run limits. The token
schema is in ``docs/capabilities.md``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from biscuit_auth import (
    AuthorizationError,
    AuthorizerBuilder,
    Biscuit,
    BlockBuilder,
    PublicKey,
    Rule,
    UnverifiedBiscuit,
)

__all__ = ["HEADER", "Claims", "KeySet", "TokenError", "Verifier", "from_headers"]

HEADER = "X-Auth-Capability"

# Same limits as the Rust verifier: biscuit's default 1 ms fails on a busy machine.
MAX_FACTS = 1000
MAX_ITERATIONS = 100
MAX_TIME = dt.timedelta(milliseconds=100)

_FAILED_CHECK = re.compile(r"Check n°(\d+) in (authorizer|block n°(\d+)): ([^,]*)")


class TokenError(Exception):
    """The token was refused. ``reason`` is one of: malformed, bad_signature, unknown_key,
    expired, wrong_route, missing_right, attenuated, limits."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True)
class Claims:
    """What a verified token says about the caller (see the Rust ``Claims``)."""

    sub: str
    email: str | None
    domain: str | None
    groups: list[str]
    provider: str
    route: str
    rights: list[str]
    issued_at: dt.datetime
    expires: dt.datetime


class KeySet:
    """The gateway's public keys by key id (the token's ``root_key_id``)."""

    def __init__(self, keys: dict[int, PublicKey]):
        if not keys:
            raise ValueError("keys.json lists no keys; is the gateway's key directory empty?")
        self.keys = keys

    @classmethod
    def from_json(cls, text: str) -> "KeySet":
        keys = {}
        for entry in json.loads(text)["keys"]:
            if entry["algorithm"].lower() != "ed25519":
                raise ValueError(f"key {entry['kid']}: unsupported algorithm {entry['algorithm']!r}")
            keys[int(entry["kid"])] = PublicKey(f"ed25519/{entry['public_key']}")
        return cls(keys)

    @classmethod
    def from_file(cls, path: str | Path) -> "KeySet":
        return cls.from_json(Path(path).read_text())

    @classmethod
    def from_url(cls, url: str, timeout: float = 10.0) -> "KeySet":
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return cls.from_json(response.read().decode())


class Verifier:
    """Checks tokens against a :class:`KeySet`. Re-create it when keys.json changes."""

    def __init__(self, keys: KeySet):
        self.keys = keys

    def verify(
        self,
        token: str,
        route: str,
        right: str | None = None,
        now: dt.datetime | None = None,
    ) -> Claims:
        """Signature, key id, expiry, route and (if given) right; raises :class:`TokenError`."""
        now = now or dt.datetime.now(tz=dt.timezone.utc)
        biscuit = self._parse(token.strip())
        authorizer = _authorize(biscuit, route, right, now)
        claims = _read_claims(authorizer)
        if biscuit.block_count() > 1:
            # Attenuation can forbid a right without removing its fact: keep those that pass.
            kept = []
            for granted in claims.rights:
                try:
                    _authorize(biscuit, route, granted, now)
                    kept.append(granted)
                except TokenError:
                    pass
            claims = Claims(**{**claims.__dict__, "rights": kept})
        return claims

    def attenuate(self, token: str, right: str) -> str:
        """A copy of ``token`` that can only be used for ``right``: what a service does before
        passing the token on to another. Checks the signature first (biscuit-python appends
        only to a verified token); needs no private key, and the result verifies with the same
        public keys."""
        block = BlockBuilder("check if operation({right});", {"right": right})
        return self._parse(token.strip()).append(block).to_base64()

    def _parse(self, token: str) -> Biscuit:
        try:
            kid = UnverifiedBiscuit.from_base64(token).root_key_id()
        except Exception as err:  # biscuit-python raises several types for bad input
            raise TokenError("malformed", f"not a capability token ({err})") from None
        if kid is None or kid not in self.keys.keys:
            raise TokenError("unknown_key", f"key {kid} is not among the gateway's published keys")
        try:
            return Biscuit.from_base64(token, self.keys.keys[kid])
        except Exception:
            raise TokenError("bad_signature", "the signature does not verify") from None


def _authorize(biscuit: Biscuit, route: str, right: str | None, now: dt.datetime):
    # Check order matters: authorizer check 0 is the route, 1 the right (as in Rust).
    source = "time({now}); allow if user($u); check if route({route});"
    params: dict = {"now": now, "route": route}
    if right is not None:
        source += " operation({right}); check if route($r), right($r, {right});"
        params["right"] = right
    builder = AuthorizerBuilder(source, params)
    limits = builder.limits()
    limits.max_facts = MAX_FACTS
    limits.max_iterations = MAX_ITERATIONS
    limits.max_time = MAX_TIME
    builder.set_limits(limits)
    try:
        authorizer = builder.build(biscuit)
        authorizer.authorize()
    except AuthorizationError as err:
        raise _classify(str(err), route, right) from None
    except Exception as err:
        if "limit" in str(err).lower():
            raise TokenError("limits", str(err)) from None
        raise TokenError("malformed", str(err)) from None
    return authorizer


def _classify(message: str, route: str, right: str | None) -> TokenError:
    if "limit" in message.lower() and "Check n°" not in message:
        return TokenError("limits", message)
    found = []
    for check_id, where, block_id, rule in _FAILED_CHECK.findall(message):
        if where == "authorizer":
            if check_id == "0":
                found.append((1, TokenError("wrong_route", f"the token was minted for another route, not {route!r}")))
            else:
                found.append((2, TokenError("missing_right", f"the token does not grant {right!r}")))
        elif block_id == "0":
            found.append((0, TokenError("expired", "the token has expired")))
        else:
            found.append((3, TokenError("attenuated", f"a check added by attenuation (block {block_id}) failed: {rule}")))
    if not found:
        return TokenError("malformed", message)
    return min(found, key=lambda pair: pair[0])[1]


def _read_claims(authorizer) -> Claims:
    def values(rule: str, params: dict | None = None) -> list:
        facts = authorizer.query(Rule(rule, params) if params else Rule(rule))
        return sorted(fact.terms[0] for fact in facts)

    def one(name: str):
        found = values(f"v($v) <- {name}($v)")
        if len(found) != 1:
            raise TokenError("malformed", f"the token needs exactly one {name} fact")
        return found[0]

    def optional(name: str) -> str | None:
        found = values(f"v($v) <- {name}($v)")
        return found[0] if found else None

    route = one("route")
    return Claims(
        sub=one("user"),
        email=optional("email"),
        domain=optional("domain"),
        groups=values("v($v) <- group($v)"),
        provider=one("provider"),
        route=route,
        rights=values("v($g) <- right({route}, $g)", {"route": route}),
        issued_at=one("issued_at"),
        expires=one("expires"),
    )


def from_headers(headers: dict, verifier: Verifier, route: str, right: str | None = None,
                 header: str = HEADER) -> Claims:
    """Looks the token up case-insensitively in a header mapping (``pn.state.headers``,
    a Starlette ``request.headers``…) and verifies it."""
    wanted = header.lower()
    token = next((v for k, v in headers.items() if k.lower() == wanted), None)
    if not token:
        raise TokenError("malformed", f"no {header} header: is the app reached through the gateway?")
    return verifier.verify(token, route, right)

