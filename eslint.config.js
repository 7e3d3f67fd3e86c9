// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

/**
 * `.catch(() => undefined)` (or `() => {}`) on a promise nobody awaits for its value: the error
 * vanishes. Where that is right, an `eslint-disable-next-line no-restricted-syntax -- why` says so.
 * A probe whose undefined is the answer (`await stat(f).catch(() => undefined)` in an expression)
 * is not matched.
 */
const silentHandler =
  "CallExpression[callee.property.name='catch'][arguments.length=1]" +
  "[arguments.0.type='ArrowFunctionExpression'][arguments.0.params.length=0]";
const silentCatches = [
  `${silentHandler}[arguments.0.body.type='Identifier'][arguments.0.body.name='undefined']`,
  `${silentHandler}[arguments.0.body.type='BlockStatement'][arguments.0.body.body.length=0]`,
].flatMap((call) =>
  [
    `ExpressionStatement > ${call}`,
    `ExpressionStatement > UnaryExpression > ${call}`,
    `ExpressionStatement > AwaitExpression > ${call}`,
    `ExpressionStatement > AwaitExpression > ChainExpression > ${call}`,
  ].map((selector) => ({
    selector,
    message:
      'This .catch drops the error: handle it, log it with its reason, or say why ignoring is right (eslint-disable-next-line no-restricted-syntax -- why).',
  })),
);

/**
 * Each layer's folder as an import pattern: the layer rules below say which of them a folder may
 * not import (ARCHITECTURE.md, "Layers: who may import whom").
 */
const layer = {
  protocol: '**/protocol/**',
  common: '**/common/**',
  api: '**/api/**',
  coordinator: '**/coordinator/**',
  agent: '**/agent/**',
  cli: '**/cli/**',
  host: '**/host/**',
  extensions: '**/extensions/**',
  /** The coordinator's end of the agent protocol (src/protocol/client). */
  agentClient: '**/protocol/client/**',
};

/** The host, but for its glob reading (a leaf the plan language and the CLI share with it). */
const hostButGlob = ['**/host/*', '!**/host/glob.js'];

/**
 * The extensions, but for the cc extension's check of a remote compile's arguments (a leaf with
 * no imports, which the coordinator's job schema and the client's classification share with it).
 */
const extensionsButRemoteArgs = [
  '**/extensions/*',
  '!**/extensions/cc',
  '**/extensions/cc/*',
  '!**/extensions/cc/remote-args.js',
];

/** The coordinator's model: it reports in its own terms and never imports the HTTP edge. */
const modelFolders = ['store', 'scheduler', 'pool', 'ha', 'tls'];

/** The coordinator's HTTP edge (coordinator/api), as the model's files import it. */
const httpEdge = ['../api/*', '**/coordinator/api/*'];

/**
 * What the files shipped to agents (host, extensions) may not import, type-only imports aside:
 * they run with Node built-ins and their own folder only.
 */
const shippedFilesMayNotImport = [
  '../protocol/*',
  '../../protocol/*',
  '../common/*',
  '../../common/*',
  '../agent/*',
  '../coordinator/*',
  'zod',
  'pino',
  'commander',
];

