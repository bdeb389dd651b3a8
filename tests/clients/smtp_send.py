#!/usr/bin/python3
"""Legacy-client stand-in built on Python's smtplib: sends one message file.
usage: smtp_send.py HOST PORT LOGIN PASSWORD|- FROM TO[,TO...] FILE [--mech PLAIN|LOGIN] [--starttls]
Prints the server's reply to the end of data as 'RESULT <code> <text>' (or the
refusal at the step it happened), exits 0 only when the message was accepted.
The password is read from the environment XO_PASSWORD when given as '-'."""
import os
import smtplib
import sys


def main():
    a = sys.argv[1:]
    host, port, login, password, sender, rcpts, path = a[:7]
    mech = "PLAIN"
    if "--mech" in a:
        mech = a[a.index("--mech") + 1]
    if password == "-" and login != "-":
        password = os.environ["XO_PASSWORD"]
    data = open(path, "rb").read()
    s = smtplib.SMTP(host, int(port), timeout=120)
    try:
        s.ehlo("legacy-client.test")
        if "--starttls" in a:
            s.starttls()
            s.ehlo("legacy-client.test")
        if login != "-":
            s.user, s.password = login, password
            auth = s.auth_plain if mech == "PLAIN" else s.auth_login
            code, msg = s.auth(mech, auth, initial_response_ok=True)
            print("AUTH", code, msg.decode(errors="replace"))
        code, msg = s.mail(sender)
        if code != 250:
            print("RESULT", code, msg.decode(errors="replace"))
            return 1
        for r in rcpts.split(","):
            code, msg = s.rcpt(r)
            if code not in (250, 251):
                print("RESULT", code, msg.decode(errors="replace"))
                return 1
        code, msg = s.data(data)
        print("RESULT", code, msg.decode(errors="replace"))
        s.quit()
        return 0 if code == 250 else 1
    except smtplib.SMTPResponseException as e:
        print("RESULT", e.smtp_code, e.smtp_error.decode(errors="replace"))
        return 1
    except (smtplib.SMTPException, OSError) as e:
        print("RESULT", 0, repr(e))
        return 1


sys.exit(main())
