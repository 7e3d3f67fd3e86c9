/*
 * muster-cc: the native launcher of `muster build` and `muster cc` (issue 13, design §5).
 *
 * It sends its argv, cwd, environment, umask and whether stderr is a terminal to the compile
 * service over a Unix socket (src/cli/cc/shim-protocol.ts is the protocol: frames are u32
 * big-endian length L, kind byte 1, L-1 bytes of UTF-8 JSON), then does what the service says:
 * `exec` a compiler, `run`/`cpp` one and report `ran`, or `exit` with the stderr it is given.
 * C99 + POSIX, one process, no NSS calls: it costs about what /bin/true costs, where a Node
 * launcher would cost a Node start per compile.
 *
 * Names. Called as `muster-cc` (launcher form: `muster-cc gcc -c x.c`, `muster cc gcc …`), the
 * compiler is argv[1], used as given. Called by any other name (masquerade: a symlink named `gcc`
 * in a directory put first on PATH), the compiler is argv[0]'s base name. `invokedAs` is that
 * compiler.
 *
 * Socket. $MUSTER_CC_SOCKET when set (muster build); else <dir>/cc.sock with <dir> =
 * $XDG_RUNTIME_DIR/muster when that is absolute, else /tmp/muster-<uid>. That per-user dir must be
 * a directory (lstat: not a symlink) owned by the user without group or other permission bits,
 * or the shim does not use it (nor writes its log there). When the per-user socket does not
 * answer, the shim starts `<pkg>/bin/muster cc --serve --detach` (<pkg> from its own realpath,
 * <pkg>/dist/native/muster-cc; stdio on /dev/null so the daemon holds none of make's pipes) and
 * polls connect() every 20 ms for up to 2 s; it stops waiting early when that process exits
 * non-zero. One shim starts it at a time: the starter holds a POSIX record lock (fcntl F_SETLK,
 * released by the kernel when the holder dies) on cc-start.lock in the dir while it starts and
 * waits; the shims that find the lock taken (`make -j16` with no service: 15 of them) do not
 * start anything, they poll connect() for up to 3 s, and fall back at once when the starter left
 * cc-start-failed. A failed start leaves cc-start-failed in the dir, and for 10 s after it
 * compiles fall back without trying again. `muster build`'s native front end (build-front.c)
 * starts the service under the same lock, and marks a failed start the same way. With $MUSTER_CC_SOCKET nothing is started: the build
 * that set it owns the service. The shim never removes a socket: a stale one is the service's to
 * clear (src/cli/cc/socket-path.ts, only when connecting is refused).
 *
 * Fallback: the shim runs the real compiler itself, execv() of the compiler named as given when
 * it has a slash, else the first executable of that name on PATH that is neither in
 * $MUSTER_CC_MASQUERADE nor the shim itself (by realpath); argv[0] becomes the path found, so a
 * relocatable compiler finds its own installation rather than the masquerade directory, and the
 * masquerade directory leaves its PATH (so nothing it starts comes back to the shim). Before
 * that it appends "<unix-seconds> <reason>\n" to cc-fallbacks.log in the socket directory
 * (O_APPEND, 0600, O_NOFOLLOW; failures ignored), which the service counts at its next start.
 *
 * When the shim falls back (the rule, point by point; the reasons are SHIM_FALLBACK_REASONS):
 *   - before talking: an argument, the cwd, an environment entry or the compiler name is not
 *     valid UTF-8 (`not-utf8`: JSON cannot carry it, so the service is not even asked), the cwd
 *     is gone (`no-cwd`), the hello is over the frame limit (`too-large`), the socket path does
 *     not fit (`socket-path-too-long`), the per-user dir is unsafe (`unsafe-socket-dir`), nothing
 *     answers (`no-service`, or `service-unavailable` after a failed start);
 *   - while talking, before any `run` child has run: EOF (`eof`), a read or write error
 *     (`socket-error`), a bad length or frame kind (`bad-frame`), bad JSON, a field missing or
 *     out of place, an unknown message type (`bad-message`), an `exec` whose execve fails
 *     (`exec-failed`), a `run`/`cpp` whose program cannot be spawned (`spawn-failed`).
 *     A `cpp` child does not count as a run: it only wrote a temporary file the service reads,
 *     so compiling for real afterwards is right;
 *   - once a `run` child has run (the user's compile happened: its outputs and stderr are out),
 *     the shim never runs the compiler again: any of the failures above makes it log
 *     "<reason>-after-run" and end as that child ended (its exit code, or its signal re-raised).
 *
 * Stderr. A `run` child's stderr goes through a pipe: the shim writes it to its own fd 2 as it
 * arrives and keeps a copy for `ran`. A `cpp` child's stderr is only captured, not shown: the
 * service decides what the user sees (a warning of the preprocessing pass is printed again by
 * the local compile the service then asks for). The copy stops at SHIM_MAX_CAPTURE_BYTES (so
 * that `ran` fits in a frame); the service takes a stderr of exactly that length as truncated.
 * stdout is inherited. `exit` carries stderr the shim writes as is (the service sends none
 * after a `run`, whose stderr the user has already seen).
 *
 * Signals keep their default dispositions (make signals the whole process group, the child
 * gets them too); SIGPIPE on the socket is avoided with MSG_NOSIGNAL, not by ignoring it (an
 * ignored signal would be inherited by the compiler); an inherited SIGCHLD = SIG_IGN is reset
 * before a `run`, or the child's status would be lost. Every `run`/`cpp` child is waited for,
 * and its end, not the pipe's EOF, ends the capture (a daemon it started may keep the pipe). A
 * `--detach` start still running when the shim stops waiting for the socket is left to init.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
/* realpath(3) is XSI. */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif
#ifndef SOCK_CLOEXEC
#define SOCK_CLOEXEC 0
#endif
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

