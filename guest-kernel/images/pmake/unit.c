/* One compilation unit of the footprint benchmark's parallel compile
 * (Makefile). Every unit defines unit_<N>(), a little of everything a
 * compiler works at: a hash table, a sort, a tokenizer and an expression
 * evaluator, string formatting. Unit 1 also defines main(), which runs every
 * unit that was built and prints one checksum. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define UNIT_FN CAT(unit_, UNIT)

struct entry {
    char key[24];
    uint64_t value;
    struct entry *next;
};

struct table {
    struct entry *buckets[257];
    size_t count;
};

static uint64_t hash_string(const char *s) {
    uint64_t h = 1469598103934665603ull + UNIT;
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static struct entry *table_find(struct table *t, const char *key) {
    for (struct entry *e = t->buckets[hash_string(key) % 257]; e; e = e->next)
        if (strcmp(e->key, key) == 0) return e;
    return NULL;
}

static void table_add(struct table *t, const char *key, uint64_t value) {
    struct entry *e = table_find(t, key);
    if (e) {
        e->value += value;
        return;
    }
    e = calloc(1, sizeof *e);
    if (!e) abort();
    snprintf(e->key, sizeof e->key, "%s", key);
    e->value = value;
    uint64_t b = hash_string(key) % 257;
    e->next = t->buckets[b];
    t->buckets[b] = e;
    t->count++;
}

static void table_free(struct table *t) {
    for (int i = 0; i < 257; i++) {
        struct entry *e = t->buckets[i];
        while (e) {
            struct entry *next = e->next;
            free(e);
            e = next;
        }
        t->buckets[i] = NULL;
    }
}

static void sort_values(uint64_t *v, int n) {
    /* Shell sort with Ciura's gaps. */
    static const int gaps[] = {701, 301, 132, 57, 23, 10, 4, 1};
    for (unsigned g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        int gap = gaps[g];
        for (int i = gap; i < n; i++) {
            uint64_t x = v[i];
            int j = i;
            for (; j >= gap && v[j - gap] > x; j -= gap) v[j] = v[j - gap];
            v[j] = x;
        }
    }
}

enum token_kind { T_NUM, T_PLUS, T_MINUS, T_STAR, T_SLASH, T_LPAREN, T_RPAREN, T_END, T_BAD };

struct lexer {
    const char *p;
    enum token_kind kind;
    int64_t num;
};

static void next_token(struct lexer *lx) {
    while (*lx->p == ' ') lx->p++;
    char c = *lx->p;
    if (c == '\0') {
        lx->kind = T_END;
        return;
    }
    lx->p++;
    switch (c) {
    case '+': lx->kind = T_PLUS; return;
    case '-': lx->kind = T_MINUS; return;
    case '*': lx->kind = T_STAR; return;
    case '/': lx->kind = T_SLASH; return;
    case '(': lx->kind = T_LPAREN; return;
    case ')': lx->kind = T_RPAREN; return;
    default: break;
    }
    if (c >= '0' && c <= '9') {
        int64_t n = c - '0';
        while (*lx->p >= '0' && *lx->p <= '9') n = n * 10 + (*lx->p++ - '0');
        lx->kind = T_NUM;
        lx->num = n;
        return;
    }
    lx->kind = T_BAD;
}

static int64_t parse_sum(struct lexer *lx);

static int64_t parse_atom(struct lexer *lx) {
    if (lx->kind == T_NUM) {
        int64_t n = lx->num;
        next_token(lx);
        return n;
    }
    if (lx->kind == T_MINUS) {
        next_token(lx);
        return -parse_atom(lx);
    }
    if (lx->kind == T_LPAREN) {
        next_token(lx);
        int64_t n = parse_sum(lx);
        if (lx->kind == T_RPAREN) next_token(lx);
        return n;
    }
    next_token(lx);
    return 0;
}

static int64_t parse_product(struct lexer *lx) {
    int64_t n = parse_atom(lx);
    while (lx->kind == T_STAR || lx->kind == T_SLASH) {
        enum token_kind op = lx->kind;
        next_token(lx);
        int64_t m = parse_atom(lx);
        n = op == T_STAR ? n * m : (m ? n / m : 0);
    }
    return n;
}

static int64_t parse_sum(struct lexer *lx) {
    int64_t n = parse_product(lx);
    while (lx->kind == T_PLUS || lx->kind == T_MINUS) {
        enum token_kind op = lx->kind;
        next_token(lx);
        int64_t m = parse_product(lx);
        n = op == T_PLUS ? n + m : n - m;
    }
    return n;
}

static int64_t evaluate(const char *text) {
    struct lexer lx = {text, T_END, 0};
    next_token(&lx);
    return parse_sum(&lx);
}

uint64_t UNIT_FN(void) {
    struct table t = {{0}, 0};
    char key[24], expr[96];
    uint64_t values[512];
    for (int i = 0; i < 512; i++) {
        snprintf(key, sizeof key, "k%d", (i * 37 + UNIT) % 300);
        table_add(&t, key, (uint64_t)i * UNIT);
        snprintf(expr, sizeof expr, "(%d + %d) * %d - %d / (%d + 1)", i, UNIT, i % 7, i * 3, UNIT);
        values[i] = (uint64_t)evaluate(expr) ^ hash_string(key);
    }
    sort_values(values, 512);
    uint64_t sum = t.count;
    for (int i = 0; i < 512; i++) sum = sum * 31 + values[i];
    table_free(&t);
    return sum;
}

#if UNIT == 1
/* Weak: `make UNITS='1 2 3'` builds only some units; the others are null. */
#define DECLARE(n) uint64_t unit_##n(void) __attribute__((weak));
DECLARE(1) DECLARE(2) DECLARE(3) DECLARE(4) DECLARE(5) DECLARE(6)
DECLARE(7) DECLARE(8) DECLARE(9) DECLARE(10) DECLARE(11) DECLARE(12)

int main(void) {
    uint64_t (*const units[])(void) = {unit_1, unit_2, unit_3, unit_4,  unit_5,  unit_6,
                                       unit_7, unit_8, unit_9, unit_10, unit_11, unit_12};
    uint64_t sum = 0;
    unsigned built = 0;
    for (unsigned i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (!units[i]) continue;
        sum = sum * 1000003 + units[i]();
        built++;
    }
    printf("pmake: %u units, checksum %016llx\n", built, (unsigned long long)sum);
    return 0;
}
#endif
