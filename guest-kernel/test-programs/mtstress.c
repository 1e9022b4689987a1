/* mtstress: threads and processes contending on shared memory, for checking a
 * guest's SMP, futex, atomics (LL/SC underneath) and pipe paths.
 *
 * PROCS forked processes each run THREADS threads; every thread, ITERS times:
 *   - takes a futex mutex (futex_mutex.h) around a plain read-modify-write of
 *     a shared counter, yielding inside the critical section now and then so
 *     that a broken lock loses updates instead of hiding the race;
 *   - adds 1 to a shared counter with atomic_fetch_add;
 *   - adds its own id to a shared sum with a compare-and-swap loop.
 * Meanwhile the processes' main threads pass a token ROUNDS times around a
 * ring of pipes, each adding 1 and checking the value it receives.
 * All totals are compared with the values they must have; the last line is
 *   mtstress: ... OK      (exit status 0)   or   mtstress: ... FAIL (exit 1).
 *
 * -u drops the mutex, which must then FAIL (lost updates): a check that the
 * check works. Usage: mtstress [-p PROCS] [-t THREADS] [-n ITERS] [-r ROUNDS]
 * [-w TIMEOUT_S] [-u] */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "futex_mutex.h"

enum { MAX_PROCS = 64, MAX_THREADS = 64 };

struct config {
    int procs, threads, rounds, timeout_s;
    long iters;
    int use_lock;
};

/* One copy in MAP_SHARED memory, inherited by every forked process. */
struct shared {
    struct futex_mutex lock;
    volatile uint64_t counter; /* guarded by lock; volatile keeps the read and the write apart */
    volatile int owner;        /* id of the thread inside the critical section */
    _Atomic uint64_t overlaps; /* another thread entered while we were inside */
    _Atomic uint64_t fetch_adds;
    _Atomic uint64_t cas_sum;
    _Atomic uint64_t cas_retries;
    _Atomic uint64_t ring_errors;
    _Atomic uint64_t ring_final;
};

struct worker {
    const struct config* cfg;
    struct shared* sh;
    int id; /* 1..procs*threads, so the CAS sum has a known total */
};

static void* worker_main(void* arg) {
    const struct worker* w = arg;
    struct shared* sh = w->sh;
    for (long i = 0; i < w->cfg->iters; i++) {
        if (w->cfg->use_lock) futex_mutex_lock(&sh->lock);
        uint64_t v = sh->counter;
        sh->owner = w->id;
        if ((i & 63) == 0) sched_yield();
        if (sh->owner != w->id) atomic_fetch_add(&sh->overlaps, 1);
        sh->counter = v + 1;
        if (w->cfg->use_lock) futex_mutex_unlock(&sh->lock);

        atomic_fetch_add(&sh->fetch_adds, 1);

        uint64_t old = atomic_load(&sh->cas_sum);
        while (!atomic_compare_exchange_weak(&sh->cas_sum, &old, old + (uint64_t)w->id))
            atomic_fetch_add(&sh->cas_retries, 1);
    }
    return NULL;
}

