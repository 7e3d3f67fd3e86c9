// The web UI's build: sources in web/, output in dist/web, served by every coordinator.
import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  plugins: [preact()],
  build: { outDir: '../dist/web', emptyOutDir: true, sourcemap: true },
  logLevel: 'warn',
});
