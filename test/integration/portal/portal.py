#!/usr/bin/env python3
"""portal.py - plays the portal (an Onlinedienst) and the citizen against the
FIT-Connect stand-in with FITKO's own Python SDK, fitconnect 0.4.2.

The SDK only knows FITKO's DEV and TESTING environments; the driver points
TESTING at the stand-in by replacing fitconnect.fitconnect._ENVIRONMENT_CONFIG
(the SDK's own table of URLs) with the URLs from the stand-in's standin.json.

Subcommands (each prints one JSON object on stdout):
  submit    the SDK sends a submission (fitc.submission, or for several
            attachments the SDK's create/upload/submit steps with distinct
            attachment ids), optionally naming a citizen's reply key in the
            metadata's replyChannel.fitConnect; --tamper hash|wrong-key makes
            a submission the destination must reject
  retrieve  the SDK's retrieve_submission as the destination (decrypts and
            checks the hashes itself)
  replies   the citizen: lists the replies (GET /v1/replies), fetches and
            decrypts each with jwcrypto, checks the hashes its metadata
            states, and confirms it with a signed accept-reply SET
"""

import argparse
import base64
import hashlib
import json
import sys
import time
import uuid

import requests
from jwcrypto import jwe, jwk, jws
from jwcrypto.common import json_encode

import fitconnect
from fitconnect import fitconnect as fc

SERVICE = "urn:de:fim:leika:leistung:99123456760610"
DATA_SCHEMA = "https://schema.fitko.de/fim/s00000000009_1.0.0.schema.json"
METADATA_SCHEMA = "https://schema.fitko.de/fit-connect/metadata/1.0.0/metadata.schema.json"
SET_SCHEMA = "https://schema.fitko.de/fit-connect/set-payload/1.0.0/set-payload.schema.json"
ACCEPT_REPLY = "https://schema.fitko.de/fit-connect/events/accept-reply"


def load_setup(path):
    with open(path) as f:
        setup = json.load(f)
    # The SDK reads its URLs from this table when the client is made.
    fc._ENVIRONMENT_CONFIG[fitconnect.Environment.TESTING] = {
        "TOKEN_URL": setup["tokenUrl"],
        "SUBMISSION_API_URL": setup["submissionApi"],
    }
    return setup


def client(party):
    return fitconnect.FITConnectClient(fitconnect.Environment.TESTING, party["clientId"], party["clientSecret"])


def sha512(b):
    return hashlib.sha512(b).hexdigest()


def application(n):
    return {"$schema": DATA_SCHEMA, "antragsteller": {"vorname": "Erika", "familienname": "Mustermann"}, "nummer": n}


def attachment_bytes(i):
    # Small PDFs in form (the metadata says application/pdf).
    return b"%PDF-1.4\n% Anlage " + str(i).encode() + b" zum Antrag\n" + bytes(range(256)) + b"\n%%EOF\n"


