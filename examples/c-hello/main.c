#include <stdio.h>

#include "greet.h"
#include "mathx.h"
#include "util.h"

int main(int argc, char **argv) {
  char name[64] = "muster";
  if (argc > 1) snprintf(name, sizeof name, "%s", argv[1]);

  char line[128];
  greet(line, sizeof line, name);
  printf("%s\n", line);
  printf("fib(50) = %llu\n", fib(50));
  printf("gcd(1071, 462) = %lu\n", gcd(1071, 462));
  printf("primes below 100000 = %u\n", count_primes(100000));
  printf("fnv1a(%s) = %08lx\n", name, fnv1a(name));
  printf("%s\n", upcase(name));
  return 0;
}
