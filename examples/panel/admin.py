"""The admin page of the Panel example: the same token check as app.py, for the
``panel-admin`` route and the ``admin`` right (policy: the ``admins`` group only).

The gateway already refuses everyone else with its 403 page; the app checks the right anyway,
so a request that reaches it some other way is refused too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import panel as pn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app import page  # noqa: E402
from portcullis_token import Claims  # noqa: E402

ROUTE = os.environ.get("PORTCULLIS_ADMIN_ROUTE", "panel-admin")


def console(claims: Claims) -> pn.viewable.Viewable:
    return pn.pane.Markdown(
        f"### Admin console\n\n{claims.sub} may: {', '.join(claims.rights)}",
        css_classes=["portcullis-admin"],
    )


if __name__.startswith("bokeh_app") or __name__ == "__main__":
    page("Admin", ROUTE, "admin", console).servable(title="Admin")