extern char **environ;

#define PROTOCOL_VERSION 1
#define FRAME_JSON 1
/* SHIM_MAX_FRAME_BYTES and SHIM_MAX_CAPTURE_BYTES of shim-protocol.ts. */
#define MAX_FRAME ((size_t)64 * 1024 * 1024)
#define MAX_CAPTURE ((MAX_FRAME - 64 * 1024) / 4 * 3)
#define MAX_LIST 100000
#define MAX_TOKEN 200
/*
 * How long the shim that starts the service waits for its socket: a Node start on a loaded
 * machine takes seconds, and every compile of the build waits behind this one start anyway.
 */
#define START_WAIT_MS 10000
/* How long a shim that finds another one starting the service waits for the socket. */
#define START_OTHER_WAIT_MS (START_WAIT_MS + 2000)
#define START_POLL_MS 20
#define SELF_NAME "muster-cc"
#define SOCKET_NAME "cc.sock"
#define LOG_NAME "cc-fallbacks.log"
#define START_FAILED_NAME "cc-start-failed"
#define START_LOCK_NAME "cc-start.lock"
#define START_BACKOFF_S 10

static struct {
  char **argv;
  const char *compiler;   /* invokedAs */
  char **compiler_argv;   /* what the real compiler gets (argv[0] replaced when found on PATH) */
  int masquerade;
  char self[PATH_MAX];    /* the shim's realpath, "" when unknown */
  char dir[PATH_MAX];     /* the socket directory, "" when none */
  int dir_per_user;       /* dir is the per-user one: check it before writing there */
  int ran;                /* a `run` child has run */
  int ran_status;         /* its wait status */
} g;

/* ---- small helpers ---------------------------------------------------------------------- */

struct buf {
  char *p;
  size_t n, cap;
};

static int buf_put(struct buf *b, const void *data, size_t n) {
  if (n > MAX_FRAME + 64 - b->n) return -1;
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, data, n);
  b->n += n;
  return 0;
}

static int buf_puts(struct buf *b, const char *s) { return buf_put(b, s, strlen(s)); }

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      /* A non-blocking stderr (some terminals and tools set it): wait until it takes more. */
      struct pollfd out = {fd, POLLOUT, 0};
      if (poll(&out, 1, -1) >= 0 || errno == EINTR) continue;
      return -1;
    }
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* 0 read, 1 EOF, -1 error. */
static int read_all(int fd, char *p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) return 1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static long long now_usec(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

static int utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i], cp, min;
    size_t len;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return 0;
    }
    if (n - i < len) return 0;
    for (size_t k = 1; k < len; k++) {
      unsigned d = s[i + k];
      if ((d & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += len;
  }
  return 1;
}

static int str_utf8(const char *s) { return utf8_valid((const unsigned char *)s, strlen(s)); }

static int put_json_string(struct buf *b, const char *s) {
  static const char hex[] = "0123456789abcdef";
  if (buf_put(b, "\"", 1)) return -1;
  const char *run = s;
  for (const char *p = s;; p++) {
    unsigned char c = (unsigned char)*p;
    if (c != 0 && c != '"' && c != '\\' && c >= 0x20) continue;
    if (buf_put(b, run, (size_t)(p - run))) return -1;
    if (c == 0) break;
    char esc[6] = {'\\', (char)c, 0, 0, 0, 0};
    size_t len = 2;
    if (c < 0x20) {
      esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
      len = 6;
    }
    if (buf_put(b, esc, len)) return -1;
    run = p + 1;
  }
  return buf_put(b, "\"", 1);
}

static int put_int(struct buf *b, long long v) {
  char num[32];
  snprintf(num, sizeof num, "%lld", v);
  return buf_puts(b, num);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int put_base64(struct buf *b, const unsigned char *s, size_t n) {
  char out[4];
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)s[i] << 16;
    if (i + 1 < n) v |= (unsigned)s[i + 1] << 8;
    if (i + 2 < n) v |= s[i + 2];
    out[0] = b64[v >> 18], out[1] = b64[(v >> 12) & 63];
    out[2] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
    out[3] = i + 2 < n ? b64[v & 63] : '=';
    if (buf_put(b, out, 4)) return -1;
  }
  return 0;
}

static int b64_value(char c) {
  const char *p = c ? strchr(b64, c) : NULL;
  return p ? (int)(p - b64) : -1;
}

