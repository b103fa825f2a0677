import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { captureEvents } from './support/capture.js';
import { clientOperation } from './support/clients.js';
import { TALE, analysisCompleted, registerMember } from './support/people.js';
import { startTestStack, type TestStack } from './support/stack.js';

/** ../shared/clients/collaboration.graphql through the gateway: roleplays, invitations, guests, submissions. */
const op = {
  createStory: clientOperation('CreateStory'),
  publish: clientOperation('PublishStory'),
  changePlan: clientOperation('ChangePlan'),
  createTemplate: clientOperation('CreateRoleplayTemplate'),
  invite: clientOperation('InviteCollaborator'),
  invitation: clientOperation('Invitation'),
  accept: clientOperation('AcceptInvitation'),
  submit: clientOperation('SubmitContribution'),
  template: clientOperation('RoleplayTemplate'),
};

let stack: TestStack;
let events: Awaited<ReturnType<typeof captureEvents>>;
let db: pg.Client;

beforeAll(async () => {
  // The expiry sweep runs often, so an invitation nobody opens again still gets its event.
  stack = await startTestStack({ env: { COLLABORATION_SWEEP_MS: '200' } });
  events = await captureEvents(stack.transport, ['collaboration.>', 'story.collaboration.completed']);
  db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
});

afterAll(async () => {
  await db?.end();
  await events?.stop();
  await stack?.close();
});

/** A published story of the member's, analysed (publishing has it analysed). */
async function publishedStory(token: string, title: string, content = TALE) {
  const story = (await stack.gql(op.createStory, { input: { title, content } }, { token })).data.createStory.story;
  expect((await stack.gql(op.publish, { id: story.id }, { token })).data.publishStory.userErrors).toEqual([]);
  await analysisCompleted(stack, token, story.id);
  return story.id as string;
}

async function template(token: string, storyId: string) {
  const res = await stack.gql(op.createTemplate, { storyId }, { token });
  expect(JSON.stringify(res.errors)).toBeUndefined();
  expect(res.data.createRoleplayTemplate.userErrors).toEqual([]);
  return res.data.createRoleplayTemplate.template as { id: string; status: string; story: { id: string; title: string }; characters: { id: string; name: string; description: string }[] };
}

async function invite(token: string, input: Record<string, unknown>) {
  const res = await stack.gql(op.invite, { input }, { token });
  expect(res.errors).toBeUndefined();
  return res.data.inviteCollaborator;
}

/** Whom an invitation is for: the author's alone to read. */
const CONTACT = `query($token: String!) { invitation(token: $token) { inviteeName email phone } }`;
const NO_CONTACT = { inviteeName: null, email: null, phone: null };

const tokenOf = (inviteUrl: string) => new URL(inviteUrl).pathname.split('/').at(-1)!;
const character = (t: Awaited<ReturnType<typeof template>>, name: string) => t.characters.find((c) => c.name === name)!;

