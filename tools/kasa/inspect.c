/*
 * kasa inspect: what is in a Negotiate header ("take a netmon and look to see if we are
 * using a Kerberos token", the seed says). Decodes an Authorization or WWW-Authenticate
 * value, or a bare base64 token: SPNEGO, the mechanisms offered, and the inner token, a
 * Kerberos AP-REQ (realm, service, enctype, kvno, options) or an NTLMSSP message (type,
 * flags, domain, user, workstation, version). Nothing secret is shown.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <krb5/krb5.h>

#include "cli.h"
#include "kasa/httpauth.h"
#include "kasa/token.h"

#define VALUE_MAX (KASA_HTTPAUTH_MAX + 64) /* the longest token, its scheme and spaces */

static const char *kind_name(kasa_token_kind k)
{
    switch (k) {
    case KASA_TOKEN_SPNEGO_INIT:
        return "SPNEGO NegTokenInit";
    case KASA_TOKEN_SPNEGO_RESP:
        return "SPNEGO NegTokenResp";
    case KASA_TOKEN_KRB5:
        return "Kerberos (no SPNEGO)";
    default:
        return "NTLMSSP (no SPNEGO)";
    }
}

static const char *ntlm_type_name(int t)
{
    return t == 1 ? "NEGOTIATE" : t == 2 ? "CHALLENGE" : "AUTHENTICATE";
}

/* The token of an Authorization / WWW-Authenticate value (with or without the header's
 * name), read as kasa-httpd reads it; a bare token is read as Negotiate's. */
static long value_token(kasa_ctx *ctx, const char *v, unsigned char **tok, size_t *len)
{
    const char *colon, *space;
    char *value = NULL;
    kasa_http_scheme scheme;
    long ret;

    while (*v == ' ' || *v == '\t')
        v++;
    colon = strchr(v, ':');
    space = strpbrk(v, " \t");
    if (colon != NULL && space != NULL && colon < space)
        v = colon + 1; /* "Authorization: ..." */
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v != '\0' && strpbrk(v, " \t") == NULL && asprintf(&value, "Negotiate %s", v) < 0)
        return kasa_set_error(ctx, KASA_ERR_NOMEM, NULL);
    ret = kasa_httpauth_parse(ctx, value != NULL ? value : v, &scheme, tok, len);
    free(value);
    if (!ret && scheme == KASA_HTTP_OTHER)
        ret = kasa_set_error(ctx, KASA_ERR_PROTO, "not a Negotiate or NTLM value");
    return ret;
}

