/*
 * build-front.c: `muster build`'s native front end (issue 13). Included by muster-cc.c, one
 * translation unit: it uses the shim's framing, JSON and socket-directory helpers.
 *
 * bin/muster runs `muster-cc --build-front-end NODE CLI build ARGS...`. When the per-user compile
 * service answers and accepts the build, this process does what the Node front end does
 * (src/cli/cc/service-build.ts, src/cli/build-command.ts) without a Node start, which is about a
 * tenth of a second of every build before its command starts:
 *
 *   1. the build's private directory (mkdtemp in $TMPDIR or /tmp, `muster-build-XXXXXX`) with a
 *      link to the service's socket in it (the shims' fallback log is then the build's);
 *   2. `build-open` on the service's socket (src/cli/cc/build-control.ts) with this
 *      installation's launcher and version, the command line, cwd, environment, placement,
 *      --no-cache and the link; `build-accepted` gives the command's environment;
 *   3. the command, as the Node front end runs it: SIGINT and SIGQUIT are the command's (this
 *      process ignores them while it runs), SIGTERM and SIGHUP are passed on, `--json` sends its
 *      stdout to stderr; `say` lines from the service go to stderr meanwhile;
 *   4. `build-close` with the exit code (null when a signal ended the command) and a request for
 *      the summary; `build-closed` carries the summary line and the JSON document, printed as
 *      they are; then it ends as the command did (its code, or its signal raised again).
 *
 * When no service answers, this process starts it (fe_spawn_service under start_once: as
 * `muster cc --serve --detach` does, without that Node helper's start) and waits for it. Anything unusual before
 * the command starts -- an option this file does not know (--help), a placement that is not
 * auto/local/remote, MUSTER_BUILD_SERVICE other than per-user, text that is not UTF-8, no
 * socket directory yet or an unsafe one, a service that does not start, a refusal, no answer in
 * time -- execs the Node CLI with the same arguments, which does it all and says why. Anything
 * unusual after the command ran (the service closed the build early, was lost, did not answer,
 * or the shims logged fallbacks after its close) execs the hidden `muster build-finish STATE`,
 * which counts what is left and prints the summary.
 */

#define FRONT_FLAG "--build-front-end"
#ifndef NSIG
#define NSIG 65
#endif
#define ACCEPT_WAIT_MS 10000
#define CLOSE_WAIT_MS 120000
#define MAX_COMMAND_TEXT 8192
#define MAX_VERSION 64
#define MAX_DEPTH 16
/* The most a frame the service has begun may take to arrive in full. */
#define FRAME_WAIT_MS 10000

static struct {
  const char *node, *cli;
  const char *cwd; /* the build's directory */
  char **args; /* the arguments after `build` */
  int nargs;
  long long started_ms;
} fe;

static volatile sig_atomic_t fe_child = 0;
static int fe_wake[2] = {-1, -1};

/* Milliseconds since the epoch: the build's start, as the service reads it. */
static long long epoch_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (long long)t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/* For deadlines: a clock that is never set back or forward. */
static long long mono_ms(void) { return now_usec() / 1000; }

/* Runs the Node CLI: `NODE CLI <what> [tail...]`; returns only when it cannot. */
static void fe_try_node(const char *what, char **tail, int ntail) {
  char **v = malloc((size_t)(ntail + 4) * sizeof *v);
  if (v) {
    int n = 0;
    v[n++] = (char *)fe.node, v[n++] = (char *)fe.cli, v[n++] = (char *)what;
    for (int i = 0; i < ntail; i++) v[n++] = tail[i];
    v[n] = NULL;
    execvp(fe.node, v);
  }
  fprintf(stderr, "muster: cannot run %s: %s\n", fe.node, strerror(errno));
}

/* Before anything happened: the Node front end does this build. */
static void fe_to_node(void) {
  fe_try_node("build", fe.args, fe.nargs);
  exit(127);
}

/* ---- the service's answers ---------------------------------------------------------------- */

struct answer {
  char *type, *tag, *text, *summary, *json;
  struct strlist env;
  int has_env;
};

static int fe_skip_value(struct parser *ps, int depth);

