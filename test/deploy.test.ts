import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { subgraphModules } from '../subgraphs/index.js';

/**
 * The deployment files agree with each other and with the code: docker-compose.yml (validated
 * by docker-compose itself), the Kubernetes manifests under deploy/ (a small model of
 * kustomize builds them here, and `kubectl kustomize` too where kubectl is installed), and the
 * Dockerfile. Every subgraph in subgraphs/index.ts must be deployed by all of them.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SUBGRAPHS = subgraphModules.map((module) => module.name);
const ROLES = ['gateway', ...SUBGRAPHS];
const PORT: Record<string, number> = Object.fromEntries(ROLES.map((role) => [role, role === 'gateway' ? 4000 : 4001]));
/** The gateway's ADMIN_PORT: /ready, /metrics and /health, for probes and Prometheus, never public. */
const ADMIN_PORT = 9090;
/**
 * On SIGTERM a process answers /ready with 503 for SHUTDOWN_DELAY_MS, still serving, then drains:
 * the requests in flight, a consumer batch and a job handed back. This is the time allowed for
 * the drain, beyond the delay, before the process may be killed.
 */
const DRAIN_SECONDS = 30;
const NAME = 'app.kubernetes.io/name';
const env = (subgraph: string) => subgraph.toUpperCase();
const commandOf = (role: string) =>
  role === 'gateway' ? ['node', '--import', 'tsx', 'scripts/start-gateway.ts'] : ['node', '--import', 'tsx', 'scripts/start-subgraph.ts', role];
const PROVISION = ['node', '--import', 'tsx', 'scripts/provision.ts'];

// Parsed YAML: read field by field and checked by the assertions themselves.
type Doc = any;

/**
 * Which subgraphs a subgraph's own code asks directly (platform/subgraph/internal-query.ts):
 * the network policies must let it through, and it needs their URL.
 */
const peers = new Map<string, string[]>();
function peersCalledBy(subgraph: string): string[] {
  const known = peers.get(subgraph);
  if (known) return known;
  const called = new Set<string>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else if (entry.endsWith('.ts') && !entry.endsWith('.test.ts')) {
        const source = readFileSync(path, 'utf8');
        if (!source.includes('internal-query.js')) continue;
        for (const match of source.matchAll(/subgraph:\s*'([a-z]+)'/g)) called.add(match[1]!);
        if (/displayNameOf\(/.test(source)) called.add('identity');
      }
    }
  };
  walk(join(ROOT, 'subgraphs', subgraph));
  called.delete(subgraph);
  peers.set(subgraph, [...called].sort());
  return peersCalledBy(subgraph);
}
/** Who may reach a subgraph: the gateway, audit (status and dead letters of all) and its callers. */
const admittedTo = (subgraph: string) => [...new Set(['gateway', 'audit', ...SUBGRAPHS.filter((caller) => peersCalledBy(caller).includes(subgraph))])].sort();

/** A Go duration as compose writes it (`45s`, `1m30s`, `1500ms`), in seconds. */
function durationSeconds(duration: unknown): number {
  const text = String(duration ?? '');
  const units: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, µs: 1e-6, ns: 1e-9 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)/g)];
  if (!parts.length || parts.map((m) => m[0]).join('') !== text) return Number.NaN;
  return parts.reduce((total, m) => total + Number(m[1]) * units[m[2]!]!, 0);
}

