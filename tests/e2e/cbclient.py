#!/usr/bin/python3
"""A Negotiate client over TLS that sends channel bindings (RFC 5929 tls-server-end-point)
with its Kerberos or NTLM token, as Chromium and Windows do with Extended Protection.

  cbclient.py ADDRESS PORT [--name NAME] [--no-bindings | --bind-to-cert FILE]
              [--mech spnego|krb5|ntlm] [--user DOMAIN\\USER] [--plain] [--path PATH]
              [--post FILE]

Connects to ADDRESS:PORT with TLS (the certificate is not verified), or without it
(--plain: no bindings then), builds an initiator token for HTTP@NAME bound to the
server's certificate (or to FILE's, or to nothing), sends GET PATH with it (or POST, with
FILE's bytes as a chunked body on every leg) and prints the final response's status line
and body. --mech ntlm is gss-ntlmssp's NTLM under the NTLM
scheme (USER's password from NTLM_USER_FILE): NEGOTIATE, then the CHALLENGE from a 401,
then AUTHENTICATE, all on one keep-alive connection; each 401 that carries a token is
said on stderr ("leg: 401 NTLM <token>"). Exits 0 when it got a response, 1 when it
could not ask (connection, TLS or GSS-API failure, or the connection changed between
legs).
"""
import argparse
import base64
import hashlib
import http.client
import ssl
import sys

import gssapi

# Signature algorithm OIDs and the hash each uses (RFC 5929 section 4.1: MD5 and SHA-1
# become SHA-256; any other hash is used as it is).
SIG_HASHES = {
    "1.2.840.113549.1.1.4": "sha256",  # md5WithRSAEncryption
    "1.2.840.113549.1.1.5": "sha256",  # sha1WithRSAEncryption
    "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384",
    "1.2.840.113549.1.1.13": "sha512",
    "1.2.840.113549.1.1.14": "sha224",
    "1.2.840.10045.4.1": "sha256",  # ecdsa-with-SHA1
    "1.2.840.10045.4.3.1": "sha224",
    "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384",
    "1.2.840.10045.4.3.4": "sha512",
    "1.2.840.10040.4.3": "sha256",  # dsa-with-sha1
    "2.16.840.1.101.3.4.3.1": "sha224",
    "2.16.840.1.101.3.4.3.2": "sha256",
}


def der_item(data, at):
    """The tag, the start of the contents and the end of the DER item at data[at]."""
    tag, n = data[at], data[at + 1]
    at += 2
    if n & 0x80:
        count = n & 0x7F
        n = int.from_bytes(data[at:at + count], "big")
        at += count
    return tag, at, at + n


def oid_text(body):
    first = body[0]
    parts = [str(min(first // 40, 2)), str(first - 40 * min(first // 40, 2))]
    value = 0
    for b in body[1:]:
        value = value << 7 | (b & 0x7F)
        if not b & 0x80:
            parts.append(str(value))
            value = 0
    return ".".join(parts)


def signature_oid(cert):
    """Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }."""
    _, body, _ = der_item(cert, 0)
    _, _, tbs_end = der_item(cert, body)
    _, alg, _ = der_item(cert, tbs_end)
    tag, oid, oid_end = der_item(cert, alg)
    if tag != 0x06:
        raise ValueError("the certificate's signature algorithm is not an OID")
    return oid_text(cert[oid:oid_end])


def end_point_binding(cert):
    oid = signature_oid(cert)
    digest = hashlib.new(SIG_HASHES.get(oid, "sha256"), cert).digest()
    return b"tls-server-end-point:" + digest


NTLM_OID = "1.3.6.1.4.1.311.2.2.10"
SPNEGO_OID = "1.3.6.1.5.5.2"


def main():
    p = argparse.ArgumentParser(description="Negotiate over TLS with channel bindings")
    p.add_argument("address")
    p.add_argument("port", type=int)
    p.add_argument("--name", default="outlook.proseware.lab",
                   help="the host name of the SPN, SNI and Host header")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--no-bindings", action="store_true", help="send no channel bindings")
    g.add_argument("--bind-to-cert", metavar="FILE",
                   help="bind to this PEM certificate instead of the server's")
    p.add_argument("--mech", choices=("spnego", "krb5", "ntlm"), default="spnego")
    p.add_argument("--user", help="NTLM: DOMAIN\\USER (default: NTLM_USER_FILE's first)")
    p.add_argument("--plain", action="store_true", help="HTTP, not HTTPS (no bindings)")
    p.add_argument("--path", default="/whoami")
    p.add_argument("--post", metavar="FILE", help="POST FILE, chunked, on every leg")
    a = p.parse_args()

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    try:
        if a.plain:
            conn = http.client.HTTPConnection(a.address, a.port, timeout=10)
        else:
            conn = http.client.HTTPSConnection(a.address, a.port, timeout=10, context=tls)
        conn.connect()
        local = conn.sock.getsockname()
        bindings = None
        if not a.no_bindings and not a.plain:
            if a.bind_to_cert:
                with open(a.bind_to_cert) as f:
                    cert = ssl.PEM_cert_to_DER_cert(f.read())
            else:
                cert = conn.sock.getpeercert(binary_form=True)
            bindings = gssapi.raw.ChannelBindings(application_data=end_point_binding(cert))
        creds = None
        if a.mech == "krb5":
            mech = gssapi.MechType.kerberos
        else:
            mech = gssapi.raw.OID.from_int_seq(NTLM_OID if a.mech == "ntlm" else SPNEGO_OID)
        if a.mech == "ntlm" and a.user:
            creds = gssapi.Credentials(name=gssapi.Name(a.user, gssapi.NameType.user),
                                       mechs=[mech], usage="initiate")
        scheme = "NTLM" if a.mech == "ntlm" else "Negotiate"
        target = gssapi.Name("HTTP@" + a.name, gssapi.NameType.hostbased_service)
        gctx = gssapi.SecurityContext(name=target, mech=mech, usage="initiate", creds=creds,
                                      channel_bindings=bindings)
        chunks = None  # a list, which http.client sends chunked
        if a.post:
            with open(a.post, "rb") as f:
                data = f.read()
            chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
        token = gctx.step()
        while True:
            conn.request("POST" if a.post else "GET", a.path, body=chunks, headers={
                "Host": f"{a.name}:{a.port}",
                "Authorization": f"{scheme} {base64.b64encode(token).decode()}"})
            r = conn.getresponse()
            answer = r.read()
            offer = (r.getheader("WWW-Authenticate") or "").split()
            if r.status != 401 or gctx.complete or len(offer) != 2 or offer[0] != scheme:
                break
            if conn.sock is None or conn.sock.getsockname() != local:
                raise OSError("the server closed the connection between legs")
            print(f"leg: 401 {offer[0]} {offer[1]}", file=sys.stderr)
            token = gctx.step(base64.b64decode(offer[1]))
        conn.close()
    except (OSError, ValueError, http.client.HTTPException, gssapi.exceptions.GSSError) as e:
        print(f"cbclient: {e}", file=sys.stderr)
        return 1
    print(f"HTTP/1.1 {r.status} {r.reason}")
    sys.stdout.write(answer.decode(errors="replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
