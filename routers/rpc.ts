import type { TRPCMutationProcedure, TRPCQueryProcedure } from '@trpc/server';
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
    const request = { requestId: rpcCaller.assignRequestId(), action, params: input };
    // The dispatcher's AppError is thrown as it is: the error formatter gives it the one shape tRPC clients see.
    const { result } = await ctx.dispatcher.run(rpcCaller, request, { signal });
    return { type: spec.response, ...result };
  };
  return spec.kind === 'query' ? withInput.query(resolve) : withInput.mutation(resolve);
}

export const rpcRouter = router(
  Object.fromEntries(actions.map((action) => [action, procedureFor(action)])) as unknown as { [A in Action]: RpcProcedure<A> },
);
