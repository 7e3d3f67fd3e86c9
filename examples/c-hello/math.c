#include <stdlib.h>
#include <string.h>

#include "mathx.h"

unsigned long long fib(unsigned n) {
  unsigned long long a = 0, b = 1;
  for (unsigned i = 0; i < n; i++) {
    unsigned long long next = a + b;
    a = b;
    b = next;
  }
  return a;
}

unsigned long gcd(unsigned long a, unsigned long b) {
  while (b != 0) {
    unsigned long t = a % b;
    a = b;
    b = t;
  }
  return a;
}

unsigned count_primes(unsigned n) {
  if (n < 3) return 0;
  char *composite = calloc(n, 1);
  if (composite == NULL) return 0;
  unsigned count = 0;
  for (unsigned i = 2; i < n; i++) {
    if (composite[i]) continue;
    count++;
    for (unsigned long j = (unsigned long)i * i; j < n; j += i) composite[j] = 1;
  }
  free(composite);
  return count;
}
