/**
 * Why a provider's webhook post is not believed: the route answers 403 to an unsigned, badly
 * signed or stale post and 400 to a signed but malformed one, and changes nothing either way.
 */
export type WebhookRefusal = 'UNSIGNED' | 'BAD_SIGNATURE' | 'STALE' | 'MALFORMED';

export class WebhookRefused extends Error {
  constructor(
    readonly refusal: WebhookRefusal,
    message: string,
  ) {
    super(message);
    this.name = 'WebhookRefused';
  }
}