static int fe_skip_literal(struct parser *ps, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n)) return -1;
  ps->p += n;
  return 0;
}

static int fe_skip_container(struct parser *ps, int depth, char close, int keyed) {
  ps->p++;
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == close) return ps->p++, 0;
  for (;;) {
    if (keyed && (!parse_string(ps) || expect(ps, ':'))) return -1;
    if (fe_skip_value(ps, depth + 1)) return -1;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ',') {
      ps->p++;
      continue;
    }
    return expect(ps, close);
  }
}

/* Any JSON value (the counts of `build-closed` are read by the Node CLI, not here). */
static int fe_skip_value(struct parser *ps, int depth) {
  long long n;
  skip_ws(ps);
  if (ps->p >= ps->end || depth > MAX_DEPTH) return -1;
  switch (*ps->p) {
  case '"': return parse_string(ps) ? 0 : -1;
  case '{': return fe_skip_container(ps, depth, '}', 1);
  case '[': return fe_skip_container(ps, depth, ']', 0);
  case 't': return fe_skip_literal(ps, "true");
  case 'f': return fe_skip_literal(ps, "false");
  case 'n': return fe_skip_literal(ps, "null");
  default: return parse_int(ps, &n);
  }
}

/* A control message (in place: `body` is decoded over); -1 when it is not one. */
static int fe_parse_answer(char *body, size_t n, struct answer *a) {
  struct parser ps = {body, body + n};
  memset(a, 0, sizeof *a);
  if (!utf8_valid((const unsigned char *)body, n) || expect(&ps, '{')) return -1;
  for (;;) {
    char *key = parse_string(&ps);
    if (!key || expect(&ps, ':')) return -1;
    char **text = !strcmp(key, "type")      ? &a->type
                  : !strcmp(key, "tag")     ? &a->tag
                  : !strcmp(key, "text")    ? &a->text
                  : !strcmp(key, "summary") ? &a->summary
                  : !strcmp(key, "json")    ? &a->json
                                            : NULL;
    skip_ws(&ps);
    if (text) {
      if (*text || !(*text = parse_string(&ps))) return -1;
    } else if (!strcmp(key, "env")) {
      if (a->has_env || parse_string_list(&ps, &a->env)) return -1;
      a->has_env = 1;
    } else if (fe_skip_value(&ps, 1)) {
      return -1;
    }
    int more = next_member(&ps);
    if (more < 0) return -1;
    if (!more) break;
  }
  skip_ws(&ps);
  return ps.p == ps.end && a->type ? 0 : -1;
}

/*
 * Waits until the deadline (mono_ms) for the socket to be readable: 1 readable, 0 not in time,
 * -1 error. The frame that follows must then arrive within FRAME_WAIT_MS (SO_RCVTIMEO: a
 * service that stalls half-way through a frame is not waited for without end).
 */
static int fe_wait(int fd, long long deadline_ms) {
  for (;;) {
    long long left = deadline_ms - mono_ms();
    if (left <= 0) return 0;
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
    if (r > 0) return 1;
    if (r < 0 && errno != EINTR) return -1;
  }
}

static void fe_frame_timeout(int fd) {
  struct timeval t = {FRAME_WAIT_MS / 1000, 0};
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &t, sizeof t);
}

enum { FE_SAY, FE_CLOSED, FE_OTHER, FE_SKIPPED, FE_BROKEN };

/*
 * Reads one message after the command started: a `say` is shown; a `build-closed` is kept raw
 * in *raw (for `muster build-finish`) and parsed into *closed (its summary and JSON).
 */
static int fe_read_answer(int fd, char **raw, struct answer *closed) {
  char *body = NULL;
  size_t n = 0;
  struct answer a;
  if (read_frame(fd, &body, &n)) return free(body), FE_BROKEN;
  char *copy = malloc(n + 1);
  if (!copy) return free(body), FE_BROKEN;
  memcpy(copy, body, n + 1);
  /* A frame this parser does not take (a line it cannot show): skipped, as Node skips it. */
  if (fe_parse_answer(body, n, &a)) return free(body), free(copy), FE_SKIPPED;
  if (!strcmp(a.type, "say") && a.text) {
    (void)write_all(2, a.text, strlen(a.text));
    free(body), free(copy);
    return FE_SAY;
  }
  if (strcmp(a.type, "build-closed")) return free(body), free(copy), FE_OTHER;
  free(*raw);
  *raw = copy;
  *closed = a; /* its strings live in body, kept */
  return FE_CLOSED;
}

