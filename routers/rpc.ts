import type { TRPCMutationProcedure, TRPCQueryProcedure } from '@trpc/server';
import { AppError } from '../src/errors.ts';
import { actions, registry, specOf, type Action, type RequestInput, type ResponseOf } from '../src/protocol/registry.ts';
import { procedure, router, type Context, type ErrorShape } from './trpc.ts';

type Def<A extends Action> = { input: RequestInput<A>; output: ResponseOf<A>; meta: object; errorShape: ErrorShape };
type RpcProcedure<A extends Action> = (typeof registry)[A]['kind'] extends 'query'
  ? TRPCQueryProcedure<Def<A>>
  : TRPCMutationProcedure<Def<A>>;

/**
 * `rpc.<action>` for every request type, built from the registry (never listed by hand): reads are queries,
 * the rest mutations. Answers have the data channel's shape, `{ type, ...fields }`.
 */
function procedureFor(action: Action) {
  const spec = specOf(action);
  const withInput = procedure.input(spec.input);
  const resolve = async ({ input, ctx, signal }: { input: unknown; ctx: Context; signal?: AbortSignal }) => {
    const rpcCaller = ctx.rpcCaller();
    const { dispatcher } = ctx;
    const request = { requestId: rpcCaller.assignRequestId(), action, params: input };
    const { frame } = await dispatcher.execute(rpcCaller, request, { signal });
    const { request_id: _id, ...answer } = frame as Record<string, unknown>;
    if (answer.type === 'error') {
      throw new AppError(answer.code as AppError['code'], String(answer.message), { details: answer.details });
    }
    return answer;
  };
  return spec.kind === 'query' ? withInput.query(resolve) : withInput.mutation(resolve);
}

export const rpcRouter = router(
  Object.fromEntries(actions.map((action) => [action, procedureFor(action)])) as unknown as { [A in Action]: RpcProcedure<A> },
);
