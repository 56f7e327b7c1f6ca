// Request loggers made only when something is logged. Fastify gives every request a pino child logger bound to its
// request id; making one costs a few microseconds (the bindings are serialised up front), about a tenth of a cached
// read. At the production level (warn) almost no request logs anything, so the child is made on the first call at
// an enabled level, and a call at a disabled level costs one level check.
import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify';
import type { Bindings, ChildLoggerOptions, Level, Logger } from 'pino';

type LogArgs = Parameters<FastifyBaseLogger['info']>;

class LazyRequestLogger {
  private made: FastifyBaseLogger | undefined;

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions,
  ) {}

  get level(): string {
    return this.made?.level ?? this.parent.level;
  }

  set level(level: string) {
    this.real().level = level;
  }

  fatal(...args: LogArgs) {
    this.log('fatal', args);
  }
  error(...args: LogArgs) {
    this.log('error', args);
  }
  warn(...args: LogArgs) {
    this.log('warn', args);
  }
  info(...args: LogArgs) {
    this.log('info', args);
  }
  debug(...args: LogArgs) {
    this.log('debug', args);
  }
  trace(...args: LogArgs) {
    this.log('trace', args);
  }
  silent() {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.real().child(bindings, options);
  }

  private log(level: Level, args: LogArgs) {
    // Until the child exists its level is the parent's.
    if (!this.made && !(this.parent as unknown as Logger).isLevelEnabled(level)) return;
    (this.real()[level] as (...a: LogArgs) => void)(...args);
  }

  private real(): FastifyBaseLogger {
    return (this.made ??= this.parent.child(this.bindings, this.options));
  }
}

export const lazyChildLoggerFactory: NonNullable<FastifyServerOptions['childLoggerFactory']> = (parent, bindings, options) =>
  // A route with a log level of its own gets its child at once: the lazy level check knows only the parent's.
  options.level !== undefined
    ? parent.child(bindings, options)
    : (new LazyRequestLogger(parent, bindings, options) as unknown as FastifyBaseLogger);
