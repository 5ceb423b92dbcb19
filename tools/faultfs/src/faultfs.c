/* faultfs: an LD_PRELOAD shim that gives one directory's files the faults of a real disk, for
 * tests that run the real agent or outbox without root. See lib.rs for the Rust side.
 *
 * Environment (read at every call, so a test sets it once when it starts the process):
 *   FAULTFS_DIR   only files whose path starts with this are touched (none when unset)
 *   FAULTFS_CTL   a directory of flag files the test creates and removes while the process runs:
 *                   enospc      every write, pwrite, ftruncate and fallocate fails with ENOSPC
 *                   stall_sync  fsync and fdatasync wait until the flag is removed; the shim
 *                               creates `stalled` in FAULTFS_CTL when one starts waiting
 *   FAULTFS_UNDO  an undo log: before each write or truncate the bytes and size it replaces, and
 *                 after each fsync/fdatasync a sync mark (unlink counts as one: nothing of the old
 *                 file can be undone onto a new one of that name). Replaying it backwards from a
 *                 point discards exactly the writes a power cut at that point could lose.
 *
 * Files ending in -shm are never logged: SQLite's shared memory index is rebuilt after a crash.
 * Only libc calls are used inside (no stdio), so the shim never calls itself.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

typedef ssize_t (*write_fn)(int, const void *, size_t);

static pthread_mutex_t undo_lock = PTHREAD_MUTEX_INITIALIZER;
static int undo_fd = -1;
static int undo_opened = 0;

#define REAL(name, type) ((type)real_symbol(#name))

static void *real_symbol(const char *name) {
  void *f = dlsym(RTLD_NEXT, name);
  if (!f) abort();
  return f;
}

/* The path behind fd, and whether it is one of ours. */
static int watched_fd(int fd, char *path, size_t cap) {
  const char *dir = getenv("FAULTFS_DIR");
  if (!dir || !*dir) return 0;
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, cap - 1);
  if (n <= 0) return 0;
  path[n] = 0;
  return strncmp(path, dir, strlen(dir)) == 0;
}

static int watched_path(const char *path) {
  const char *dir = getenv("FAULTFS_DIR");
  return dir && *dir && path && strncmp(path, dir, strlen(dir)) == 0;
}

static int is_shm(const char *path) {
  size_t n = strlen(path);
  return n >= 4 && strcmp(path + n - 4, "-shm") == 0;
}

static int flag(const char *name) {
  const char *ctl = getenv("FAULTFS_CTL");
  if (!ctl || !*ctl) return 0;
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", ctl, name);
  return access(path, F_OK) == 0;
}

static void touch_ctl(const char *name) {
  const char *ctl = getenv("FAULTFS_CTL");
  if (!ctl || !*ctl) return;
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", ctl, name);
  int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd >= 0) close(fd);
}

/* Opened on first use; returns -1 when no undo log is wanted. Call with undo_lock held. */
static int undo_log(void) {
  if (!undo_opened) {
    undo_opened = 1;
    const char *path = getenv("FAULTFS_UNDO");
    if (path && *path) undo_fd = open(path, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
  }
  return undo_fd;
}

static void put_all(int fd, const void *buf, size_t n) {
  write_fn real_write = REAL(write, write_fn);
  const char *p = buf;
  while (n > 0) {
    ssize_t k = real_write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) abort(); /* a test tool: a lost undo record would make the test lie */
    p += k;
    n -= (size_t)k;
  }
}

/* Record layout (little endian, as written by this machine):
 *   u8 kind ('W' write, 'T' truncate, 'S' sync) | u32 path length | path
 *   | u64 offset | u64 size before | u64 saved length | saved bytes
 * For 'W' the offset is where the write starts, for 'T' the new length; the saved bytes are
 * what the file held from the offset on (up to the write's length, or to the old end). */
static void put_record(int log, char kind, const char *path, uint64_t offset, uint64_t size_before,
                       const void *saved, uint64_t saved_len) {
  uint32_t path_len = (uint32_t)strlen(path);
  char head[1 + 4];
  head[0] = kind;
  memcpy(head + 1, &path_len, 4);
  put_all(log, head, sizeof head);
  put_all(log, path, path_len);
  uint64_t nums[3] = {offset, size_before, saved_len};
  put_all(log, nums, sizeof nums);
  if (saved_len) put_all(log, saved, saved_len);
}

/* Saves what [offset, offset + len) of the file holds now (clipped to its end) as a `kind`
 * record. */
static void save_range(int log, char kind, int fd, const char *path, uint64_t offset,
                       uint64_t len) {
  struct stat st;
  if (fstat(fd, &st) != 0) abort();
  uint64_t size = (uint64_t)st.st_size;
  uint64_t end = offset + len < size ? offset + len : size;
  uint64_t n = end > offset ? end - offset : 0;
  char *saved = n ? malloc(n) : NULL;
  if (n && !saved) abort();
  uint64_t got = 0;
  int rd = fd;
  while (got < n) {
    ssize_t k = pread(rd, saved + got, n - got, (off_t)(offset + got));
    if (k < 0 && errno == EBADF && rd == fd) {
      rd = open(path, O_RDONLY | O_CLOEXEC); /* a write-only descriptor */
      if (rd < 0) abort();
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) abort();
    got += (uint64_t)k;
  }
  if (rd != fd) close(rd);
  put_record(log, kind, path, offset, size, saved, n);
  free(saved);
}

