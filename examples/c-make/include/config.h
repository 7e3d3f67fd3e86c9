#ifndef CMINI_CONFIG_H
#define CMINI_CONFIG_H
typedef double real;
#define CMINI_TABLE_SIZE 8
#endif
