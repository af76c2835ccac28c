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

#include "cli.h"

/* Whether argv (a "lab up" command line) asks for the AD lab. */
bool lab_ad_wanted(int argc, char **argv);

/* Whether DIR holds an AD lab (its lab.state says kind = ad). */
bool lab_ad_here(const char *dir);

int lab_ad_up(struct cli *cli, int argc, char **argv);
int lab_ad_down(struct cli *cli, const char *dir);
int lab_ad_env(struct cli *cli, const char *dir);
int lab_ad_status(struct cli *cli, const char *dir, bool json);

/* From lab.c: write text to path atomically; 0 or an exit status (reported). */
int lab_write_file(struct cli *cli, const char *path, const char *text, mode_t mode);

/* From lab.c: check dir's characters, create it when asked, make it absolute into out. */
int lab_resolve_dir(struct cli *cli, const char *dir, bool create, char *out, size_t len);

/* From lab.c: whether path is an empty directory. */
bool lab_dir_empty(const char *path);

#endif
