/**
 * npm run bench:analysis: how long the offline `local` analyser takes on stories of growing
 * length (built from the test fixtures), so the worker's cost per story is known. Each size is
 * run 7 times after a warm-up; it prints the median and the slowest, and ms per 10,000
 * characters: a figure that stays flat means the analyser scales linearly.
 */
import { parseArgs } from 'node:util';
import { LocalAnalyser } from '../subgraphs/story/analysis/local.js';
import { ALL_STORIES } from '../subgraphs/story/analysis/fixtures/stories.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' }, sizes: { type: 'string', default: '2000,20000,200000' } } });
const runs = Number(values.runs);
const sizes = values.sizes.split(',').map(Number);
const source = ALL_STORIES.map((story) => story.content).join('\n\n');
const textOf = (chars: number) => {
  let text = '';
  while (text.length < chars) text += source + '\n\n';
  return text.slice(0, chars);
};

const analyser = new LocalAnalyser();
await analyser.analyse({ title: 'Warm-up', content: textOf(20_000) });
const rows = [];
for (const chars of sizes) {
  const content = textOf(chars);
  const times: number[] = [];
  let characters = 0;
  for (let run = 0; run < runs; run++) {
    const started = performance.now();
    const result = await analyser.analyse({ title: 'Bench', content });
    times.push(performance.now() - started);
    characters = result.characters.length;
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)]!;
  rows.push({ chars, medianMs: +median.toFixed(1), slowestMs: +times.at(-1)!.toFixed(1), msPer10kChars: +((median / chars) * 10_000).toFixed(2), characters });
  process.stderr.write(`analysed ${chars} characters ${runs} times\n`);
}
console.table(rows);
