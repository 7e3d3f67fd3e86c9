#include <ctype.h>
#include <string.h>
#include "stats.h"

const char *shout(const char *word) {
  static char buffer[64];
  size_t i = 0;
  for (; word[i] != '\0' && i + 1 < sizeof buffer; i++) buffer[i] = (char)toupper((unsigned char)word[i]);
  buffer[i] = '\0';
  return buffer;
}
