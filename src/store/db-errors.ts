/** Database failures in our error codes: the operation and the database's code, never the SQL, its values or a password. */
import { AppError } from '../errors.ts';

/**
 * Node socket errors, PostgreSQL's connection / shutdown SQLSTATEs, SQLite's I/O and open failures: the database
 * is not there (as opposed to a statement it refused).
 */
function isUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN)$/.test(code)) return true;
    if (/^08/.test(code) || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300') return true;
    if (/^SQLITE_(BUSY|CANTOPEN|IOERR|FULL|READONLY|NOTADB|CORRUPT)/.test(code)) return true;
  }
  const message = error instanceof Error ? error.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end/.test(
    message,
  );
}

/** An `AppError` for a failed database operation: the operation and the SQLSTATE or SQLite code, never the SQL or its values. */
export function databaseError(operation: string, error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (isUnavailable(error)) return new AppError('backend_unavailable', `The database is unavailable (could not ${operation})`, { cause: error });
  const code = (error as { code?: unknown } | null)?.code;
  const known =
    typeof code !== 'string' ? '' : /^[0-9A-Z]{5}$/.test(code) ? ` (SQLSTATE ${code})` : /^SQLITE_[A-Z_]+$/.test(code) ? ` (${code})` : '';
  return new AppError('internal', `The store could not ${operation}${known}`, { cause: error });
}
