#ifndef HELLO_MATHX_H
#define HELLO_MATHX_H

/* The n-th Fibonacci number (fib(0) = 0, fib(1) = 1). */
unsigned long long fib(unsigned n);

/* Greatest common divisor. */
unsigned long gcd(unsigned long a, unsigned long b);

/* Number of primes below n (a small sieve). */
unsigned count_primes(unsigned n);

#endif
