#!/usr/bin/env python3
"""Verify a portcullis capability token offline, as the Panel app behind the gateway does.

    verify_token.py --keys keys.json --route panel [--right read] TOKEN
    verify_token.py --keys https://gw.example.com/.well-known/portcullis/keys.json --route panel TOKEN
    verify_token.py --keys keys.json --route panel --attenuate-to read --right write TOKEN

Prints the user, groups and rights and exits 0 when the token is accepted; prints the reason
and exits 1 when it is refused (tampered, expired, another route, a missing right...).
``--attenuate-to RIGHT`` first narrows the token to one right, as a service would before
passing it on, and prints the narrowed token.

In a Panel app the same check is two lines (see portcullis_token.py)::

    claims = from_headers(pn.state.headers, verifier, route="panel", right="read")
    pn.pane.Markdown(f"Hello {claims.email}, groups: {', '.join(claims.groups)}")
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from portcullis_token import KeySet, TokenError, Verifier  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", required=True, help="keys.json file or http(s) URL")
    parser.add_argument("--route", required=True, help="route this app is served as")
    parser.add_argument("--right", help="right the request needs, e.g. read")
    parser.add_argument("--attenuate-to", metavar="RIGHT", help="narrow the token to one right first")
    parser.add_argument("token", help="the X-Auth-Capability header value ('-' reads stdin)")
    args = parser.parse_args(argv)

    token = sys.stdin.read().strip() if args.token == "-" else args.token
    if args.keys.startswith(("http://", "https://")):
        keys = KeySet.from_url(args.keys)
    else:
        keys = KeySet.from_file(args.keys)
    verifier = Verifier(keys)
    try:
        if args.attenuate_to:
            token = verifier.attenuate(token, args.attenuate_to)
            print(f"attenuated to {args.attenuate_to!r}: {token}")
        claims = verifier.verify(token, route=args.route, right=args.right)
    except TokenError as err:
        print(f"refused: {err}")
        return 1
    print("accepted")
    print(f"user: {claims.sub}")
    print(f"email: {claims.email or '-'}")
    print(f"domain: {claims.domain or '-'}")
    print(f"groups: {', '.join(claims.groups)}")
    print(f"provider: {claims.provider}")
    print(f"route: {claims.route}")
    print(f"rights: {', '.join(claims.rights)}")
    print(f"expires: {claims.expires.isoformat()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