/* `offset` of a plain write(): wherever the descriptor stands (the end, with O_APPEND). */
#define AT_CURRENT UINT64_MAX

static uint64_t current_offset(int fd, uint64_t size) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && (fl & O_APPEND)) return size;
  off_t at = lseek(fd, 0, SEEK_CUR);
  return at < 0 ? 0 : (uint64_t)at;
}

/* What each writing call does first: fail when the disk is "full" and the call needs space,
 * log the undo record when asked. Returns 0 to go on (with undo_lock held if *locked), -1 with
 * errno set to fail. */
static int before_write(int fd, uint64_t offset, uint64_t len, int is_truncate, int *locked) {
  char path[4096];
  *locked = 0;
  if (!watched_fd(fd, path, sizeof path)) return 0;
  struct stat st;
  if (fstat(fd, &st) != 0) abort();
  uint64_t size = (uint64_t)st.st_size;
  /* A truncate that shrinks frees space, so it works on a full disk. */
  int needs_space = !is_truncate || offset > size;
  if (needs_space && flag("enospc")) {
    errno = ENOSPC;
    return -1;
  }
  if (is_shm(path)) return 0;
  pthread_mutex_lock(&undo_lock);
  int log = undo_log();
  if (log < 0 || fd == log) {
    pthread_mutex_unlock(&undo_lock);
    return 0;
  }
  *locked = 1;
  /* Only now, for a file whose writes are logged: every other write() goes straight through. */
  if (offset == AT_CURRENT) offset = current_offset(fd, size);
  if (is_truncate) {
    save_range(log, 'T', fd, path, offset, size > offset ? size - offset : 0);
  } else {
    save_range(log, 'W', fd, path, offset, len);
  }
  return 0;
}

static void after_write(int locked) {
  if (locked) pthread_mutex_unlock(&undo_lock);
}

#define WRAP_WRITE(name, offset_expr, call_args, params)                  \
  ssize_t name params {                                                   \
    int locked;                                                           \
    if (before_write(fd, (offset_expr), n, 0, &locked) != 0) return -1;   \
    ssize_t r = REAL(name, typeof(&name))call_args;                       \
    int e = errno;                                                        \
    after_write(locked);                                                  \
    errno = e;                                                            \
    return r;                                                             \
  }

WRAP_WRITE(write, AT_CURRENT, (fd, buf, n), (int fd, const void *buf, size_t n))
WRAP_WRITE(pwrite, (uint64_t)at, (fd, buf, n, at), (int fd, const void *buf, size_t n, off_t at))
WRAP_WRITE(pwrite64, (uint64_t)at, (fd, buf, n, at),
           (int fd, const void *buf, size_t n, off64_t at))

#define WRAP_TRUNCATE(name, len_type)                                     \
  int name(int fd, len_type len) {                                        \
    int locked;                                                           \
    if (before_write(fd, (uint64_t)len, 0, 1, &locked) != 0) return -1;   \
    int r = REAL(name, typeof(&name))(fd, len);                           \
    int e = errno;                                                        \
    after_write(locked);                                                  \
    errno = e;                                                            \
    return r;                                                             \
  }

WRAP_TRUNCATE(ftruncate, off_t)
WRAP_TRUNCATE(ftruncate64, off64_t)

/* Space reservations: fail on a full disk; they change no byte a reader sees, so no undo. */
int fallocate(int fd, int mode, off_t at, off_t len) {
  char path[4096];
  if (watched_fd(fd, path, sizeof path) && flag("enospc")) {
    errno = ENOSPC;
    return -1;
  }
  return REAL(fallocate, typeof(&fallocate))(fd, mode, at, len);
}

int posix_fallocate(int fd, off_t at, off_t len) {
  char path[4096];
  if (watched_fd(fd, path, sizeof path) && flag("enospc")) return ENOSPC;
  return REAL(posix_fallocate, typeof(&posix_fallocate))(fd, at, len);
}

/* A sync makes every earlier write to the file durable: stall first if asked, then sync and
 * mark, under the lock so that no write of another thread slips between the two. */
static int sync_via(const char *name, int fd) {
  char path[4096];
  int ours = watched_fd(fd, path, sizeof path);
  if (ours && flag("stall_sync")) {
    touch_ctl("stalled");
    struct timespec tick = {0, 10 * 1000 * 1000};
    while (flag("stall_sync")) nanosleep(&tick, NULL);
  }
  if (!ours || is_shm(path)) return ((int (*)(int))real_symbol(name))(fd);
  pthread_mutex_lock(&undo_lock);
  int r = ((int (*)(int))real_symbol(name))(fd);
  int e = errno;
  int log = undo_log();
  if (r == 0 && log >= 0) put_record(log, 'S', path, 0, 0, NULL, 0);
  pthread_mutex_unlock(&undo_lock);
  errno = e;
  return r;
}

int fsync(int fd) { return sync_via("fsync", fd); }
int fdatasync(int fd) { return sync_via("fdatasync", fd); }

int unlink(const char *path) {
  int r = REAL(unlink, typeof(&unlink))(path);
  if (r == 0 && watched_path(path) && !is_shm(path)) {
    int e = errno;
    pthread_mutex_lock(&undo_lock);
    int log = undo_log();
    if (log >= 0) put_record(log, 'S', path, 0, 0, NULL, 0);
    pthread_mutex_unlock(&undo_lock);
    errno = e;
  }
  return r;
}
