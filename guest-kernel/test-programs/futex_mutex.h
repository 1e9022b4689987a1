/* A process-shared mutex on a bare futex word, so that mtstress exercises the
 * guest kernel's futex path (FUTEX_WAIT/FUTEX_WAKE, futex(2)) rather than
 * glibc's pthread_mutex fast paths.
 *
 * States: 0 unlocked, 1 locked with no waiters, 2 locked and maybe waiters.
 * This is the three-state design of U. Drepper, "Futexes Are Tricky" (2011),
 * section 6 ("Mutex, Take 2"): the unlock path only makes a FUTEX_WAKE system
 * call when someone may be sleeping. The word lives in MAP_SHARED memory and
 * is used by several processes, so the non-private futex operations are used
 * (futex(2): FUTEX_PRIVATE_FLAG only for a single process). */
#ifndef DISCO_TEST_FUTEX_MUTEX_H
#define DISCO_TEST_FUTEX_MUTEX_H

#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

struct futex_mutex {
    _Atomic int word;
};

static inline long futex_call(_Atomic int* word, int op, int val) {
    return syscall(SYS_futex, (int*)word, op, val, NULL, NULL, 0);
}

static inline void futex_mutex_lock(struct futex_mutex* m) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&m->word, &expected, 1)) return;
    /* Contended: announce a waiter (state 2) before sleeping, so that the
     * holder's unlock knows to wake us. FUTEX_WAIT returns at once if the word
     * is no longer 2, which closes the race with an unlock in between. */
    if (expected != 2) expected = atomic_exchange(&m->word, 2);
    while (expected != 0) {
        futex_call(&m->word, FUTEX_WAIT, 2);
        expected = atomic_exchange(&m->word, 2);
    }
}

static inline void futex_mutex_unlock(struct futex_mutex* m) {
    if (atomic_fetch_sub(&m->word, 1) != 1) {
        atomic_store(&m->word, 0);
        futex_call(&m->word, FUTEX_WAKE, 1);
    }
}

#endif