/* ---- running the command ------------------------------------------------------------------ */

static void fe_on_chld(int sig) {
  (void)sig;
  int saved = errno;
  if (write(fe_wake[1], "x", 1) < 0) { /* full: a wake-up is pending anyway */ }
  errno = saved;
}

static void fe_forward(int sig) {
  int saved = errno;
  if (fe_child > 0) kill((pid_t)fe_child, sig);
  errno = saved;
}

/* SIGCHLD, SIGTERM and SIGHUP: the signals whose handlers touch fe_child and fe_wake. */
static void fe_guarded(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGCHLD);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGHUP);
}

static void fe_handle(int sig, void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
}

/*
 * Starts the command, called with the guarded signals blocked; -1 when fork fails. The child
 * starts as libuv starts the Node front end's: every signal at its default, none blocked.
 */
static pid_t fe_spawn(char **command, char **env, int json) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (json && dup2(2, 1) < 0) _exit(126);
  environ = env; /* execvp searches the command's own PATH, as the Node front end's spawn does */
  execvp(command[0], command);
  int err = errno;
  if (err == ENOENT) fprintf(stderr, "muster: %s: command not found\n", command[0]);
  else fprintf(stderr, "muster: %s: %s\n", command[0], strerror(err));
  _exit(err == ENOENT ? 127 : 126);
}

/* ---- the build's directory ---------------------------------------------------------------- */

static char fe_dir[PATH_MAX];

static void fe_remove_dir(void) {
  char path[PATH_MAX + 16];
  if (!fe_dir[0]) return;
  snprintf(path, sizeof path, "%s/%s", fe_dir, SOCKET_NAME);
  (void)unlink(path);
  (void)rmdir(fe_dir);
  fe_dir[0] = 0;
}

static void fe_give_up_before(int fd) {
  if (fd >= 0) close(fd);
  fe_remove_dir();
  fe_to_node();
}

/* This installation's version, from <pkg>/package.json's top-level "version". */
static int fe_version(const char *pkg, char *out, size_t size) {
  char path[PATH_MAX + 16];
  static char text[1 << 16];
  if ((size_t)snprintf(path, sizeof path, "%s/package.json", pkg) >= sizeof path) return -1;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n <= 0) return -1;
  text[n] = 0;
  /* npm writes "name" then "version" first: the first key of that name at depth one. */
  int depth = 0;
  for (char *p = text; *p; p++) {
    if (*p == '{' || *p == '[') depth++;
    else if (*p == '}' || *p == ']') depth--;
    else if (*p == '"') {
      char *end = p + 1;
      while (*end && *end != '"') end += end[0] == '\\' && end[1] ? 2 : 1;
      if (!*end) return -1;
      if (depth == 1 && end - p == 8 && !strncmp(p, "\"version", 8)) {
        char *v = end + 1;
        while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r' || *v == ':') v++;
        if (*v != '"') return -1;
        size_t len = strcspn(v + 1, "\"");
        if (len == 0 || len >= size || len >= MAX_VERSION || !v[1 + len]) return -1;
        for (size_t i = 0; i < len; i++) {
          char c = v[1 + i];
          if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                c == '.' || c == '-' || c == '+')) {
            return -1;
          }
        }
        memcpy(out, v + 1, len);
        out[len] = 0;
        return 0;
      }
      p = end;
    }
  }
  return -1;
}

/* ---- starting the service ----------------------------------------------------------------- */

/* What serve-detach.ts keeps: its log next to the socket, started afresh past this size. */
#define SERVE_LOG_NAME "cc-serve.log"
#define SERVE_LOG_MAX_BYTES (1024 * 1024)

/* The paths Node reads that the environment may give relative to the build's directory. */
static const char *const fe_path_vars[] = {"MUSTER_CONFIG_DIR", "XDG_CONFIG_HOME",
                                           "NODE_EXTRA_CA_CERTS"};

