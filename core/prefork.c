/* prefork.c - see prefork.h. The master is a plain poll(2) loop over a
 * signalfd and a readiness pipe: it owns no libuv loop and runs no Lua, so
 * nothing in it can crash because of user code. Its watchdog reads the
 * workers' heartbeats from a shared anonymous mapping: no message per beat,
 * nothing a stuck worker must answer. */
#include "prefork.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define MAX_WORKERS 256

typedef struct {
    pid_t pid;
    int ready;
    uint64_t started_ms;
    unsigned quick_crashes; /* consecutive crashes within 2 s of start */
    uint64_t restart_at_ms; /* pending restart time, 0 = none */
    uint64_t interrupted_ms; /* when the watchdog signalled it, 0 = never */
    int killed;              /* the watchdog SIGKILLed it */
} slot_t;

/* One worker's heartbeat, on its own cache line. The worker stores, the
 * master loads; a lock-free 64-bit atomic is address-free, so it works
 * across processes sharing the page. 0 = not watched (yet). */
typedef struct {
    _Atomic uint64_t beat_ms; /* CLOCK_MONOTONIC ms of the last beat */
    char pad[64 - sizeof(uint64_t)];
} beat_t;

static int g_ready_fd = -1;
static int g_is_worker;
static int g_index;
static int g_nworkers = 1;
static pid_t g_master_pid;
static beat_t *g_beats; /* MAP_SHARED, one per slot; NULL without a watchdog */
static unsigned g_worker_timeout_ms;

int jr_prefork_is_worker(void) { return g_is_worker; }
int jr_prefork_worker_index(void) { return g_is_worker ? g_index : 0; }
int jr_prefork_workers(void) { return g_is_worker ? g_nworkers : 1; }
int jr_prefork_master_pid(void) { return g_is_worker ? (int)g_master_pid : 0; }

unsigned jr_prefork_worker_timeout_ms(void) { return g_is_worker && g_beats ? g_worker_timeout_ms : 0; }

/* A quarter of the timeout leaves a healthy but busy loop three quarters of
 * it of slack; more than once a second would buy nothing. */
static unsigned heartbeat_interval(unsigned timeout_ms)
{
    unsigned p = timeout_ms / 4;
    if (p > 1000) p = 1000;
    if (p < 10) p = 10;
    return p;
}

unsigned jr_prefork_heartbeat_interval_ms(void)
{
    return jr_prefork_worker_timeout_ms() ? heartbeat_interval(g_worker_timeout_ms) : 0;
}

