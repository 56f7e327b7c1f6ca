#!/usr/bin/env node
// The `webhooks-api` command; the code is compiled into dist/ by `npm run build` (run by `npm ci`).
import '../dist/server/main.js';
