import { z } from 'zod';
import { request } from '../define.ts';
import { metadataFilters, modelId } from './shared.ts';

const storedMessage = z.object({
  id: z.string(),
  session_id: z.string(),
  role: z.string(),
  content: z.string(),
  created_at: z.string(),
  metadata: z.record(z.string(), z.unknown()).optional(),
});

const searchHit = z.object({
  id: z.string(),
  score: z.number(),
  content: z.string(),
  metadata: z.record(z.string(), z.unknown()).optional(),
});

const searchOutput = z.object({ results: z.array(searchHit), query_time_ms: z.number() });

const text = z.string().min(1).max(1_000_000);

export const knowledgeRequests = {
  chat_history: request({
    group: 'history',
    summary: 'Saved messages of a chat session (or of all sessions), newest last.',
    input: z.strictObject({ session_id: z.string().optional(), limit: z.number().int().positive().max(10_000).optional() }).default({}),
    output: z.object({ messages: z.array(storedMessage) }),
    response: 'chat_history',
    kind: 'query',
    engine: 'knowledge',
  }),
  save_message: request({
    group: 'history',
    summary: 'Appends a message to a chat session\'s history.',
    input: z.strictObject({
      session_id: z.string().min(1),
      message: z.strictObject({
        role: z.enum(['system', 'user', 'assistant', 'tool']),
        content: z.string(),
        metadata: z.record(z.string(), z.unknown()).optional(),
      }),
    }),
    output: z.object({ message_id: z.string() }),
    response: 'message_saved',
    kind: 'mutation',
    engine: 'knowledge',
  }),
  rag_query: request({
    group: 'rag',
    summary: 'Retrieves the passages most relevant to a query.',
    input: z.strictObject({ query: text, top_k: z.number().int().positive().max(1000).optional(), filters: metadataFilters }),
    output: searchOutput,
    response: 'rag_results',
    kind: 'query',
    engine: 'knowledge',
  }),
  semantic_search_query: request({
    group: 'rag',
    summary: 'Vector search over stored documents and messages.',
    input: z.strictObject({ query: text, k: z.number().int().positive().max(1000), filters: metadataFilters }),
    output: searchOutput,
    response: 'semantic_search_results',
    kind: 'query',
    engine: 'knowledge',
  }),
  calculate_similarity: request({
    group: 'rag',
    summary: 'Cosine similarity of two texts\' embeddings.',
    input: z.strictObject({ text1: text, text2: text, model: modelId.optional() }),
    output: z.object({ similarity: z.number(), model: z.string() }),
    response: 'similarity',
    kind: 'query',
    engine: 'knowledge',
  }),
  evaluate_embeddings: request({
    group: 'rag',
    summary: 'Retrieval metrics (MRR, recall@k) of a model on query/document pairs.',
    input: z.strictObject({
      model: modelId,
      queries: z.array(text).min(1).max(1000),
      documents: z.array(text).min(1).max(10_000),
    }),
    output: z.object({ model: z.string(), metrics: z.record(z.string(), z.number()) }),
    response: 'embedding_evaluation',
    kind: 'mutation',
    engine: 'knowledge',
  }),
  cluster_documents: request({
    group: 'rag',
    summary: 'k-means clusters of documents with each cluster\'s representative terms.',
    input: z.strictObject({
      documents: z.array(text).min(1).max(10_000),
      n_clusters: z.number().int().positive(),
      model: modelId.optional(),
    }),
    output: z.object({
      assignments: z.array(z.number().int()),
      clusters: z.array(z.object({ id: z.number().int(), size: z.number().int(), terms: z.array(z.string()) })),
    }),
    response: 'clusters',
    kind: 'mutation',
    engine: 'knowledge',
  }),
  recommend_content: request({
    group: 'rag',
    summary: 'Ranks candidate texts by relevance to a query.',
    input: z.strictObject({
      query: text,
      candidates: z.array(text).min(1).max(10_000),
      top_n: z.number().int().positive(),
      model: modelId.optional(),
    }),
    output: z.object({
      recommendations: z.array(z.object({ index: z.number().int(), score: z.number(), content: z.string() })),
    }),
    response: 'recommendations',
    kind: 'query',
    engine: 'knowledge',
  }),
};