/* Strict (padded, no whitespace) base64 decode in place; returns the length or -1. */
static long long base64_decode(char *s) {
  size_t n = strlen(s), out = 0;
  if (n % 4) return -1;
  for (size_t i = 0; i < n; i += 4) {
    int v[4], pad = 0;
    for (int k = 0; k < 4; k++) {
      if (s[i + k] == '=' && i + 4 == n && k >= 2 && (k == 3 || s[i + 3] == '=')) {
        v[k] = 0, pad++;
      } else if ((v[k] = b64_value(s[i + k])) < 0) {
        return -1;
      }
    }
    unsigned w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
    s[out++] = (char)(w >> 16);
    if (pad < 2) s[out++] = (char)((w >> 8) & 255);
    if (pad < 1) s[out++] = (char)(w & 255);
  }
  return (long long)out;
}

/* ---- fallback ----------------------------------------------------------------------------- */

/* 1 when dir is a directory owned by us with no group/other bits, 0 when missing, -1 unsafe. */
static int dir_state(const char *dir) {
  struct stat st;
  if (lstat(dir, &st) != 0) return errno == ENOENT ? 0 : -1;
  if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077) != 0) return -1;
  return 1;
}

static void log_fallback(const char *reason, const char *suffix) {
  char path[PATH_MAX + sizeof LOG_NAME + 1], line[128];
  if (!g.dir[0]) return;
  if (g.dir_per_user) {
    (void)mkdir(g.dir, 0700);
    if (dir_state(g.dir) != 1) return;
  }
  if ((size_t)snprintf(path, sizeof path, "%s/%s", g.dir, LOG_NAME) >= sizeof path) return;
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;
  int n = snprintf(line, sizeof line, "%lld %s%s\n", (long long)time(NULL), reason, suffix);
  if (n > 0 && (size_t)n < sizeof line) (void)write_all(fd, line, (size_t)n);
  close(fd);
}

static int is_self(const char *path) {
  char real[PATH_MAX];
  return g.self[0] && realpath(path, real) && strcmp(real, g.self) == 0;
}

/* $MUSTER_CC_MASQUERADE, by name or by realpath. */
static int is_masquerade_dir(const char *dir) {
  static char masq_real[PATH_MAX];
  static int resolved = 0;
  char dir_real[PATH_MAX];
  const char *masq = getenv("MUSTER_CC_MASQUERADE");
  if (!masq || !*masq) return 0;
  if (strcmp(dir, masq) == 0) return 1;
  if (!resolved) resolved = realpath(masq, masq_real) ? 1 : -1;
  return resolved > 0 && realpath(dir, dir_real) && strcmp(dir_real, masq_real) == 0;
}

/*
 * The environment for the real compiler: environ, with the masquerade directory taken out of
 * PATH (as the service does, so nothing the compiler starts comes back to the shim).
 */
static char **compiler_environ(const char *path) {
  const char *masq = getenv("MUSTER_CC_MASQUERADE");
  size_t n = 0, len = strlen(path);
  if (!masq || !*masq || !getenv("PATH")) return environ;
  char *kept = malloc(len + 6), *w = kept;
  while (environ[n]) n++;
  char **env = malloc((n + 1) * sizeof *env);
  if (!kept || !env) return environ;
  int first = 1;
  w += sprintf(w, "PATH=");
  for (const char *p = path, *end;; p = end + 1) {
    end = strchr(p, ':');
    size_t part = end ? (size_t)(end - p) : strlen(p);
    char dir[PATH_MAX];
    int drop = 0;
    if (part < sizeof dir) {
      memcpy(dir, p, part);
      dir[part] = 0;
      drop = is_masquerade_dir(part ? dir : ".");
    }
    if (!drop) {
      if (!first) *w++ = ':';
      first = 0;
      memcpy(w, p, part);
      w += part;
    }
    if (!end) break;
  }
  *w = 0;
  for (size_t i = 0, replaced = 0; i <= n; i++) {
    env[i] = environ[i];
    if (!replaced && env[i] && strncmp(env[i], "PATH=", 5) == 0) env[i] = kept, replaced = 1;
  }
  return env;
}

static void exec_found(const char *path, char **env) {
  char **argv = g.compiler_argv;
  char *saved = argv[0];
  argv[0] = (char *)path;
  execve(path, argv, env);
  argv[0] = saved;
}

/* Runs the real compiler; does not return. */
static void exec_real_compiler(void) {
  const char *name = g.compiler;
  const char *path = getenv("PATH");
  if (!path) path = "/usr/local/bin:/usr/bin:/bin";
  char **env = compiler_environ(path);
  if (!g.masquerade && strchr(name, '/')) {
    if (is_self(name)) {
      fprintf(stderr, "muster-cc: %s is muster-cc itself, not a compiler\n", name);
      exit(127);
    }
    execve(name, g.compiler_argv, env);
    int err = errno;
    fprintf(stderr, "muster-cc: %s: %s\n", name, strerror(err));
    exit(err == ENOENT ? 127 : 126);
  }
  char cand[PATH_MAX];
  for (const char *p = path;;) {
    const char *end = strchr(p, ':');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char dir[PATH_MAX];
    if (len < sizeof dir) {
      memcpy(dir, p, len);
      dir[len] = 0;
      if (len == 0) strcpy(dir, ".");
      struct stat st;
      if (!is_masquerade_dir(dir) &&
          (size_t)snprintf(cand, sizeof cand, "%s/%s", dir, name) < sizeof cand &&
          stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0 &&
          !is_self(cand)) {
        exec_found(cand, env);
      }
    }
    if (!end) break;
    p = end + 1;
  }
  fprintf(stderr, "muster-cc: %s: command not found\n", name);
  exit(127);
}

