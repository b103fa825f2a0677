import type { SubgraphModule } from '../platform/subgraph/module.js';

/**
 * Every subgraph by name, loaded on demand: a process of the distributed mode imports only its
 * own domain (and its providers' SDKs), not all eight. subgraphs/index.ts lists the same
 * modules eagerly for the all-in-one mode; a test holds the two lists equal.
 */
export const subgraphLoaders = {
  identity: () => import('./identity/index.js').then((m) => m.identity),
  billing: () => import('./billing/index.js').then((m) => m.billing),
  story: () => import('./story/index.js').then((m) => m.story),
  collaboration: () => import('./collaboration/index.js').then((m) => m.collaboration),
  narration: () => import('./narration/index.js').then((m) => m.narration),
  video: () => import('./video/index.js').then((m) => m.video),
  notification: () => import('./notification/index.js').then((m) => m.notification),
  audit: () => import('./audit/index.js').then((m) => m.audit),
} satisfies Record<string, () => Promise<SubgraphModule>>;

export type SubgraphName = keyof typeof subgraphLoaders;

/** The subgraphs' names, in start-up order. */
export const subgraphNames = Object.keys(subgraphLoaders) as SubgraphName[];

export function isSubgraphName(name: string | undefined): name is SubgraphName {
  return name !== undefined && Object.hasOwn(subgraphLoaders, name);
}