static int read_token(int fd, uint64_t* token) {
    size_t got = 0;
    while (got < sizeof *token) {
        ssize_t n = read(fd, (char*)token + got, sizeof *token - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    return 0;
}

static int write_token(int fd, uint64_t token) {
    /* 8 bytes is below PIPE_BUF, so the write is atomic (pipe(7)). */
    return write(fd, &token, sizeof token) == (ssize_t)sizeof token ? 0 : -1;
}

/* Process `me` of the ring receives r*procs + me in round r (process 0 at the
 * end of each round, (r+1)*procs) and sends one more. */
static void ring_member(const struct config* cfg, struct shared* sh, int me, int in_fd, int out_fd) {
    uint64_t token;
    if (me == 0 && write_token(out_fd, 1) != 0) goto broken;
    for (int r = 0; r < cfg->rounds; r++) {
        if (read_token(in_fd, &token) != 0) goto broken;
        uint64_t want = me == 0 ? (uint64_t)(r + 1) * cfg->procs : (uint64_t)r * cfg->procs + me;
        if (token != want) atomic_fetch_add(&sh->ring_errors, 1);
        if (me == 0 && r == cfg->rounds - 1) {
            atomic_store(&sh->ring_final, token);
            return;
        }
        if (write_token(out_fd, token + 1) != 0) goto broken;
    }
    return;
broken:
    atomic_fetch_add(&sh->ring_errors, 1);
}

static int child_main(const struct config* cfg, struct shared* sh, int me, int pipes[][2]) {
    /* Keep only this member's ends, so that a neighbour's death reads as EOF
     * here instead of a hang. */
    int in_fd = pipes[me][0], out_fd = pipes[(me + 1) % cfg->procs][1];
    for (int i = 0; i < cfg->procs; i++) {
        if (pipes[i][0] != in_fd) close(pipes[i][0]);
        if (pipes[i][1] != out_fd) close(pipes[i][1]);
    }
    pthread_t tids[MAX_THREADS];
    struct worker workers[MAX_THREADS];
    for (int t = 0; t < cfg->threads; t++) {
        workers[t] = (struct worker){cfg, sh, me * cfg->threads + t + 1};
        if (pthread_create(&tids[t], NULL, worker_main, &workers[t]) != 0) {
            fprintf(stderr, "mtstress: pthread_create failed in process %d\n", me);
            return 2;
        }
    }
    if (cfg->rounds > 0) ring_member(cfg, sh, me, in_fd, out_fd);
    for (int t = 0; t < cfg->threads; t++) pthread_join(tids[t], NULL);
    return 0;
}

static pid_t children[MAX_PROCS];
static int nchildren;

static void kill_children(void) {
    for (int i = 0; i < nchildren; i++) kill(children[i], SIGKILL);
}

static void on_timeout(int sig) {
    (void)sig;
    kill_children();
    static const char msg[] = "mtstress: timed out (deadlock?) FAIL\n";
    if (write(1, msg, sizeof msg - 1) < 0) _exit(1);
    _exit(1);
}

static int parse_args(int argc, char** argv, struct config* cfg) {
    *cfg = (struct config){4, 4, 2000, 300, 20000, 1};
    int opt;
    while ((opt = getopt(argc, argv, "p:t:n:r:w:u")) != -1) {
        switch (opt) {
            case 'p':
                cfg->procs = atoi(optarg);
                break;
            case 't':
                cfg->threads = atoi(optarg);
                break;
            case 'n':
                cfg->iters = atol(optarg);
                break;
            case 'r':
                cfg->rounds = atoi(optarg);
                break;
            case 'w':
                cfg->timeout_s = atoi(optarg);
                break;
            case 'u':
                cfg->use_lock = 0;
                break;
            default:
                return -1;
        }
    }
    if (cfg->procs < 1 || cfg->procs > MAX_PROCS || cfg->threads < 1 || cfg->threads > MAX_THREADS || cfg->iters < 0 ||
        cfg->rounds < 0 || cfg->timeout_s < 0 || optind != argc)
        return -1;
    return 0;
}

int main(int argc, char** argv) {
    struct config cfg;
    if (parse_args(argc, argv, &cfg) != 0) {
        fprintf(stderr, "usage: mtstress [-p PROCS<=%d] [-t THREADS<=%d] [-n ITERS] [-r ROUNDS] [-w TIMEOUT_S] [-u]\n",
                MAX_PROCS, MAX_THREADS);
        return 2;
    }
    struct shared* sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("mtstress: mmap");
        return 2;
    }
    int pipes[MAX_PROCS][2];
    for (int i = 0; i < cfg.procs; i++) {
        if (pipe(pipes[i]) != 0) {
            perror("mtstress: pipe");
            return 2;
        }
    }
    signal(SIGALRM, on_timeout);
    alarm((unsigned)cfg.timeout_s);
    fflush(stdout);
    for (int p = 0; p < cfg.procs; p++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("mtstress: fork");
            kill_children();
            return 2;
        }
        if (pid == 0) {
            alarm(0);
            _exit(child_main(&cfg, sh, p, pipes));
        }
        children[nchildren++] = pid;
    }
    for (int i = 0; i < cfg.procs; i++) {
        close(pipes[i][0]);
        close(pipes[i][1]);
    }
    int bad_children = 0;
    for (int i = 0; i < nchildren; i++) {
        int status;
        while (waitpid(children[i], &status, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) bad_children++;
    }
    alarm(0);

    uint64_t n = (uint64_t)cfg.procs * (uint64_t)cfg.threads;
    uint64_t want_count = n * (uint64_t)cfg.iters;
    uint64_t want_sum = (uint64_t)cfg.iters * (n * (n + 1) / 2);
    uint64_t want_ring = (uint64_t)cfg.rounds * (uint64_t)cfg.procs;
    uint64_t count = sh->counter, adds = atomic_load(&sh->fetch_adds), sum = atomic_load(&sh->cas_sum);
    uint64_t ring = atomic_load(&sh->ring_final), overlaps = atomic_load(&sh->overlaps);
    uint64_t ring_errors = atomic_load(&sh->ring_errors);
    int ok = count == want_count && adds == want_count && sum == want_sum && ring == want_ring && ring_errors == 0 &&
             bad_children == 0 && (!cfg.use_lock || overlaps == 0);
    printf(
        "mtstress: procs=%d threads=%d iters=%ld rounds=%d lock=%s mutex=%llu/%llu atomic=%llu/%llu cas=%llu/%llu "
        "ring=%llu/%llu overlaps=%llu ring_errors=%llu cas_retries=%llu bad_children=%d %s\n",
        cfg.procs, cfg.threads, cfg.iters, cfg.rounds, cfg.use_lock ? "futex" : "none", (unsigned long long)count,
        (unsigned long long)want_count, (unsigned long long)adds, (unsigned long long)want_count,
        (unsigned long long)sum, (unsigned long long)want_sum, (unsigned long long)ring, (unsigned long long)want_ring,
        (unsigned long long)overlaps, (unsigned long long)ring_errors,
        (unsigned long long)atomic_load(&sh->cas_retries), bad_children, ok ? "OK" : "FAIL");
    return ok ? 0 : 1;
}