/* Ends as the wait status says: its exit code, or its signal raised again. */
static void exit_like(int status) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    signal(sig, SIG_DFL);
    raise(sig);
    exit(128 + sig);
  }
  exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

/* Something went wrong: run the compiler here, or end as the compile that already ran ended. */
static void give_up(const char *reason) {
  if (g.ran) {
    log_fallback(reason, "-after-run");
    exit_like(g.ran_status);
  }
  log_fallback(reason, "");
  exec_real_compiler();
}

/* ---- the service's messages --------------------------------------------------------------- */

struct strlist {
  char **v; /* NULL-terminated */
  size_t n;
};

enum msg_type { M_EXEC, M_RUN, M_CPP, M_EXIT };

enum field {
  F_TYPE = 1, F_PATH = 2, F_ARGV = 4, F_ENV = 8, F_TOKEN = 16, F_CODE = 32, F_STDERR = 64
};

struct msg {
  enum msg_type type;
  unsigned seen;
  char *type_name, *path, *token, *stderr_b64;
  struct strlist argv, env;
  long long code;
};

struct parser {
  char *p, *end;
};

static void skip_ws(struct parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) {
    ps->p++;
  }
}

static int expect(struct parser *ps, char c) {
  skip_ws(ps);
  if (ps->p >= ps->end || *ps->p != c) return -1;
  ps->p++;
  return 0;
}

static int hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

/*
 * A JSON string, decoded in place (the decoded bytes never outrun the text read, so they are
 * written over it) and NUL-terminated; \u0000 is refused, no value of the protocol holds a NUL.
 * The frame was checked to be UTF-8 before, so raw bytes are copied as they are.
 */
static char *parse_string(struct parser *ps) {
  skip_ws(ps);
  if (ps->p >= ps->end || *ps->p != '"') return NULL;
  char *out = ps->p, *w = ps->p;
  ps->p++;
  for (;;) {
    if (ps->p >= ps->end) return NULL;
    unsigned char c = (unsigned char)*ps->p++;
    if (c == '"') break;
    if (c < 0x20) return NULL;
    if (c != '\\') {
      *w++ = (char)c;
      continue;
    }
    if (ps->p >= ps->end) return NULL;
    c = (unsigned char)*ps->p++;
    switch (c) {
    case '"': case '\\': case '/': *w++ = (char)c; continue;
    case 'b': *w++ = '\b'; continue;
    case 'f': *w++ = '\f'; continue;
    case 'n': *w++ = '\n'; continue;
    case 'r': *w++ = '\r'; continue;
    case 't': *w++ = '\t'; continue;
    case 'u': break;
    default: return NULL;
    }
    unsigned cp, lo;
    if (ps->end - ps->p < 4 || hex4(ps->p, &cp)) return NULL;
    ps->p += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return NULL;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' || hex4(ps->p + 2, &lo) ||
          lo < 0xDC00 || lo > 0xDFFF) {
        return NULL;
      }
      ps->p += 6;
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (cp == 0) return NULL;
    if (cp < 0x80) {
      *w++ = (char)cp;
    } else if (cp < 0x800) {
      *w++ = (char)(0xC0 | cp >> 6), *w++ = (char)(0x80 | (cp & 63));
    } else if (cp < 0x10000) {
      *w++ = (char)(0xE0 | cp >> 12), *w++ = (char)(0x80 | ((cp >> 6) & 63));
      *w++ = (char)(0x80 | (cp & 63));
    } else {
      *w++ = (char)(0xF0 | cp >> 18), *w++ = (char)(0x80 | ((cp >> 12) & 63));
      *w++ = (char)(0x80 | ((cp >> 6) & 63)), *w++ = (char)(0x80 | (cp & 63));
    }
  }
  *w = 0;
  return out;
}

static int parse_string_list(struct parser *ps, struct strlist *list) {
  size_t cap = 16;
  list->n = 0;
  if (!(list->v = malloc(cap * sizeof *list->v))) return -1;
  if (expect(ps, '[')) return -1;
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == ']') {
    ps->p++;
    list->v[0] = NULL;
    return 0;
  }
  for (;;) {
    char *s = parse_string(ps);
    if (!s || list->n >= MAX_LIST) return -1;
    if (list->n + 1 >= cap) {
      char **v = realloc(list->v, (cap *= 2) * sizeof *v);
      if (!v) return -1;
      list->v = v;
    }
    list->v[list->n++] = s;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ',') {
      ps->p++;
      continue;
    }
    if (expect(ps, ']')) return -1;
    list->v[list->n] = NULL;
    return 0;
  }
}

