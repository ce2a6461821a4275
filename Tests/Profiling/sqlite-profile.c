/*
 * Where a process's SQLite time goes, statement by statement: a library preloaded into a
 * qdwallet command (or any program linked to the system's libsqlite3) that times each
 * sqlite3_step and sqlite3_exec by its statement's text, and each pread, pwrite and fdatasync
 * by the kind of file it went to (the database, its write-ahead log, SQLite's temporary files).
 * At exit it writes one line a statement or call: seconds, calls, text. Not part of the build.
 *
 *   cc -O2 -shared -fPIC -o /tmp/sqlite-profile.so Tests/Profiling/sqlite-profile.c -ldl
 *   LD_PRELOAD=/tmp/sqlite-profile.so SQLITE_PROFILE_OUT=/tmp/night.txt \
 *       qdwallet jobs run nightly-billing --date 2026-11-27 --db CITY/city.sqlite --jobs-dir CITY/Jobs
 *   sort -rn /tmp/night.txt | head -40
 *
 * A step's time holds the file calls it made; lines whose text starts with `~` are those
 * calls alone. The counts are of steps: a SELECT that returns 100 rows is 101 calls.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

typedef struct sqlite3_stmt sqlite3_stmt;
typedef struct sqlite3 sqlite3;

#define SLOTS 8192
#define TEXT_MAX 400
static struct { char *text; double seconds; long calls; } slots[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void add(const char *text, double seconds) {
    if (!text) text = "?";
    unsigned long h = 5381;
    for (int i = 0; text[i] && i < TEXT_MAX; i++) h = h * 33 + (unsigned char)text[i];
    pthread_mutex_lock(&lock);
    unsigned long i = h % SLOTS;
    for (unsigned long n = 0; slots[i].text && strncmp(slots[i].text, text, TEXT_MAX) && n < SLOTS; n++) i = (i + 1) % SLOTS;
    if (!slots[i].text) slots[i].text = strndup(text, TEXT_MAX);
    if (!strncmp(slots[i].text, text, TEXT_MAX)) { slots[i].seconds += seconds; slots[i].calls++; }
    pthread_mutex_unlock(&lock);
}

__attribute__((destructor)) static void report(void) {
    const char *path = getenv("SQLITE_PROFILE_OUT");
    FILE *out = fopen(path ? path : "/tmp/sqlite-profile.txt", "w");
    if (!out) return;
    for (int i = 0; i < SLOTS; i++) {
        if (!slots[i].text) continue;
        fprintf(out, "%.3f\t%ld\t", slots[i].seconds, slots[i].calls);
        for (const char *c = slots[i].text; *c; c++) fputc(*c == '\n' || *c == '\t' ? ' ' : *c, out);
        fputc('\n', out);
    }
    fclose(out);
}

#define REAL(type, name, ...) static type (*real)(__VA_ARGS__); if (!real) real = dlsym(RTLD_NEXT, name)

int sqlite3_step(sqlite3_stmt *statement) {
    static const char *(*sql)(sqlite3_stmt *);
    if (!sql) sql = dlsym(RTLD_NEXT, "sqlite3_sql");
    REAL(int, "sqlite3_step", sqlite3_stmt *);
    double start = now();
    int rc = real(statement);
    add(sql(statement), now() - start);
    return rc;
}

typedef int (*exec_callback)(void *, int, char **, char **);
int sqlite3_exec(sqlite3 *db, const char *text, exec_callback callback, void *argument, char **error) {
    REAL(int, "sqlite3_exec", sqlite3 *, const char *, exec_callback, void *, char **);
    double start = now();
    int rc = real(db, text, callback, argument, error);
    add(text, now() - start);
    return rc;
}

/* The kind of file each descriptor was opened on, from its name. */
static const char *kinds[65536];
static const char *kind_of(const char *path) {
    size_t n = path ? strlen(path) : 0;
    if (n > 4 && !strcmp(path + n - 4, "-wal")) return "log";
    if (n > 4 && !strcmp(path + n - 4, "-shm")) return "shm";
    if (path && strstr(path, "etilqs")) return "temporary";
    return "database or other";
}
static const char *kind(int fd) { return fd >= 0 && fd < 65536 && kinds[fd] ? kinds[fd] : "unknown"; }
static int opened(int fd, const char *path) { if (fd >= 0 && fd < 65536) kinds[fd] = kind_of(path); return fd; }

int open64(const char *path, int flags, ...) {
    REAL(int, "open64", const char *, int, ...);
    va_list a; va_start(a, flags); int mode = va_arg(a, int); va_end(a);
    return opened(real(path, flags, mode), path);
}
int open(const char *path, int flags, ...) {
    REAL(int, "open", const char *, int, ...);
    va_list a; va_start(a, flags); int mode = va_arg(a, int); va_end(a);
    return opened(real(path, flags, mode), path);
}

static void add_file(const char *call, int fd, size_t size, double seconds) {
    char text[80];
    snprintf(text, sizeof text, "~%s %s%s", call, kind(fd), size && size < 100 ? " (header)" : "");
    add(text, seconds);
}
ssize_t pread64(int fd, void *buffer, size_t size, off_t offset) {
    REAL(ssize_t, "pread64", int, void *, size_t, off_t);
    double start = now();
    ssize_t rc = real(fd, buffer, size, offset);
    add_file("pread", fd, size, now() - start);
    return rc;
}
ssize_t pwrite64(int fd, const void *buffer, size_t size, off_t offset) {
    REAL(ssize_t, "pwrite64", int, const void *, size_t, off_t);
    double start = now();
    ssize_t rc = real(fd, buffer, size, offset);
    add_file("pwrite", fd, size, now() - start);
    return rc;
}
int fdatasync(int fd) {
    REAL(int, "fdatasync", int);
    double start = now();
    int rc = real(fd);
    add_file("fdatasync", fd, 0, now() - start);
    return rc;
}
int fsync(int fd) {
    REAL(int, "fsync", int);
    double start = now();
    int rc = real(fd);
    add_file("fsync", fd, 0, now() - start);
    return rc;
}
