#ifndef HELLO_UTIL_H
#define HELLO_UTIL_H

/* Upper-cases an ASCII string in place and returns it. */
char *upcase(char *s);

/* A 32-bit FNV-1a hash of a string. */
unsigned long fnv1a(const char *s);

#endif
