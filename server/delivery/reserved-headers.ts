// Request headers a delivery sets itself or that steer the connection: callers' copies are never sent. The
// contract's WebhookHeaders description lists the same names; webhook-* names are the signature's and refused too.
export const reservedHeaderNames: ReadonlySet<string> = new Set([
  'host',
  'content-length',
  'content-type',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'expect',
  'proxy-authorization',
  'proxy-connection',
  'user-agent',
]);