int cmd_inspect(struct cli *cli, int argc, char **argv)
{
    char *value = NULL, enctype[64] = "";
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    kasa_token_info t;
    bool json = false;
    size_t len;
    int st;
    long ret;

    snprintf(cli->cmd, sizeof(cli->cmd), "inspect");
    optind = 0;
    st = cli_simple_opts(cli, argc, argv, &json,
                         "usage: kasa inspect [VALUE | -] [--json]\n"
                         "\n"
                         "Decode a Negotiate (or NTLM) token: an Authorization or\n"
                         "WWW-Authenticate value, or bare base64 (- or nothing: read it from\n"
                         "standard input), read as kasa-httpd reads it. Shows SPNEGO, the\n"
                         "mechanisms, and a Kerberos AP-REQ or NTLMSSP message.\n");
    if (st)
        return st < 0 ? EXIT_OK : st;
    st = cli_operands(cli, argc - optind, 0, 1, "at most one VALUE");
    if (st)
        return st;
    if (argc - optind == 0 || strcmp(argv[optind], "-") == 0) {
        value = calloc(1, VALUE_MAX + 2);
        len = value != NULL ? fread(value, 1, VALUE_MAX + 1, stdin) : 0;
        if (value == NULL || len > VALUE_MAX) {
            free(value);
            return cli_usage(cli, "the value is longer than %d bytes", VALUE_MAX);
        }
        value[strcspn(value, "\r\n")] = '\0';
    } else {
        if (strlen(argv[optind]) > VALUE_MAX)
            return cli_usage(cli, "the value is longer than %d bytes", VALUE_MAX);
        value = strdup(argv[optind]);
    }
    if (value_token(cli->ctx, value, &raw, &raw_len) != 0) {
        free(value);
        cli_say(cli, "not a Negotiate token: %s", kasa_error(cli->ctx));
        return EXIT_USAGE;
    }
    ret = kasa_token_decode(cli->ctx, raw, raw_len, &t);
    if (ret) {
        st = cli_fail(cli, ret);
        st = EXIT_USAGE; /* hostile or broken input is bad input */
        goto cleanup;
    }
    if (t.has_ap_req && krb5_enctype_to_name(t.etype, FALSE, enctype, sizeof(enctype)) != 0)
        snprintf(enctype, sizeof(enctype), "%d", t.etype);
    if (json) {
        json_object *o = json_object_new_object(), *m = json_object_new_array();
        json_object_object_add(o, "token", cli_json_str(kind_name(t.kind)));
        for (size_t i = 0; i < t.n_mechs; i++) {
            json_object *e = json_object_new_object();
            json_object_object_add(e, "oid", cli_json_str(t.mechs[i]));
            json_object_object_add(e, "name", cli_json_str(kasa_mech_name(t.mechs[i])));
            json_object_array_add(m, e);
        }
        json_object_object_add(o, "mechanisms", m);
        json_object_object_add(o, "inner", cli_json_str(*t.inner ? t.inner : NULL));
        if (t.has_ap_req) {
            json_object *k = json_object_new_object();
            json_object_object_add(k, "realm", cli_json_str(t.realm));
            json_object_object_add(k, "service", cli_json_str(t.sname));
            json_object_object_add(k, "enctype", cli_json_str(enctype));
            json_object_object_add(k, "kvno", t.has_kvno ? json_object_new_int64(t.kvno) : NULL);
            json_object_object_add(k, "mutual_required",
                                   json_object_new_boolean(t.mutual_required));
            json_object_object_add(o, "kerberos", k);
        }
        if (t.ntlm_type != 0) {
            json_object *n = json_object_new_object();
            char flags[16];
            snprintf(flags, sizeof(flags), "0x%08x", t.ntlm_flags);
            json_object_object_add(n, "message", cli_json_str(ntlm_type_name(t.ntlm_type)));
            json_object_object_add(n, "flags", cli_json_str(flags));
            json_object_object_add(n, "domain", cli_json_str(t.ntlm_domain));
            json_object_object_add(n, "user", cli_json_str(t.ntlm_user));
            json_object_object_add(n, "workstation", cli_json_str(t.ntlm_workstation));
            if (t.ntlm_has_version) {
                char v[32];
                snprintf(v, sizeof(v), "%u.%u build %u", t.ntlm_major, t.ntlm_minor, t.ntlm_build);
                json_object_object_add(n, "version", cli_json_str(v));
            }
            json_object_object_add(o, "ntlm", n);
        }
        cli_json_print(o);
    } else {
        printf("%s\n", kind_name(t.kind));
        if (t.n_mechs > 0) {
            printf("  mechanisms offered:");
            for (size_t i = 0; i < t.n_mechs; i++)
                printf("%s %s (%s)", i ? "," : "", kasa_mech_name(t.mechs[i]), t.mechs[i]);
            printf("\n");
        }
        if (t.has_ap_req) {
            printf("  Kerberos AP-REQ\n");
            printf("    realm:     %s\n", t.realm);
            printf("    service:   %s\n", t.sname);
            printf("    enctype:   %s (%d)\n", enctype, t.etype);
            if (t.has_kvno)
                printf("    kvno:      %u\n", t.kvno);
            printf("    options:   %s%s\n", t.mutual_required ? "mutual-required " : "",
                   t.use_session_key ? "use-session-key" : "");
        } else if (t.ntlm_type != 0) {
            printf("  NTLMSSP %s (Kerberos was not used)\n", ntlm_type_name(t.ntlm_type));
            printf("    flags:       0x%08x%s\n", t.ntlm_flags,
                   t.ntlm_flags & 1 ? " (Unicode)" : "");
            if (t.ntlm_domain[0])
                printf("    %s %s\n",
                       t.ntlm_type == 2 ? "target:     " : "domain:     ", t.ntlm_domain);
            if (t.ntlm_user[0])
                printf("    user:        %s\n", t.ntlm_user);
            if (t.ntlm_workstation[0])
                printf("    workstation: %s\n", t.ntlm_workstation);
            if (t.ntlm_has_version)
                printf("    version:     %u.%u build %u\n", t.ntlm_major, t.ntlm_minor,
                       t.ntlm_build);
        } else if (t.kind == KASA_TOKEN_SPNEGO_RESP) {
            printf("  no inner token (the last leg, or a reject)\n");
        }
    }
    st = EXIT_OK;

cleanup:
    free(raw);
    free(value);
    return st;
}
