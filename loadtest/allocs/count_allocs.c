/* Counts heap allocations of a process: LD_PRELOAD=./count_allocs.so.
 * `kill -USR2 <pid>` appends "<allocations> <bytes>" (totals so far) to
 * $COUNT_ALLOCS_OUT (default /tmp/count_allocs.txt). Used by
 * loadtest/scripts/allocs.sh for allocations per request; frees are not
 * counted (every allocation is, whoever frees it). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>

static atomic_ulong count, bytes;
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);

/* dlsym may itself call calloc: serve it from a small static buffer. */
static char early[4096];
static size_t early_used;

static void *early_alloc(size_t n) {
    void *p = early + early_used;
    early_used += (n + 15) & ~(size_t)15;
    return p;
}

static void dump(int sig) {
    (void)sig;
    const char *path = getenv("COUNT_ALLOCS_OUT");
    int fd = open(path ? path : "/tmp/count_allocs.txt", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return;
    char line[64];
    int n = snprintf(line, sizeof line, "%lu %lu\n", atomic_load(&count), atomic_load(&bytes));
    if (n > 0) write(fd, line, (size_t)n);
    close(fd);
}

__attribute__((constructor)) static void init(void) {
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    signal(SIGUSR2, dump);
}

static void counted(size_t n) {
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&bytes, n, memory_order_relaxed);
}

void *malloc(size_t n) {
    if (!real_malloc) return early_alloc(n);
    counted(n);
    return real_malloc(n);
}

void *calloc(size_t a, size_t b) {
    if (!real_calloc) { void *p = early_alloc(a * b); memset(p, 0, a * b); return p; }
    counted(a * b);
    return real_calloc(a, b);
}

void *realloc(void *p, size_t n) {
    counted(n);
    return real_realloc(p, n);
}

int posix_memalign(void **p, size_t align, size_t n) {
    counted(n);
    return real_posix_memalign(p, align, n);
}

void *aligned_alloc(size_t align, size_t n) {
    counted(n);
    return real_aligned_alloc(align, n);
}

void free(void *p) {
    static void (*real_free)(void *);
    if ((char *)p >= early && (char *)p < early + sizeof early) return;
    if (!real_free) real_free = dlsym(RTLD_NEXT, "free");
    real_free(p);
}
