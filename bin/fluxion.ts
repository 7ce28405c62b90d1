#!/usr/bin/env node
// The one command. Node >= 22.18 runs TypeScript directly (type stripping): no build step.
import { main } from '../cli/main.ts';

process.exitCode = await main(process.argv.slice(2));