describe('a roleplay from invitation to completion', () => {
  it('publishes, analyses, makes a template, invites by email and by phone, accepts as guest and as user, submits both, completes', async () => {
    const ada = await registerMember(stack, 'Ada');
    expect((await stack.gql(op.changePlan, { tier: 'SILVER' }, { token: ada.token })).data.changePlan.userErrors).toEqual([]);
    const storyId = await publishedStory(ada.token, 'The Lighthouse');
    const made = await template(ada.token, storyId);
    expect(made).toMatchObject({ status: 'OPEN', story: { id: storyId, title: 'The Lighthouse' } });
    expect(made.characters.map((c) => c.name).sort()).toEqual(['Mira', 'Old Tom']);

    // SILVER allows 5 collaborators; the projection of the plan change may be a moment behind.
    const byEmail = await vi.waitFor(
      async () => {
        const res = await invite(ada.token, { templateId: made.id, characterId: character(made, 'Mira').id, name: 'Gia', email: 'Gia@Example.com' });
        expect(res.userErrors).toEqual([]);
        return res;
      },
      { timeout: 10_000, interval: 100 },
    );
    expect(byEmail.invitation).toMatchObject({ status: 'PENDING', character: { name: 'Mira' } });
    const sentAt = Date.now();
    expect(Math.abs(Date.parse(byEmail.invitation.expiresAt) - sentAt - 120 * 3600_000)).toBeLessThan(60_000);
    const byPhone = await invite(ada.token, { templateId: made.id, characterId: character(made, 'Old Tom').id, name: 'Bob', phone: '+1 (555) 010-2233' });
    expect(byPhone.userErrors).toEqual([]);
    const giaToken = tokenOf(byEmail.inviteUrl);
    const bobToken = tokenOf(byPhone.inviteUrl);
    expect(giaToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // Only the token's hash is stored.
    const { rows } = await db.query(`select token_hash, email, phone from collaboration.invitation where template_id = $1 order by sent_at`, [made.id]);
    expect(rows.map((r) => r.token_hash)).not.toContain(giaToken);
    expect(JSON.stringify(rows)).not.toContain(giaToken);
    expect(rows.map((r) => [r.email, r.phone])).toEqual([['gia@example.com', null], [null, '+15550102233']]);

    // What the invitee sees, without an account.
    const seen = await stack.gql(op.invitation, { token: giaToken });
    expect(seen.data.invitation).toMatchObject({ status: 'PENDING', character: { name: 'Mira' }, template: { story: { title: 'The Lighthouse' } }, invitedBy: { displayName: 'Ada' } });
    // Not whom it is for: that is the author's alone.
    expect((await stack.gql(CONTACT, { token: giaToken })).data.invitation).toEqual(NO_CONTACT);
    expect((await stack.gql(CONTACT, { token: giaToken }, { token: ada.token })).data.invitation).toEqual({ inviteeName: 'Gia', email: 'gia@example.com', phone: null });
    expect((await stack.gql(CONTACT, { token: bobToken }, { token: ada.token })).data.invitation).toEqual({ inviteeName: 'Bob', email: null, phone: '+15550102233' });

    // Gia accepts without an account: a guest, with a guest session.
    const gia = await stack.gql(op.accept, { token: giaToken, guestName: 'Gia G.' });
    expect(gia.data.acceptInvitation.userErrors).toEqual([]);
    expect(gia.data.acceptInvitation.participant).toMatchObject({ displayName: 'Gia G.', character: { name: 'Mira' } });
    const guestToken = gia.data.acceptInvitation.guestSession.accessToken as string;
    expect(Date.parse(gia.data.acceptInvitation.guestSession.accessTokenExpiresAt)).toBeGreaterThan(Date.now());
    expect((await stack.gql(CONTACT, { token: giaToken }, { token: guestToken })).data.invitation).toEqual(NO_CONTACT);
    // Bob accepts signed in: a participant as himself, no guest session.
    const bob = await registerMember(stack, 'Bob');
    const bobAccepted = await stack.gql(op.accept, { token: bobToken }, { token: bob.token });
    expect(bobAccepted.data.acceptInvitation).toMatchObject({ participant: { displayName: 'Bob', character: { name: 'Old Tom' } }, guestSession: null, userErrors: [] });
    expect((await stack.gql(CONTACT, { token: bobToken }, { token: bob.token })).data.invitation).toEqual(NO_CONTACT);
    // A user's token works once; a guest's link gives its holder a new session for the same part (the answer may have been lost).
    expect((await stack.gql(op.accept, { token: bobToken })).data.acceptInvitation.userErrors[0].code).toBe('INVITATION_NOT_PENDING');
    const resumed = (await stack.gql(op.accept, { token: giaToken })).data.acceptInvitation;
    expect(resumed).toMatchObject({ participant: { id: gia.data.acceptInvitation.participant.id }, userErrors: [] });
    expect(resumed.guestSession.accessToken).toEqual(expect.any(String));
    // A user whose access token is no longer valid is told so, not made a guest.
    const stale = await stack.gql(op.accept, { token: giaToken }, { token: 'not-a-valid-token' });
    expect(stale.errors?.[0]?.extensions?.code ?? stale.data?.acceptInvitation?.userErrors?.[0]?.code).toBe('UNAUTHENTICATED');

    // The guest reads the template and submits for Mira.
    const asGuest = await stack.gql(op.template, { id: made.id }, { token: guestToken });
    expect(asGuest.errors).toBeUndefined();
    const participants = asGuest.data.roleplayTemplate.participants as { id: string; displayName: string; isGuest: boolean; character: { name: string } }[];
    expect(participants.map((p) => [p.displayName, p.isGuest, p.character.name])).toEqual([['Gia G.', true, 'Mira'], ['Bob', false, 'Old Tom']]);
    expect(asGuest.data.roleplayTemplate.invitations).toEqual([]);
    const giaPart = participants[0]!.id;
    const bobPart = participants[1]!.id;
    // A guest submits only for herself.
    expect((await stack.gql(op.submit, { input: { participantId: bobPart, content: 'Not mine' } }, { token: guestToken })).data.submitContribution.userErrors[0].code).toBe('PARTICIPANT_NOT_FOUND');
    const first = await stack.gql(op.submit, { input: { participantId: giaPart, content: 'Mira lights the lamp.' } }, { token: guestToken });
    expect(first.data.submitContribution).toMatchObject({ submission: { id: expect.any(String) }, template: { id: made.id, status: 'OPEN' }, userErrors: [] });
    expect((await stack.gql(op.submit, { input: { participantId: giaPart, content: 'Again' } }, { token: guestToken })).data.submitContribution.userErrors[0].code).toBe('ALREADY_SUBMITTED');
    const last = await stack.gql(op.submit, { input: { participantId: bobPart, content: 'Old Tom rows out.' } }, { token: bob.token });
    expect(last.data.submitContribution).toMatchObject({ template: { id: made.id, status: 'COMPLETED' }, userErrors: [] });
    // Completed, it takes no more invitations or submissions.
    const late = await invite(ada.token, { templateId: made.id, characterId: character(made, 'Mira').id, name: 'Late', email: 'late@example.com' });
    expect(late).toMatchObject({ invitation: null, userErrors: [{ code: 'TEMPLATE_COMPLETED', field: 'templateId' }] });
    const again = await stack.gql(op.submit, { input: { participantId: bobPart, content: 'Old Tom rows back.' } }, { token: bob.token });
    expect(again.data.submitContribution).toMatchObject({ submission: null, userErrors: [{ code: 'TEMPLATE_COMPLETED', field: 'participantId' }] });

    // The author sees it all; the story is marked.
    const asAuthor = (await stack.gql(op.template, { id: made.id }, { token: ada.token })).data.roleplayTemplate;
    expect(asAuthor.status).toBe('COMPLETED');
    expect(asAuthor.invitations.map((i: { status: string }) => i.status)).toEqual(['ACCEPTED', 'ACCEPTED']);
    expect(asAuthor.participants.map((p: { submission: { content: string } }) => p.submission.content)).toEqual(['Mira lights the lamp.', 'Old Tom rows out.']);
    await vi.waitFor(
      async () => expect((await stack.gql(`query($id: ID!) { story(id: $id) { collaborationCompletedAt } }`, { id: storyId }, { token: ada.token })).data.story.collaborationCompletedAt).toBeTruthy(),
      { timeout: 10_000, interval: 50 },
    );
    await events.waitFor((e) => e.type === 'story.collaboration.completed' && e.payload.storyId === storyId);
    const log = events.received.filter((e) => e.payload?.templateId === made.id).map((e) => e.type);
    expect(log).toEqual([
      'collaboration.invitation.sent',
      'collaboration.invitation.sent',
      'collaboration.invitation.accepted',
      'collaboration.invitation.accepted',
      'collaboration.submission.completed',
      'collaboration.submission.completed',
      'collaboration.completed',
      'story.collaboration.completed',
    ]);
    const sent = events.received.find((e) => e.type === 'collaboration.invitation.sent' && e.payload.invitationId === byEmail.invitation.id)!;
    expect(sent).toMatchObject({ userId: ada.id, payload: { characterName: 'Mira', inviteeEmail: 'gia@example.com', storyTitle: 'The Lighthouse' } });
    expect(JSON.stringify(events.received)).not.toContain(giaToken);
  });
});

describe('what a guest, a stranger and a guesser can do', () => {
  it('keeps a guest to its own collaboration, and tells a guessed or altered token nothing', async () => {
    const cy = await registerMember(stack, 'Cy');
    await stack.gql(op.changePlan, { tier: 'SILVER' }, { token: cy.token });
    const first = await template(cy.token, await publishedStory(cy.token, 'First'));
    const second = await template(cy.token, await publishedStory(cy.token, 'Second'));
    const draft = (await stack.gql(op.createStory, { input: { title: 'Draft', content: 'Not for anyone.' } }, { token: cy.token })).data.createStory.story;
    const sent = await vi.waitFor(
      async () => {
        const res = await invite(cy.token, { templateId: first.id, characterId: first.characters[0]!.id, name: 'Dot', email: 'dot@example.com' });
        expect(res.userErrors).toEqual([]);
        return res;
      },
      { timeout: 10_000, interval: 100 },
    );
    const token = tokenOf(sent.inviteUrl);
    const guest = (await stack.gql(op.accept, { token })).data.acceptInvitation.guestSession.accessToken as string;

    const other = await stack.gql(op.template, { id: second.id }, { token: guest });
    expect(other.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const draftRead = await stack.gql(`query($id: ID!) { story(id: $id) { id content } }`, { id: draft.id }, { token: guest });
    expect(draftRead.data?.story ?? null).toBeNull();
    const me = await stack.gql(`{ me { id email } }`, {}, { token: guest });
    expect(me.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect((await stack.gql(op.createTemplate, { storyId: draft.id }, { token: guest })).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    // A stranger with an account sees nothing of the template either.
    const eve = await registerMember(stack, 'Eve');
    expect((await stack.gql(op.template, { id: first.id }, { token: eve.token })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    // One person plays one character of a roleplay: a second invitation to it is refused, and stays open.
    const toEve = [
      await invite(cy.token, { templateId: second.id, characterId: second.characters[0]!.id, name: 'Eve', email: 'eve@example.com' }),
      await invite(cy.token, { templateId: second.id, characterId: second.characters[1]!.id, name: 'Eve', email: 'eve@example.org' }),
    ];
    expect(toEve.map((r) => r.userErrors)).toEqual([[], []]);
    expect((await stack.gql(op.accept, { token: tokenOf(toEve[0]!.inviteUrl) }, { token: eve.token })).data.acceptInvitation.userErrors).toEqual([]);
    const twice = await stack.gql(op.accept, { token: tokenOf(toEve[1]!.inviteUrl) }, { token: eve.token });
    expect(twice.data.acceptInvitation).toMatchObject({ participant: null, userErrors: [{ code: 'ALREADY_PARTICIPANT', field: 'token' }] });
    expect((await stack.gql(op.invitation, { token: tokenOf(toEve[1]!.inviteUrl) })).data.invitation.status).toBe('PENDING');

    // Guessed, altered and unknown tokens: the same nothing.
    const altered = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
    for (const guess of [randomBytes(32).toString('base64url'), altered, 'short', token.toUpperCase()]) {
      expect((await stack.gql(op.invitation, { token: guess })).data.invitation).toBeNull();
      expect((await stack.gql(op.accept, { token: guess })).data.acceptInvitation.userErrors).toEqual([{ code: 'INVITATION_NOT_FOUND', field: 'token', message: 'This invitation link is not valid' }]);
    }
  });

  it('refuses an expired invitation, and tells of its expiry once', async () => {
    const dee = await registerMember(stack, 'Dee');
    await stack.gql(op.changePlan, { tier: 'SILVER' }, { token: dee.token });
    const made = await template(dee.token, await publishedStory(dee.token, 'Expiring'));
    const sent = await invite(dee.token, { templateId: made.id, characterId: made.characters[0]!.id, name: 'Fay', phone: '+447700900123' });
    expect(sent.userErrors).toEqual([]);
    const token = tokenOf(sent.inviteUrl);
    // 120 hours pass.
    await db.query(`update collaboration.invitation set sent_at = sent_at - interval '121 hours', expires_at = expires_at - interval '121 hours' where id = $1`, [sent.invitation.id]);
    expect((await stack.gql(op.accept, { token })).data.acceptInvitation.userErrors[0].code).toBe('INVITATION_EXPIRED');
    expect((await stack.gql(op.invitation, { token })).data.invitation.status).toBe('EXPIRED');
    // Still expired, whether a request or the sweep recorded it.
    expect((await stack.gql(op.accept, { token })).data.acceptInvitation.userErrors[0].code).toBe('INVITATION_EXPIRED');
    await events.waitFor((e) => e.type === 'collaboration.invitation.expired' && e.payload.invitationId === sent.invitation.id);
    // The character is free again: a new invitation may be sent.
    const again = await invite(dee.token, { templateId: made.id, characterId: made.characters[0]!.id, name: 'Fay', phone: '+447700900123' });
    expect(again.userErrors).toEqual([]);
    expect(events.received.filter((e) => e.type === 'collaboration.invitation.expired' && e.payload.invitationId === sent.invitation.id)).toHaveLength(1);

    // One nobody opens again expires by the sweep.
    // (SILVER: a second collaborator, once billing's plan change has reached collaboration.)
    const unopened = await vi.waitFor(
      async () => {
        const res = await invite(dee.token, { templateId: made.id, characterId: made.characters[1]!.id, name: 'Kim', email: 'kim@example.com' });
        expect(res.userErrors).toEqual([]);
        return res;
      },
      { timeout: 10_000, interval: 100 },
    );
    await db.query(`update collaboration.invitation set expires_at = now() - interval '1 second' where id = $1`, [unopened.invitation.id]);
    await events.waitFor((e) => e.type === 'collaboration.invitation.expired' && e.payload.invitationId === unopened.invitation.id);
    expect((await db.query(`select status from collaboration.invitation where id = $1`, [unopened.invitation.id])).rows[0].status).toBe('EXPIRED');
  });

  it('holds the plan\'s collaborators per story under concurrent invitations, and a character once', async () => {
    const gus = await registerMember(stack, 'Gus');
    const made = await template(gus.token, await publishedStory(gus.token, 'Crowded'));
    expect(made.characters.length).toBeGreaterThanOrEqual(2);
    // FREE allows one collaborator per story: two invitations at once, one is sent.
    const results = await Promise.all(made.characters.slice(0, 2).map((c, n) => invite(gus.token, { templateId: made.id, characterId: c.id, name: `Friend ${n}`, email: `friend${n}@example.com` })));
    expect(results.filter((r) => r.invitation).length).toBe(1);
    expect(results.filter((r) => r.userErrors[0]?.code === 'PLAN_LIMIT_REACHED').length).toBe(1);
    const taken = results.find((r) => r.invitation)!.invitation;
    const takenCharacter = made.characters.find((c) => c.name === taken.character.name)!;
    expect((await invite(gus.token, { templateId: made.id, characterId: takenCharacter.id, name: 'Again', email: 'again@example.com' })).userErrors[0].code).toBe('CHARACTER_TAKEN');
    expect((await invite(gus.token, { templateId: made.id, characterId: takenCharacter.id, name: 'Nobody' })).userErrors[0].code).toBe('INVALID_CONTACT');
    // Revoked, the character and the plan's place are free again.
    const revoked = await stack.gql(`mutation($id: ID!) { revokeInvitation(id: $id) { invitation { status } userErrors { code } } }`, { id: taken.id }, { token: gus.token });
    expect(revoked.data.revokeInvitation).toEqual({ invitation: { status: 'REVOKED' }, userErrors: [] });
    expect((await invite(gus.token, { templateId: made.id, characterId: takenCharacter.id, name: 'Again', email: 'again@example.com' })).userErrors).toEqual([]);
  });

  it('refuses a template of a draft, or of a story without characters', async () => {
    const hal = await registerMember(stack, 'Hal');
    const draft = (await stack.gql(op.createStory, { input: { title: 'Unpublished', content: TALE } }, { token: hal.token })).data.createStory.story;
    expect((await stack.gql(op.createTemplate, { storyId: draft.id }, { token: hal.token })).data.createRoleplayTemplate.userErrors[0].code).toBe('STORY_NOT_PUBLISHED');
    const empty = await publishedStory(hal.token, 'Weather', 'it rained all day. the wind was cold and the sea was grey.');
    expect((await stack.gql(op.createTemplate, { storyId: empty }, { token: hal.token })).data.createRoleplayTemplate.userErrors[0].code).toBe('NO_CHARACTERS');
  });
});

describe('accounts deleted', () => {
  it('keeps a deleted participant\'s submission nameless, gives back an unsubmitted part, and revokes what a deleted author sent', async () => {
    const ivy = await registerMember(stack, 'Ivy');
    await stack.gql(op.changePlan, { tier: 'SILVER' }, { token: ivy.token });
    const storyId = await publishedStory(ivy.token, 'Farewell');
    const played = await template(ivy.token, storyId);
    const waiting = await template(ivy.token, storyId);
    const [jon, lee] = [await registerMember(stack, 'Jon'), await registerMember(stack, 'Lee')];
    const sendTo = (t: Awaited<ReturnType<typeof template>>, n: number, name: string) =>
      vi.waitFor(
        async () => {
          const res = await invite(ivy.token, { templateId: t.id, characterId: t.characters[n]!.id, name, email: `${name.toLowerCase()}@example.com` });
          expect(res.userErrors).toEqual([]);
          return res;
        },
        { timeout: 10_000, interval: 100 },
      );
    const jonInvite = await sendTo(played, 0, 'Jon');
    const leeInvite = await sendTo(played, 1, 'Lee');
    const kaiInvite = await sendTo(waiting, 0, 'Kai');
    const jonPart = (await stack.gql(op.accept, { token: tokenOf(jonInvite.inviteUrl) }, { token: jon.token })).data.acceptInvitation.participant.id;
    expect((await stack.gql(op.accept, { token: tokenOf(leeInvite.inviteUrl) }, { token: lee.token })).data.acceptInvitation.userErrors).toEqual([]);
    expect((await stack.gql(op.submit, { input: { participantId: jonPart, content: 'Jon was here.' } }, { token: jon.token })).data.submitContribution.userErrors).toEqual([]);

    // Jon submitted: his part stays, without his name.
    expect((await stack.gql(`mutation { deleteAccount { deletedUserId } }`, {}, { token: jon.token })).data.deleteAccount.deletedUserId).toBe(jon.id);
    await vi.waitFor(
      async () => expect((await db.query(`select display_name, user_id from collaboration.participant where id = $1`, [jonPart])).rows).toEqual([{ display_name: 'Former participant', user_id: null }]),
      { timeout: 10_000, interval: 50 },
    );
    // Lee had not: her part is given back, and the roleplay, which waited only on her, completes.
    expect((await stack.gql(`mutation { deleteAccount { deletedUserId } }`, {}, { token: lee.token })).data.deleteAccount.deletedUserId).toBe(lee.id);
    const leeRevoked = await events.waitFor((e) => e.type === 'collaboration.invitation.revoked' && e.payload.invitationId === leeInvite.invitation.id);
    expect(leeRevoked.payload.reason).toBe('ACCOUNT_DELETED');
    await events.waitFor((e) => e.type === 'collaboration.completed' && e.payload.templateId === played.id);
    const { rows: people } = await db.query(`select invitee_name, email from collaboration.invitation where id = any($1)`, [[jonInvite.invitation.id, leeInvite.invitation.id]]);
    expect(people).toEqual([{ invitee_name: 'Former invitee', email: null }, { invitee_name: 'Former invitee', email: null }]);

    // Ivy's own invitations go with her account.
    expect((await stack.gql(`mutation { deleteAccount { deletedUserId } }`, {}, { token: ivy.token })).data.deleteAccount.deletedUserId).toBe(ivy.id);
    const revoked = await events.waitFor((e) => e.type === 'collaboration.invitation.revoked' && e.payload.invitationId === kaiInvite.invitation.id);
    expect(revoked.payload.reason).toBe('ACCOUNT_DELETED');
    // The story went with its author (archived): the invitation still says what became of it.
    // (story archives it on its own consumer of user.deleted, maybe a moment after collaboration revokes.)
    await vi.waitFor(
      async () => {
        const seen = await stack.gql(op.invitation, { token: tokenOf(kaiInvite.inviteUrl) });
        expect(seen.data.invitation).toMatchObject({ status: 'REVOKED', invitedBy: null, template: { story: null } });
      },
      { timeout: 10_000, interval: 50 },
    );
  });
});

describe('a deleted account with an access token still valid', () => {
  it('is refused accepting and inviting once collaboration has erased it, and adds nothing', async () => {
    const ivy = await registerMember(stack, 'Ivy');
    await stack.gql(op.changePlan, { tier: 'SILVER' }, { token: ivy.token });
    const ivyTemplate = await template(ivy.token, await publishedStory(ivy.token, 'Late guests'));
    const max = await registerMember(stack, 'Max');
    const maxTemplate = await template(max.token, await publishedStory(max.token, 'Left behind'));
    const sent = await vi.waitFor(
      async () => {
        const res = await invite(ivy.token, { templateId: ivyTemplate.id, characterId: ivyTemplate.characters[0]!.id, name: 'Max', email: 'max@example.com' });
        expect(res.userErrors).toEqual([]);
        return res;
      },
      { timeout: 10_000, interval: 100 },
    );

    expect((await stack.gql(`mutation { deleteAccount { deletedUserId } }`, {}, { token: max.token })).data.deleteAccount.deletedUserId).toBe(max.id);
    await vi.waitFor(async () => expect((await db.query(`select 1 from collaboration.deleted_user where user_id = $1`, [max.id])).rowCount).toBe(1), { timeout: 10_000, interval: 50 });

    // Max's access token is still valid for a while: collaboration refuses it all the same.
    const accepted = await stack.gql(op.accept, { token: tokenOf(sent.inviteUrl) }, { token: max.token });
    expect(accepted.errors?.[0]).toMatchObject({ message: 'This account has been deleted', extensions: { code: 'UNAUTHENTICATED' } });
    const invited = await stack.gql(op.invite, { input: { templateId: maxTemplate.id, characterId: maxTemplate.characters[0]!.id, name: 'Zed', email: 'zed@example.com' } }, { token: max.token });
    expect(invited.errors?.[0]).toMatchObject({ message: 'This account has been deleted', extensions: { code: 'UNAUTHENTICATED' } });

    expect((await db.query(`select 1 from collaboration.participant where user_id = $1 or template_id = any($2)`, [max.id, [ivyTemplate.id, maxTemplate.id]])).rowCount).toBe(0);
    expect((await db.query(`select 1 from collaboration.invitation where template_id = $1`, [maxTemplate.id])).rowCount).toBe(0);
    // Ivy's invitation is still there for someone else to take.
    expect((await db.query(`select status from collaboration.invitation where id = $1`, [sent.invitation.id])).rows).toEqual([{ status: 'PENDING' }]);
  });
});

describe('completion', () => {
  it('completes when the last invitation it waited on expires', async () => {
    const max = await registerMember(stack, 'Max');
    await stack.gql(op.changePlan, { tier: 'SILVER' }, { token: max.token });
    const made = await template(max.token, await publishedStory(max.token, 'Waiting'));
    const first = await invite(max.token, { templateId: made.id, characterId: made.characters[0]!.id, name: 'Ann', email: 'ann@example.com' });
    const second = await vi.waitFor(
      async () => {
        const res = await invite(max.token, { templateId: made.id, characterId: made.characters[1]!.id, name: 'Ben', email: 'ben@example.com' });
        expect(res.userErrors).toEqual([]);
        return res;
      },
      { timeout: 10_000, interval: 100 },
    );
    const ann = (await stack.gql(op.accept, { token: tokenOf(first.inviteUrl) })).data.acceptInvitation;
    const submitted = await stack.gql(op.submit, { input: { participantId: ann.participant.id, content: 'Ann alone.' } }, { token: ann.guestSession.accessToken });
    expect(submitted.data.submitContribution.template.status).toBe('OPEN');
    // Ben never answers; 120 hours pass, and the sweep notices.
    await db.query(`update collaboration.invitation set expires_at = now() - interval '1 second' where id = $1`, [second.invitation.id]);
    await events.waitFor((e) => e.type === 'collaboration.completed' && e.payload.templateId === made.id);
    expect((await stack.gql(op.template, { id: made.id }, { token: max.token })).data.roleplayTemplate.status).toBe('COMPLETED');
  });
});

describe('the event catalog', () => {
  it('lists every event collaboration publishes, with exactly its payload fields', () => {
    const catalog = JSON.parse(readFileSync(new URL('../schema/events/catalog.json', import.meta.url), 'utf8'));
    const published = events.received.filter((e) => e.type.startsWith('collaboration.'));
    expect(new Set(published.map((e) => e.type)).size).toBeGreaterThanOrEqual(6);
    for (const event of published) {
      expect(catalog[event.type]?.publisher).toBe('collaboration');
      expect(Object.keys(event.payload).sort()).toEqual(Object.keys(catalog[event.type].payload).sort());
    }
  });
});