/* A JSON integer (no fraction, no exponent, no leading zero), at most 15 digits. */
static int parse_int(struct parser *ps, long long *out) {
  skip_ws(ps);
  int neg = ps->p < ps->end && *ps->p == '-';
  if (neg) ps->p++;
  char *start = ps->p;
  long long v = 0;
  while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
    if (ps->p - start >= 15) return -1;
    v = v * 10 + (*ps->p++ - '0');
  }
  if (ps->p == start || (*start == '0' && ps->p - start > 1)) return -1;
  if (ps->p < ps->end && (*ps->p == '.' || *ps->p == 'e' || *ps->p == 'E')) return -1;
  *out = neg ? -v : v;
  return 0;
}

/* After an object's member: 1 when another follows (`,`), 0 at its end (`}`), -1 otherwise. */
static int next_member(struct parser *ps) {
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == ',') {
    ps->p++;
    return 1;
  }
  return expect(ps, '}') ? -1 : 0;
}

/* The flat objects the service sends; anything else is refused. */
static int parse_message(char *body, size_t n, struct msg *m) {
  struct parser ps = {body, body + n};
  memset(m, 0, sizeof *m);
  if (!utf8_valid((const unsigned char *)body, n) || expect(&ps, '{')) return -1;
  skip_ws(&ps);
  if (ps.p < ps.end && *ps.p == '}') return -1;
  for (;;) {
    char *key = parse_string(&ps);
    unsigned f;
    if (!key || expect(&ps, ':')) return -1;
    if (!strcmp(key, "type")) f = F_TYPE;
    else if (!strcmp(key, "path")) f = F_PATH;
    else if (!strcmp(key, "argv")) f = F_ARGV;
    else if (!strcmp(key, "env")) f = F_ENV;
    else if (!strcmp(key, "token")) f = F_TOKEN;
    else if (!strcmp(key, "code")) f = F_CODE;
    else if (!strcmp(key, "stderr")) f = F_STDERR;
    else return -1;
    if (m->seen & f) return -1;
    m->seen |= f;
    int bad = 0;
    switch (f) {
    case F_TYPE: bad = !(m->type_name = parse_string(&ps)); break;
    case F_PATH: bad = !(m->path = parse_string(&ps)); break;
    case F_TOKEN: bad = !(m->token = parse_string(&ps)); break;
    case F_STDERR: bad = !(m->stderr_b64 = parse_string(&ps)); break;
    case F_ARGV: bad = parse_string_list(&ps, &m->argv); break;
    case F_ENV: bad = parse_string_list(&ps, &m->env); break;
    default: bad = parse_int(&ps, &m->code); break;
    }
    if (bad) return -1;
    int more = next_member(&ps);
    if (more < 0) return -1;
    if (!more) break;
  }
  skip_ws(&ps);
  if (ps.p != ps.end || !(m->seen & F_TYPE)) return -1;
  unsigned need, allowed;
  if (!strcmp(m->type_name, "exec")) {
    m->type = M_EXEC, need = F_PATH | F_ARGV, allowed = need | F_ENV;
  } else if (!strcmp(m->type_name, "run") || !strcmp(m->type_name, "cpp")) {
    m->type = m->type_name[0] == 'r' ? M_RUN : M_CPP;
    need = F_PATH | F_ARGV | F_TOKEN, allowed = need | F_ENV;
  } else if (!strcmp(m->type_name, "exit")) {
    m->type = M_EXIT, need = F_CODE | F_STDERR, allowed = need;
  } else {
    return -1;
  }
  unsigned seen = m->seen & ~(unsigned)F_TYPE;
  if ((seen & need) != need || (seen & ~allowed)) return -1;
  if ((seen & F_PATH) && m->path[0] != '/') return -1;
  if ((seen & F_ARGV) && m->argv.n == 0) return -1;
  if ((seen & F_TOKEN) && (m->token[0] == 0 || strlen(m->token) > MAX_TOKEN)) return -1;
  if ((seen & F_CODE) && (m->code < 0 || m->code > 255)) return -1;
  return 0;
}

/* Reads one JSON frame's body into *body (NUL-terminated); NULL or the failure's reason. */
static const char *read_frame(int fd, char **body, size_t *n) {
  unsigned char h[4];
  char kind;
  int r = read_all(fd, (char *)h, 4);
  if (r) return r > 0 ? "eof" : "socket-error";
  size_t len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
  if (len < 1 || len > MAX_FRAME) return "bad-frame";
  if ((r = read_all(fd, &kind, 1))) return r > 0 ? "eof" : "socket-error";
  if (kind != FRAME_JSON) return "bad-frame";
  free(*body);
  if (!(*body = malloc(len))) return "socket-error";
  if ((r = read_all(fd, *body, len - 1))) return r > 0 ? "eof" : "socket-error";
  (*body)[len - 1] = 0;
  *n = len - 1;
  return NULL;
}

static int send_frame(int fd, struct buf *b) {
  size_t len = b->n - 4;
  if (len > MAX_FRAME) return -1;
  b->p[0] = (char)(len >> 24), b->p[1] = (char)(len >> 16);
  b->p[2] = (char)(len >> 8), b->p[3] = (char)len;
  return send_all(fd, b->p, b->n);
}

/* ---- hello ---------------------------------------------------------------------------------- */