void jr_prefork_worker_ready(void)
{
    if (g_ready_fd < 0) return;
    unsigned char b = (unsigned char)g_index;
    ssize_t w = write(g_ready_fd, &b, 1);
    (void)w;
    close(g_ready_fd);
    g_ready_fd = -1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void jr_prefork_heartbeat(void)
{
    if (!g_is_worker || !g_beats) return;
    atomic_store_explicit(&g_beats[g_index].beat_ms, now_ms(), memory_order_relaxed);
}

/* Fork one worker into slot i. Returns 1 in the child, 0 in the master. */
static int spawn(slot_t *s, int i, int pipe_r, int pipe_w, int sfd, const sigset_t *oldmask)
{
    /* The previous worker of this slot is gone: its last beat must not make
     * the new one look stuck before it beats itself. */
    if (g_beats) atomic_store_explicit(&g_beats[i].beat_ms, 0, memory_order_relaxed);
    pid_t pid = fork();
    if (pid < 0) {
        jr_logf(JR_LOG_ERROR, NULL, "master: fork failed: %s", strerror(errno));
        s->pid = 0;
        return 0;
    }
    if (pid == 0) {
        close(pipe_r);
        if (sfd >= 0) close(sfd);
        g_ready_fd = pipe_w;
        g_is_worker = 1;
        g_index = i;
        /* Die with the master rather than linger unsupervised. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == 1) _exit(1);
        sigprocmask(SIG_SETMASK, oldmask, NULL);
        return 1;
    }
    s->pid = pid;
    s->ready = 0;
    s->started_ms = now_ms();
    s->restart_at_ms = 0;
    s->interrupted_ms = 0;
    s->killed = 0;
    return 0;
}

/* The watchdog's round: signal a ready worker whose last beat is older than
 * the timeout (it logs where it is stuck and exits), SIGKILL one that is
 * still there after the grace (stuck outside Lua, where its handler cannot
 * act). The reaper then restarts it like any dead worker. */
static void watchdog_check(slot_t *slots, int n, uint64_t t)
{
    for (int i = 0; i < n; i++) {
        slot_t *s = &slots[i];
        if (s->pid <= 0 || !s->ready) continue;
        if (s->interrupted_ms) {
            if (!s->killed && t - s->interrupted_ms >= JR_PREFORK_WATCHDOG_GRACE_MS) {
                jr_logf(JR_LOG_ERROR, NULL,
                        "master: worker %d (pid %d) did not stop within %d ms of the watchdog's signal "
                        "(blocked outside Lua: a system call, a C library or an FFI call), killing it",
                        i, (int)s->pid, JR_PREFORK_WATCHDOG_GRACE_MS);
                kill(s->pid, SIGKILL);
                s->killed = 1;
            }
            continue;
        }
        uint64_t beat = atomic_load_explicit(&g_beats[i].beat_ms, memory_order_relaxed);
        if (beat == 0 || t <= beat || t - beat <= g_worker_timeout_ms) continue;
        jr_logf(JR_LOG_ERROR, NULL,
                "master: worker %d (pid %d) made no progress for %.1f s (worker timeout %.1f s), "
                "stopping it for a traceback",
                i, (int)s->pid, (double)(t - beat) / 1000.0, g_worker_timeout_ms / 1000.0);
        /* To the thread that runs Lua (the process's first thread, whose id
         * is the pid): a process-wide signal may land on a database thread. */
        if (tgkill(s->pid, s->pid, JR_PREFORK_WATCHDOG_SIGNAL) != 0) kill(s->pid, SIGKILL);
        s->interrupted_ms = t;
    }
}

int jr_prefork_run(int n, const jr_prefork_opts *opts)
{
    if (n < 1) n = 1;
    if (n > MAX_WORKERS) n = MAX_WORKERS;
    g_nworkers = n;
    g_master_pid = getpid(); /* inherited by every worker, restarted ones too */
    unsigned stop_timeout = opts && opts->stop_timeout_ms ? opts->stop_timeout_ms : 30000;
    g_worker_timeout_ms = opts ? opts->worker_timeout_ms : 0;
    if (g_worker_timeout_ms) {
        void *m = mmap(NULL, sizeof(beat_t) * (size_t)n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return -1;
        g_beats = m; /* zero-filled: nobody is watched yet */
    }
    int pfd[2];
    if (pipe2(pfd, O_NONBLOCK) < 0) {
        int e = errno;
        if (g_beats) munmap(g_beats, sizeof(beat_t) * (size_t)n);
        g_beats = NULL;
        errno = e;
        return -1;
    }

    sigset_t mask, oldmask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGQUIT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, &oldmask);

    slot_t slots[MAX_WORKERS];
    memset(slots, 0, sizeof slots);
    for (int i = 0; i < n; i++)
        if (spawn(&slots[i], i, pfd[0], pfd[1], -1, &oldmask)) return i;

    /* The master keeps pfd[1] open so restarted workers share the pipe. */
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        jr_logf(JR_LOG_ERROR, NULL, "master: signalfd: %s", strerror(errno));
        _exit(1);
    }
    if (g_beats)
        jr_logf(JR_LOG_INFO, NULL, "master %d: started %d worker%s (worker timeout %.1f s)", (int)getpid(), n,
                n == 1 ? "" : "s", g_worker_timeout_ms / 1000.0);
    else
        jr_logf(JR_LOG_INFO, NULL, "master %d: started %d worker%s", (int)getpid(), n, n == 1 ? "" : "s");

    int stopping = 0, startup_failed = 0, worst = 0, all_ready_logged = 0;
    uint64_t kill_at = 0;
    int pipe_open = 1;
    for (;;) {
        int alive = 0, pending = 0;
        for (int i = 0; i < n; i++) {
            if (slots[i].pid > 0) alive++;
            if (slots[i].restart_at_ms) pending++;
        }
        if (stopping && alive == 0) break;
        if (!stopping && alive == 0 && pending == 0) break;

        uint64_t t = now_ms();
        int timeout = 1000;
        for (int i = 0; i < n; i++)
            if (slots[i].restart_at_ms) {
                int64_t d = (int64_t)(slots[i].restart_at_ms - t);
                if (d < timeout) timeout = d < 0 ? 0 : (int)d;
            }
        if (kill_at) {
            int64_t d = (int64_t)(kill_at - t);
            if (d < timeout) timeout = d < 0 ? 0 : (int)d;
        }
        /* The watchdog looks as often as workers beat, so a stall is seen at
         * most one interval after the timeout. */
        if (g_beats && !stopping && (int)heartbeat_interval(g_worker_timeout_ms) < timeout)
            timeout = (int)heartbeat_interval(g_worker_timeout_ms);
        struct pollfd pf[2] = {{sfd, POLLIN, 0}, {pipe_open ? pfd[0] : -1, POLLIN, 0}};
        int pr = poll(pf, 2, timeout);
        if (pr < 0 && errno != EINTR) break;
        t = now_ms();

        if (pf[1].revents & (POLLIN | POLLHUP)) {
            unsigned char buf[64];
            ssize_t r = read(pfd[0], buf, sizeof buf);
            if (r <= 0) pipe_open = 0;
            for (ssize_t k = 0; k < r; k++)
                if (buf[k] < n && slots[buf[k]].pid > 0) {
                    slots[buf[k]].ready = 1;
                }
            if (!all_ready_logged) {
                int ready = 0;
                for (int i = 0; i < n; i++) ready += slots[i].ready;
                if (ready == n) {
                    all_ready_logged = 1;
                    if (n == 1) jr_logf(JR_LOG_INFO, NULL, "master: the worker is ready");
                    else jr_logf(JR_LOG_INFO, NULL, "master: all %d workers ready", n);
                }
            }
        }
        if (pf[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                int sig = (int)si.ssi_signo;
                if (sig == SIGCHLD) continue; /* reaped below */
                if (sig == SIGHUP) continue;  /* reserved for reload */
                if (!stopping) {
                    jr_logf(JR_LOG_INFO, NULL, "master: %s, stopping workers", strsignal(sig));
                    stopping = 1;
                    kill_at = t + stop_timeout;
                    for (int i = 0; i < n; i++) {
                        slots[i].restart_at_ms = 0;
                        if (slots[i].pid > 0) kill(slots[i].pid, SIGTERM);
                    }
                } else if (sig == SIGINT || sig == SIGQUIT) {
                    /* A second Ctrl-C: do not wait for the grace period. */
                    for (int i = 0; i < n; i++)
                        if (slots[i].pid > 0) kill(slots[i].pid, SIGKILL);
                }
                break;
            }
        }
        /* Reap. */
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            int i;
            for (i = 0; i < n; i++)
                if (slots[i].pid == pid) break;
            if (i == n) continue;
            slot_t *s = &slots[i];
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            s->pid = 0;
            if (stopping) {
                if (code > worst) worst = code;
                continue;
            }
            if (!s->ready) {
                jr_logf(JR_LOG_ERROR, NULL, "master: worker %d failed during startup (exit %d), stopping", i, code);
                startup_failed = 1;
                stopping = 1;
                kill_at = t + stop_timeout;
                for (int k = 0; k < n; k++) {
                    slots[k].restart_at_ms = 0;
                    if (slots[k].pid > 0) kill(slots[k].pid, SIGTERM);
                }
                continue;
            }
            s->quick_crashes = (t - s->started_ms < 2000) ? s->quick_crashes + 1 : 0;
            uint64_t delay = s->quick_crashes ? 100u << (s->quick_crashes > 6 ? 6 : s->quick_crashes) : 0;
            jr_logf(JR_LOG_WARN, NULL, "master: worker %d (pid %d) %s (%s %d), restarting in %llu ms", i,
                    (int)pid, s->interrupted_ms ? "stopped by the watchdog" : "died",
                    WIFEXITED(status) ? "exit" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), (unsigned long long)delay);
            s->restart_at_ms = t + delay;
            if (s->restart_at_ms == 0) s->restart_at_ms = 1;
        }
        if (g_beats && !stopping) watchdog_check(slots, n, t);
        /* Restarts due. */
        if (!stopping)
            for (int i = 0; i < n; i++)
                if (slots[i].restart_at_ms && slots[i].restart_at_ms <= t && slots[i].pid == 0)
                    if (spawn(&slots[i], i, pfd[0], pfd[1], sfd, &oldmask)) return i;
        if (kill_at && t >= kill_at) {
            for (int i = 0; i < n; i++)
                if (slots[i].pid > 0) {
                    jr_logf(JR_LOG_WARN, NULL, "master: worker %d did not stop in time, killing", i);
                    kill(slots[i].pid, SIGKILL);
                }
            kill_at = 0;
        }
    }
    jr_logf(JR_LOG_INFO, NULL, "master: all workers stopped");
    exit(startup_failed ? 1 : worst);
}
