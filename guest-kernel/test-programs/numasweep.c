/* The NUMA experiment's guest workload (tools/bench numa, after the Disco
 * paper's Figure 8): one worker per CPU, pinned to it, sweeps its own data
 * (read-modify-write) and reads a table that every worker shares. Where the
 * monitor placed the pages (at random, with --numa-placement random) decides
 * how many of those accesses are remote; the NUMA daemon's migrations and
 * replications are what can make them local. Prints "numasweep: start" when
 * the workers begin and "numasweep: done ... checksum X" at the end, the same
 * checksum wherever the pages were.
 *
 *   numasweep [-t THREADS] [-m MIB_PER_THREAD] [-s KIB_SHARED] [-r ROUNDS]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct worker {
    pthread_t thread;
    int cpu;
    size_t words;
    uint64_t sum;
};

static const uint64_t *shared;
static size_t shared_words;
static int rounds = 40;
static pthread_barrier_t go;

static void *sweep(void *arg) {
    struct worker *w = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->cpu, &set);
    sched_setaffinity(0, sizeof set, &set); /* best effort: fewer CPUs than workers still works */
    uint64_t *data = mmap(NULL, w->words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED) {
        perror("numasweep: mmap");
        exit(2);
    }
    for (size_t i = 0; i < w->words; i++) data[i] = i * 2654435761u + (uint64_t)w->cpu;
    pthread_barrier_wait(&go);
    uint64_t sum = 0;
    for (int r = 0; r < rounds; r++) {
        /* One word per 64 bytes: every page is touched each round, at a modest instruction cost. */
        for (size_t i = 0; i < w->words; i += 8) {
            const uint64_t t = shared[(i * 7 + (size_t)r) % shared_words];
            data[i] = data[i] * 3 + t;
            sum += data[i] >> 7;
        }
    }
    w->sum = sum;
    munmap(data, w->words * 8);
    return NULL;
}

int main(int argc, char **argv) {
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN), mib = 4, shared_kib = 256, opt;
    while ((opt = getopt(argc, argv, "t:m:s:r:")) != -1) {
        switch (opt) {
        case 't': threads = atoi(optarg); break;
        case 'm': mib = atoi(optarg); break;
        case 's': shared_kib = atoi(optarg); break;
        case 'r': rounds = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: numasweep [-t THREADS] [-m MIB_PER_THREAD] [-s KIB_SHARED] [-r ROUNDS]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 64 || mib < 1 || mib > 256 || shared_kib < 4 || shared_kib > 65536 || rounds < 1) {
        fprintf(stderr, "numasweep: -t 1..64, -m 1..256, -s 4..65536, -r >= 1\n");
        return 2;
    }
    shared_words = (size_t)shared_kib * 1024 / 8;
    uint64_t *table = malloc(shared_words * 8);
    if (!table) return 2;
    for (size_t i = 0; i < shared_words; i++) table[i] = i * 0x9E3779B97F4A7C15ull;
    shared = table;
    struct worker *w = calloc((size_t)threads, sizeof *w);
    pthread_barrier_init(&go, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
        w[i].cpu = i;
        w[i].words = (size_t)mib << 17;
        pthread_create(&w[i].thread, NULL, sweep, &w[i]);
    }
    pthread_barrier_wait(&go);
    printf("numasweep: start (%d workers, %d MiB each, %d KiB shared, %d rounds)\n", threads, mib, shared_kib, rounds);
    fflush(stdout);
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(w[i].thread, NULL);
        sum = sum * 1000003 + w[i].sum;
    }
    printf("numasweep: done, checksum %016llx\n", (unsigned long long)sum);
    return 0;
}