/* NULL or the reason to fall back without talking. */
static const char *build_hello(struct buf *b) {
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) return "no-cwd";
  if (!str_utf8(cwd) || !str_utf8(g.compiler)) return "not-utf8";
  for (char **a = g.argv; *a; a++) {
    if (!str_utf8(*a)) return "not-utf8";
  }
  for (char **e = environ; *e; e++) {
    if (!str_utf8(*e)) return "not-utf8";
  }
  mode_t mask = umask(0);
  umask(mask);
  int bad = buf_put(b, "\0\0\0\0\1", 5) ||
            buf_puts(b, "{\"type\":\"hello\",\"v\":") || put_int(b, PROTOCOL_VERSION) ||
            buf_puts(b, ",\"argv\":[");
  for (char **a = g.argv; *a && !bad; a++) {
    bad = (a != g.argv && buf_puts(b, ",")) || put_json_string(b, *a);
  }
  bad = bad || buf_puts(b, "],\"cwd\":") || put_json_string(b, cwd) || buf_puts(b, ",\"env\":[");
  for (char **e = environ; *e && !bad; e++) {
    bad = (e != environ && buf_puts(b, ",")) || put_json_string(b, *e);
  }
  bad = bad || buf_puts(b, "],\"stderrTty\":") || buf_puts(b, isatty(2) ? "true" : "false") ||
        buf_puts(b, ",\"umask\":") || put_int(b, (long long)(mask & 0777)) ||
        buf_puts(b, ",\"invokedAs\":") || put_json_string(b, g.compiler) || buf_puts(b, "}");
  return bad || b->n - 4 > MAX_FRAME ? "too-large" : NULL;
}

/* ---- the service's socket ------------------------------------------------------------------ */

static int try_connect(const char *path) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void pause_poll(void) {
  struct timespec pause = {0, START_POLL_MS * 1000000L};
  nanosleep(&pause, NULL);
}

/*
 * A start that failed is not tried again by every compile of the build (each would pay a Node
 * start and up to 2 s): for START_BACKOFF_S after one, compiles fall back at once.
 */
static int start_failed_recently(void) {
  char path[PATH_MAX + sizeof START_FAILED_NAME + 1];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", g.dir, START_FAILED_NAME);
  if (lstat(path, &st) != 0) return 0;
  time_t now = time(NULL);
  return st.st_mtime <= now && now - st.st_mtime < START_BACKOFF_S;
}

static void mark_start_failed(void) {
  char path[PATH_MAX + sizeof START_FAILED_NAME + 1];
  (void)mkdir(g.dir, 0700);
  if (dir_state(g.dir) != 1) return;
  snprintf(path, sizeof path, "%s/%s", g.dir, START_FAILED_NAME);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) close(fd); /* O_TRUNC of an existing file sets its mtime: now */
}

/* Starts `<pkg>/bin/muster cc --serve --detach` and waits up to 2 s for the socket. */
/*
 * Starts the service and connects to it: the socket, or -1. *failed says whether the start
 * itself failed (the program could not be spawned, or ended without a socket) rather than being
 * still under way at the deadline: only a failed start is marked for the other shims.
 */
static int start_service(const char *sock, int *failed) {
  *failed = 1;
  char prog[PATH_MAX + 16];
  size_t len = strlen(g.self);
  const char *tail = "/dist/native/" SELF_NAME;
  if (!g.self[0] || len < strlen(tail) || strcmp(g.self + len - strlen(tail), tail) != 0) return -1;
  snprintf(prog, sizeof prog, "%.*s/bin/muster", (int)(len - strlen(tail)), g.self);
  char *argv[] = {"muster", "cc", "--serve", "--detach", NULL};
  posix_spawn_file_actions_t fa;
  pid_t pid;
  if (posix_spawn_file_actions_init(&fa)) return -1;
  int bad = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) ||
            posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0) ||
            posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0) ||
            posix_spawn(&pid, prog, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (bad) return -1;
  long long deadline = now_usec() + START_WAIT_MS * 1000LL;
  int reaped = 0, fd = -1;
  for (;;) {
    int status;
    if ((fd = try_connect(sock)) >= 0) break;
    if (!reaped && waitpid(pid, &status, WNOHANG) == pid) {
      reaped = 1;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) break;
    }
    if (now_usec() >= deadline) break;
    pause_poll();
  }
  /* A `--detach` start returns once the daemon listens; one still running is left to init. */
  if (!reaped) (void)waitpid(pid, NULL, WNOHANG);
  /* Ended without a socket (failed, or `--detach` said ready and none came): failed. Still
     starting at the deadline: only slow, not marked. */
  *failed = fd < 0 && reaped;
  return fd;
}

/* 0 when this process now holds the start lock, -1 when another one does (or on error). */
static int take_start_lock(int lock) {
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  return fcntl(lock, F_SETLK, &fl) == 0 ? 0 : -1;
}

/*
 * Starts the service and connects to it (start_service; build-front.c's fe_spawn_service): the
 * socket or -1, *failed as start_service says it.
 */
typedef int (*service_start)(const char *sock, int *failed);

