#include <cstdio>
int main() { std::puts("glimpse"); return 0; }
