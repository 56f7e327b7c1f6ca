// The six operations of the seed, bound by operationId. Each handler sees only the caller's tenant: a webhook of
// another tenant is answered exactly like a missing one.
import type { ServiceHandlers } from '../contract.js';
import { generateSecret } from '../delivery/signature.js';
import { DuplicateCallbackUrlError, shownWebhook, type WebhookRecord, type WebhookStore } from '../store/webhooks.js';
import { decodeCursor, encodeCursor, nextLink } from './list-cursor.js';
import { HttpProblem, problemType, webhookNotFound } from './problems.js';
import { tenantOf } from '../auth/principal.js';
import { checkSecretLength, checkWebhookParms, type HostCheck } from './webhook-params.js';

/** Sends the `webhook.test` event; resolves to null on success or to the problem to answer with. */
export type TestSender = (webhook: WebhookRecord) => Promise<HttpProblem | null>;

export interface WebhookHandlerDeps {
  webhooks: WebhookStore;
  checkHost: HostCheck;
  sendTest: TestSender;
}

type WebhookOperations =
  | 'rotateWebhookSecretUsingPOST'
  | 'getWebhooksUsingGET'
  | 'createWebhookUsingPOST'
  | 'readWebhookUsingGET'
  | 'updateWebhookUsingPUT'
  | 'deleteWebhookUsingDELETE'
  | 'testWebhookUsingPOST';

const isSeqPosition = (value: Record<string, unknown>): value is { seq: number } =>
  Number.isSafeInteger(value.seq) && (value.seq as number) >= 0;



function duplicateUrl(error: DuplicateCallbackUrlError, url: string): HttpProblem {
  return new HttpProblem(409, {
    type: problemType('duplicate-callback-url'),
    title: 'Callback URL already registered',
    detail: `Webhook ${error.existingWebhookId} already uses ${url}.`,
    existingWebhookId: error.existingWebhookId,
  });
}

export function webhookHandlers({ webhooks, checkHost, sendTest }: WebhookHandlerDeps): Pick<
  ServiceHandlers,
  WebhookOperations
> {
  return {
    async getWebhooksUsingGET(request, reply) {
      const limit = request.query.limit ?? 100;
      const afterSeq =
        request.query.cursor === undefined ? 0 : decodeCursor<{ seq: number }>(request.query.cursor, isSeqPosition).seq;
      const page = await webhooks.list(tenantOf(request), limit, afterSeq);
      if (page.nextAfterSeq !== undefined) {
        reply.header('link', nextLink(request.url, { limit: String(limit), cursor: encodeCursor({ seq: page.nextAfterSeq }) }));
      }
      return page.items;
    },

    async createWebhookUsingPOST(request) {
      const input = checkWebhookParms(request.body, checkHost);
      const secret = request.body.secret ?? generateSecret();
      try {
        const record = await webhooks.create(tenantOf(request), input, secret);
        return { ...shownWebhook(record), secret };
      } catch (error) {
        if (error instanceof DuplicateCallbackUrlError) throw duplicateUrl(error, input.callbackUrl);
        throw error;
      }
    },

    async readWebhookUsingGET(request) {
      const record = await webhooks.get(tenantOf(request), request.params.id);
      if (!record) throw webhookNotFound(request.params.id);
      return shownWebhook(record);
    },

    async updateWebhookUsingPUT(request) {
      const input = checkWebhookParms(request.body, checkHost);
      try {
        const record = await webhooks.replace(tenantOf(request), request.params.id, input, request.body.secret);
        if (!record) throw webhookNotFound(request.params.id);
        return shownWebhook(record);
      } catch (error) {
        if (error instanceof DuplicateCallbackUrlError) throw duplicateUrl(error, input.callbackUrl);
        throw error;
      }
    },

    async deleteWebhookUsingDELETE(request) {
      if (!(await webhooks.delete(tenantOf(request), request.params.id))) throw webhookNotFound(request.params.id);
      return undefined;
    },

    async rotateWebhookSecretUsingPOST(request) {
      const secret = request.body?.secret ?? generateSecret();
      if (request.body?.secret) checkSecretLength(request.body.secret, '/secret');
      const graceMs = (request.body?.gracePeriodSeconds ?? 86_400) * 1000;
      const rotated = await webhooks.rotateSecret(tenantOf(request), request.params.id, secret, graceMs);
      if (!rotated) throw webhookNotFound(request.params.id);
      return { secret, ...rotated };
    },

    async testWebhookUsingPOST(request) {
      const record = await webhooks.get(tenantOf(request), request.params.id);
      if (!record) throw webhookNotFound(request.params.id);
      const problem = await sendTest(record);
      if (problem) throw problem;
      return undefined;
    },
  };
}
