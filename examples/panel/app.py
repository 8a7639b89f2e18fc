"""A Panel dashboard behind portcullis that trusts only its verified capability token.

    PORTCULLIS_KEYS=http://127.0.0.1:8080/.well-known/portcullis/keys.json \\
    panel serve app.py admin.py --prefix panel --address 127.0.0.1 --port 5006 \\
        --allow-websocket-origin 127.0.0.1:8080

The gateway logs the user in, decides the request against its policies, and sends the
session's first HTTP request with an ``X-Auth-Capability`` header: a Biscuit token signed by
the gateway. Panel keeps that request's headers in ``pn.state.headers``; this app verifies the
token offline with the gateway's published public keys (``PORTCULLIS_KEYS``: the keys.json URL
or a file holding it) and shows who is signed in, their groups and their rights. A missing,
tampered, expired or foreign token renders an "Access refused" page and nothing else.

Environment:

- ``PORTCULLIS_KEYS``   keys.json URL or file (default: the gateway on 127.0.0.1:8080)
- ``PORTCULLIS_ROUTE``  the policy route this app is served as (default ``panel``)

``admin.py`` builds its page with :func:`page` for another route and right.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable

import panel as pn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from portcullis_token import Claims, KeySet, TokenError, Verifier, from_headers  # noqa: E402

KEYS = os.environ.get("PORTCULLIS_KEYS", "http://127.0.0.1:8080/.well-known/portcullis/keys.json")
ROUTE = os.environ.get("PORTCULLIS_ROUTE", "panel")
# Refetch keys.json at least this often (seconds), and at once on an unknown key id: the
# gateway publishes a new key before it signs with it.
KEYS_MAX_AGE = 300.0
# ... but not more often than this on unknown key ids (a forged kid must not hammer the gateway).
KEYS_MIN_AGE = 10.0


def _load_keys() -> KeySet:
    if KEYS.startswith(("http://", "https://")):
        return KeySet.from_url(KEYS, timeout=5.0)
    return KeySet.from_file(KEYS)


def verifier(refresh: bool = False) -> Verifier:
    """The verifier for the gateway's current keys, shared by all sessions of this process
    (``pn.state.cache``: Panel runs this script anew for every session)."""
    cached = pn.state.cache.get("portcullis_verifier")
    age = time.monotonic() - cached[0] if cached else None
    if age is None or age > KEYS_MAX_AGE or (refresh and age > KEYS_MIN_AGE):
        cached = (time.monotonic(), Verifier(_load_keys()))
        pn.state.cache["portcullis_verifier"] = cached
    return cached[1]


def identify(headers: dict, route: str, right: str | None) -> Claims:
    """Verifies the request's capability token; raises :class:`TokenError` when refused.

    Fails closed: keys that cannot be fetched refuse the token too."""
    try:
        current = verifier()
    except Exception as err:  # network, JSON, empty key set
        raise TokenError("unknown_key", f"the gateway's keys could not be loaded ({err})") from None
    try:
        return from_headers(headers, current, route=route, right=right)
    except TokenError as err:
        if err.reason != "unknown_key":
            raise
        # A key rotation: fetch keys.json again once, then decide.
        return from_headers(headers, verifier(refresh=True), route=route, right=right)


def refused(err: TokenError) -> pn.viewable.Viewable:
    return pn.Column(
        pn.pane.Markdown("# Access refused", css_classes=["portcullis-refused"]),
        pn.pane.Alert(
            f"The capability token was refused ({err.reason}). Open this app through the "
            "gateway; if you did, sign in again.",
            alert_type="danger",
        ),
        pn.pane.Markdown(f"`{err}`"),
    )


def identity_card(claims: Claims) -> pn.viewable.Viewable:
    who = claims.email or claims.sub
    rows = [
        ("user", claims.sub),
        ("email", claims.email or "-"),
        ("verified domain", claims.domain or "-"),
        ("groups", ", ".join(claims.groups) or "-"),
        ("rights", ", ".join(claims.rights) or "-"),
        ("signed in with", claims.provider),
        ("route", claims.route),
        ("token expires", claims.expires.isoformat()),
    ]
    table = "\n".join(f"| {key} | {value} |" for key, value in rows)
    return pn.pane.Markdown(
        f"## Signed in as {who}\n\n| claim | value |\n|---|---|\n{table}\n",
        css_classes=["portcullis-identity"],
    )


def round_trips() -> pn.viewable.Viewable:
    """A button whose Python callback answers over the Bokeh WebSocket."""
    count = [0]
    label = pn.pane.Markdown("Server round trips: 0", css_classes=["portcullis-roundtrips"])
    button = pn.widgets.Button(name="Ping the server", button_type="primary")

    def ping(_event) -> None:
        count[0] += 1
        label.object = f"Server round trips: {count[0]}"

    button.on_click(ping)
    return pn.Row(button, label)


def page(
    title: str,
    route: str,
    right: str | None,
    body: Callable[[Claims], pn.viewable.Viewable] | None = None,
) -> pn.viewable.Viewable:
    """The page for one session: the identity from the verified token, or a refusal."""
    try:
        claims = identify(pn.state.headers, route, right)
    except TokenError as err:
        return pn.Column(pn.pane.Markdown(f"# {title}"), refused(err))
    parts = [pn.pane.Markdown(f"# {title}"), identity_card(claims), round_trips()]
    if body is not None:
        parts.append(body(claims))
    return pn.Column(*parts)


# The gateway closes the socket (code 1008) when a policy change takes this user's access
# away; say so instead of leaving a page that silently stopped updating.
pn.extension(
    notifications=True,
    disconnect_notification="Disconnected: your access changed or the session ended. Reload the page.",
)

if __name__.startswith("bokeh_app") or __name__ == "__main__":
    page("Sales dashboard", ROUTE, "read").servable(title="Sales dashboard")
