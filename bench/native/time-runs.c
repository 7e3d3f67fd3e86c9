/*
 * time-runs: runs a command N times the way make does (fork, exec, wait) and prints the wall
 * time of each whole process as percentiles, for the launcher's hot-path benchmark (design §5:
 * a cache hit through dist/native/muster-cc against /bin/true, this machine's process floor).
 *
 *   cc -O2 -std=c99 -D_POSIX_C_SOURCE=200809L -o time-runs bench/native/time-runs.c
 *   time-runs N COMMAND [ARGS...]
 *     → {"runs":N,"p50":…,"p90":…,"min":…,"max":…}   microseconds, one JSON line on stdout
 *
 * The command's stdout and stderr pass through; it fails (exit 1) on the first run that does not
 * exit 0, since a benchmark of failing runs measures the wrong thing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int compare(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return (x > y) - (x < y);
}

static long long now_usec(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

int main(int argc, char **argv) {
  char *end;
  long n = argc > 2 ? strtol(argv[1], &end, 10) : 0;
  if (argc < 3 || *end || n < 1 || n > 1000000) {
    fputs("usage: time-runs N COMMAND [ARGS...]\n", stderr);
    return 2;
  }
  long long *times = malloc((size_t)n * sizeof *times);
  if (!times) return 1;
  for (long i = 0; i < n; i++) {
    long long start = now_usec();
    pid_t pid = fork();
    if (pid < 0) {
      perror("time-runs: fork");
      return 1;
    }
    if (pid == 0) {
      execv(argv[2], argv + 2);
      perror("time-runs: exec");
      _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) {
        perror("time-runs: waitpid");
        return 1;
      }
    }
    times[i] = now_usec() - start;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "time-runs: run %ld of %s did not exit 0 (status %d)\n", i + 1, argv[2],
              status);
      return 1;
    }
  }
  qsort(times, (size_t)n, sizeof *times, compare);
  printf("{\"runs\":%ld,\"p50\":%lld,\"p90\":%lld,\"min\":%lld,\"max\":%lld}\n", n, times[n / 2],
         times[n * 9 / 10], times[0], times[n - 1]);
  free(times);
  return 0;
}
