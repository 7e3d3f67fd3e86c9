#include <stdio.h>
#include "config.h"
#include "stats.h"

void format_table(char *out, size_t size) {
  size_t used = 0;
  for (int i = 0; i < CMINI_TABLE_SIZE && used < size; i++) {
    int n = snprintf(out + used, size - used, "%d ", i * i);
    if (n < 0) break;
    used += (size_t)n;
  }
  if (used < size) snprintf(out + used, size - used, "\n");
}
