import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

const SECRET = 'x'.repeat(32);
const problemsOf = (env: Record<string, string>, generateSecrets = false) => {
  try {
    loadConfig(env, { generateSecrets });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
};

describe('configuration', () => {
  it('has working defaults for the all-in-one mode and generates the internal secret', () => {
    const a = loadConfig({}, { generateSecrets: true });
    const b = loadConfig({}, { generateSecrets: true });
    expect(a).toMatchObject({ PORT: 4000, HOST: '127.0.0.1', DATA_DIR: '.data' });
    expect([a.DATABASE_URL, a.NATS_URL]).toEqual([undefined, undefined]);
    expect(a.INTERNAL_SECRET).toHaveLength(43);
    expect(a.INTERNAL_SECRET).not.toBe(b.INTERNAL_SECRET);
  });

  it('names every bad variable', () => {
    const problems = problemsOf({ PORT: 'eighty', DATABASE_URL: 'mysql://x', NATS_URL: 'http://x', INTERNAL_SECRET: 'short', LOG_LEVEL: 'loud' });
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual(['DATABASE_URL', 'INTERNAL_SECRET', 'LOG_LEVEL', 'NATS_URL', 'PORT']);
    expect(problems.find((p) => p.startsWith('PORT'))).toContain('"eighty"');
  });

  it('requires the internal secret outside the all-in-one mode', () => {
    expect(problemsOf({})).toEqual(['INTERNAL_SECRET: required (at least 32 characters)']);
    expect(problemsOf({ INTERNAL_SECRET: SECRET })).toEqual([]);
  });

  it('reads subgraph URLs, admin emails and provider pairs', () => {
    const config = loadConfig({ INTERNAL_SECRET: SECRET, SUBGRAPH_URL_IDENTITY: 'http://identity:4001', ADMIN_EMAILS: ' Boss@Example.com, ,x@y.z' });
    expect(config.SUBGRAPH_URLS).toEqual({ identity: 'http://identity:4001' });
    expect(config.ADMIN_EMAILS).toEqual(['boss@example.com', 'x@y.z']);
    expect(problemsOf({ INTERNAL_SECRET: SECRET, SUBGRAPH_URL_STORY: 'nope' })).toEqual(['SUBGRAPH_URL_STORY: must be a URL (got "nope")']);
    expect(problemsOf({ INTERNAL_SECRET: SECRET, FACEBOOK_APP_ID: '1' })).toEqual(['FACEBOOK_APP_ID / FACEBOOK_APP_SECRET: set both or neither']);
  });
});
