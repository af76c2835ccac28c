/*
 * The AD flavour of kasa lab (lab_ad.c): a throwaway Samba AD domain controller. lab.c
 * dispatches to it on "lab up --ad" and on a lab.state that says kind = ad; lab_ad.c
 * borrows lab.c's file helpers so that both write a lab the same way.
 */
#ifndef KASA_LAB_AD_H
#define KASA_LAB_AD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <profile.h>

#include "cli.h"
#include "proc.h"

#define LAB_DIR_MAX 1024                /* longer lab paths are refused */
#define LAB_PATH_MAX (LAB_DIR_MAX + 64) /* DIR/file */
#define LAB_MAX_MEMBERS 100 /* cas1..cas9 on 127.0.0.11..19, cas10..cas100 on 127.0.2.10..100 */
#define LAB_STATE_MAX 65536 /* lab.state's text, at most */

enum { D_KDC, D_KADMIND, N_DAEMONS };

/* An array member: kasad as host/casN.DOMAIN on 127.0.0.(10+N), or 127.0.2.N from 10 on. */
struct lab_member {
    int port; /* kasad */
    struct proc proc;
    int http_port; /* kasa-httpd */
    struct proc http;
};

/*
 * A lab: an MIT realm (the daemons and ports) or, with ad set, the members of an AD lab,
 * whose domain controller lab_ad.c keeps apart. The members, the balancer and their
 * lab.state keys are the same for both.
 */
struct lab {
    char dir[LAB_DIR_MAX];
    char realm[128];
    bool ad;
    char admin[256]; /* the principal each member's kasad ACL names */
    int kdc_port, kadmind_port, kpasswd_port;
    struct proc procs[N_DAEMONS];
    int n_members;
    struct lab_member members[LAB_MAX_MEMBERS];
    int balancer_port; /* HAProxy on LAB_BALANCER for the array's name */
    struct proc balancer;
    int redis_port; /* the array's shared replay cache (lab up --replay redis); 0: none */
    struct proc redis;
};

/* Gives member i the host principal host/HOST@REALM and its keys in keytab. */
typedef int (*lab_host_key_fn)(struct cli *cli, const struct lab *lab, int i, const char *host,
                               const char *keytab);

/* Whether argv (a "lab up" command line) asks for the AD lab. */
bool lab_ad_wanted(int argc, char **argv);

/* Whether DIR holds an AD lab (its lab.state says kind = ad). */
bool lab_ad_here(const char *dir);

int lab_ad_up(struct cli *cli, int argc, char **argv);
int lab_ad_down(struct cli *cli, const char *dir);
int lab_ad_env(struct cli *cli, const char *dir);
int lab_ad_status(struct cli *cli, const char *dir, bool json);

/* Load DIR's AD lab as a struct lab (its members), and save one back; 0 or an exit status. */
int lab_ad_load(struct cli *cli, const char *dir, struct lab *out);
int lab_ad_save(struct cli *cli, const struct lab *lab);

/* From lab.c: member i's directory, ACL and ports, and its host key from host_key. */
int lab_create_member(struct cli *cli, struct lab *lab, int i, lab_host_key_fn host_key);

/* From lab.c: start member i's kasad and kasa-httpd, whichever does not run. */
int lab_start_member(struct cli *cli, struct lab *lab, int i);

/* From lab.c: the same for every member, all started at once, then waited for. */
int lab_start_members(struct cli *cli, struct lab *lab);

/* From lab.c: start the lab's Redis (the members' shared replay cache) when the lab has
 * one (redis_port > 0) and it does not run; with new, first choose its port. */
int lab_start_redis(struct cli *cli, struct lab *lab, bool new);

/* From lab.c: start HAProxy in front of the members unless it runs. */
int lab_start_balancer(struct cli *cli, struct lab *lab);

/* From lab.c: stop the balancer and every member (saying so when say). */
void lab_stop_members(struct lab *lab, bool say);

/* From lab.c: the members' and balancer's lab.state keys: read from prof, appended to text. */
void lab_read_members(profile_t prof, struct lab *lab);
void lab_state_members(const struct lab *lab, char *text, size_t len);

/* From lab.c: the members and balancer as rows of a status table, and as JSON. */
void lab_members_table(const struct lab *lab, struct table *t);
void lab_members_json(const struct lab *lab, json_object *o);

/* From lab.c: whether every member and the balancer run. */
bool lab_members_alive(const struct lab *lab);

/* From lab.c: cas1, cas1.DOMAIN, 127.0.0.11, DIR/cas1 for member index i (from 0). */
void lab_member_names(const struct lab *lab, int i, char *name, char *host, char *addr, char *dir);

/* From lab.c: write text to path atomically; 0 or an exit status (reported). */
int lab_write_file(struct cli *cli, const char *path, const char *text, mode_t mode);

/* From lab.c: check dir's characters, create it when asked, make it absolute into out. */
int lab_resolve_dir(struct cli *cli, const char *dir, bool create, char *out, size_t len);

/* From lab.c: whether path is an empty directory. */
bool lab_dir_empty(const char *path);

#endif
