import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stdout; one child logger per request carries its correlation id. */
export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info', name = 'storyloom'): Logger {
  return pino({
    name,
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['*.password', '*.refreshToken', '*.accessToken', '*.idToken', 'req.headers.authorization'], remove: false },
  });
}
