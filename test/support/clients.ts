// The client operations are read by scripts too (the persisted-operations manifest), which must
// not import from test/: the code lives in scripts/client-operations.ts.
export { CLIENTS_DIR, clientOperation, loadClientOperations, supergraphApiSchema, type ClientOperation } from '../../scripts/client-operations.js';
