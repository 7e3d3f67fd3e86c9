#include <ctype.h>

#include "util.h"

char *upcase(char *s) {
  for (char *p = s; *p != '\0'; p++) *p = (char)toupper((unsigned char)*p);
  return s;
}

unsigned long fnv1a(const char *s) {
  unsigned long h = 2166136261UL;
  for (; *s != '\0'; s++) {
    h ^= (unsigned char)*s;
    h = (h * 16777619UL) & 0xffffffffUL;
  }
  return h;
}
