import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../platform/config.js';
import { microsoftIssuer, providersConfig } from './config.js';

const base = { INTERNAL_SECRET: 'x'.repeat(32) };

describe('sign-in provider settings', () => {
  it('turns on only the providers that are configured', () => {
    expect(providersConfig(loadConfig(base))).toEqual({});
    const on = providersConfig(loadConfig({ ...base, GOOGLE_CLIENT_ID: 'g', FACEBOOK_APP_ID: 'f', FACEBOOK_APP_SECRET: 's' }));
    expect(Object.keys(on).sort()).toEqual(['facebook', 'google']);
    expect(on.google).toEqual({ clientId: 'g', jwksUrl: 'https://www.googleapis.com/oauth2/v3/certs', issuer: 'https://accounts.google.com' });
  });

  it('derives the Microsoft issuer and keys from the tenant', () => {
    expect(microsoftIssuer('common')).toBe('https://login.microsoftonline.com/{tenantid}/v2.0');
    expect(microsoftIssuer('organizations')).toBe('https://login.microsoftonline.com/{tenantid}/v2.0');
    expect(microsoftIssuer('consumers')).toBe('https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0');
    expect(microsoftIssuer('contoso.onmicrosoft.com')).toBe('https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0');
    const ms = providersConfig(loadConfig({ ...base, MICROSOFT_CLIENT_ID: 'm', MICROSOFT_TENANT: 'organizations' })).microsoft;
    expect(ms).toEqual({
      clientId: 'm',
      jwksUrl: 'https://login.microsoftonline.com/organizations/discovery/v2.0/keys',
      issuer: 'https://login.microsoftonline.com/{tenantid}/v2.0',
    });
  });
});