def cmd_submit(args, setup):
    dest = setup["destinations"][args.destination]
    fitc = client(setup["sender"])
    data = application(args.number)
    attachments = [attachment_bytes(i) for i in range(args.attachments)]
    metadata = {"$schema": METADATA_SCHEMA, "contentStructure": {"attachments": []}}
    out = {}
    if args.reply_key:
        # The citizen's key pair: the public half goes into the metadata
        # (replyChannel.fitConnect, the Rückkanal), the private half to a file
        # for cmd_replies.
        key = jwk.JWK.generate(kty="RSA", size=4096, kid=str(uuid.uuid4()), alg="RSA-OAEP-256")
        pub = json.loads(key.export_public())
        pub["key_ops"] = ["wrapKey"]
        pub["alg"] = "RSA-OAEP-256"
        metadata["replyChannel"] = {"fitConnect": {"processStandards": [DATA_SCHEMA], "encryptionPublicKey": pub}}
        with open(args.reply_key, "w") as f:
            f.write(key.export_private())
        out["replyKid"] = pub["kid"]

    if args.tamper == "hash":
        # The metadata states a hash of other data: the SDK keeps a given hash.
        metadata["contentStructure"]["data"] = {
            "hash": {"type": "sha512", "content": sha512(b"not the data")},
            "submissionSchema": {"schemaUri": DATA_SCHEMA, "mimeType": "application/json"},
        }

    if args.tamper == "wrong-key" or len(attachments) > 1:
        # The SDK's own steps. Its all-in-one submission() announces one id
        # n times for n attachments ([uuid4()] * n), so several attachments
        # go through create/upload/submit with distinct ids.
        ids = [str(uuid.uuid4()) for _ in attachments]
        r = fitc._authorized_post("/submissions", json={
            "destinationId": dest["destinationId"], "announcedAttachments": ids,
            "serviceType": {"name": "Testleistung", "identifier": SERVICE}})
        if r.status_code != 201:
            raise SystemExit(f"create submission: {r.status_code} {r.text}")
        sub = r.json()
        for aid, a in zip(ids, attachments):
            fitc.upload_attachment(dest["destinationId"], sub["submissionId"], aid, attachment=a)
            metadata["contentStructure"]["attachments"].append({
                "attachmentId": aid, "hash": {"type": "sha512", "content": sha512(a)},
                "mimeType": "application/pdf", "purpose": "attachment", "filename": f"anlage-{aid[:8]}.pdf"})
        data_bytes = json.dumps(data).encode()
        metadata["contentStructure"]["data"] = {
            "hash": {"type": "sha512", "content": sha512(data_bytes)},
            "submissionSchema": {"schemaUri": DATA_SCHEMA, "mimeType": "application/json"}}
        metadata["additionalReferenceInfo"] = {"submissionDate": time.strftime("%Y-%m-%d")}
        data_encrypted = None
        if args.tamper == "wrong-key":
            # Encrypted to a key that is not the destination's.
            other = jwk.JWK.generate(kty="RSA", size=4096)
            data_encrypted = jwe.JWE(plaintext=data_bytes, protected={
                "alg": "RSA-OAEP-256", "enc": "A256GCM", "zip": "DEF", "cty": "application/json",
                "kid": other.thumbprint()}, recipient=other).serialize(compact=True)
            resp = fitc.submit_submission(dest["destinationId"], sub["submissionId"], metadata=metadata, data_encrypted=data_encrypted)
        else:
            resp = fitc.submit_submission(dest["destinationId"], sub["submissionId"], metadata=metadata, data=data)
        out.update(submissionId=sub["submissionId"], caseId=sub["caseId"], attachments=ids)
    else:
        resp = fitc.submission(dest["destinationId"], SERVICE, metadata=metadata, data=data, attachments=attachments)
        out.update(submissionId=resp["submissionId"], caseId=resp["caseId"],
                   attachments=[a["attachmentId"] for a in metadata["contentStructure"]["attachments"]])
    out["destinationId"] = dest["destinationId"]
    out["dataSha512"] = sha512(json.dumps(data).encode())
    out["attachmentSha512"] = [sha512(a) for a in attachments]
    out["response"] = resp
    print(json.dumps(out))


def cmd_retrieve(args, setup):
    dest = setup["destinations"][args.destination]
    fitc = client(dest["subscriber"])
    sub = fitc.retrieve_submission(args.submission, dest["decryptionKey"])
    print(json.dumps({
        "submissionId": sub["submissionId"], "caseId": sub["caseId"], "metadata": sub["metadata"],
        "data": sub["data_json"],
        "attachments": {k: sha512(v) for k, v in sub["attachments"].items()},
    }))


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def get_ok(fitc, path):
    r = fitc._authorized_get(path)
    if r.status_code != 200:
        raise SystemExit(f"GET {path}: {r.status_code} {r.text}")
    return r


