import { createLogger } from '../log.js';
import { InProcessJobQueue } from './in-process.js';
import { jobQueueContract } from './queue.contract.js';

jobQueueContract('in-process', async () => new InProcessJobQueue(createLogger('silent')));
