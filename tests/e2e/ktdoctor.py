#!/usr/bin/env python3
"""Give one principal's entries at one kvno a wrong key in an MIT keytab (in place), as a
person with root on a member could: same principal, same kvno, other key bytes (each key
byte XORed with 0x5A, so the same key gives the same wrong key in every entry).

    ktdoctor.py KEYTAB PRINCIPAL KVNO [ENCTYPE]

PRINCIPAL '*' is every principal; ENCTYPE (a number: 17 is aes128-cts-hmac-sha1-96) only
the entries of that enctype.

The format is MIT's keytab version 0x502 (krb5 keytab file format, as klist -k reads it).
Prints how many entries it changed; exits 1 when none matched.
"""
import struct
import sys


def main():
    path, want, kvno = sys.argv[1], sys.argv[2], int(sys.argv[3])
    only = int(sys.argv[4]) if len(sys.argv) > 4 else None
    data = bytearray(open(path, "rb").read())
    if data[:2] != b"\x05\x02":
        sys.exit("ktdoctor.py: not a version 0x502 keytab")
    pos, changed = 2, 0
    while pos + 4 <= len(data):
        (size,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if size <= 0:  # a hole left by a deleted entry
            pos += -size
            continue
        end = pos + size
        p = pos
        (count,) = struct.unpack_from(">H", data, p)
        p += 2
        parts = []
        for _ in range(count + 1):  # the realm, then each component
            (n,) = struct.unpack_from(">H", data, p)
            parts.append(data[p + 2:p + 2 + n].decode())
            p += 2 + n
        name = "/".join(parts[1:]) + "@" + parts[0]
        p += 4 + 4  # name type, timestamp
        vno8 = data[p]
        p += 1
        etype, klen = struct.unpack_from(">HH", data, p)
        p += 4
        key_at = p
        p += klen
        vno = struct.unpack_from(">I", data, p)[0] if end - p >= 4 else vno8
        if (want in ("*", name)) and vno == kvno and only in (None, etype):
            for i in range(klen):
                data[key_at + i] ^= 0x5A
            changed += 1
        pos = end
    open(path, "wb").write(data)
    print("changed %d entries" % changed)
    sys.exit(0 if changed else 1)


if __name__ == "__main__":
    main()
