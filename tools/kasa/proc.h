/*
 * Processes the lab starts: daemons in their own session whose identity (pid and start
 * time) is recorded, so that stopping them later never hits a recycled pid.
 */
#ifndef KASA_PROC_H
#define KASA_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct proc {
    pid_t pid;
    unsigned long long start; /* /proc/PID/stat starttime; 0 when unknown */
};

/* Start argv[0] (a path or a name on PATH) as a daemon: its own session, stdin from
 * /dev/null, stdout and stderr appended to log; env entries ("K=V") are added to the
 * environment (a bare "K" removes K). Returns 0 or an errno value. */
int proc_spawn(const char *const *argv, const char *const *env, const char *log, struct proc *out);

/* Run argv to completion with input on its stdin (may be NULL) and its output appended
 * to log. Returns its exit status, or -1 when it could not run or was killed. */
int proc_run(const char *const *argv, const char *const *env, const char *input, size_t input_len,
             const char *log);

/* Whether p still runs (not a zombie) and is the same process that was started. */
bool proc_alive(const struct proc *p);

/* SIGTERM, then SIGKILL after timeout_ms. Returns true if p was running. */
bool proc_stop(const struct proc *p, int timeout_ms);

/* Fill p's start time from /proc; false when p->pid does not exist. */
bool proc_identify(struct proc *p);

/* Whether something accepts TCP connections on 127.0.0.1:port. */
bool proc_port_open(const char *addr, int port);

/* Find n distinct free ports on addr, free for both TCP and UDP. Returns 0 or errno. */
int proc_free_ports(const char *addr, int *ports, size_t n);

#endif
