#include <iostream>
#include <iterator>
#include <string>

int main() {
  std::istream_iterator<std::string> begin(std::cin), end;
  std::cout << std::distance(begin, end) << '\n';
  return 0;
}
