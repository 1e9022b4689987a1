/* The integer benchmark (tools/bench cpu): a mix of the work operating
 * systems and their programs do — table-free CRC32, sorting, a matrix
 * multiply, string scanning and a hash table — repeated ROUNDS times and
 * folded into one checksum, which both Disco and the peer (QEMU) print. */
#include "platform.h"

#ifndef ROUNDS
#define ROUNDS 500
#endif

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static uint32_t crc32(const uint8_t* p, unsigned n) {
    uint32_t crc = 0xFFFFFFFFu;
    for (unsigned i = 0; i < n; ++i) {
        crc ^= p[i];
        for (int b = 0; b < 8; ++b) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

static void sort(int32_t* a, int lo, int hi) {
    while (lo < hi) {
        const int32_t pivot = a[(lo + hi) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot) ++i;
            while (a[j] > pivot) --j;
            if (i <= j) {
                const int32_t t = a[i];
                a[i++] = a[j];
                a[j--] = t;
            }
        }
        if (j - lo < hi - i) {
            sort(a, lo, j);
            lo = i;
        } else {
            sort(a, i, hi);
            hi = j;
        }
    }
}

#define N 24
static int64_t ma[N][N], mb[N][N], mc[N][N];
static uint64_t matmul(void) {
    for (int i = 0; i < N; ++i)
        for (int j = 0; j < N; ++j) {
            int64_t s = 0;
            for (int k = 0; k < N; ++k) s += ma[i][k] * mb[k][j];
            mc[i][j] = s;
        }
    uint64_t h = 0;
    for (int i = 0; i < N; ++i) h = h * 31 + (uint64_t)mc[i][(i * 7) % N];
    return h;
}

static unsigned count_words(const char* s) {
    unsigned words = 0;
    int in = 0;
    for (; *s; ++s) {
        const int sp = *s == ' ' || *s == '\n' || *s == '\t';
        if (!sp && !in) ++words;
        in = !sp;
    }
    return words;
}

#define HASH_SLOTS 1024
static uint64_t keys[HASH_SLOTS];
static uint64_t hash_work(void) {
    for (unsigned i = 0; i < HASH_SLOTS; ++i) keys[i] = 0;
    uint64_t hits = 0;
    for (unsigned i = 0; i < 700; ++i) {
        const uint64_t k = (rng() % 900) + 1;
        unsigned slot = (unsigned)((k * 0x9E3779B97F4A7C15ull) >> 54);
        while (keys[slot] && keys[slot] != k) slot = (slot + 1) % HASH_SLOTS;
        if (keys[slot] == k) ++hits;
        keys[slot] = k;
    }
    return hits;
}

static uint8_t buffer[4096];
static int32_t numbers[2048];
static char text[2048];

int main(void) {
    uint64_t sum = 0;
    for (int r = 0; r < ROUNDS; ++r) {
        for (unsigned i = 0; i < sizeof buffer; ++i) buffer[i] = (uint8_t)rng();
        sum = sum * 33 + crc32(buffer, sizeof buffer);
        for (unsigned i = 0; i < 2048; ++i) numbers[i] = (int32_t)rng();
        sort(numbers, 0, 2047);
        for (unsigned i = 1; i < 2048; ++i)
            if (numbers[i - 1] > numbers[i]) sum ^= 0xBAD;
        sum += (uint32_t)numbers[1024];
        for (int i = 0; i < N; ++i)
            for (int j = 0; j < N; ++j) {
                ma[i][j] = (int64_t)(rng() % 1000) - 500;
                mb[i][j] = (int64_t)(rng() % 1000) - 500;
            }
        sum = sum * 7 + matmul();
        for (unsigned i = 0; i + 1 < sizeof text; ++i) text[i] = (rng() % 5) ? (char)('a' + rng() % 26) : ' ';
        text[sizeof text - 1] = 0;
        sum += count_words(text);
        sum += hash_work();
    }
    put_str("bench: checksum ");
    put_hex(sum);
    put_str("\n");
    return 0;
}
