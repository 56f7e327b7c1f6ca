// A webhook's delivery log, and delivering again on request.
import type { ServiceHandlers } from '../contract.js';
import type { DeliveryStore } from '../store/deliveries.js';
import type { WebhookStore } from '../store/webhooks.js';
import { decodeCursor, encodeCursor, nextLink } from './list-cursor.js';
import { HttpProblem, plainProblem, problemType, webhookNotFound } from './problems.js';
import { tenantOf } from '../auth/principal.js';

export interface DeliveryHandlerDeps {
  webhooks: WebhookStore;
  deliveries: DeliveryStore;
  notifyWorker: () => void;
}

type Position = { createdAt: string; id: string };
const isPosition = (value: Record<string, unknown>): value is Position =>
  typeof value.createdAt === 'string' && typeof value.id === 'string';

export function deliveryHandlers({ webhooks, deliveries, notifyWorker }: DeliveryHandlerDeps): Pick<
  ServiceHandlers,
  'getDeliveriesUsingGET' | 'retryDeliveryUsingPOST'
> {
  return {
    async getDeliveriesUsingGET(request, reply) {
      const tenant = tenantOf(request);
      const { id } = request.params;
      if (!(await webhooks.get(tenant, id))) throw webhookNotFound(id);
      const { status, cursor } = request.query;
      const limit = request.query.limit ?? 100;
      const before = cursor === undefined ? undefined : decodeCursor<Position>(cursor, isPosition);
      const page = await deliveries.listForWebhook(tenant, id, {
        limit,
        ...(status ? { status } : {}),
        ...(before ? { before: { createdAt: before.createdAt, id: before.id } } : {}),
      });
      if (page.next) {
        const query: Record<string, string> = { limit: String(limit), cursor: encodeCursor(page.next) };
        if (status) query.status = status;
        reply.header('link', nextLink(request.url, query));
      }
      return page.items;
    },

    async retryDeliveryUsingPOST(request, reply) {
      const { id, deliveryId } = request.params;
      const result = await deliveries.retryNow(tenantOf(request), id, deliveryId);
      if (result === undefined) {
        if (!(await webhooks.get(tenantOf(request), id))) throw webhookNotFound(id);
        throw plainProblem(404, `Webhook ${id} has no delivery ${deliveryId}.`);
      }
      if (result === 'in-flight') {
        throw new HttpProblem(409, {
          type: problemType('delivery-in-flight'),
          title: 'Delivery in flight',
          detail: `An attempt at delivery ${deliveryId} is under way; retry after it ends.`,
        });
      }
      notifyWorker();
      reply.code(202);
      return result;
    },
  };
}
