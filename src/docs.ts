import { z } from 'zod';
import type { Group, RequestSpec } from './protocol/define.ts';
import { actions, specOf, type Action } from './protocol/registry.ts';

type JsonSchema = {
  /** Several types for a nullable field: `['boolean', 'null']`. */
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  /** zod writes discriminated unions as `oneOf`. */
  oneOf?: JsonSchema[];
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: JsonSchema | boolean;
  minimum?: number;
  maximum?: number;
};

const GROUP_TITLES: Record<Group, string> = {
  inference: 'Inference',
  models: 'Models',
  model_settings: 'Model settings',
  history: 'Session history',
  documents: 'Documents',
  rag: 'RAG',
  control: 'Generation control',
  parameters: 'Parameters',
  system: 'System',
};

/** A compact TypeScript-like rendering of a JSON schema, e.g. `string | string[]`. */
function typeOf(schema: JsonSchema): string {
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
  const union = schema.anyOf ?? schema.oneOf;
  if (union) return union.map(typeOf).join(' | ');
  if (Array.isArray(schema.type)) return schema.type.map((type) => typeOf({ ...schema, type })).join(' | ');
  switch (schema.type) {
    case 'array':
      return `${schema.items ? wrap(typeOf(schema.items)) : 'unknown'}[]`;
    case 'object':
      if (schema.properties) return `{ ${fields(schema).join(', ')} }`;
      return typeof schema.additionalProperties === 'object' ? `Record<string, ${typeOf(schema.additionalProperties)}>` : 'object';
    case 'integer':
      return 'integer';
    case undefined:
      return 'any';
    default:
      return schema.type;
  }
}

/** Parentheses around a union that becomes an array's items: `(string | number)[]`. */
function wrap(type: string): string {
  return type.includes(' | ') || (type.includes(' ') && !type.startsWith('{')) ? `(${type})` : type;
}

function fields(schema: JsonSchema): string[] {
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties ?? {}).map(([name, field]) => `${name}${required.has(name) ? '' : '?'}: ${typeOf(field)}`);
}

function section(action: string, spec: RequestSpec): string {
  const input = z.toJSONSchema(spec.input, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const output = z.toJSONSchema(spec.output, { io: 'output', unrepresentable: 'any' }) as JsonSchema;
  const params = fields(input);
  return [
    `### \`${action}\``,
    '',
    spec.summary,
    '',
    `- tRPC: \`rpc.${action}\` (${spec.kind}) · answer \`type\`: \`${spec.response}\`${spec.streams ? ' · streams `chunk` frames with `stream: true`' : ''} · served by: ${spec.engine}${spec.adminOnly ? ' · **admin key** when API keys are on' : ''}`,
    `- params: ${params.length ? params.map((p) => `\`${p}\``).join(', ') : 'none'}`,
    `- answer: \`{ request_id, type: "${spec.response}", ${fields(output).join(', ')} }\``,
    '',
  ].join('\n');
}

/** docs/REQUEST_TYPES.md, generated from the registry (`npm run docs`); a test keeps the file in step. */
export function renderRequestTypes(): string {
  const byGroup = new Map<Group, Action[]>();
  for (const action of actions) {
    const { group } = specOf(action);
    byGroup.set(group, [...(byGroup.get(group) ?? []), action]);
  }
  const parts = [
    '# Request types',
    '',
    '<!-- Generated from src/protocol/registry.ts by `npm run docs`; do not edit by hand. -->',
    '',
    `${actions.length} request types. On a data channel send \`{ "request_id"?, "action": "<name>", ...params }\`;`,
    'over tRPC call `rpc.<name>` with the params. Errors are `{ request_id, type: "error", code, message, details? }`',
    '(see PROTOCOL.md). Types served by an engine the server has not attached answer `backend_unavailable`.',
    'With API keys on, each key has its own history, documents, default model and inference settings; types that',
    'change what every caller shares need an admin key (`TABAGENT_ADMIN_KEYS`), and others get `forbidden`.',
    '',
  ];
  for (const [group, names] of byGroup) {
    parts.push(`## ${GROUP_TITLES[group]}`, '');
    for (const action of names) parts.push(section(action, specOf(action)));
  }
  return parts.join('\n');
}