/*
 * The service's socket once one process has started it with `start`: this one under the start
 * lock, or the one that holds it (then this one only waits, bounded). -1 when none answers; a
 * failed start of this process is marked for the others.
 */
static int start_once(const char *sock, service_start start) {
  char path[PATH_MAX + sizeof START_LOCK_NAME + 1];
  (void)mkdir(g.dir, 0700);
  if (dir_state(g.dir) != 1) return -1;
  snprintf(path, sizeof path, "%s/%s", g.dir, START_LOCK_NAME);
  int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lock < 0) {
    /* No lock to be had (a full disk?): start unserialised rather than not at all. */
    int failed;
    int fd = start(sock, &failed);
    if (failed) mark_start_failed();
    return fd;
  }
  long long deadline = now_usec() + START_OTHER_WAIT_MS * 1000LL;
  int fd = -1;
  for (;;) {
    if (take_start_lock(lock) == 0) {
      /* Started by the holder before us, or failed there: nothing to start again. */
      if ((fd = try_connect(sock)) >= 0 || start_failed_recently()) break;
      int failed;
      fd = start(sock, &failed);
      if (failed) mark_start_failed();
      break;
    }
    if ((fd = try_connect(sock)) >= 0 || start_failed_recently()) break;
    if (now_usec() >= deadline) break;
    pause_poll();
  }
  close(lock); /* releases the lock when held */
  return fd;
}

/* The socket's directory into g.dir: that of $MUSTER_CC_SOCKET, else the per-user one. */
static void choose_dir(const char *env) {
  if (env) {
    const char *slash = strrchr(env, '/');
    if (!slash) strcpy(g.dir, ".");
    else if (slash == env) strcpy(g.dir, "/");
    else if ((size_t)(slash - env) < sizeof g.dir) {
      snprintf(g.dir, sizeof g.dir, "%.*s", (int)(slash - env), env);
    }
    return;
  }
  const char *runtime = getenv("XDG_RUNTIME_DIR");
  int n = runtime && runtime[0] == '/'
              ? snprintf(g.dir, sizeof g.dir, "%s/muster", runtime)
              : snprintf(g.dir, sizeof g.dir, "/tmp/muster-%lu", (unsigned long)getuid());
  if (n < 0 || (size_t)n >= sizeof g.dir) g.dir[0] = 0;
  g.dir_per_user = 1;
}

/* The connected socket, or -1 with *reason set. */
static int connect_service(const char *env, const char **reason) {
  char sock[PATH_MAX + sizeof SOCKET_NAME + 1];
  size_t max = sizeof ((struct sockaddr_un *)0)->sun_path;
  if (env) {
    if (strlen(env) >= max) return *reason = "socket-path-too-long", -1;
    int fd = try_connect(env);
    if (fd < 0) *reason = "no-service";
    return fd;
  }
  if (!g.dir[0]) return *reason = "socket-path-too-long", -1;
  snprintf(sock, sizeof sock, "%s/%s", g.dir, SOCKET_NAME);
  if (strlen(sock) >= max) return *reason = "socket-path-too-long", -1;
  int state = dir_state(g.dir);
  if (state < 0) return *reason = "unsafe-socket-dir", -1;
  if (state > 0) {
    int fd = try_connect(sock);
    if (fd >= 0) return fd;
  }
  if (start_failed_recently()) return *reason = "service-unavailable", -1;
  int fd = start_once(sock, start_service);
  if (fd >= 0 && dir_state(g.dir) != 1) {
    close(fd);
    return *reason = "unsafe-socket-dir", -1;
  }
  if (fd < 0) *reason = "service-unavailable";
  return fd;
}

/* ---- run / cpp ------------------------------------------------------------------------------ */

/* Spawns m's program with stderr on a pipe, tees and captures it, waits. -1: not spawned. */
static int run_child(const struct msg *m, int tee, struct buf *capture, int *status,
                     long long *usec) {
  int pfd[2];
  struct sigaction chld;
  /* Inherited SIGCHLD = SIG_IGN would reap the child before waitpid sees its status. */
  if (sigaction(SIGCHLD, NULL, &chld) == 0 && chld.sa_handler == SIG_IGN) {
    chld.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &chld, NULL);
  }
  if (pipe(pfd)) return -1;
  fcntl(pfd[0], F_SETFD, FD_CLOEXEC);
  fcntl(pfd[1], F_SETFD, FD_CLOEXEC);
  posix_spawn_file_actions_t fa;
  pid_t pid;
  long long start = now_usec();
  int err = posix_spawn_file_actions_init(&fa);
  if (!err) {
    err = posix_spawn_file_actions_adddup2(&fa, pfd[1], 2) ||
          posix_spawn(&pid, m->path, &fa, NULL, m->argv.v, (m->seen & F_ENV) ? m->env.v : environ);
    posix_spawn_file_actions_destroy(&fa);
  }
  close(pfd[1]);
  if (err) {
    close(pfd[0]);
    return -1;
  }
  /*
   * Read until EOF; but a grandchild that keeps the pipe open (a daemon the compiler started)
   * must not hold the shim: once the child has exited, what is in the pipe is read and the rest
   * ignored. The poll timeout only matters in that case: the child's exit closes the pipe.
   */
  static char chunk[65536];
  int capturing = 1, exited = 0;
  for (;;) {
    struct pollfd pin = {pfd[0], POLLIN, 0};
    int ready = poll(&pin, 1, exited ? 0 : 100);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      if (exited) break;
      pid_t w = waitpid(pid, status, WNOHANG);
      if (w == pid || (w < 0 && errno != EINTR)) exited = w == pid ? 1 : -1;
      if (exited < 0) break;
      continue;
    }
    ssize_t r = ready < 0 ? -1 : read(pfd[0], chunk, sizeof chunk);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    if (tee && write_all(2, chunk, (size_t)r)) tee = 0;
    size_t room = capture->n < MAX_CAPTURE ? MAX_CAPTURE - capture->n : 0;
    if (capturing && room > 0 && buf_put(capture, chunk, (size_t)r < room ? (size_t)r : room)) {
      capturing = 0; /* out of memory: the service gets what was kept */
    }
  }
  close(pfd[0]);
  while (exited == 0 && waitpid(pid, status, 0) < 0) {
    if (errno != EINTR) exited = -1;
  }
  if (exited < 0) *status = 0x7f00; /* not ours to wait for: reported as exit code 127 */
  *usec = now_usec() - start;
  return 0;
}

