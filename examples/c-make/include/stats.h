#ifndef CMINI_STATS_H
#define CMINI_STATS_H
#include <stddef.h>
#include "config.h"

real mean(const real *values, size_t count);
void format_table(char *out, size_t size);
const char *shout(const char *word);
int noisy(int x);
#endif