function splitCommand(command: unknown): string[] {
  return Array.isArray(command) ? command.map(String) : String(command ?? '').split(/\s+/).filter(Boolean);
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

/** docker-compose (v1, Debian's package) or `docker compose` (v2); the test fails without one. */
let cli: string[] | undefined;
function composeCli(): string[] {
  if (cli) return cli;
  for (const candidate of [['docker-compose'], ['docker', 'compose']]) {
    const probe = spawnSync(candidate[0]!, [...candidate.slice(1), 'version'], { encoding: 'utf8' });
    if (probe.status === 0) return (cli = candidate);
  }
  throw new Error('docker-compose is not installed: `apt-get install docker-compose` (bash .ci/run installs it). It validates docker-compose.yml.');
}

function runCompose(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const [command, ...prefix] = composeCli();
  // Only PATH and HOME: the defaults written in the file are what is checked, not this shell's.
  const result = spawnSync(command!, [...prefix, '-f', join(ROOT, 'docker-compose.yml'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

interface ComposeService {
  image?: string;
  command: string[];
  environment: Record<string, string>;
  dependsOn: Record<string, string>;
  healthcheck: string;
  ports: { published: number; target: number }[];
  volumes: { source: string; target: string }[];
  restart?: string;
  stopGracePeriod?: string;
}

function normalizeService(raw: Doc): ComposeService {
  const environment: Record<string, string> = Array.isArray(raw.environment)
    ? Object.fromEntries(raw.environment.map((pair: string) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]))
    : Object.fromEntries(Object.entries(raw.environment ?? {}).map(([key, value]) => [key, String(value)]));
  const dependsOn: Record<string, string> = Array.isArray(raw.depends_on)
    ? Object.fromEntries(raw.depends_on.map((name: string) => [name, 'service_started']))
    : Object.fromEntries(Object.entries(raw.depends_on ?? {}).map(([name, spec]) => [name, String((spec as Doc)?.condition ?? 'service_started')]));
  const ports = (raw.ports ?? []).map((port: Doc) => {
    if (typeof port === 'object') return { published: Number(port.published), target: Number(port.target) };
    const [published, target] = String(port).split('/')[0]!.split(':').slice(-2);
    return { published: Number(published), target: Number(target) };
  });
  const volumes = (raw.volumes ?? []).map((volume: Doc) => {
    if (typeof volume === 'object') return { source: String(volume.source), target: String(volume.target) };
    const [source, target] = String(volume).split(':');
    return { source: source!, target: target! };
  });
  const test = raw.healthcheck?.test;
  return {
    image: raw.image,
    command: splitCommand(raw.command),
    environment,
    dependsOn,
    healthcheck: Array.isArray(test) ? test.join(' ') : String(test ?? ''),
    ports,
    volumes,
    restart: raw.restart === undefined ? undefined : String(raw.restart),
    stopGracePeriod: raw.stop_grace_period === undefined ? undefined : String(raw.stop_grace_period),
  };
}

describe('docker-compose.yml', () => {
  let services: Record<string, ComposeService> | undefined;
  /** The file as docker-compose resolves it: anchors merged, variables replaced by their defaults. */
  const resolved = (): Record<string, ComposeService> => {
    if (services) return services;
    const result = runCompose(['config']);
    if (result.status !== 0) throw new Error(`docker-compose config failed:\n${result.stderr}`);
    services = Object.fromEntries(Object.entries(parse(result.stdout).services as Record<string, Doc>).map(([name, raw]) => [name, normalizeService(raw)]));
    return services;
  };
  const service = (name: string): ComposeService => {
    const found = resolved()[name];
    if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
    return found;
  };
  const appServices = () => [...ROLES, 'provision'].map(service);

  it('is valid (docker-compose config -q)', () => {
    const result = runCompose(['config', '-q']);
    expect(result.stderr.trim(), result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('runs every subgraph in its own service, from its command, on HOST 0.0.0.0 and PORT 4001, healthy on /ready', () => {
    for (const subgraph of SUBGRAPHS) {
      const s = service(subgraph);
      expect(s.command, subgraph).toEqual(commandOf(subgraph));
      expect(s.environment.PORT, subgraph).toBe(String(PORT[subgraph]));
      expect(s.environment.HOST, subgraph).toBe('0.0.0.0');
      expect(s.healthcheck, subgraph).toContain(`http://127.0.0.1:${s.environment.PORT}/ready`);
      expect(s.restart, subgraph).not.toBe('no');
      // ADMIN_PORT is the gateway's: a subgraph's port is internal and serves /ready itself.
      expect(s.environment.ADMIN_PORT, subgraph).toBeUndefined();
    }
  });

  it('starts subgraphs after the provisioning succeeded and PostgreSQL and NATS are healthy', () => {
    for (const subgraph of SUBGRAPHS) {
      expect(service(subgraph).dependsOn, subgraph).toMatchObject({
        provision: 'service_completed_successfully',
        postgres: 'service_healthy',
        nats: 'service_healthy',
      });
    }
  });

  it('connects each subgraph as its own role, and provisions that role with the same URL', () => {
    const provision = service('provision');
    expect(provision.command).toEqual(PROVISION);
    expect(provision.restart).toBe('no');
    expect(provision.dependsOn).toMatchObject({ postgres: 'service_healthy' });
    const admin = new URL(provision.environment.DATABASE_URL!);
    expect(SUBGRAPHS).not.toContain(decodeURIComponent(admin.username));
    for (const subgraph of SUBGRAPHS) {
      const url = service(subgraph).environment.DATABASE_URL;
      expect(url, subgraph).toBeDefined();
      const parsed = new URL(url!);
      expect(decodeURIComponent(parsed.username), subgraph).toBe(subgraph);
      expect(parsed.password, subgraph).not.toBe('');
      expect(service(parsed.hostname), subgraph).toBeDefined();
      expect([parsed.hostname, parsed.pathname], subgraph).toEqual([admin.hostname, admin.pathname]);
      expect(provision.environment[`SUBGRAPH_${env(subgraph)}_DATABASE_URL`], subgraph).toBe(url);
    }
    const passwords = SUBGRAPHS.map((subgraph) => new URL(service(subgraph).environment.DATABASE_URL!).password);
    expect(new Set(passwords).size).toBe(SUBGRAPHS.length);
  });

  it('starts the gateway when every subgraph is healthy, reaching each at its service and port, publishes 4000 and keeps its admin port inside', () => {
    const gateway = service('gateway');
    expect(gateway.command).toEqual(commandOf('gateway'));
    expect(gateway.environment.PORT).toBe('4000');
    expect(gateway.environment.HOST).toBe('0.0.0.0');
    // /ready is on the admin port only; the public port answers /health alone of the two.
    expect(gateway.environment.ADMIN_PORT).toBe(String(ADMIN_PORT));
    expect(gateway.healthcheck).toContain(`http://127.0.0.1:${ADMIN_PORT}/ready`);
    expect(gateway.ports).toEqual([{ published: 4000, target: 4000 }]);
    for (const subgraph of SUBGRAPHS) {
      expect(gateway.dependsOn[subgraph], subgraph).toBe('service_healthy');
      const url = new URL(gateway.environment[`SUBGRAPH_${env(subgraph)}_URL`] ?? 'missing:');
      expect(`${url.protocol}//${url.hostname}:${url.port}${url.pathname}`, subgraph).toBe(`http://${subgraph}:${service(subgraph).environment.PORT}/`);
    }
    // Only the gateway is reachable from the host.
    for (const name of [...SUBGRAPHS, 'postgres', 'nats', 'provision']) expect(service(name).ports, name).toEqual([]);
  });

  it('lets the gateway and every subgraph wait out SHUTDOWN_DELAY_MS and drain before it is killed (stop_grace_period)', () => {
    for (const role of ROLES) {
      const s = service(role);
      const delay = s.environment.SHUTDOWN_DELAY_MS ?? '0';
      expect(delay, `${role}: SHUTDOWN_DELAY_MS in milliseconds`).toMatch(/^\d+$/);
      expect(s.stopGracePeriod, `${role}: stop_grace_period`).toBeDefined();
      const grace = durationSeconds(s.stopGracePeriod);
      expect(grace, `${role}: stop_grace_period ${s.stopGracePeriod}`).toBeGreaterThan(Number(delay) / 1000 + DRAIN_SECONDS);
    }
  });

  it('gives the subgraphs that ask others (and audit) the URL of each subgraph they ask', () => {
    for (const caller of SUBGRAPHS) {
      const asked = caller === 'audit' ? SUBGRAPHS : peersCalledBy(caller);
      for (const subgraph of asked) expect(service(caller).environment[`SUBGRAPH_${env(subgraph)}_URL`], `${caller} → ${subgraph}`).toBe(`http://${subgraph}:4001`);
    }
  });

  it('runs one image, with one internal secret of 32+ characters, NATS and the collector for every process', () => {
    const images = new Set(appServices().map((s) => s.image));
    expect(images.size).toBe(1);
    const secrets = new Set(ROLES.map((role) => service(role).environment.INTERNAL_SECRET));
    expect(secrets.size).toBe(1);
    expect([...secrets][0]!.length).toBeGreaterThanOrEqual(32);
    for (const role of ROLES) {
      const nats = new URL(service(role).environment.NATS_URL ?? 'missing:');
      expect(nats.protocol, role).toBe('nats:');
      expect(service(nats.hostname), role).toBeDefined();
      const otlp = new URL(service(role).environment.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'missing:');
      expect([otlp.hostname, otlp.port], role).toEqual(['otel-collector', '4318']);
      expect(service(role).environment.PUBLIC_URL, role).toMatch(/^https?:\/\//);
    }
  });

  it('health-checks PostgreSQL and NATS (with JetStream and its monitoring port), and configures the collector', () => {
    expect(service('postgres').image).toMatch(/^postgres:15/);
    expect(service('postgres').healthcheck).toContain('pg_isready');
    const nats = service('nats');
    expect(nats.image).toMatch(/^nats:2\.10/);
    expect(nats.command).toContain('-js');
    expect(nats.command.join(' ')).toContain('-m 8222');
    expect(nats.command.join(' ')).toMatch(/-sd \/\S+/);
    expect(nats.healthcheck).toContain('http://127.0.0.1:8222/healthz?js-enabled-only=true');
    const collector = service('otel-collector');
    const config = collector.command.find((arg) => arg.startsWith('--config='))?.slice('--config='.length);
    const mount = collector.volumes.find((volume) => volume.target === config);
    expect(mount, 'the collector config is mounted where --config points').toBeDefined();
    const file = resolve(ROOT, mount!.source);
    expect(relative(join(ROOT, 'deploy'), file)).not.toMatch(/^\.\./);
    const otel = parse(readFileSync(file, 'utf8'));
    expect(otel.receivers.otlp.protocols.http.endpoint).toMatch(/:4318$/);
    expect(otel.service.pipelines.traces.receivers).toContain('otlp');
    for (const exporter of otel.service.pipelines.traces.exporters) expect(Object.keys(otel.exporters)).toContain(exporter);
  });
});

// ---------------------------------------------------------------------------------------------
// Kubernetes: a model of what kustomize builds from deploy/, enough for these files.

const DEPLOY = join(ROOT, 'deploy');
const KNOWN_FIELDS = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'images', 'replicas', 'configMapGenerator', 'patches']);
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding']);

function readDocs(file: string): Doc[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).flatMap((doc) => {
    if (doc.errors.length) throw new Error(`${relative(ROOT, file)}: ${doc.errors[0]!.message}`);
    const value = doc.toJS();
    return value === null ? [] : [value];
  });
}

function selects(selector: Doc, labels: Record<string, string> = {}): boolean {
  const matchLabels: Record<string, string> = selector?.matchLabels ?? {};
  if (!Object.entries(matchLabels).every(([key, value]) => labels[key] === value)) return false;
  return (selector?.matchExpressions ?? []).every((e: Doc) => {
    const has = Object.hasOwn(labels, e.key);
    if (e.operator === 'In') return has && e.values.includes(labels[e.key]);
    if (e.operator === 'NotIn') return !has || !e.values.includes(labels[e.key]);
    if (e.operator === 'Exists') return has;
    if (e.operator === 'DoesNotExist') return !has;
    throw new Error(`unknown selector operator ${e.operator}`);
  });
}

function setPointer(target: Doc, pointer: string, value: unknown, op: string): void {
  const keys = pointer.split('/').slice(1).map((key) => key.replace(/~1/g, '/').replace(/~0/g, '~'));
  let node = target;
  for (const key of keys.slice(0, -1)) {
    node = node?.[Array.isArray(node) ? Number(key) : key];
    if (node === undefined) throw new Error(`no ${pointer}`);
  }
  const last = keys.at(-1)!;
  if (op === 'replace' && !(last in node)) throw new Error(`replace of a missing ${pointer}`);
  node[Array.isArray(node) ? Number(last) : last] = value;
}

/** The objects kustomize would build from `dir`, checking on the way that everything named exists. */
function build(dir: string): Doc[] {
  const file = join(dir, 'kustomization.yaml');
  expect(existsSync(file), `${relative(ROOT, dir)} has a kustomization.yaml`).toBe(true);
  const k = parse(readFileSync(file, 'utf8'));
  for (const field of Object.keys(k)) expect(KNOWN_FIELDS.has(field), `${relative(ROOT, file)}: this test's kustomize model knows no \`${field}\``).toBe(true);
  const objects: Doc[] = [];
  for (const entry of k.resources ?? []) {
    const path = join(dir, entry);
    expect(existsSync(path), `${relative(ROOT, file)} lists ${entry}, which exists`).toBe(true);
    objects.push(...(statSync(path).isDirectory() ? build(path) : readDocs(path)));
  }
  const find = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);
  for (const generator of k.configMapGenerator ?? []) {
    const data = Object.fromEntries((generator.literals ?? []).map((l: string) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    const existing = find('ConfigMap', generator.name);
    if (generator.behavior === 'merge' || generator.behavior === 'replace') {
      expect(existing, `${relative(ROOT, file)}: configMapGenerator ${generator.name} ${generator.behavior}s an existing ConfigMap`).toBeDefined();
      existing.data = generator.behavior === 'merge' ? { ...existing.data, ...data } : data;
    } else objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: generator.name }, data });
  }
  for (const { name, count } of k.replicas ?? []) {
    const deployment = find('Deployment', name);
    expect(deployment, `${relative(ROOT, file)}: replicas for ${name}, a Deployment`).toBeDefined();
    deployment.spec.replicas = count;
  }
  for (const image of k.images ?? []) {
    const containers = objects.flatMap((o) => o.spec?.template?.spec?.containers ?? []).filter((c: Doc) => String(c.image).split(/[:@]/)[0] === image.name);
    expect(containers.length, `${relative(ROOT, file)}: images ${image.name} is used by a container`).toBeGreaterThan(0);
    for (const c of containers) {
      const [name, tag] = String(c.image).split(':');
      c.image = `${image.newName ?? name}:${image.newTag ?? tag ?? 'latest'}`;
    }
  }
  for (const patch of k.patches ?? []) {
    const path = join(dir, patch.path);
    expect(existsSync(path), `${relative(ROOT, file)}: patch ${patch.path} exists`).toBe(true);
    const { kind, name, labelSelector } = patch.target ?? {};
    const wanted = Object.fromEntries(String(labelSelector ?? '').split(',').filter(Boolean).map((pair) => pair.split('=')));
    const targets = objects.filter((o) => o.kind === kind && (!name || o.metadata.name === name) && selects({ matchLabels: wanted }, o.metadata.labels));
    expect(targets.length, `${relative(ROOT, file)}: patch ${patch.path} targets an object of the base`).toBeGreaterThan(0);
    const operations = parse(readFileSync(path, 'utf8'));
    expect(Array.isArray(operations), `${patch.path}: this test's model applies JSON 6902 patches only`).toBe(true);
    for (const target of targets) for (const { op, path: pointer, value } of operations) setPointer(target, pointer, structuredClone(value), op);
  }
  if (k.namespace) for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  return objects;
}

/** What `kubectl kustomize` renders, when kubectl is installed (not a Debian package here). */
const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;
function kustomize(dir: string): Doc[] {
  const out = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 120_000 });
  return parseAllDocuments(out).map((doc) => doc.toJS());
}

interface Variant {
  name: string;
  objects: () => Doc[];
  production: boolean;
}

function checksOf(variant: Variant) {
  const all = () => variant.objects();
  const of = (kind: string) => all().filter((o) => o.kind === kind);
  const one = (kind: string, name: string): Doc => {
    const found = of(kind).filter((o) => o.metadata.name === name);
    expect(found.length, `one ${kind} ${name}`).toBe(1);
    return found[0];
  };
  const pod = (role: string) => one('Deployment', role).spec.template;
  const container = (role: string): Doc => {
    const containers = pod(role).spec.containers;
    expect(containers.length, role).toBe(1);
    return containers[0];
  };
  const envOf = (c: Doc, name: string): Doc => (c.env ?? []).find((e: Doc) => e.name === name);
  const config = (c: Doc): Record<string, string> => {
    const refs = (c.envFrom ?? []).filter((source: Doc) => source.configMapRef).map((source: Doc) => source.configMapRef.name);
    expect(refs.length, 'settings from a ConfigMap').toBe(1);
    return one('ConfigMap', refs[0]).data;
  };
  const podsOfWorkloads = () => [...of('Deployment'), ...of('Job')].map((o) => ({ name: o.metadata.name as string, labels: o.spec.template.metadata.labels }));
  /** A setting as the process sees it: its own env first, then the ConfigMap. */
  const setting = (c: Doc, name: string): string | undefined => envOf(c, name)?.value ?? config(c)[name];
  /** A container port, by name or number, as its number. */
  const portNumber = (c: Doc, port: unknown): number =>
    typeof port === 'string' && !/^\d+$/.test(port) ? (c.ports ?? []).find((p: Doc) => p.name === port)?.containerPort : Number(port);
  /** The port the gateway serves /ready and /metrics on (ADMIN_PORT), a subgraph on its only one. */
  const adminPortName = (role: string) => (role === 'gateway' ? 'admin' : one('Service', role).spec.ports[0].targetPort);

  it('has a Deployment and a Service for the gateway and every subgraph, and no Secret', () => {
    for (const role of ROLES) {
      one('Deployment', role);
      one('Service', role);
      expect(pod(role).metadata.labels, role).toMatchObject({ [NAME]: role, 'app.kubernetes.io/part-of': 'storyloom' });
    }
    expect(of('Secret')).toEqual([]);
    for (const kind of new Set(all().map((o) => o.kind))) {
      const names = of(kind).map((o) => o.metadata.name);
      expect(new Set(names).size, `${kind} names are unique`).toBe(names.length);
    }
  });

  it('selects with each Service exactly the pods of its Deployment', () => {
    for (const role of ROLES) {
      const deployment = one('Deployment', role);
      expect(selects(deployment.spec.selector, pod(role).metadata.labels), role).toBe(true);
      const selector = one('Service', role).spec.selector;
      expect(Object.keys(selector ?? {}).length, role).toBeGreaterThan(0);
      const selected = podsOfWorkloads().filter((p) => selects({ matchLabels: selector }, p.labels)).map((p) => p.name);
      expect(selected, role).toEqual([role]);
    }
  });

  it('targets with each Service the named container port the process listens on (PORT)', () => {
    for (const role of ROLES) {
      const c = container(role);
      const ports = one('Service', role).spec.ports;
      expect(ports.length, role).toBe(1);
      const { port, targetPort } = ports[0];
      expect(typeof targetPort, `${role}: targetPort by name`).toBe('string');
      const named = (c.ports ?? []).find((p: Doc) => p.name === targetPort);
      expect(named, `${role}: container port ${targetPort}`).toBeDefined();
      expect([named.containerPort, port, envOf(c, 'PORT')?.value], role).toEqual([PORT[role], PORT[role], String(PORT[role])]);
      expect(config(c).HOST, role).toBe('0.0.0.0');
    }
  });

  it('probes: startup and liveness on /health on the Service port, readiness on /ready where it is served (the gateway: its admin port)', () => {
    for (const role of ROLES) {
      const c = container(role);
      const port = one('Service', role).spec.ports[0].targetPort;
      expect(c.startupProbe?.httpGet, role).toMatchObject({ path: '/health', port });
      expect(c.livenessProbe?.httpGet, role).toMatchObject({ path: '/health', port });
      expect(c.readinessProbe?.httpGet, role).toMatchObject({ path: '/ready', port: adminPortName(role) });
    }
  });

  it("serves the gateway's /ready and /metrics on a named admin port (ADMIN_PORT) that no Service exposes", () => {
    const c = container('gateway');
    expect(setting(c, 'ADMIN_PORT')).toBe(String(ADMIN_PORT));
    const admin = (c.ports ?? []).find((p: Doc) => p.name === 'admin');
    expect(admin?.containerPort, 'container port admin').toBe(ADMIN_PORT);
    expect(ADMIN_PORT).not.toBe(PORT.gateway);
    for (const service of of('Service')) {
      if (!selects({ matchLabels: service.spec.selector }, pod('gateway').metadata.labels)) continue;
      for (const p of service.spec.ports) {
        expect(portNumber(c, p.targetPort ?? p.port), `Service ${service.metadata.name} port ${p.name}`).toBe(PORT.gateway);
        expect(p.port, `Service ${service.metadata.name} port ${p.name}`).not.toBe(ADMIN_PORT);
      }
    }
    // A subgraph's port is internal: it serves /ready and /metrics there, and has no ADMIN_PORT.
    for (const subgraph of SUBGRAPHS) {
      expect(setting(container(subgraph), 'ADMIN_PORT'), subgraph).toBeUndefined();
      expect((container(subgraph).ports ?? []).map((p: Doc) => p.name), subgraph).toEqual(['http']);
    }
  });

  it('points the Prometheus annotations, if any, at /metrics on the port that serves it', () => {
    for (const role of ROLES) {
      const annotations = pod(role).metadata.annotations ?? {};
      if (annotations['prometheus.io/scrape'] !== 'true') continue;
      const c = container(role);
      expect(Number(annotations['prometheus.io/port']), role).toBe(portNumber(c, adminPortName(role)));
      expect(annotations['prometheus.io/path'] ?? '/metrics', role).toBe('/metrics');
    }
  });

  it('gives every Deployment a SHUTDOWN_DELAY_MS and a terminationGracePeriodSeconds that covers it and the drain', () => {
    for (const deployment of of('Deployment')) {
      const name = deployment.metadata.name;
      const template = deployment.spec.template;
      const delay = setting(template.spec.containers[0], 'SHUTDOWN_DELAY_MS');
      expect(delay, `${name}: SHUTDOWN_DELAY_MS in milliseconds`).toMatch(/^\d+$/);
      expect(Number(delay), `${name}: a delay for the endpoint's removal to reach the proxies`).toBeGreaterThan(0);
      const grace = template.spec.terminationGracePeriodSeconds;
      expect(typeof grace, `${name}: terminationGracePeriodSeconds`).toBe('number');
      expect(grace, `${name}: terminationGracePeriodSeconds (seconds) > SHUTDOWN_DELAY_MS / 1000 + ${DRAIN_SECONDS}`).toBeGreaterThan(Number(delay) / 1000 + DRAIN_SECONDS);
    }
  });

  it('runs each role by its command, non-root on a read-only root filesystem with /tmp writable, within requests and limits', () => {
    const workloads = [...ROLES.map((role) => ({ name: role, template: pod(role), command: commandOf(role) })), { name: 'provision', template: one('Job', 'storyloom-provision').spec.template, command: PROVISION }];
    for (const { name, template, command } of workloads) {
      const c = template.spec.containers[0];
      expect(c.command, name).toEqual(command);
      expect(template.spec.securityContext?.runAsNonRoot, name).toBe(true);
      expect(c.securityContext, name).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
      const tmp = (c.volumeMounts ?? []).find((m: Doc) => m.mountPath === '/tmp');
      expect(template.spec.volumes.find((v: Doc) => v.name === tmp?.name)?.emptyDir, `${name}: an emptyDir on /tmp`).toBeDefined();
      for (const kind of ['requests', 'limits']) expect(Object.keys(c.resources?.[kind] ?? {}).sort(), `${name} ${kind}`).toEqual(['cpu', 'memory']);
    }
  });

  it('reads settings from storyloom-config and secrets by key from storyloom-secrets', () => {
    for (const role of ROLES) {
      const c = container(role);
      expect(config(c), role).toBeDefined();
      const refs = (c.env ?? []).filter((e: Doc) => e.valueFrom?.secretKeyRef).map((e: Doc) => e.valueFrom.secretKeyRef);
      expect(new Set(refs.map((r: Doc) => r.name)), role).toEqual(new Set(['storyloom-secrets']));
      expect(envOf(c, 'INTERNAL_SECRET')?.valueFrom?.secretKeyRef?.key, role).toBe('INTERNAL_SECRET');
      if (role !== 'gateway') expect(envOf(c, 'DATABASE_URL')?.valueFrom?.secretKeyRef?.key, role).toBe(`SUBGRAPH_${env(role)}_DATABASE_URL`);
      for (const e of c.env ?? []) expect(/SECRET|PASSWORD|DATABASE_URL|_KEY$/.test(e.name) && e.value !== undefined, `${role}: ${e.name} is not written in the manifest`).toBe(false);
    }
  });

  it('points SUBGRAPH_<NAME>_URL at the Service and port of each subgraph', () => {
    const settings = config(container('gateway'));
    expect(settings.NATS_URL).toMatch(/^nats:\/\//);
    for (const subgraph of SUBGRAPHS) {
      expect(config(container(subgraph)), subgraph).toEqual(settings);
      const url = new URL(settings[`SUBGRAPH_${env(subgraph)}_URL`] ?? 'missing:');
      const service = one('Service', url.hostname);
      expect(`${url.protocol}//${url.hostname}:${url.port}${url.pathname}`, subgraph).toBe(`http://${subgraph}:${service.spec.ports[0].port}/`);
    }
  });

  it('gives the provisioning Job the admin URL and every SUBGRAPH_<NAME>_DATABASE_URL the subgraphs connect with', () => {
    const job = one('Job', 'storyloom-provision').spec.template;
    expect(['OnFailure', 'Never']).toContain(job.spec.restartPolicy);
    const c = job.spec.containers[0];
    expect(envOf(c, 'DATABASE_URL')?.valueFrom?.secretKeyRef).toEqual({ name: 'storyloom-secrets', key: 'ADMIN_DATABASE_URL' });
    for (const subgraph of SUBGRAPHS) {
      const key = `SUBGRAPH_${env(subgraph)}_DATABASE_URL`;
      expect(envOf(c, key)?.valueFrom?.secretKeyRef, subgraph).toEqual(envOf(container(subgraph), 'DATABASE_URL').valueFrom.secretKeyRef);
    }
  });

  it('has a PodDisruptionBudget for the gateway pods', () => {
    const budgets = of('PodDisruptionBudget').map((pdb) => ({ pdb, pods: podsOfWorkloads().filter((p) => selects(pdb.spec.selector, p.labels)).map((p) => p.name) }));
    for (const { pdb, pods } of budgets) {
      expect(pods.length, `${pdb.metadata.name} selects one Deployment's pods`).toBe(1);
      // minAvailable would block draining a single replica; maxUnavailable never does.
      expect(pdb.spec.maxUnavailable, pdb.metadata.name).toBeGreaterThanOrEqual(1);
    }
    expect(budgets.filter(({ pods }) => pods[0] === 'gateway').length).toBe(1);
  });

  it("admits into the namespace only the gateway's http port from anywhere (its admin port from monitoring), and into each subgraph only the gateway, audit and the subgraphs that call it", () => {
    const policies = of('NetworkPolicy').filter((p) => (p.spec.policyTypes ?? ['Ingress']).includes('Ingress'));
    expect(policies.some((p) => Object.keys(p.spec.podSelector ?? {}).length === 0 && !(p.spec.ingress ?? []).length), 'default deny').toBe(true);
    const rulesFor = (role: string) => policies.filter((p) => selects(p.spec.podSelector, pod(role).metadata.labels)).flatMap((p) => p.spec.ingress ?? []);
    const onHttp = (rule: Doc, role: string) => {
      expect(rule.ports?.length, `${role}: a rule names its ports`).toBeGreaterThan(0);
      for (const p of rule.ports) expect(['http', PORT[role]], role).toContain(p.port);
    };
    // Prometheus, from the monitoring namespace, scraping /metrics.
    const PROMETHEUS = { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } }, podSelector: { matchLabels: { [NAME]: 'prometheus' } } };
    const gateway = container('gateway');
    const gatewayRules = rulesFor('gateway');
    expect(gatewayRules.some((rule) => !rule.from), 'the gateway admits anyone').toBe(true);
    for (const rule of gatewayRules) {
      expect(rule.ports?.length, 'gateway: a rule names its ports').toBeGreaterThan(0);
      for (const p of rule.ports) {
        const number = portNumber(gateway, p.port);
        expect([PORT.gateway, ADMIN_PORT], `gateway: port ${p.port}`).toContain(number);
        // Nobody but Prometheus reaches /ready and /metrics (the kubelet's probes are not subject to policies).
        if (number === ADMIN_PORT) expect(rule.from, `gateway: who reaches port ${p.port}`).toEqual([PROMETHEUS]);
      }
    }
    // Prometheus reaches every pod it scrapes, on the port of its annotation.
    for (const role of ROLES) {
      const annotations = pod(role).metadata.annotations ?? {};
      if (annotations['prometheus.io/scrape'] !== 'true') continue;
      const scraped = rulesFor(role).some(
        (rule) =>
          (rule.from ?? []).some((peer: Doc) => JSON.stringify(peer) === JSON.stringify(PROMETHEUS)) &&
          rule.ports.some((p: Doc) => portNumber(container(role), p.port) === Number(annotations['prometheus.io/port'])),
      );
      expect(scraped, `${role}: Prometheus reaches port ${annotations['prometheus.io/port']}`).toBe(true);
    }
    for (const subgraph of SUBGRAPHS) {
      const admitted = new Set<string>();
      for (const rule of rulesFor(subgraph)) {
        onHttp(rule, subgraph);
        expect(rule.from?.length, `${subgraph}: every rule names its peers`).toBeGreaterThan(0);
        for (const peer of rule.from) {
          expect(peer.ipBlock, subgraph).toBeUndefined();
          if (peer.namespaceSelector) {
            expect(peer, subgraph).toEqual(PROMETHEUS);
            continue;
          }
          const selector = peer.podSelector;
          const pinned = selector?.matchLabels?.[NAME] !== undefined || (selector?.matchExpressions ?? []).some((e: Doc) => e.key === NAME && e.operator === 'In');
          expect(pinned, `${subgraph}: peers are named pods`).toBe(true);
          for (const p of podsOfWorkloads()) if (selects(selector, p.labels)) admitted.add(p.name);
        }
      }
      expect([...admitted].sort(), subgraph).toEqual(admittedTo(subgraph));
    }
  });

  it('scales with each HorizontalPodAutoscaler an existing Deployment, on CPU, whose replicas it alone sets', () => {
    const hpas = of('HorizontalPodAutoscaler');
    for (const hpa of hpas) {
      const name = hpa.metadata.name;
      expect(hpa.apiVersion, name).toBe('autoscaling/v2');
      expect(hpa.spec.scaleTargetRef, name).toMatchObject({ apiVersion: 'apps/v1', kind: 'Deployment' });
      const deployment = one('Deployment', hpa.spec.scaleTargetRef.name);
      expect(deployment.spec.replicas, `${name}: no replica count besides the autoscaler's`).toBeUndefined();
      expect(hpa.spec.minReplicas, name).toBeGreaterThanOrEqual(2);
      expect(hpa.spec.maxReplicas, name).toBeGreaterThan(hpa.spec.minReplicas);
      expect(hpa.spec.metrics, name).toContainEqual({ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: expect.any(Number) } } });
      expect(deployment.spec.template.spec.containers[0].resources.requests.cpu, `${name}: utilization needs a CPU request`).toBeDefined();
    }
    const scaled = hpas.map((hpa) => hpa.spec.scaleTargetRef.name);
    if (variant.production) expect(scaled.sort()).toEqual(expect.arrayContaining(['gateway', 'narration', 'notification', 'video']));
    else expect(scaled).toEqual([]);
  });

  if (variant.production) {
    it('production: its namespace, a released image, two replicas or more, public URL and blobs in S3', () => {
      const namespaces = of('Namespace').map((n) => n.metadata.name);
      expect(namespaces.length).toBe(1);
      for (const o of all()) if (!CLUSTER_SCOPED.has(o.kind)) expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(namespaces[0]);
      const scaled = new Set(of('HorizontalPodAutoscaler').map((hpa) => hpa.spec.scaleTargetRef.name));
      for (const role of ROLES) {
        expect(container(role).image, role).toMatch(/^[^:]+\/[^:]+:[\w.-]+$/);
        expect(container(role).image, role).not.toMatch(/:(local|latest)$/);
        if (!scaled.has(role)) expect(one('Deployment', role).spec.replicas, role).toBeGreaterThanOrEqual(2);
      }
      const settings = config(container('gateway'));
      expect(settings.PUBLIC_URL).toMatch(/^https:\/\//);
      expect(settings.STORAGE_DRIVER).toBe('s3');
      expect(settings.S3_BUCKET).toBeTruthy();
    });
  }
}

