// Publishing events: stored with their deliveries before the 202, delivered by the worker afterwards.
import type { ServiceHandlers } from '../contract.js';
import { EventStore, IdempotencyKeyReusedError } from '../store/events.js';
import { HttpProblem, problemType, validationProblem } from './problems.js';
import { tenantOf } from '../auth/principal.js';

/** The contract's bound on `data` (EventParms.data: "at most 256 KiB once serialised"). */
export const maxEventDataBytes = 256 * 1024;

export interface EventHandlerDeps {
  events: EventStore;
  /** Wakes the delivery worker of this process, if it runs one. */
  notifyWorker: () => void;
}

export function eventHandlers({ events, notifyWorker }: EventHandlerDeps): Pick<ServiceHandlers, 'publishEventUsingPOST'> {
  return {
    async publishEventUsingPOST(request, reply) {
      const size = Buffer.byteLength(JSON.stringify(request.body.data));
      if (size > maxEventDataBytes) {
        throw validationProblem(
          [{ pointer: '/data', in: 'body', detail: `is ${size} bytes as JSON; at most ${maxEventDataBytes} are allowed` }],
          'request body',
        );
      }
      try {
        const { event, replayed } = await events.publish(tenantOf(request), request.body);
        if (replayed) reply.header('idempotent-replayed', 'true');
        else if (event.deliveries > 0) notifyWorker();
        reply.code(202);
        return event;
      } catch (error) {
        if (error instanceof IdempotencyKeyReusedError) {
          throw new HttpProblem(409, {
            type: problemType('idempotency-key-reused'),
            title: 'Idempotency key reused',
            detail: `Key ${error.key} was used for another event (${error.eventId}) in the last 24 hours.`,
          });
        }
        throw error;
      }
    },
  };
}
