#!/usr/bin/env node
// The `certflow` command: TypeScript sources run through tsx, as `npm start` does, in a Node started with the local
// runtime's process settings (local/launch.ts), since the CLI runs the embedded runtime without --endpoint.
require('tsx/cjs/api').register();
const { hasRuntimeSettings, launch } = require('../local/launch.ts');
if (hasRuntimeSettings()) require('../local/cli.ts');
else launch(__filename, process.argv.slice(2));