/** Built once, on first use inside a test, so a missing file fails the tests that need it. */
function once(make: () => Doc[]): () => Doc[] {
  let made: Doc[] | undefined;
  return () => (made ??= make());
}
const base: Variant = { name: 'deploy/base', objects: once(() => build(join(DEPLOY, 'base'))), production: false };
const production: Variant = { name: 'deploy/overlays/production', objects: once(() => build(join(DEPLOY, 'overlays', 'production'))), production: true };

describe('Kubernetes manifests', () => {
  it('parses every YAML file under deploy/, and uses every manifest in a kustomization', () => {
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir)) {
        const path = join(dir, entry);
        if (statSync(path).isDirectory()) walk(path);
        else if (/\.ya?ml$/.test(entry)) files.push(path);
      }
    };
    walk(DEPLOY);
    const used = new Set<string>();
    for (const file of files) {
      readDocs(file);
      if (!file.endsWith('kustomization.yaml')) continue;
      const k = parse(readFileSync(file, 'utf8'));
      for (const entry of [...(k.resources ?? []), ...(k.patches ?? []).map((p: Doc) => p.path)]) used.add(join(dirname(file), entry));
    }
    const unused = files.filter((file) => !file.endsWith('kustomization.yaml') && !used.has(file) && !file.startsWith(join(DEPLOY, 'otel-collector')));
    expect(unused.map((file) => relative(ROOT, file))).toEqual([]);
  });

  for (const variant of [base, production]) describe(variant.name, () => checksOf(variant));
  // The same checks again on kubectl's own rendering, where kubectl is installed (this machine
  // has it; Debian's is too old): an extra pass, not a substitute for the model above.
  if (kubectl) {
    describe('as rendered by kubectl kustomize', () => {
      for (const variant of [base, production]) describe(variant.name, () => checksOf({ ...variant, objects: once(() => kustomize(join(ROOT, variant.name))) }));
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const stages = dockerfile.split(/^FROM\s+/m).slice(1);

  it('builds in stages, installs production dependencies exactly, runs as a non-root user and starts the gateway by default', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(dockerfile).toMatch(/ARG NODE_IMAGE=node:20-bookworm-slim/);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    const final = stages.at(-1)!;
    const user = final.match(/^USER\s+(\S+)/m)?.[1];
    expect(user).toBeDefined();
    expect(['root', '0', '0:0']).not.toContain(user);
    const cmd = final.match(/^CMD\s+(\[.*\])$/m)?.[1];
    expect(JSON.parse(cmd ?? 'null')).toEqual(commandOf('gateway'));
  });

  it('holds every script the deployments run, none of it excluded by .dockerignore', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#'));
    const copied = [...stages.at(-1)!.matchAll(/^COPY\s+(?!--from)(.+)\s+\S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    for (const script of new Set([...ROLES.map((role) => commandOf(role)[3]!), PROVISION[3]!])) {
      expect(existsSync(join(ROOT, script)), `${script} exists`).toBe(true);
      expect(copied, `${script} is copied into the image`).toContain(dirname(script));
      expect(ignored.filter((pattern) => script === pattern || script.startsWith(`${pattern.replace(/\/$/, '')}/`)), script).toEqual([]);
    }
    for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'schema', 'platform', 'subgraphs', 'gateway']) {
      expect(copied, needed).toContain(needed);
      expect(ignored, needed).not.toContain(needed);
    }
  });

  it('bundles the schema explorer into the image, from the copied sources and as root, so the gateway never bundles it', () => {
    const lines = stages.at(-1)!.split('\n');
    const at = (instruction: RegExp) => lines.findIndex((line) => instruction.test(line));
    const build = at(/^RUN\s+npm run explorer:build\s*$/);
    expect(build, 'RUN npm run explorer:build in the final stage').toBeGreaterThan(-1);
    for (const before of [/^COPY\s+--from=deps\s.*node_modules/, /^COPY\s+package\.json\s/, /^COPY\s+gateway\s/]) {
      expect(at(before), String(before)).toBeGreaterThan(-1);
      expect(at(before), String(before)).toBeLessThan(build);
    }
    expect(build, 'before USER').toBeLessThan(at(/^USER\s/));
    // Into the folder the image tells the gateway to read (EXPLORER_ASSETS_DIR, platform/config.ts).
    const scripts = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts as Record<string, string>;
    expect(scripts['explorer:build']).toMatch(/ gateway\/explorer\/bundle-process\.ts --out dist\/explorer$/);
    expect(lines.filter((line) => /^ENV\s+EXPLORER_ASSETS_DIR=dist\/explorer\s*$/.test(line))).toHaveLength(1);
  });
});