/*
 * `value` from `cwd` as Node's path.resolve gives it (the service compares the build's
 * NODE_EXTRA_CA_CERTS, resolved so, with its own): `.`, `..` and repeated slashes folded
 * lexically, never above the root, no trailing slash. NULL when out of memory.
 */
static char *fe_resolve(const char *cwd, const char *value) {
  size_t size = strlen(cwd) + strlen(value) + 3;
  char *joined = malloc(size), *out = malloc(size);
  if (!joined || !out) {
    free(joined);
    free(out);
    return NULL;
  }
  snprintf(joined, size, "%s/%s", value[0] == '/' ? "" : cwd, value);
  size_t n = 0;
  for (char *part = joined; *part;) {
    char *next = strchr(part, '/');
    size_t len = next ? (size_t)(next - part) : strlen(part);
    if (len == 2 && part[0] == '.' && part[1] == '.') {
      while (n > 0 && out[n - 1] != '/') n--;
      if (n > 0) n--; /* the slash before the part taken away */
    } else if (len > 0 && !(len == 1 && part[0] == '.')) {
      out[n++] = '/';
      memcpy(out + n, part, len);
      n += len;
    }
    part += len;
    while (*part == '/') part++;
  }
  if (n == 0) out[n++] = '/';
  out[n] = 0;
  free(joined);
  return out;
}

/* environ with those made absolute from `cwd` (the service runs in /); NULL when out of memory. */
static char **fe_service_env(const char *cwd) {
  size_t n = 0;
  while (environ[n]) n++;
  char **env = calloc(n + 1, sizeof *env);
  if (!env) return NULL;
  for (size_t i = 0; i < n; i++) {
    env[i] = environ[i];
    for (size_t k = 0; k < sizeof fe_path_vars / sizeof *fe_path_vars; k++) {
      size_t len = strlen(fe_path_vars[k]);
      const char *e = environ[i];
      if (strncmp(e, fe_path_vars[k], len) || e[len] != '=' || !e[len + 1] || e[len + 1] == '/')
        continue;
      char *abs = fe_resolve(cwd, e + len + 1);
      size_t size = abs ? len + 1 + strlen(abs) + 1 : 0;
      char *entry = abs ? malloc(size) : NULL;
      if (entry) {
        snprintf(entry, size, "%.*s=%s", (int)len, e, abs);
        env[i] = entry;
      } /* else left relative: the service reads it from / */
      free(abs);
    }
  }
  return env;
}

/*
 * `name` as execvp would find it from `cwd`, absolute (the service starts in /): itself when it
 * has a slash, else the first executable of that name on PATH. 0 when found.
 */
static int fe_program(const char *name, const char *cwd, char *out) {
  if (strchr(name, '/')) return realpath(name, out) ? 0 : -1;
  const char *path = getenv("PATH");
  if (!path) path = "/usr/bin:/bin";
  for (const char *dir = path;; dir++) {
    const char *end = strchr(dir, ':');
    size_t len = end ? (size_t)(end - dir) : strlen(dir);
    char candidate[PATH_MAX];
    int fits = len == 0 ? snprintf(candidate, sizeof candidate, "%s/%s", cwd, name)
                        : snprintf(candidate, sizeof candidate, "%.*s/%s", (int)len, dir, name);
    if (fits > 0 && (size_t)fits < sizeof candidate && access(candidate, X_OK) == 0 &&
        realpath(candidate, out)) {
      return 0;
    }
    if (!end) return -1;
    dir = end;
  }
}

/* In the service's child after fork: says why it cannot go on (to the log), and ends. */
static void fe_child_fail(const char *what) {
  char text[160];
  int len = snprintf(text, sizeof text, "muster-cc: cannot start the compile service: %s (errno %d)\n",
                     what, errno);
  if (len > 0 && write(2, text, (size_t)len) < 0) { /* nothing more to say it with */ }
  _exit(127);
}

