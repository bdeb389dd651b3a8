#!/usr/bin/python3
"""Checks that a delivered maildir file holds the sent message byte for byte:
the servers may only prepend trace headers (Return-Path, Delivered-To,
Received). Maildir stores LF line ends, so both sides are compared with CRLF
turned into LF. usage: compare_delivered.py SENT DELIVERED"""
import sys

sent = open(sys.argv[1], "rb").read().replace(b"\r\n", b"\n")
got = open(sys.argv[2], "rb").read().replace(b"\r\n", b"\n")
if not got.endswith(sent):
    print(f"delivered message differs: sent {len(sent)} bytes, delivered {len(got)} bytes")
    sys.exit(1)
prefix = got[: len(got) - len(sent)]
for line in prefix.decode(errors="replace").split("\n"):
    if line and not line[0].isspace() and not line.split(":")[0] in ("Return-Path", "Delivered-To", "Received"):
        print("unexpected header added:", line[:80])
        sys.exit(1)
print(f"identical: {len(sent)} bytes after {len(prefix)} bytes of trace headers")