/** The rule that forbids importing these patterns. */
function forbid(...patterns) {
  return { 'no-restricted-imports': ['error', { patterns }] };
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.muster/**', 'release/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver': { node: true } },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'import-x/no-cycle': 'error',
      // Fastify handlers and interface implementations are async without awaiting; that is fine.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // Product code: a dropped promise whose error is dropped too is handled, logged, or says why
    // not. Tests may fire and forget.
    files: ['src/**/*.ts', 'web/src/**/*.ts', 'web/src/**/*.tsx'],
    rules: { 'no-restricted-syntax': ['error', ...silentCatches] },
  },
  {
    // The UI's build config imports only build tools (which the legacy node resolver cannot
    // load); there is nothing of ours to find a cycle in.
    files: ['web/vite.config.ts'],
    rules: { 'import-x/no-cycle': 'off' },
  },
  {
    // The agent and the coordinator never import each other (nor the coordinator's end of the
    // protocol); the protocol imports neither.
    files: ['src/agent/**/*.ts'],
    rules: forbid(layer.coordinator, layer.cli, layer.host, layer.agentClient),
  },
  {
    // The shared layer (what crosses the API: views, requests, events, statuses, the plan
    // language) imports only the protocol, the shared utilities and libraries, so the CLI and the
    // web UI can import it. Its exceptions are the host's glob reading, so a plan is checked as
    // the agent will match it (host/glob.ts is a leaf: Node built-ins only), and the cc
    // extension's check of a remote compile's arguments, so a job is checked as the agent will
    // (extensions/cc/remote-args.ts is a leaf with no imports).
    files: ['src/api/**/*.ts'],
    rules: forbid(
      layer.coordinator,
      layer.cli,
      layer.agent,
      ...extensionsButRemoteArgs,
      ...hostButGlob,
    ),
  },
  {
    // The CLI sees the coordinator only through the API: it imports the shared layer, the
    // protocol, its own folder and the host's glob reading (for `muster run`'s inputs), never the
    // coordinator's or the agent's insides. The commands that start the daemons in this process
    // (`muster up`, `muster coordinator`, `muster agent`, `muster agent instances`) are their
    // entry points, and the exception; so is `muster config check`, which validates a config
    // file with the daemons' own option checks.
    files: ['src/cli/**/*.ts'],
    ignores: [
      'src/cli/up-command.ts',
      'src/cli/coordinator-command.ts',
      'src/cli/agent-command.ts',
      'src/cli/agent-instances.ts',
      'src/cli/config-command.ts',
    ],
    rules: forbid(layer.coordinator, layer.agent, layer.extensions, ...hostButGlob),
  },
  {
    // The web UI imports the shared layer and the protocol, nothing else of ours.
    files: ['web/src/**/*.ts', 'web/src/**/*.tsx'],
    rules: forbid(
      layer.common,
      layer.coordinator,
      layer.cli,
      layer.agent,
      layer.host,
      layer.extensions,
    ),
  },
  {
    files: ['src/coordinator/**/*.ts'],
    rules: forbid(layer.agent, layer.cli),
  },
  {
    // Inside the coordinator the model never imports the HTTP edge: store, scheduler, pool, HA and
    // TLS report in their own terms (rows, domain events), and coordinator/api maps them to views.
    // (The shared layer, src/api, is not the edge: '../../api/…' stays allowed.)
    files: modelFolders.map((folder) => `src/coordinator/${folder}/**/*.ts`),
    rules: forbid(layer.agent, layer.cli, ...httpEdge),
  },
  {
    // The wire (messages, framing, handshake, the error registry) is the bottom layer: it imports
    // nothing of ours, not even the shared utilities.
    files: ['src/protocol/**/*.ts'],
    rules: forbid(
      layer.agent,
      layer.coordinator,
      layer.cli,
      layer.host,
      layer.extensions,
      layer.common,
      layer.api,
    ),
  },
  {
    // Utilities the daemons and the CLI share (blob store, atomic files, durations, pinned TLS,
    // …) import only the protocol (for its error registry) and libraries.
    files: ['src/common/**/*.ts'],
    rules: forbid(
      layer.agent,
      layer.coordinator,
      layer.cli,
      layer.host,
      layer.extensions,
      layer.api,
    ),
  },
  {
    // The host runtime and built-in extensions are shipped to agents as plain files: they may import
    // only Node built-ins and their own folder (type-only imports are erased).
    files: ['src/host/**/*.ts', 'src/extensions/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { patterns: [{ group: shippedFilesMayNotImport, allowTypeImports: true }] },
      ],
    },
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly' },
    },
  },
);