/*
 * No service answers on `sock`: starts one as `muster cc --serve --detach` does (serve-detach.ts:
 * in a session of its own, in /, its output appended to cc-serve.log next to the socket — a log
 * past 1 MiB started afresh —, the paths above made absolute, none of this process's other file
 * descriptors) without that Node helper's own start, and connects to it within START_WAIT_MS.
 * Called by start_once, under the shims' start lock; *failed when it ended without a socket
 * (start_once marks that for the shims, as theirs). -1 when none answers: the Node front end
 * takes over and says why.
 */
static int fe_spawn_service(const char *sock, int *failed) {
  *failed = 0;
  char node[PATH_MAX], cli[PATH_MAX], path[PATH_MAX + 32];
  if (!realpath(fe.cli, cli) || fe_program(fe.node, fe.cwd, node) != 0) return -1;
  snprintf(path, sizeof path, "%s/%s", g.dir, SERVE_LOG_NAME);
  struct stat st;
  int fresh = lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > SERVE_LOG_MAX_BYTES;
  int log =
      open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (fresh ? O_TRUNC : O_APPEND), 0600);
  char **env = log >= 0 ? fe_service_env(fe.cwd) : NULL;
  /* An inherited SIGCHLD = SIG_IGN would reap it before waitpid sees it end. */
  struct sigaction chld;
  if (sigaction(SIGCHLD, NULL, &chld) == 0 && chld.sa_handler == SIG_IGN) {
    chld.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &chld, NULL);
  }
  pid_t pid = env ? fork() : -1;
  if (pid == 0) {
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (setsid() < 0 || null < 0 || dup2(null, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0 ||
        chdir("/")) {
      fe_child_fail("its output");
    }
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) max = 65536;
    for (int other = 3; other < max; other++) (void)close(other);
    for (int sig = 1; sig < NSIG; sig++) {
      if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    char *argv[] = {node, cli, "cc", "--serve", "--socket", (char *)sock, "--idle-exit", "10m",
                    NULL};
    environ = env;
    execv(node, argv);
    fe_child_fail(node);
  }
  if (log >= 0) close(log);
  int fd = -1;
  if (pid > 0) {
    long long deadline = mono_ms() + START_WAIT_MS;
    int reaped = 0;
    while ((fd = try_connect(sock)) < 0 && mono_ms() < deadline) {
      /* Ended: it failed, or another service won the race to the socket (checked once more). */
      pid_t w = waitpid(pid, NULL, WNOHANG);
      if (w == pid || (w < 0 && errno == ECHILD)) {
        reaped = 1;
        fd = try_connect(sock);
        *failed = fd < 0;
        break;
      }
      pause_poll();
    }
    /* Left running, it stays this process's child until the build ends: init's then. */
    if (!reaped) (void)waitpid(pid, NULL, WNOHANG);
  }
  if (env) {
    for (size_t i = 0; env[i]; i++) {
      if (env[i] != environ[i]) free(env[i]);
    }
    free(env);
  }
  return fd;
}

/* ---- main --------------------------------------------------------------------------------- */

