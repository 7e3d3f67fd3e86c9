#ifndef CMINI_SHAPES_H
#define CMINI_SHAPES_H
#include "config.h"

typedef struct {
  real x, y;
} point;

real circle_area(real radius);
real distance(point a, point b);
#endif
