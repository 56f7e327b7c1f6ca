// Operations any client may call without credentials: health and the contract itself.
import type { Kysely } from 'kysely';
import { contract, contractYaml, type ServiceHandlers } from '../contract.js';
import { storeIsReachable } from '../store/database.js';
import type { Database } from '../store/schema.js';

export function serviceHandlers(db: Kysely<Database>): Pick<
  ServiceHandlers,
  'getHealth' | 'getContractJson' | 'getContractYaml'
> {
  return {
    async getHealth(_request, reply) {
      if (await storeIsReachable(db)) return { status: 'ok', checks: { store: 'ok' } };
      reply.code(503);
      return { status: 'unavailable', checks: { store: 'unreachable' } };
    },
    async getContractJson() {
      return contract as never;
    },
    async getContractYaml(_request, reply) {
      reply.type('application/yaml');
      return contractYaml;
    },
  };
}
