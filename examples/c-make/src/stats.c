#include "stats.h"

real mean(const real *values, size_t count) {
  real sum = 0;
  for (size_t i = 0; i < count; i++) sum += values[i];
  return count == 0 ? 0 : sum / (real)count;
}
