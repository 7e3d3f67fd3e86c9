/* Builds cleanly by default; -DWARN adds a warning, -DBROKEN an error (compile tests). */
#include "stats.h"

int noisy(int x) {
#ifdef WARN
  int unused_variable;
#endif
#ifdef BROKEN
  return x + undeclared_identifier;
#else
  return x * 2;
#endif
}
