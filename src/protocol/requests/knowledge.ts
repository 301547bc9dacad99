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

/** A matching chunk: its document's id and metadata, its position in the document, and how it scored. */
const searchHit = z.object({
  id: z.string(),
  chunk: z.number().int(),
  score: z.number(),
  content: z.string(),
  metadata: z.record(z.string(), z.unknown()),
  source: z.enum(['document', 'message']),
  scores: z.object({ vector: z.number().optional(), lexical: z.number().optional() }),
});

const searchOutput = z.object({ results: z.array(searchHit), query_time_ms: z.number(), embedding_model: z.string() });

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
  add_documents: request({
    group: 'documents',
    summary: 'Stores documents for RAG (chunked and embedded); an existing id is replaced.',
    input: z.strictObject({
      documents: z
        .array(
          z.strictObject({
            id: z.string().min(1).max(512).optional(),
            content: z.string().trim().min(1, 'must not be empty').max(1_000_000),
            metadata: z.record(z.string(), z.unknown()).optional(),
          }),
        )
        .min(1)
        .max(1_000),
    }),
    output: z.object({
      ids: z.array(z.string()),
      chunks: z.number().int(),
      embedding_model: z.string(),
    }),
    response: 'documents_added',
    kind: 'mutation',
    engine: 'knowledge',
  }),
  delete_documents: request({
    group: 'documents',
    summary: 'Deletes documents (and their chunks and vectors) by id.',
    input: z.strictObject({ ids: z.array(z.string().min(1).max(512)).min(1).max(10_000) }),
    output: z.object({ deleted: z.number().int() }),
    response: 'documents_deleted',
    kind: 'mutation',
    engine: 'knowledge',
  }),
  list_documents: request({
    group: 'documents',
    summary: 'Stored documents, newest first, a page at a time.',
    input: z
      .strictObject({
        limit: z.number().int().positive().max(1_000).optional(),
        offset: z.number().int().min(0).optional(),
        source: z.enum(['document', 'message']).optional(),
      })
      .default({}),
    output: z.object({
      documents: z.array(
        z.object({
          id: z.string(),
          content: z.string(),
          metadata: z.record(z.string(), z.unknown()),
          source: z.enum(['document', 'message']),
          created_at: z.string(),
          chunks: z.number().int(),
        }),
      ),
      total: z.number().int(),
    }),
    response: 'documents',
    kind: 'query',
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
