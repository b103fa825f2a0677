// The schema explorer in the browser: GraphiQL against the page's own endpoint, queries and
// mutations over HTTP, subscriptions over graphql-ws. Bundled by ../bundle.ts; nothing is
// fetched from anywhere but the gateway (the page's CSP would refuse it anyway).
import { createGraphiQLFetcher, type Fetcher } from '@graphiql/toolkit';
import { GraphiQL } from 'graphiql';
import { createElement } from 'react';
import { createRoot } from 'react-dom/client';
import 'graphiql/style.css';
import './explorer.css';

/** The monaco workers' URLs by label, which the page gives (they are content-hashed). */
interface WorkerUrls {
  editor: string;
  json: string;
  graphql: string;
}

// The root tsconfig types server code (no DOM lib): the few browser globals used here.
interface Browser {
  document: { getElementById(id: string): { dataset: Record<string, string | undefined> } | null };
  location: { origin: string; pathname: string };
  Worker: new (url: string, options?: { name?: string }) => object;
  MonacoEnvironment?: { getWorker(workerId: string, label: string): object };
}
const browser = globalThis as unknown as Browser;

const root = browser.document.getElementById('graphiql');
if (!root) throw new Error('The page has no #graphiql element');
const workers = JSON.parse(root.dataset.workers ?? '{}') as WorkerUrls;

// graphiql's setup-workers modules are for Vite, webpack or esm.sh; this bundle's workers are
// separate files the page names. Monaco asks for `json` (variables, headers, response),
// `graphql` (monaco-graphql's language service) and the editor's own worker for anything else.
browser.MonacoEnvironment = {
  getWorker(_workerId, label) {
    const url = label === 'json' ? workers.json : label === 'graphql' ? workers.graphql : workers.editor;
    return new browser.Worker(url, { name: label });
  },
};

// The page is served at the GraphQL endpoint itself, so its URL (without the query) is the endpoint.
const endpoint = `${browser.location.origin}${browser.location.pathname}`;
const toolkit = createGraphiQLFetcher({ url: endpoint, subscriptionUrl: endpoint.replace(/^http/, 'ws') });

/**
 * For a subscription, @graphiql/toolkit opens a graphql-ws connection whose connectionParams are
 * the headers typed in the header editor, as typed; the gateway reads `authorization` in
 * lower case (as HTTP headers arrive), so header names are lower-cased for both transports.
 */
const fetcher: Fetcher = (params, options) => {
  const headers = options?.headers ? Object.fromEntries(Object.entries(options.headers).map(([name, value]) => [name.toLowerCase(), value])) : undefined;
  return toolkit(params, options && { ...options, headers });
};

const DEFAULT_QUERY = `# Storyloom's supergraph. Public queries need no token:
{
  plans {
    name
    priceCents
    currency
  }
}

# Signed-in queries ({ me { id } }) and subscriptions need an access token, from the
# register or login mutation: put {"Authorization": "Bearer <token>"} in Headers below.
`;

createRoot(root).render(
  createElement(GraphiQL, {
    fetcher,
    defaultQuery: DEFAULT_QUERY,
    // The header editor open from the start: where the access token goes. Headers are not
    // persisted (the default): a token does not outlive the tab in localStorage.
    isHeadersEditorEnabled: true,
    defaultEditorToolsVisibility: 'headers',
    shouldPersistHeaders: false,
  }),
);
