// Generates a C project of many independent source files, for the benchmark "an example C build
// through Muster vs plain make -j":
//
//   node examples/c-many/generate.js [--out DIR] [--files N] [--functions N] [--seed N]
//
// It writes into DIR (default examples/c-many/out, which git ignores):
//   src/unit_000.c … src/unit_<N-1>.c   each with --functions generated functions of real
//                                       integer work (loops, shifts, multiplies, switches)
//   include/units.h                     their declarations
//   main.c                              calls every unit and prints one checksum
//   expected.txt                        that checksum, computed here in JavaScript
//   muster.yml                          one compile task per .c file, a link and a test task
//   Makefile                            the same build for `make -j` (and `make test`)
//
// The output depends only on the options, so two runs with the same options give the same files
// (and the same compiler work). Files are rewritten only when their content changes.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const usage =
  'usage: node examples/c-many/generate.js [--out DIR] [--files N] [--functions N] [--seed N]';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: join(import.meta.dirname, 'out') },
    files: { type: 'string', default: '64' },
    functions: { type: 'string', default: '24' },
    seed: { type: 'string', default: '1' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(usage);
  process.exit(0);
}

function intOption(name, min, max) {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`--${name} must be a whole number from ${min} to ${max}\n${usage}`);
    process.exit(2);
  }
  return n;
}

const files = intOption('files', 1, 5000);
const functions = intOption('functions', 1, 1000);
const seed = intOption('seed', 0, 0xffffffff);
const out = resolve(values.out);

