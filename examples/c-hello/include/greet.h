#ifndef HELLO_GREET_H
#define HELLO_GREET_H

/* Writes "Hello, NAME!" into buf (at most size bytes, always terminated). */
void greet(char *buf, unsigned long size, const char *name);

#endif
