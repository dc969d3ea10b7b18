#!/usr/bin/env node
// The `certflow` command: TypeScript sources run through tsx, as `npm start` does.
require('tsx/cjs/api').register();
require('../local/cli.ts');