/** mulberry32: a small deterministic PRNG, so the same options give the same program. */
function prng(start) {
  let a = start >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

const random = prng(seed);
const pick = (n) => random() % n;
const hex = (n) => `0x${(n >>> 0).toString(16).padStart(8, '0')}u`;

// uint32 arithmetic in JavaScript, to compute the expected checksum.
const u32 = {
  add: (a, b) => (a + b) >>> 0,
  sub: (a, b) => (a - b) >>> 0,
  mul: (a, b) => Math.imul(a, b) >>> 0,
  xor: (a, b) => (a ^ b) >>> 0,
  shl: (a, s) => (a << s) >>> 0,
  shr: (a, s) => a >>> s,
  rotl: (a, s) => ((a << s) | (a >>> (32 - s))) >>> 0,
};

/**
 * One statement of a loop body: its C text and the same operation in JavaScript. `acc` is the
 * accumulator, `i` the loop counter (both uint32).
 */
function statement() {
  const c1 = random() | 1;
  const s = 1 + pick(30);
  switch (pick(6)) {
    case 0:
      return {
        c: `acc = (acc ^ (acc >> ${s})) * ${hex(c1)};`,
        js: (acc) => u32.mul(u32.xor(acc, u32.shr(acc, s)), c1),
      };
    case 1:
      return {
        c: `acc += (i * ${hex(c1)}) ^ (acc << ${s});`,
        js: (acc, i) => u32.add(acc, u32.xor(u32.mul(i, c1), u32.shl(acc, s))),
      };
    case 2:
      return {
        c: `acc = (acc << ${s}) | (acc >> ${32 - s});`,
        js: (acc) => u32.rotl(acc, s),
      };
    case 3:
      return {
        c: `acc -= ${hex(c1)} ^ i;`,
        js: (acc, i) => u32.sub(acc, u32.xor(c1, i)),
      };
    case 4: {
      const c2 = random();
      const c3 = random();
      return {
        c:
          `switch (acc & 3u) {\n` +
          `      case 0: acc ^= ${hex(c1)}; break;\n` +
          `      case 1: acc += ${hex(c2)}; break;\n` +
          `      case 2: acc = acc * ${hex(c3 | 1)} + i; break;\n` +
          `      default: acc = ~acc;\n` +
          `    }`,
        js: (acc, i) => {
          switch (acc & 3) {
            case 0:
              return u32.xor(acc, c1);
            case 1:
              return u32.add(acc, c2);
            case 2:
              return u32.add(u32.mul(acc, c3 | 1), i);
            default:
              return ~acc >>> 0;
          }
        },
      };
    }
    default:
      return {
        c: `if (acc & ${hex(1 << s)}) acc ^= ${hex(c1)}; else acc += ${hex(c1 >>> 1)};`,
        js: (acc) => ((acc & (1 << s)) !== 0 ? u32.xor(acc, c1) : u32.add(acc, c1 >>> 1)),
      };
  }
}

/** One generated function: C source, and its value for an input computed in JavaScript. */
function generatedFunction(name) {
  const iterations = 200 + pick(800);
  const body = Array.from({ length: 8 + pick(8) }, statement);
  const start = random();
  const c = [
    `static uint32_t ${name}(uint32_t x) {`,
    `  uint32_t acc = ${hex(start)} ^ x;`,
    `  for (uint32_t i = 0; i < ${iterations}u; i++) {`,
    ...body.map((s) => `    ${s.c}`),
    `  }`,
    `  return acc;`,
    `}`,
  ].join('\n');
  const js = (x) => {
    let acc = u32.xor(start, x);
    for (let i = 0; i < iterations; i++) {
      for (const s of body) acc = s.js(acc, i);
    }
    return acc;
  };
  return { c, js };
}

function unitName(u) {
  return `unit_${String(u).padStart(3, '0')}`;
}

const written = new Set();
function write(relative, text) {
  const path = join(out, relative);
  written.add(path);
  mkdirSync(dirname(path), { recursive: true });
  if (!existsSync(path) || readFileSync(path, 'utf8') !== text) writeFileSync(path, text);
}

// The units.
let checksum = 0;
const units = [];
for (let u = 0; u < files; u++) {
  const name = unitName(u);
  units.push(name);
  const fns = Array.from({ length: functions }, (_, f) =>
    generatedFunction(`${name}_f${String(f).padStart(3, '0')}`),
  );
  const chain = fns.map((_, f) => `  x = ${name}_f${String(f).padStart(3, '0')}(x) + ${f}u;`);
  write(
    `src/${name}.c`,
    [
      `/* Generated by examples/c-many/generate.js (seed ${seed}); do not edit. */`,
      `#include <stdint.h>`,
      ``,
      `#include "units.h"`,
      ``,
      ...fns.map((f) => f.c + '\n'),
      `uint32_t ${name}(uint32_t x) {`,
      ...chain,
      `  return x;`,
      `}`,
      ``,
    ].join('\n'),
  );
  let x = u + 1;
  fns.forEach((f, i) => {
    x = u32.add(f.js(x), i);
  });
  checksum = u32.add(u32.mul(checksum, 31), x);
}

write(
  'include/units.h',
  [
    `/* Generated by examples/c-many/generate.js; do not edit. */`,
    `#ifndef MANY_UNITS_H`,
    `#define MANY_UNITS_H`,
    `#include <stdint.h>`,
    ``,
    ...units.map((name) => `uint32_t ${name}(uint32_t x);`),
    ``,
    `#endif`,
    ``,
  ].join('\n'),
);

write(
  'main.c',
  [
    `/* Generated by examples/c-many/generate.js; do not edit. */`,
    `#include <inttypes.h>`,
    `#include <stdio.h>`,
    ``,
    `#include "units.h"`,
    ``,
    `int main(void) {`,
    `  uint32_t sum = 0;`,
    ...units.map((name, u) => `  sum = sum * 31u + ${name}(${u + 1}u);`),
    `  printf("units %d checksum %08" PRIx32 "\\n", ${files}, sum);`,
    `  return 0;`,
    `}`,
    ``,
  ].join('\n'),
);

write('expected.txt', `units ${files} checksum ${checksum.toString(16).padStart(8, '0')}\n`);

const compileTasks = ['main', ...units].map((name) => {
  const source = name === 'main' ? 'main.c' : `src/${name}.c`;
  return [
    `  compile-${name}:`,
    `    run: cc -O2 -Iinclude -c ${source} -o ${name}.o`,
    `    inputs: [${source}, include/units.h]`,
    `    outputs: [${name}.o]`,
  ].join('\n');
});
write(
  'muster.yml',
  [
    `# Generated by examples/c-many/generate.js (${files} files, ${functions} functions each, seed ${seed}).`,
    `name: c-many`,
    `tasks:`,
    ...compileTasks,
    `  link:`,
    `    run: cc -O2 *.o -o many`,
    `    needs:`,
    ...['main', ...units].map((name) => `      - compile-${name}`),
    `    outputs: [many]`,
    `  test:`,
    `    run: ./many > actual.txt && diff -u expected.txt actual.txt`,
    `    needs: [link]`,
    `    inputs: [expected.txt]`,
    ``,
  ].join('\n'),
);

write(
  'Makefile',
  [
    `# Generated by examples/c-many/generate.js: the same build as muster.yml, for make -j.`,
    `CC ?= cc`,
    `CFLAGS ?= -O2`,
    `OBJS := main.o $(patsubst src/%.c,%.o,$(wildcard src/*.c))`,
    ``,
    `.PHONY: all test clean`,
    `all: many`,
    ``,
    `many: $(OBJS)`,
    `\t$(CC) $(CFLAGS) $(OBJS) -o $@`,
    ``,
    `main.o: main.c include/units.h`,
    `\t$(CC) $(CFLAGS) -Iinclude -c $< -o $@`,
    ``,
    `%.o: src/%.c include/units.h`,
    `\t$(CC) $(CFLAGS) -Iinclude -c $< -o $@`,
    ``,
    `test: many`,
    `\t./many > actual.txt && diff -u expected.txt actual.txt`,
    ``,
    `clean:`,
    `\trm -f $(OBJS) many actual.txt`,
    ``,
  ].join('\n'),
);

// Sources left over from an earlier run with more files would be compiled by the Makefile.
const srcDir = join(out, 'src');
for (const name of readdirSync(srcDir)) {
  if (/^unit_\d+\.c$/.test(name) && !written.has(join(srcDir, name))) rmSync(join(srcDir, name));
}

console.log(
  `wrote ${files} units × ${functions} functions (+ main.c, muster.yml, Makefile) to ${out}`,
);
