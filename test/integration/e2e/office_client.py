#!/usr/bin/env python3
"""A real mail client for the end-to-end test: Python's imaplib and smtplib
against the gateway's office IMAP server and SMTP submission endpoint.

  office_client.py list   HOST PORT USER PASSWORD CAFILE          -> JSON list of the INBOX
  office_client.py read   HOST PORT USER PASSWORD CAFILE UID      -> JSON flags after reading
  office_client.py submit HOST PORT USER PASSWORD IN_REPLY_TO SUBJECT BODY
"""
import email
import email.message
import hashlib
import imaplib
import json
import re
import smtplib
import ssl
import sys


def connect(host, port, user, password, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    c = imaplib.IMAP4(host, int(port))
    c.starttls(ssl_context=ctx)
    c.login(user, password)
    return c


def fetch_meta(part):
    head = part.decode("ascii", "replace")
    uid = int(re.search(r"UID (\d+)", head).group(1))
    flags = re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()
    size = re.search(r"RFC822\.SIZE (\d+)", head)
    return uid, flags, int(size.group(1)) if size else None


def list_inbox(c):
    typ, data = c.select("INBOX", readonly=True)
    assert typ == "OK", data
    typ, data = c.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK", data
    out = []
    for item in data:
        if not isinstance(item, tuple):
            continue
        uid, flags, size = fetch_meta(item[0])
        body = item[1]
        msg = email.message_from_bytes(body)
        parts = [p.get_content_type() for p in msg.walk()]
        original = None
        for p in msg.walk():
            if p.get_content_type() == "message/rfc822":
                original = p.get_payload()[0]
        report = ""
        for p in msg.walk():
            if p.get_filename() == "pruefprotokoll.html":
                report = p.get_payload(decode=True).decode("utf-8")
        out.append({
            "uid": uid, "flags": flags, "size": size, "bodyLen": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "messageId": msg["Message-ID"], "subject": msg["Subject"], "from": msg["From"],
            "parts": parts,
            "originalMessageId": original["Message-ID"] if original else None,
            "report": report,
        })
    return out


def main():
    mode = sys.argv[1]
    if mode == "list":
        c = connect(*sys.argv[2:7])
        print(json.dumps(list_inbox(c)))
        c.logout()
    elif mode == "read":
        c = connect(*sys.argv[2:7])
        typ, data = c.select("INBOX")
        assert typ == "OK", data
        typ, data = c.uid("FETCH", sys.argv[7], "(BODY[])")
        assert typ == "OK", data
        typ, data = c.uid("FETCH", sys.argv[7], "(UID FLAGS)")
        uid, flags, _ = fetch_meta(data[0] if isinstance(data[0], bytes) else data[0][0])
        print(json.dumps({"uid": uid, "flags": flags}))
        c.logout()
    elif mode == "submit":
        host, port, user, password, in_reply_to, subject, body = sys.argv[2:9]
        m = email.message.EmailMessage()
        m["From"] = user + "@stadt.test"
        m["To"] = "whoever@example.invalid"
        m["Subject"] = subject
        m["In-Reply-To"] = in_reply_to
        m["References"] = in_reply_to
        m.set_content(body)
        with smtplib.SMTP(host, int(port)) as s:
            s.login(user, password)
            s.send_message(m)
        print(json.dumps({"sent": True}))
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
