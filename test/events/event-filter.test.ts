// Which webhooks an event goes to, at the unit level: a webhook's `events` hold exact type names, trailing
// wildcards (`order.*`: every type under `order.`) and `*` (everything). test/api/events.test.ts checks the
// same rules end to end, through the 202's delivery count and what receivers get.
import { describe, expect, it } from 'vitest';
import { filterMatches, subscribesTo } from '../../server/events/event-filter.js';

/** [filter, event type, matches?] */
const filterCases: [filter: string, type: string, matches: boolean][] = [
  // exact names
  ['order.created', 'order.created', true],
  ['order.created', 'order.paid', false],
  ['order.created', 'order.created.v2', false],
  ['order.created', 'order', false],
  ['order', 'order', true],
  ['order', 'order.created', false],
  ['order.created', 'order.create', false],
  // trailing wildcards
  ['order.*', 'order.created', true],
  ['order.*', 'order.paid', true],
  ['order.*', 'order.item.shipped', true],
  ['order.*', 'order', false],
  ['order.*', 'orders.created', false],
  ['order.*', 'orderx', false],
  ['order.*', 'customer.order.created', false],
  ['order.item.*', 'order.item.shipped', true],
  ['order.item.*', 'order.item', false],
  ['order.item.*', 'order.items.shipped', false],
  ['order.item.*', 'order.created', false],
  // everything
  ['*', 'order.created', true],
  ['*', 'x', true],
  ['*', 'a.b.c.d', true],
];

describe('filterMatches', () => {
  it.each(filterCases)('%s against %s → %s', (filter, type, matches) => {
    expect(filterMatches(filter, type)).toBe(matches);
  });
});

describe('subscribesTo', () => {
  it.each([
    [['order.created'], 'order.created', true],
    [['customer.updated', 'invoice.*'], 'invoice.paid', true],
    [['customer.updated', 'invoice.*'], 'customer.updated', true],
    [['customer.updated', 'invoice.*'], 'customer.created', false],
    [['customer.updated', 'invoice.*'], 'invoice', false],
    [['order.item.*', 'order.created'], 'order.paid', false],
    [['a', 'b', '*'], 'z.z', true],
    [[], 'order.created', false],
  ] as [string[], string, boolean][])('%j against %s → %s', (filters, type, matches) => {
    expect(subscribesTo(filters, type)).toBe(matches);
  });

  it('matches when any one filter does, whatever its position', () => {
    for (const [filter, type, matches] of filterCases) {
      expect(subscribesTo(['unrelated.type', filter, 'other.*'], type)).toBe(matches || type.startsWith('other.'));
    }
  });
});
