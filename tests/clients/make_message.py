#!/usr/bin/python3
"""Writes a test message with CRLF line endings.
usage: make_message.py FILE FROM TO SUBJECT [SIZE_BYTES]
The body holds lines starting with '.', 8-bit text, long lines near 998 octets,
and padding up to SIZE_BYTES, so that dot-stuffing and streaming are exercised."""
import email.utils
import os
import sys

path, sender, to, subject = sys.argv[1:5]
size = int(sys.argv[5]) if len(sys.argv) > 5 else 0
date = email.utils.formatdate()
head = (f"Date: {date}\r\nFrom: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{os.urandom(8).hex()}@legacy-client.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
body = ("Invoice attached.\r\n.leading dot line\r\n..two dots\r\n.\r\nnot the end: a lone dot above\r\n"
        "Gr\u00fc\u00dfe aus K\u00f6ln\r\n" + "x" * 990 + "\r\n")
with open(path, "wb") as f:
    f.write(head.encode())
    f.write(body.encode())
    written = len(head.encode()) + len(body.encode())
    line = (b"0123456789" * 7 + b"\r\n")
    while written < size:
        f.write(line)
        written += len(line)
    f.write(b"-- \r\nend of message\r\n")
