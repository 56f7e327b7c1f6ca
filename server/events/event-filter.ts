// Which webhooks an event goes to: a webhook's `events` list holds exact type names, trailing wildcards
// (`order.*` matches every type under `order.`) and `*` for everything.

export function filterMatches(filter: string, type: string): boolean {
  if (filter === '*' || filter === type) return true;
  return filter.endsWith('.*') && type.startsWith(filter.slice(0, -1));
}

export function subscribesTo(filters: readonly string[], type: string): boolean {
  return filters.some((filter) => filterMatches(filter, type));
}
