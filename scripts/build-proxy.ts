// `npm run build` step: bundles src/proxy into public/burrow-sw.js and public/burrow-proxy.html.
import { buildProxyAssets } from '../src/cli/build-proxy.ts'

for (const path of await buildProxyAssets()) console.log(`built ${path}`)
