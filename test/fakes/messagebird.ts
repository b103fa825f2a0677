/**
 * A fake MessageBird SMS API on loopback, in its REST wire format: `POST /messages` with
 * `Authorization: AccessKey <key>` and a JSON body `{ originator, recipients, body, reference?,
 * reportUrl? }`, answered 201 with the message (`id`, `recipients.items[].status` "sent");
 * errors are `{ errors: [{ code, description, parameter }] }` (2: bad key, 9: missing or wrong
 * parameter, 25: out of balance).
 */
import { randomBytes } from 'node:crypto';
import { startSmsProviderFake, type SmsFakeAnswer, type SmsFakeController } from './provider-fake.js';

/** A message the fake accepted. */
export interface MessageBirdFakeMessage {
  id: string;
  originator: string;
  recipients: string[];
  body: string;
  reference: string | null;
  reportUrl: string | null;
  /** The JSON body as sent. */
  json: Record<string, unknown>;
}

export interface MessageBirdFake extends SmsFakeController {
  readonly accessKey: string;
  /** Accepted messages, in order. */
  readonly messages: MessageBirdFakeMessage[];
}

export function messageBirdErrors(...errors: { code: number; description: string; parameter?: string | null }[]): { errors: { code: number; description: string; parameter: string | null }[] } {
  return { errors: errors.map((e) => ({ code: e.code, description: e.description, parameter: e.parameter ?? null })) };
}

/** What failNext answers when given no body. */
const DEFAULT_ERRORS: Record<number, [number, string]> = {
  400: [21, 'Bad request'],
  401: [2, 'Request not allowed (incorrect access_key)'],
  402: [25, 'Not enough balance'],
  404: [20, 'Not found'],
  422: [9, 'no (correct) recipients found'],
  429: [98, 'Too many requests'],
  500: [99, 'Internal error'],
};

export async function startMessageBirdFake(options: { accessKey?: string } = {}): Promise<MessageBirdFake> {
  const accessKey = options.accessKey ?? `test_${randomBytes(12).toString('base64url')}`;
  const messages: MessageBirdFakeMessage[] = [];

  const controller = await startSmsProviderFake({
    error(status) {
      const [code, description] = DEFAULT_ERRORS[status] ?? [status >= 500 ? 99 : 21, `HTTP ${status}`];
      return messageBirdErrors({ code, description });
    },
    answer(request): SmsFakeAnswer {
      if (request.method !== 'POST' || request.path.split('?')[0] !== '/messages') return { status: 404, body: messageBirdErrors({ code: 20, description: 'Not found' }) };
      if (request.headers.authorization !== `AccessKey ${accessKey}`) {
        return { status: 401, body: messageBirdErrors({ code: 2, description: 'Request not allowed (incorrect access_key)', parameter: 'access_key' }) };
      }
      let json: Record<string, unknown>;
      try {
        json = JSON.parse(request.rawBody) as Record<string, unknown>;
      } catch {
        return { status: 400, body: messageBirdErrors({ code: 21, description: 'Request body is not valid JSON' }) };
      }
      const refuse = (description: string, parameter: string): SmsFakeAnswer => ({ status: 422, body: messageBirdErrors({ code: 9, description, parameter }) });
      const { originator, recipients, body, reference, reportUrl } = json;
      if (typeof originator !== 'string' || !/^(\+?\d{1,17}|[A-Za-z0-9 ]{1,11})$/.test(originator)) return refuse('originator is required', 'originator');
      if (typeof body !== 'string' || !body) return refuse('body is required', 'body');
      const numbers = Array.isArray(recipients) ? recipients.map(String) : [];
      if (numbers.length === 0 || !numbers.every((n) => /^\d{7,15}$/.test(n))) return refuse('no (correct) recipients found', 'recipients');
      if (reportUrl !== undefined && (typeof reportUrl !== 'string' || !/^https?:\/\//.test(reportUrl))) return refuse('reportUrl is invalid', 'reportUrl');
      // MessageBird sends status reports only for messages with a reference.
      if (reportUrl !== undefined && (typeof reference !== 'string' || !reference)) return refuse('reference is required with reportUrl', 'reference');

      const message: MessageBirdFakeMessage = {
        id: randomBytes(16).toString('hex'),
        originator,
        recipients: numbers,
        body,
        reference: typeof reference === 'string' ? reference : null,
        reportUrl: typeof reportUrl === 'string' ? reportUrl : null,
        json,
      };
      messages.push(message);
      const now = new Date().toISOString().replace(/\.\d{3}Z$/, '+00:00');
      return {
        status: 201,
        body: {
          id: message.id,
          href: `https://rest.messagebird.com/messages/${message.id}`,
          direction: 'mt',
          type: 'sms',
          originator,
          body,
          reference: message.reference,
          validity: null,
          gateway: 10,
          typeDetails: {},
          datacoding: 'plain',
          mclass: 1,
          scheduledDatetime: null,
          createdDatetime: now,
          recipients: {
            totalCount: numbers.length,
            totalSentCount: numbers.length,
            totalDeliveredCount: 0,
            totalDeliveryFailedCount: 0,
            // MessageBird answers recipients as numbers.
            items: numbers.map((n) => ({ recipient: Number(n), status: 'sent', statusDatetime: now })),
          },
        },
      };
    },
  });

  return { ...controller, accessKey, messages };
}
