/**
 * OpenAI-shaped chats in node-llama-cpp's terms: messages become its chat history (a tool call and its result are
 * one item there, inside the model's turn), tools become its functions. Pure: no model needed.
 */
import type { ChatHistoryItem, ChatModelFunctionCall, ChatModelFunctions, GbnfJsonSchema } from 'node-llama-cpp';
import { AppError } from '../../../errors.ts';
import { messageText, type ChatMessage, type Tool } from '../../../protocol/requests/messages.ts';

/** The embedded engine reads text; images go to an upstream with a vision model. */
export function refuseImages(messages: ChatMessage[]): void {
  const withImage = messages.findIndex((m) => Array.isArray(m.content) && m.content.some((part) => part.type !== 'text'));
  if (withImage >= 0) {
    throw new AppError(
      'not_supported',
      'The embedded engine reads no images (node-llama-cpp runs text models): send images to an upstream with a vision model (TABAGENT_UPSTREAM_URL)',
      { details: { field: `messages.${withImage}.content` } },
    );
  }
}

/**
 * The chat history, ending in the model's turn to write: an empty one after a user message, or the model's own turn
 * to continue after an assistant message or tool results.
 */
export function toHistory(messages: ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = [];
  const awaiting = new Map<string, ChatModelFunctionCall>();
  messages.forEach((message, index) => {
    const text = messageText(message.content);
    switch (message.role) {
      case 'system':
        history.push({ type: 'system', text });
        break;
      case 'user':
        history.push({ type: 'user', text });
        break;
      case 'assistant': {
        const calls = (message.tool_calls ?? []).map((call, n) => {
          const item: ChatModelFunctionCall = {
            type: 'functionCall',
            name: call.function.name,
            params: parseArguments(call.function.arguments, `messages.${index}.tool_calls.${n}.function.arguments`),
            result: undefined,
          };
          awaiting.set(call.id, item);
          return item;
        });
        history.push({ type: 'model', response: [...(text ? [text] : []), ...calls] });
        break;
      }
      case 'tool': {
        const call = awaiting.get(message.tool_call_id ?? '');
        if (!call) {
          throw new AppError('invalid_request', `No assistant tool call "${message.tool_call_id}" before this tool message`, {
            details: { field: `messages.${index}.tool_call_id` },
          });
        }
        call.result = parseResult(text);
        awaiting.delete(message.tool_call_id ?? '');
        break;
      }
    }
  });
  if (awaiting.size > 0) {
    throw new AppError('invalid_request', `Tool call ${[...awaiting.keys()].map((id) => `"${id}"`).join(', ')} has no tool message with its result`, {
      details: { field: 'messages' },
    });
  }
  const last = messages[messages.length - 1];
  if (last.role !== 'assistant' && last.role !== 'tool') history.push({ type: 'model', response: [] });
  return history;
}

/** Tools as node-llama-cpp's functions: it documents them to the model and constrains the calls to their schemas. */
export function toFunctions(tools: Tool[]): ChatModelFunctions {
  return Object.fromEntries(
    tools.map(({ function: f }) => [f.name, { ...(f.description ? { description: f.description } : {}), ...(f.parameters ? { params: f.parameters as GbnfJsonSchema } : {}) }]),
  );
}

/**
 * The JSON a forced tool call is written as: the one tool's arguments, or, when any tool will do, which tool and
 * its arguments.
 */
export function forcedCallSchema(tools: Tool[], name: string | undefined): GbnfJsonSchema {
  const argumentsOf = (tool: Tool) => (tool.function.parameters ?? { type: 'object', properties: {} }) as GbnfJsonSchema;
  if (name !== undefined) return argumentsOf(tools.find((tool) => tool.function.name === name)!);
  return {
    oneOf: tools.map((tool) => ({
      type: 'object',
      properties: { name: { const: tool.function.name }, arguments: argumentsOf(tool) },
      required: ['name', 'arguments'],
    })),
  } as GbnfJsonSchema;
}

/** The instruction that goes with a forced call: the model writes better arguments knowing what they are for. */
export function forcedCallInstruction(tools: Tool[], name: string | undefined): string {
  const listed = (name === undefined ? tools : tools.filter((tool) => tool.function.name === name))
    .map((tool) => `${tool.function.name}${tool.function.description ? `: ${tool.function.description}` : ''}`)
    .join('\n');
  return name === undefined
    ? `Call one of these functions. Answer with JSON: {"name": <function>, "arguments": <its arguments>}.\n${listed}`
    : `Call the function ${listed}. Answer with its arguments as JSON.`;
}

function parseArguments(text: string, field: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new AppError('invalid_request', `A tool call's arguments are not JSON: ${JSON.stringify(text.slice(0, 80))}`, { details: { field } });
  }
}

/** A tool's result as the model will read it: JSON where it is JSON, else the text itself. */
function parseResult(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
