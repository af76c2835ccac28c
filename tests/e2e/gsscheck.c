/*
 * A test driver: does a keytab accept a ticket the KDC issues? Plays both GSS-API
 * sides in one process with MIT's library: the initiator uses the default ccache (so a
 * ticket fetched earlier is reused, as a real client's would be), the acceptor only the
 * given keytab. Prints "accepted" or the reason; exit 0 when accepted.
 *
 *   gsscheck KEYTAB PRINCIPAL     e.g. gsscheck cas1/array.keytab HTTP/outlook.proseware.lab
 */
#include <stdio.h>
#include <string.h>

#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

static void say(const char *what, OM_uint32 major, OM_uint32 minor)
{
    OM_uint32 m, ctx = 0;
    gss_buffer_desc b;

    printf("%s:", what);
    if (minor != 0 &&
        !GSS_ERROR(gss_display_status(&m, minor, GSS_C_MECH_CODE, GSS_C_NO_OID, &ctx, &b))) {
        printf(" %.*s", (int)b.length, (char *)b.value);
        gss_release_buffer(&m, &b);
    } else if (!GSS_ERROR(gss_display_status(&m, major, GSS_C_GSS_CODE, GSS_C_NO_OID, &ctx, &b))) {
        printf(" %.*s", (int)b.length, (char *)b.value);
        gss_release_buffer(&m, &b);
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    gss_key_value_element_desc elem;
    gss_key_value_set_desc store = {1, &elem};
    gss_cred_id_t acred = GSS_C_NO_CREDENTIAL;
    gss_ctx_id_t ictx = GSS_C_NO_CONTEXT, actx = GSS_C_NO_CONTEXT;
    gss_buffer_desc nb, itok = GSS_C_EMPTY_BUFFER, atok = GSS_C_EMPTY_BUFFER;
    gss_name_t target = GSS_C_NO_NAME;
    OM_uint32 major, minor;
    int ok = 0;

    if (argc != 3) {
        fprintf(stderr, "usage: gsscheck KEYTAB PRINCIPAL\n");
        return 2;
    }
    elem.key = "keytab";
    elem.value = argv[1];
    nb.value = argv[2];
    nb.length = strlen(argv[2]);
    major = gss_import_name(&minor, &nb, GSS_KRB5_NT_PRINCIPAL_NAME, &target);
    if (GSS_ERROR(major)) {
        say("bad principal", major, minor);
        return 1;
    }
    major = gss_init_sec_context(&minor, GSS_C_NO_CREDENTIAL, &ictx, target, (gss_OID)gss_mech_krb5,
                                 0, 0, GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, NULL, &itok,
                                 NULL, NULL);
    if (GSS_ERROR(major)) {
        say("no ticket", major, minor);
        goto done;
    }
    major = gss_acquire_cred_from(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, GSS_C_NO_OID_SET,
                                  GSS_C_ACCEPT, &store, &acred, NULL, NULL);
    if (GSS_ERROR(major)) {
        say("keytab unusable", major, minor);
        goto done;
    }
    major = gss_accept_sec_context(&minor, &actx, acred, &itok, GSS_C_NO_CHANNEL_BINDINGS, NULL,
                                   NULL, &atok, NULL, NULL, NULL);
    if (GSS_ERROR(major)) {
        say("rejected", major, minor);
        goto done;
    }
    printf("accepted\n");
    ok = 1;

done:
    gss_release_buffer(&minor, &itok);
    gss_release_buffer(&minor, &atok);
    gss_delete_sec_context(&minor, &ictx, GSS_C_NO_BUFFER);
    gss_delete_sec_context(&minor, &actx, GSS_C_NO_BUFFER);
    gss_release_cred(&minor, &acred);
    gss_release_name(&minor, &target);
    return ok ? 0 : 1;
}
