import { describe, expect, it } from 'vitest';
import { isSubgraphName, subgraphLoaders, subgraphNames } from './catalog.js';
import { subgraphModules } from './index.js';

describe('the catalog of subgraphs loaded on demand', () => {
  it('lists the same modules, in the same order, as the all-in-one list', async () => {
    expect(subgraphNames).toEqual(subgraphModules.map((module) => module.name));
    for (const [index, name] of subgraphNames.entries()) expect(await subgraphLoaders[name]()).toBe(subgraphModules[index]);
  });

  it('knows its names and nothing else', () => {
    expect(isSubgraphName('story')).toBe(true);
    expect(isSubgraphName('toString')).toBe(false);
    expect(isSubgraphName(undefined)).toBe(false);
  });
});
