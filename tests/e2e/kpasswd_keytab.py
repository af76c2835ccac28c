"""Change a principal's own password holding nothing but its keytab: an initial ticket
for kadmin/changepw from the keytab, then the kpasswd protocol, through MIT's libkrb5
(ctypes). The door that k5srvutil and kadmin -k do not try. Prints what the KDC and
kadmind said; exits 0 if the password changed, 1 if kadmind refused, 2 if the KDC gave
no ticket, 3 on a local error.

    python3 kpasswd_keytab.py KEYTAB PRINCIPAL
"""
import ctypes
import secrets
import sys


class Data(ctypes.Structure):
    _fields_ = [("magic", ctypes.c_int32), ("length", ctypes.c_uint), ("data", ctypes.c_void_p)]


def main():
    keytab, name = sys.argv[1].encode(), sys.argv[2].encode()
    k5 = ctypes.CDLL("libkrb5.so.3")
    k5.krb5_get_error_message.restype = ctypes.c_char_p
    ctx, kt, princ = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
    creds = ctypes.create_string_buffer(1024)  # a krb5_creds, zeroed, with room to spare

    def say(code):
        return k5.krb5_get_error_message(ctx, ctypes.c_long(code)).decode()

    if (k5.krb5_init_context(ctypes.byref(ctx)) or
            k5.krb5_kt_resolve(ctx, keytab, ctypes.byref(kt)) or
            k5.krb5_parse_name(ctx, name, ctypes.byref(princ))):
        print("cannot start Kerberos")
        return 3
    code = k5.krb5_get_init_creds_keytab(ctx, creds, princ, kt, 0, b"kadmin/changepw", None)
    if code:
        print("no ticket for kadmin/changepw: " + say(code))
        return 2
    result, code_str, result_str = ctypes.c_int(), Data(), Data()
    code = k5.krb5_change_password(ctx, creds, secrets.token_hex(16).encode(),
                                   ctypes.byref(result), ctypes.byref(code_str),
                                   ctypes.byref(result_str))
    if code:
        print("kpasswd failed: " + say(code))
        return 3

    def text(d):
        return ctypes.string_at(d.data, d.length).decode(errors="replace") if d.data else ""

    print("kpasswd result %d: %s: %s" % (result.value, text(code_str),
                                         " ".join(text(result_str).split())))
    return 0 if result.value == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
