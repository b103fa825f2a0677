// Runs ./bundle.ts in a process of its own and hands the bundle to the parent over IPC (why:
// ./explorer.ts). Run directly, it prints what it built (the measurement behind the numbers in
// ./explorer.ts) and, with --out, writes it there for the gateway to read instead of bundling
// (./prebuilt.ts; `npm run explorer:build` writes dist/explorer, which the Docker image holds):
//   node --import tsx gateway/explorer/bundle-process.ts [--out <dir>]
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { stop } from 'esbuild';
import { bundleExplorer } from './bundle.js';
import { writePrebuilt } from './prebuilt.js';

const { values } = parseArgs({ options: { out: { type: 'string' } } });

const bundle = await bundleExplorer();
await stop();

if (process.send) {
  // Disconnecting lets the process end once the message is out (the parent waits for the exit).
  process.send(bundle, undefined, {}, () => process.disconnect());
} else {
  const kb = (bytes: number) => `${(bytes / 1024).toFixed(0)} KiB`;
  for (const file of [...bundle.files].sort((a, b) => b.bytes - a.bytes)) {
    console.log(`${file.name.padEnd(32)} ${kb(file.bytes).padStart(10)} ${kb(file.gzip.byteLength).padStart(10)} gzipped`);
  }
  const total = (pick: (names: string[]) => string[]) => {
    const names = new Set(pick(bundle.files.map((f) => f.name)));
    const files = bundle.files.filter((f) => names.has(f.name));
    return `${kb(files.reduce((sum, f) => sum + f.bytes, 0))} (${kb(files.reduce((sum, f) => sum + f.gzip.byteLength, 0))} gzipped)`;
  };
  console.log(`all ${bundle.files.length} files: ${total((names) => names)}`);
  console.log(`workers: ${total(() => Object.values(bundle.page.workers))}`);
  console.log(`bundled in ${bundle.ms} ms; page: ${JSON.stringify(bundle.page)}`);
  for (const warning of bundle.warnings) console.warn(`warning: ${warning}`);
  if (values.out) {
    const dir = resolve(values.out);
    await writePrebuilt(bundle, dir);
    console.log(`written to ${dir}`);
  }
}
