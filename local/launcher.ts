/** `node dist/launcher.js SCRIPT [ARGS…]`: runs SCRIPT with the local runtime's process settings (launch.ts). */
import { launch } from './launch';

const [script, ...args] = process.argv.slice(2);
if (!script) {
  console.error('usage: node dist/launcher.js SCRIPT [ARGS…]');
  process.exit(2);
}
launch(script, args);
