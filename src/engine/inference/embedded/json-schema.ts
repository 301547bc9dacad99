/**
 * A request's JSON Schema, checked against what node-llama-cpp's grammar enforces. It would skip a keyword it does
 * not know (`pattern`, `minimum`...) and the model could then write JSON that fails the schema; naming that keyword
 * in an error is better than an answer that does not validate.
 */
import type { GbnfJsonSchema } from 'node-llama-cpp';
import { AppError } from '../../../errors.ts';

/** Keywords the grammar enforces (node-llama-cpp's GbnfJsonSchema). */
const ENFORCED = new Set([
  'type', 'const', 'enum', 'oneOf', 'properties', 'additionalProperties', 'required', 'minProperties', 'maxProperties',
  'items', 'prefixItems', 'minItems', 'maxItems', 'minLength', 'maxLength', 'format', '$ref', '$defs', 'description',
]);
/** Keywords that constrain nothing, safe to drop. */
const ANNOTATIONS = new Set(['title', '$schema', '$id', '$comment', 'examples', 'default', 'strict', 'deprecated', 'readOnly', 'writeOnly']);
const FORMATS = new Set(['date-time', 'time', 'date']);
/** Keywords whose value is a map of names to schemas, or a list of schemas. */
const SCHEMA_MAPS = new Set(['properties', '$defs']);
const SCHEMA_LISTS = new Set(['oneOf', 'prefixItems']);

/**
 * The schema as node-llama-cpp takes it: `anyOf` written as `oneOf` (to generate an answer that validates, either
 * will do), annotations dropped; anything it would not enforce is an `invalid_request` naming where it is.
 */
export function enforceableSchema(schema: unknown, field: string): GbnfJsonSchema {
  return convert(schema, field) as GbnfJsonSchema;
}

function convert(schema: unknown, path: string): unknown {
  if (typeof schema === 'boolean' && path.endsWith('.additionalProperties')) return schema;
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) throw refuse(path, 'is not a schema object');
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    const at = `${path}.${key}`;
    const name = key === 'anyOf' ? 'oneOf' : key;
    if (ANNOTATIONS.has(name)) continue;
    if (!ENFORCED.has(name)) throw refuse(at, `"${key}" is a keyword the embedded engine cannot enforce`);
    if (name === 'format' && !FORMATS.has(String(value))) throw refuse(at, `format "${value}" cannot be enforced (date-time, time and date can)`);
    if (SCHEMA_MAPS.has(name)) out[name] = mapValues(value, at);
    else if (SCHEMA_LISTS.has(name)) out[name] = listOf(value, at);
    else if (name === 'items' || (name === 'additionalProperties' && typeof value === 'object')) out[name] = convert(value, at);
    else out[name] = value;
  }
  return out;
}

function mapValues(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw refuse(path, 'is not an object of schemas');
  return Object.fromEntries(Object.entries(value).map(([name, schema]) => [name, convert(schema, `${path}.${name}`)]));
}

function listOf(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) throw refuse(path, 'is not a list of schemas');
  return value.map((schema, i) => convert(schema, `${path}.${i}`));
}

function refuse(field: string, what: string): AppError {
  return new AppError('invalid_request', `${field} ${what}`, { details: { field } });
}
