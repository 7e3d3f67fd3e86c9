#include <math.h>
#include "shapes.h"

real circle_area(real radius) { return M_PI * radius * radius; }

real distance(point a, point b) { return sqrt((a.x - b.x) * (a.x - b.x) + (a.y - b.y) * (a.y - b.y)); }
