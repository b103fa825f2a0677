import type { SubgraphModule } from '../platform/subgraph/module.js';
import { audit } from './audit/index.js';
import { billing } from './billing/index.js';
import { collaboration } from './collaboration/index.js';
import { identity } from './identity/index.js';
import { narration } from './narration/index.js';
import { notification } from './notification/index.js';
import { story } from './story/index.js';
import { video } from './video/index.js';

/** Every subgraph of the supergraph, in start-up order. A new domain is added here. */
export const subgraphModules: SubgraphModule[] = [identity, billing, story, collaboration, narration, video, notification, audit];
