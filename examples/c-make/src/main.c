#include <stdio.h>
#include "shapes.h"
#include "stats.h"

int main(void) {
  const real values[] = {1, 2, 3, 4};
  char table[256];
  printf("area %.3f\n", circle_area(2));
  printf("mean %.1f\n", mean(values, 4));
  format_table(table, sizeof table);
  printf("%s%s %d\n", table, shout("done"), noisy(1));
  return 0;
}
