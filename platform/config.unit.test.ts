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

  it('never echoes a secret or a password in a URL', () => {
    const problems = problemsOf({ INTERNAL_SECRET: 'hunter2-secret', DATABASE_URL: 'mysql://admin:S3cretPw@db.example.com/x' });
    expect(problems.join('\n')).not.toMatch(/hunter2|S3cretPw/);
    expect(problems).toContain('INTERNAL_SECRET: must be at least 32 characters (got a value of 14 characters)');
    expect(problems).toContain('DATABASE_URL: must be a postgres:// URL (got "mysql://admin:***@db.example.com/x")');
  });

  it("reads the gateway's protection settings, and names a bad one", () => {
    const config = loadConfig({ INTERNAL_SECRET: SECRET, OPERATION_TIMEOUTS_MS: 'CreateStory=60000, Plans=2000', TRUSTED_PROXY_CIDRS: '10.0.0.0/8, fc00::/7' });
    expect([config.OPERATION_TIMEOUTS_MS, config.TRUSTED_PROXY_CIDRS, config.RATE_LIMITS, config.PERSISTED_OPERATIONS]).toEqual([
      { CreateStory: 60000, Plans: 2000 },
      ['10.0.0.0/8', 'fc00::/7'],
      'on',
      'allow',
    ]);
    const problems = problemsOf({ INTERNAL_SECRET: SECRET, OPERATION_TIMEOUTS_MS: 'Plans=0', TRUSTED_PROXY_CIDRS: '10.0.0.0/8/9', PERSISTED_OPERATIONS: 'some' });
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual(['OPERATION_TIMEOUTS_MS', 'PERSISTED_OPERATIONS', 'TRUSTED_PROXY_CIDRS']);
  });

  it('treats an empty variable as unset', () => {
    const config = loadConfig({ PORT: '', INTERNAL_SECRET: SECRET, DATABASE_URL: '' });
    expect([config.PORT, config.DATABASE_URL]).toEqual([4000, undefined]);
  });

  it('requires the internal secret outside the all-in-one mode, and provider settings in pairs', () => {
    expect(problemsOf({})).toEqual(['INTERNAL_SECRET: required (at least 32 characters)']);
    expect(problemsOf({ INTERNAL_SECRET: SECRET })).toEqual([]);
    expect(problemsOf({ INTERNAL_SECRET: SECRET, FACEBOOK_APP_ID: '1' })).toEqual(['FACEBOOK_APP_ID / FACEBOOK_APP_SECRET: set both or neither']);
  });

  it('normalises ADMIN_EMAILS', () => {
    expect(loadConfig({ INTERNAL_SECRET: SECRET, ADMIN_EMAILS: ' Boss@Example.com, ,x@y.z' }).ADMIN_EMAILS).toEqual(['boss@example.com', 'x@y.z']);
  });
});
