import { defineConfig } from 'vite'

export default defineConfig({
  root: 'demo',
  publicDir: '../public',
  build: { outDir: '../dist/demo', emptyOutDir: true, target: 'es2022' },
  worker: { format: 'es' },
})
