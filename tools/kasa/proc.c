/*
 * Starting, watching and stopping the lab's daemons. A daemon is identified by its pid
 * and its kernel start time, so a pid reused after a reboot or a crash is never
 * signalled by mistake.
 */
#include "proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* The current environment with env's "K=V" entries replacing or adding to it; a bare
 * "K" in env removes K. */
static char **merged_env(const char *const *env)
{
    size_t n = 0, extra = 0, k = 0;
    char **out;

    while (environ[n] != NULL)
        n++;
    while (env != NULL && env[extra] != NULL)
        extra++;
    out = calloc(n + extra + 1, sizeof(*out));
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        bool replaced = false;
        for (size_t j = 0; j < extra && !replaced; j++) {
            size_t klen = strcspn(env[j], "=");
            replaced = strncmp(environ[i], env[j], klen) == 0 && environ[i][klen] == '=';
        }
        if (!replaced)
            out[k++] = environ[i];
    }
    for (size_t j = 0; j < extra; j++)
        if (strchr(env[j], '=') != NULL)
            out[k++] = (char *)env[j];
    return out;
}

/* In the child: wire stdin/stdout/stderr and exec; never returns. */
static void child_exec(const char *const *argv, char **envp, int in_fd, const char *log)
{
    int fd;

    if (in_fd < 0)
        in_fd = open("/dev/null", O_RDONLY);
    fd = open(log != NULL ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in_fd < 0 || fd < 0 || dup2(in_fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
        _exit(127);
    closefrom(3);
    execvpe(argv[0], (char *const *)argv, envp);
    _exit(127);
}

int proc_spawn(const char *const *argv, const char *const *env, const char *log, struct proc *out)
{
    char **envp = merged_env(env);
    pid_t pid;

    if (envp == NULL)
        return ENOMEM;
    pid = fork();
    if (pid < 0) {
        int e = errno;
        free(envp);
        return e;
    }
    if (pid == 0) {
        setsid();
        signal(SIGPIPE, SIG_DFL);
        child_exec(argv, envp, -1, log);
    }
    free(envp);
    out->pid = pid;
    out->start = 0;
    proc_identify(out);
    return 0;
}

int proc_run(const char *const *argv, const char *const *env, const char *input, size_t input_len,
             const char *log)
{
    char **envp = merged_env(env);
    int pipefd[2] = {-1, -1}, status;
    pid_t pid;

    if (envp == NULL || (input != NULL && pipe(pipefd) != 0)) {
        free(envp);
        return -1;
    }
    pid = fork();
    if (pid == 0) {
        if (pipefd[1] >= 0)
            close(pipefd[1]);
        child_exec(argv, envp, pipefd[0], log);
    }
    free(envp);
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (pid > 0 && pipefd[1] >= 0) {
        void (*old)(int) = signal(SIGPIPE, SIG_IGN);
        for (size_t off = 0; off < input_len;) {
            ssize_t w = write(pipefd[1], input + off, input_len - off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        signal(SIGPIPE, old);
    }
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    if (pid < 0)
        return -1;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Read state and start time of pid from /proc/PID/stat. */
static bool read_stat(pid_t pid, char *state, unsigned long long *start)
{
    char path[64], buf[1024], *p;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields start after the last ')'. */
    p = strrchr(buf, ')');
    if (p == NULL || p[1] == '\0')
        return false;
    p += 2;
    *state = *p;
    /* starttime is field 22; the state is field 3. */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (p == NULL)
            return false;
        p++;
    }
    *start = strtoull(p, NULL, 10);
    return true;
}

bool proc_identify(struct proc *p)
{
    char state;

    return p->pid > 0 && read_stat(p->pid, &state, &p->start);
}

bool proc_alive(const struct proc *p)
{
    unsigned long long start;
    char state;

    if (p->pid <= 0 || !read_stat(p->pid, &state, &start))
        return false;
    if (state == 'Z' || state == 'X') {
        (void)waitpid(p->pid, NULL, WNOHANG); /* reap it if it is ours */
        return false;
    }
    return p->start == 0 || start == p->start;
}

bool proc_stop(const struct proc *p, int timeout_ms)
{
    struct timespec tick = {0, 20 * 1000 * 1000};

    if (!proc_alive(p))
        return false;
    kill(p->pid, SIGTERM);
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        (void)waitpid(p->pid, NULL, WNOHANG);
        if (!proc_alive(p))
            return true;
        nanosleep(&tick, NULL);
    }
    kill(p->pid, SIGKILL);
    for (int waited = 0; waited < 2000 && proc_alive(p); waited += 20)
        nanosleep(&tick, NULL);
    return true;
}

bool proc_port_open(const char *addr, int port)
{
    struct sockaddr_in sin;
    int fd, ok;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
        return false;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    ok = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
    close(fd);
    return ok;
}

/* Bind a socket of type to addr:port (0: any); returns the fd and the port bound. */
static int bind_port(const char *addr, int type, int *port)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)*port);
    if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
        return -1;
    fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(sin.sin_port);
    return fd;
}

int proc_free_ports(const char *addr, int *ports, size_t n)
{
    int fds[32];
    size_t nfd = 0, got = 0;
    int ret = 0;

    /* Hold every socket until all ports are chosen, so no port is chosen twice. */
    for (int tries = 0; got < n && tries < 64; tries++) {
        int port = 0, tcp, udp;
        tcp = bind_port(addr, SOCK_STREAM, &port);
        if (tcp < 0) {
            ret = errno != 0 ? errno : EADDRNOTAVAIL;
            break;
        }
        udp = bind_port(addr, SOCK_DGRAM, &port);
        if (udp < 0) {
            close(tcp);
            continue;
        }
        if (nfd + 2 > sizeof(fds) / sizeof(fds[0])) {
            close(tcp);
            close(udp);
            break;
        }
        fds[nfd++] = tcp;
        fds[nfd++] = udp;
        ports[got++] = port;
    }
    for (size_t i = 0; i < nfd; i++)
        close(fds[i]);
    if (got < n && ret == 0)
        ret = EADDRINUSE;
    return ret;
}
