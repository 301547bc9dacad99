/**
 * Curated presets for `get_recipes`: a model from Ollama's library and the server parameters suited to a task.
 * `settings` uses the server's parameter names (`serverParams`), so a client can pass them straight to
 * `set_params` or a generation request; the `satisfies` below makes a misspelt or mistyped setting a
 * compile error, and test/memory.test.ts parses every one with `serverParams`.
 */
import type { ServerParams } from '../../protocol/requests/system.ts';

export interface Recipe {
  id: string;
  name: string;
  description: string;
  /** An Ollama model tag, `name:size`. */
  model: string;
  settings: ServerParams;
}

export const RECIPES = [
  {
    // Meta's generation_config.json for Llama 3.2 Instruct ships temperature 0.6, top_p 0.9: balanced everyday answers.
    id: 'everyday-chat',
    name: 'Everyday chat',
    description: 'General conversation and quick questions with a small, capable model (about 2 GB at Q4_K_M).',
    model: 'llama3.2:3b',
    settings: { temperature: 0.6, top_p: 0.9 },
  },
  {
    // Qwen2.5's generation_config (temperature 0.7, top_p 0.8, top_k 20, repetition 1.05), a 2048-token context to keep the KV cache small.
    id: 'low-memory',
    name: 'Fast and small',
    description: 'A 0.5 B model (about 0.4 GB) for machines with little memory or no GPU; quick but shallow.',
    model: 'qwen2.5:0.5b',
    settings: { temperature: 0.7, top_p: 0.8, top_k: 20, repeat_penalty: 1.05, context_length: 2048, max_tokens: 512 },
  },
  {
    // Code wants the likeliest tokens: low temperature, no repetition penalty (code repeats identifiers legitimately), room for long files.
    id: 'coding',
    name: 'Coding assistant',
    description: 'Writing, explaining and fixing code with a code-tuned 7 B model.',
    model: 'qwen2.5-coder:7b',
    settings: { temperature: 0.2, top_p: 0.9, repeat_penalty: 1.0, context_length: 8192, max_tokens: 2048 },
  },
  {
    // Summaries should stay close to the source (temperature 0.3) and short (512 tokens); 8192 tokens of context fits a long page.
    id: 'summarization',
    name: 'Summarization',
    description: 'Condenses a page, an article or a thread into its main points.',
    model: 'llama3.2:3b',
    settings: {
      temperature: 0.3,
      max_tokens: 512,
      context_length: 8192,
      system_prompt: 'Summarize the text you are given in a few short bullet points. Keep names, numbers and dates exact; add nothing that is not in the text.',
    },
  },
  {
    // Greedy decoding (temperature 0) and a fixed seed make the same input give the same JSON; Qwen2.5 follows output formats well.
    id: 'extraction',
    name: 'Extraction to JSON',
    description: 'Pulls structured fields out of text and answers with JSON only, reproducibly.',
    model: 'qwen2.5:7b',
    settings: {
      temperature: 0,
      seed: 42,
      max_tokens: 1024,
      system_prompt: 'Extract the requested fields from the text. Reply with one JSON object only, no prose and no code fences. Use null for fields the text does not give.',
    },
  },
  {
    // Temperature 1.0 with nucleus sampling at 0.95 gives varied wording; a mild presence penalty discourages looping back to the same ideas.
    id: 'creative-writing',
    name: 'Creative writing',
    description: 'Stories, poems and brainstorming, where variety matters more than precision.',
    model: 'llama3.1:8b',
    settings: { temperature: 1.0, top_p: 0.95, presence_penalty: 0.3, max_tokens: 2048 },
  },
  {
    // Low temperature keeps answers anchored to the retrieved passages; 8192 tokens of context leave room for them.
    id: 'rag-answering',
    name: 'Answering from documents',
    description: 'Answers questions from retrieved passages (rag_query), citing them, and says so when they do not hold the answer.',
    model: 'llama3.1:8b',
    settings: {
      temperature: 0.1,
      top_p: 0.9,
      context_length: 8192,
      max_tokens: 1024,
      system_prompt:
        'Answer the question using only the context provided. Cite the passages you used. If the context does not contain the answer, say that you do not know rather than guessing.',
    },
  },
  {
    // Embedding models take no sampling parameters; nomic-embed-text (137 M, 768 dims, 8192-token input) is Ollama's most used one.
    id: 'embeddings',
    name: 'Embeddings for search and RAG',
    description: 'Turns documents and queries into vectors for semantic search, clustering and RAG.',
    model: 'nomic-embed-text',
    settings: {},
  },
  {
    // Qwen3's model card for thinking mode: temperature 0.6, top_p 0.95, top_k 20 (greedy decoding makes it loop); thinking needs a long budget.
    id: 'reasoning',
    name: 'Step-by-step reasoning',
    description: 'Maths, logic and multi-step problems with a model that thinks before it answers (slower, more tokens).',
    model: 'qwen3:8b',
    settings: { temperature: 0.6, top_p: 0.95, top_k: 20, context_length: 16384, max_tokens: 8192 },
  },
] satisfies Recipe[];