def cmd_replies(args, setup):
    with open(args.key) as f:
        key = jwk.JWK.from_json(f.read())
    sender = setup["sender"]
    fitc = client(sender)
    listing = get_ok(fitc, "/replies").json()
    out = []
    for item in listing["replies"]:
        rp = get_ok(fitc, f"/replies/{item['replyId']}").json()
        metadata = json.loads(fitc.decrypt(key, rp["encryptedMetadata"]))
        data = fitc.decrypt(key, rp["encryptedData"]) if rp.get("encryptedData") else b""
        want = metadata.get("contentStructure", {}).get("data", {}).get("hash", {}).get("content")
        if want is not None and want != sha512(data):
            raise SystemExit(f"reply {rp['replyId']}: data hash mismatch")
        atts = {}
        for aid in rp["attachments"]:
            jwe_text = get_ok(fitc, f"/replies/{rp['replyId']}/attachments/{aid}").text
            plain = fitc.decrypt(key, jwe_text)
            entry = [a for a in metadata["contentStructure"].get("attachments", []) if a["attachmentId"] == aid]
            if len(entry) != 1 or entry[0]["hash"]["content"] != sha512(plain):
                raise SystemExit(f"reply {rp['replyId']}: attachment {aid} hash mismatch")
            atts[aid] = {"sha512": sha512(plain), "text": plain.decode("utf-8", "replace"), "tag": jwe_text.split(".")[4]}
        tags = {"metadata": rp["encryptedMetadata"].split(".")[4],
                "attachments": {aid: a["tag"] for aid, a in atts.items()}}
        if rp.get("encryptedData"):
            tags["data"] = rp["encryptedData"].split(".")[4]
        # accept-reply, signed PS512 with the sender's key (a SET, RFC 8417).
        sk = jwk.JWK(**sender["signingKey"])
        claims = {"$schema": SET_SCHEMA, "jti": str(uuid.uuid4()), "iss": sender["clientId"], "iat": int(time.time()),
                  "sub": "reply:" + rp["replyId"], "txn": "case:" + rp["caseId"],
                  "events": {ACCEPT_REPLY: {"authenticationTags": tags}}}
        tok = jws.JWS(json.dumps(claims).encode())
        tok.add_signature(sk, alg="PS512", protected=json_encode({"alg": "PS512", "typ": "secevent+jwt", "kid": sk["kid"]}))
        # The SDK's _authorized_post sets no content type; post directly.
        fitc._refresh_access_token()
        r = requests.post(fitc.submission_api_url + f"/cases/{rp['caseId']}/events",
                          headers={"Authorization": "Bearer " + fitc.access_token, "Content-Type": "application/jose"},
                          data=tok.serialize(compact=True))
        if r.status_code != 204:
            raise SystemExit(f"accept-reply: {r.status_code} {r.text}")
        out.append({"replyId": rp["replyId"], "submissionId": rp["submissionId"], "caseId": rp["caseId"],
                    "metadata": metadata, "data": data.decode("utf-8", "replace"), "attachments": atts})
    print(json.dumps({"replies": out}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--setup", required=True, help="the stand-in's standin.json")
    p.add_argument("--destination", type=int, default=0)
    sp = p.add_subparsers(dest="cmd", required=True)
    s = sp.add_parser("submit")
    s.add_argument("--attachments", type=int, default=1)
    s.add_argument("--number", type=int, default=1)
    s.add_argument("--reply-key", help="write the citizen's private reply key here and name it in the metadata")
    s.add_argument("--tamper", choices=["hash", "wrong-key"])
    r = sp.add_parser("retrieve")
    r.add_argument("--submission", required=True)
    rp = sp.add_parser("replies")
    rp.add_argument("--key", required=True)
    args = p.parse_args()
    setup = load_setup(args.setup)
    {"submit": cmd_submit, "retrieve": cmd_retrieve, "replies": cmd_replies}[args.cmd](args, setup)


if __name__ == "__main__":
    sys.exit(main())