static int send_ran(int fd, const struct msg *m, const struct buf *capture, int status,
                    long long usec) {
  struct buf b = {0};
  int exited = WIFEXITED(status);
  int bad = buf_put(&b, "\0\0\0\0\1", 5) || buf_puts(&b, "{\"type\":\"ran\",\"token\":") ||
            put_json_string(&b, m->token) || buf_puts(&b, ",\"exitCode\":") ||
            (exited ? put_int(&b, WEXITSTATUS(status)) : buf_puts(&b, "null")) ||
            buf_puts(&b, ",\"signal\":") ||
            (exited ? buf_puts(&b, "null") : put_int(&b, WTERMSIG(status))) ||
            buf_puts(&b, ",\"stderr\":\"") ||
            put_base64(&b, (const unsigned char *)capture->p, capture->n) ||
            buf_puts(&b, "\",\"usec\":") || put_int(&b, usec) || buf_puts(&b, "}") ||
            send_frame(fd, &b);
  free(b.p);
  return bad ? -1 : 0;
}

/* ---- main ----------------------------------------------------------------------------------- */

/* `muster build`'s native front end (bin/muster runs `muster-cc --build-front-end ...`). */
#include "build-front.c"

static void usage(void) {
  fputs("usage: muster-cc COMPILER [ARGS...]   (or a symlink named after the compiler)\n", stderr);
  exit(2);
}

int main(int argc, char **argv) {
  /* A closed 0/1/2 would be taken by the next pipe or socket: keep them open. */
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF && open("/dev/null", O_RDWR) != fd) return 127;
  }
  if (argc < 1 || !argv[0]) usage();
  g.argv = argv;
  if (argc >= 2 && !strcmp(argv[1], FRONT_FLAG) && !strcmp(base_name(argv[0]), SELF_NAME)) {
    return build_front_main(argc, argv);
  }
  if (!strcmp(base_name(argv[0]), SELF_NAME)) {
    if (argc < 2 || argv[1][0] == 0 || argv[1][0] == '-') usage();
    g.compiler = argv[1];
    g.compiler_argv = argv + 1;
  } else {
    g.masquerade = 1;
    g.compiler = base_name(argv[0]);
    if (!g.compiler[0]) usage();
    g.compiler_argv = argv;
  }
  if (!realpath("/proc/self/exe", g.self) && !(strchr(argv[0], '/') && realpath(argv[0], g.self))) {
    g.self[0] = 0;
  }

  const char *env = getenv("MUSTER_CC_SOCKET");
  if (env && !*env) env = NULL;
  choose_dir(env);
  struct buf hello = {0};
  const char *reason = build_hello(&hello);
  if (reason) give_up(reason);
  int fd = connect_service(env, &reason);
  if (fd < 0) give_up(reason);
  if (send_frame(fd, &hello)) give_up("socket-error");
  free(hello.p);

  char *body = NULL;
  size_t n = 0;
  for (;;) {
    struct msg m;
    if ((reason = read_frame(fd, &body, &n))) give_up(reason);
    if (parse_message(body, n, &m)) give_up("bad-message");
    if (m.type == M_EXEC) {
      execve(m.path, m.argv.v, (m.seen & F_ENV) ? m.env.v : environ);
      give_up("exec-failed");
    } else if (m.type == M_EXIT) {
      long long len = base64_decode(m.stderr_b64);
      if (len < 0) give_up("bad-message");
      (void)write_all(2, m.stderr_b64, (size_t)len);
      exit((int)m.code);
    }
    struct buf capture = {0};
    int status;
    long long usec;
    if (run_child(&m, m.type == M_RUN, &capture, &status, &usec)) give_up("spawn-failed");
    if (m.type == M_RUN) g.ran = 1, g.ran_status = status;
    if (send_ran(fd, &m, &capture, status, usec)) give_up("socket-error");
    free(capture.p);
    free(m.argv.v);
    free(m.env.v);
  }
}
