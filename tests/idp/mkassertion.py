#!/usr/bin/python3
"""Make the signed JWT assertions the token endpoints take, for tests and by hand.

Microsoft client assertion (certificate credential):
  mkassertion.py ms --cert CRT --key KEY --client-id ID --aud TOKEN_URL [--alg RS256|PS256]
Google service account assertion (domain-wide delegation):
  mkassertion.py google --key-file google-sa.json --sub MAILBOX [--aud URL] [--scope S]

RS256 carries x5t (base64url SHA-1 of the certificate's DER), PS256 x5t#S256
(SHA-256), as Microsoft documents; the Google header carries kid =
private_key_id. Claims as the providers ask: Microsoft iss = sub = client id,
aud, jti (fresh GUID), nbf, iat, exp; Google iss = client_email, sub, scope,
aud (default: token_uri of the key file), iat, exp. Knobs to make bad ones:
--lifetime S (exp = iat + S), --offset S (shift iat/nbf/exp), --jti X, --iss X.
Prints the JWT on stdout (it is a credential: do not log it)."""
import argparse
import base64
import hashlib
import json
import sys
import time
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="kind", required=True)
    ms = sub.add_parser("ms")
    ms.add_argument("--cert", required=True)
    ms.add_argument("--key", required=True)
    ms.add_argument("--client-id", required=True)
    ms.add_argument("--aud", required=True, help="the token endpoint URL, exactly as posted to")
    ms.add_argument("--alg", choices=["RS256", "PS256"], default="RS256")
    ms.add_argument("--lifetime", type=int, default=600)
    ms.add_argument("--offset", type=int, default=0)
    ms.add_argument("--jti")
    ms.add_argument("--iss")
    g = sub.add_parser("google")
    g.add_argument("--key-file", required=True)
    g.add_argument("--sub", required=True)
    g.add_argument("--aud")
    g.add_argument("--scope", default="https://mail.google.com/")
    g.add_argument("--lifetime", type=int, default=3600)
    g.add_argument("--offset", type=int, default=0)
    g.add_argument("--iss")
    a = ap.parse_args()
    now = int(time.time()) + a.offset
    if a.kind == "ms":
        pem = open(a.cert, "rb").read()
        der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
        key = serialization.load_pem_private_key(open(a.key, "rb").read(), None)
        header = {"typ": "JWT"}
        if a.alg == "RS256":
            header["x5t"] = b64url(hashlib.sha1(der).digest())
        else:
            header["x5t#S256"] = b64url(hashlib.sha256(der).digest())
        claims = {"aud": a.aud, "iss": a.iss or a.client_id, "sub": a.client_id, "jti": a.jti or str(uuid.uuid4()),
                  "nbf": now, "iat": now, "exp": now + a.lifetime}
        print(jwt.encode(claims, key, algorithm=a.alg, headers=header))
    else:
        sa = json.load(open(a.key_file))
        key = serialization.load_pem_private_key(sa["private_key"].encode(), None)
        claims = {"iss": a.iss or sa["client_email"], "sub": a.sub, "scope": a.scope,
                  "aud": a.aud or sa["token_uri"], "iat": now, "exp": now + a.lifetime}
        print(jwt.encode(claims, key, algorithm="RS256", headers={"kid": sa["private_key_id"], "typ": "JWT"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