static int build_front_main(int argc, char **argv) {
  fe.started_ms = epoch_ms();
  if (argc < 5 || strcmp(argv[4], "build")) {
    fputs("usage: muster-cc " FRONT_FLAG " NODE CLI build [OPTIONS] -- COMMAND...\n", stderr);
    return 2;
  }
  fe.node = argv[2], fe.cli = argv[3], fe.args = argv + 5, fe.nargs = argc - 5;

  /* The options the Node front end takes; anything else is its to report. */
  int json = 0, no_cache = 0, i = 0;
  const char *placement = NULL;
  for (; i < fe.nargs; i++) {
    const char *a = fe.args[i];
    if (!strcmp(a, "--")) {
      i++;
      break;
    }
    if (!strcmp(a, "--json")) json = 1;
    else if (!strcmp(a, "--no-cache")) no_cache = 1;
    else if (!strncmp(a, "--placement=", 12)) placement = a + 12;
    else if (!strcmp(a, "--placement") && i + 1 < fe.nargs) placement = fe.args[++i];
    else if (a[0] == '-') fe_to_node();
    else break;
  }
  char **command = fe.args + i;
  int ncommand = fe.nargs - i;
  if (ncommand < 1) fe_to_node();
  const char *service = getenv("MUSTER_BUILD_SERVICE");
  if (service && *service && strcmp(service, "per-user")) fe_to_node();
  if (!placement) placement = getenv("MUSTER_CC_PLACEMENT");
  if (!placement || !*placement) placement = "auto";
  if (strcmp(placement, "auto") && strcmp(placement, "local") && strcmp(placement, "remote")) {
    fe_to_node();
  }

  char cwd[PATH_MAX], self[PATH_MAX], pkg[PATH_MAX], version[MAX_VERSION];
  if (!getcwd(cwd, sizeof cwd) || !str_utf8(cwd)) fe_to_node();
  for (int k = 0; k < fe.nargs; k++) {
    if (!str_utf8(fe.args[k])) fe_to_node();
  }
  for (char **e = environ; *e; e++) {
    if (!str_utf8(*e)) fe_to_node();
  }
  if (!realpath("/proc/self/exe", self)) fe_to_node();
  strcpy(pkg, self);
  for (int up = 0; up < 3; up++) {
    char *slash = strrchr(pkg, '/');
    if (!slash || slash == pkg) fe_to_node();
    *slash = 0;
  }
  if (fe_version(pkg, version, sizeof version)) fe_to_node();

  /* The per-user service, in a directory that is the user's alone (else Node says why). */
  char sock[PATH_MAX + sizeof SOCKET_NAME + 1];
  choose_dir(NULL);
  if (!g.dir[0] || dir_state(g.dir) != 1) fe_to_node();
  snprintf(sock, sizeof sock, "%s/%s", g.dir, SOCKET_NAME);
  if (strlen(sock) >= sizeof ((struct sockaddr_un *)0)->sun_path) fe_to_node();
  int fd = try_connect(sock);
  fe.cwd = cwd;
  /* None answers: started here, under the shims' start lock (a recent failed start: Node's). */
  if (fd < 0 && (fd = start_once(sock, fe_spawn_service)) >= 0 && dir_state(g.dir) != 1) {
    /* The directory is still the user's alone before the build's environment is sent there. */
    close(fd);
    fd = -1;
  }
  if (fd < 0) fe_to_node();

  /* Node's os.tmpdir(): TMPDIR, TMP or TEMP, else /tmp; a relative one is left to Node. */
  const char *tmp = NULL;
  const char *tmp_vars[] = {"TMPDIR", "TMP", "TEMP"};
  for (size_t k = 0; k < 3 && !tmp; k++) {
    tmp = getenv(tmp_vars[k]);
    if (tmp && !*tmp) tmp = NULL;
  }
  if (!tmp) tmp = "/tmp";
  if (tmp[0] != '/') fe_give_up_before(fd);
  size_t tlen = strlen(tmp);
  while (tlen > 1 && tmp[tlen - 1] == '/') tlen--;
  if ((size_t)snprintf(fe_dir, sizeof fe_dir, "%.*s/muster-build-XXXXXX", (int)tlen, tmp) >=
          sizeof fe_dir ||
      !mkdtemp(fe_dir)) {
    fe_dir[0] = 0;
    fe_give_up_before(fd);
  }
  char link[PATH_MAX + sizeof SOCKET_NAME + 1];
  const char *given = sock;
  snprintf(link, sizeof link, "%s/%s", fe_dir, SOCKET_NAME);
  if (strlen(link) < sizeof ((struct sockaddr_un *)0)->sun_path) {
    if (symlink(sock, link)) fe_give_up_before(fd);
    given = link;
  }

  struct buf open = {0};
  int bad = buf_put(&open, "\0\0\0\0\1", 5) ||
            buf_puts(&open, "{\"type\":\"build-open\",\"v\":1,\"version\":") ||
            put_json_string(&open, version) || buf_puts(&open, ",\"launcher\":") ||
            put_json_string(&open, self) || buf_puts(&open, ",\"command\":");
  /* The command line as the coordinator shows it, cut at a character boundary. */
  struct buf line = {0};
  for (int k = 0; k < ncommand && !bad; k++) {
    bad = (k > 0 && buf_put(&line, " ", 1)) || buf_puts(&line, command[k]);
  }
  if (!bad) {
    size_t len = line.n > MAX_COMMAND_TEXT ? MAX_COMMAND_TEXT : line.n;
    while (len > 0 && len < line.n && ((unsigned char)line.p[len] & 0xC0) == 0x80) len--;
    bad = buf_put(&line, "", 1);
    if (!bad) line.p[len] = 0;
  }
  bad = bad || put_json_string(&open, line.p) || buf_puts(&open, ",\"cwd\":") ||
        put_json_string(&open, cwd) || buf_puts(&open, ",\"env\":[");
  free(line.p);
  int first = 1;
  for (char **e = environ; *e && !bad; e++) {
    if (!strchr(*e, '=') || **e == '=') continue;
    bad = (!first && buf_put(&open, ",", 1)) || put_json_string(&open, *e);
    first = 0;
  }
  bad = bad || buf_puts(&open, "],\"placement\":") || put_json_string(&open, placement) ||
        buf_puts(&open, no_cache ? ",\"noCache\":true" : ",\"noCache\":false") ||
        buf_puts(&open, ",\"dir\":") || put_json_string(&open, fe_dir) ||
        buf_puts(&open, ",\"socket\":") || put_json_string(&open, given) || buf_puts(&open, "}");
  if (bad || send_frame(fd, &open)) fe_give_up_before(fd);
  free(open.p);

  /* Accepted, with the command's environment; `say` lines shown meanwhile. */
  fe_frame_timeout(fd);
  char *body = NULL;
  size_t n = 0;
  struct answer a;
  long long deadline = mono_ms() + ACCEPT_WAIT_MS;
  for (;;) {
    if (fe_wait(fd, deadline) != 1 || read_frame(fd, &body, &n)) fe_give_up_before(fd);
    if (fe_parse_answer(body, n, &a)) continue; /* a line it cannot show */
    if (!strcmp(a.type, "say") && a.text) {
      (void)write_all(2, a.text, strlen(a.text));
      continue;
    }
    if (!strcmp(a.type, "build-accepted") && a.tag && a.has_env) break;
    fe_give_up_before(fd); /* refused, or not an answer: Node hosts it and says why */
  }
  char **env = a.env.v; /* its strings live in body, which is kept */

  /* The command. */
  sigset_t guarded, before;
  fe_guarded(&guarded);
  if (pipe(fe_wake) || fcntl(fe_wake[0], F_SETFD, FD_CLOEXEC) ||
      fcntl(fe_wake[1], F_SETFD, FD_CLOEXEC) || fcntl(fe_wake[0], F_SETFL, O_NONBLOCK) ||
      fcntl(fe_wake[1], F_SETFL, O_NONBLOCK)) {
    fe_give_up_before(fd);
  }
  /* The handlers see fe_child set before the child can end or be signalled. */
  sigprocmask(SIG_BLOCK, &guarded, &before);
  fe_handle(SIGCHLD, fe_on_chld);
  fe_handle(SIGTERM, fe_forward);
  fe_handle(SIGHUP, fe_forward);
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  pid_t pid = fe_spawn(command, env, json);
  int status = 0, spawned = pid > 0;
  if (!spawned) {
    /* As Node says it when spawn fails for another reason than a missing program. */
    fprintf(stderr, "muster: %s: %s\n", command[0], strerror(errno));
    status = 126 << 8;
  } else {
    fe_child = pid;
  }
  sigset_t waiting = before;
  sigdelset(&waiting, SIGCHLD);
  sigdelset(&waiting, SIGTERM);
  sigdelset(&waiting, SIGHUP);
  sigprocmask(SIG_SETMASK, &waiting, NULL);

  /* While it runs: the service's lines; a `build-closed` now means it stopped (early). */
  int live = 1, lost = 0;
  char *closed = NULL; /* the raw build-closed, for `muster build-finish` */
  struct answer done;
  memset(&done, 0, sizeof done);
  while (spawned) {
    /* A finite wait: a lost wake-up costs a second, never the build. */
    struct pollfd p[2] = {{fe_wake[0], POLLIN, 0}, {live ? fd : -1, POLLIN, 0}};
    int r = poll(p, 2, 1000);
    if (r > 0 && (p[0].revents & POLLIN)) {
      char drain[64];
      while (read(fe_wake[0], drain, sizeof drain) > 0) {
      }
    }
    sigprocmask(SIG_BLOCK, &guarded, NULL);
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) fe_child = 0;
    sigprocmask(SIG_SETMASK, &waiting, NULL);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      /* Not ours to wait for any more (cannot happen): wait for it plainly. */
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      fe_child = 0;
      break;
    }
    if (r > 0 && live && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      int kind = fe_read_answer(fd, &closed, &done);
      if (kind == FE_CLOSED || kind == FE_OTHER || kind == FE_BROKEN) live = 0;
      if (kind == FE_OTHER || kind == FE_BROKEN) lost = 1;
    }
  }
  /* The command has ended: the signals are this process's own again, as in Node. */
  signal(SIGINT, SIG_DFL);
  signal(SIGQUIT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  int code = sig ? 128 + sig : WIFEXITED(status) ? WEXITSTATUS(status) : 1;

  /* The close, asking for the summary (the service reads the time at its end). */
  int early = closed != NULL;
  if (live) {
    struct buf close_msg = {0};
    int failed = buf_put(&close_msg, "\0\0\0\0\1", 5) ||
                 buf_puts(&close_msg, "{\"type\":\"build-close\",\"exitCode\":");
    if (!failed && sig) failed = buf_puts(&close_msg, "null");
    else if (!failed) failed = put_int(&close_msg, code);
    failed = failed || buf_puts(&close_msg, ",\"summary\":{\"startedAt\":") ||
             put_int(&close_msg, fe.started_ms) || buf_puts(&close_msg, ",\"code\":") ||
             put_int(&close_msg, code) || buf_puts(&close_msg, "}}");
    if (failed || send_frame(fd, &close_msg)) {
      lost = 1;
    } else {
      long long close_deadline = mono_ms() + CLOSE_WAIT_MS;
      for (;;) {
        int ready = fe_wait(fd, close_deadline);
        if (ready != 1) {
          lost = ready < 0; /* 0: not in time (Node says so) */
          break;
        }
        int kind = fe_read_answer(fd, &closed, &done);
        if (kind == FE_SAY || kind == FE_SKIPPED) continue;
        lost = kind != FE_CLOSED;
        break;
      }
    }
    free(close_msg.p);
  }
  close(fd);

  /* The usual end: the service's summary, nothing logged after its close. */
  char log[PATH_MAX + sizeof LOG_NAME + 1];
  snprintf(log, sizeof log, "%s/%s", fe_dir, LOG_NAME);
  struct stat st;
  if (closed && !early && done.summary && done.json && lstat(log, &st) != 0 && errno == ENOENT) {
    fe_remove_dir();
    (void)write_all(2, done.summary, strlen(done.summary));
    if (json) {
      (void)write_all(1, done.json, strlen(done.json));
      (void)write_all(1, "\n", 1);
    }
    if (sig) {
      signal(sig, SIG_DFL);
      raise(sig);
    }
    return code;
  }

  /* Anything else: the Node CLI counts what is left and prints the summary. */
  struct buf state = {0};
  int failed = buf_puts(&state, "{\"dir\":") || put_json_string(&state, fe_dir) ||
               buf_puts(&state, ",\"closed\":") ||
               (closed ? buf_puts(&state, closed) : buf_puts(&state, "null")) ||
               buf_puts(&state, lost ? ",\"lost\":true" : ",\"lost\":false") ||
               buf_puts(&state, ",\"startedAt\":") || put_int(&state, fe.started_ms) ||
               buf_puts(&state, ",\"code\":") || put_int(&state, code) ||
               buf_puts(&state, ",\"signal\":");
  failed = failed || (sig ? put_int(&state, sig) : buf_puts(&state, "null")) ||
           buf_puts(&state, json ? ",\"json\":true}" : ",\"json\":false}") || buf_put(&state, "", 1);
  if (!failed) {
    char *tail[] = {state.p};
    fe_try_node("build-finish", tail, 1);
  }
  /* Not even that: the command's end is still this process's. */
  fprintf(stderr, "muster: the build's summary is lost (%s)\n", fe_dir);
  fe_remove_dir();
  if (sig) {
    signal(sig, SIG_DFL);
    raise(sig);
  }
  return code;
}
