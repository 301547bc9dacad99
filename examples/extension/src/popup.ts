/**
 * The popup: a port to the offscreen document (after asking the service worker to make sure it exists), a model
 * picker filled from `list_models`, `load_model` with its progress bar, a streamed `chat`, and the settings.
 */
import { PORT_NAME, type EnsureOffscreenReply, type PortMessage, type PortRequest, type RequestId } from './protocol.ts';
import { loadSettings, saveSettings } from './settings.ts';

const PORT_RETRY_MS = 250;
const PORT_ATTEMPTS = 20;

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`popup.html has no #${id}`);
  return found as T;
}

const ui = {
  status: element<HTMLElement>('status'),
  prompt: element<HTMLTextAreaElement>('prompt'),
  model: element<HTMLSelectElement>('model'),
  refreshModels: element<HTMLButtonElement>('refresh-models'),
  send: element<HTMLButtonElement>('send'),
  stop: element<HTMLButtonElement>('stop'),
  output: element<HTMLElement>('output'),
  loadModel: element<HTMLButtonElement>('load-model'),
  progress: element<HTMLProgressElement>('progress'),
  progressStatus: element<HTMLElement>('progress-status'),
  error: element<HTMLElement>('error'),
  serverUrl: element<HTMLInputElement>('server-url'),
  token: element<HTMLInputElement>('token'),
  save: element<HTMLButtonElement>('save'),
};

let port: chrome.runtime.Port | undefined;
let nextId = 0;
/** The chat being streamed: its id and how many chunks it has had. */
let current: { id: RequestId; chunks: number } | undefined;
/** The model being loaded: its request, and which model its progress events are about. */
let loading: { id: RequestId; model: string } | undefined;
let listId: RequestId | undefined;

function showError(message: string): void {
  ui.error.textContent = message;
}

function send(message: PortRequest): boolean {
  if (!port) {
    showError('Not connected to the offscreen document');
    return false;
  }
  port.postMessage(message);
  return true;
}

/** Asks the server for its models; the answer fills the picker (see `showModels`). */
function listModels(): void {
  const id = ++nextId;
  if (send({ type: 'request', id, action: 'list_models', params: {} })) listId = id;
}

interface ListedModel {
  id: string;
  parameter_count?: string;
  quantization?: string;
  loaded?: boolean;
}

/** One option per model, saying its size and whether it is loaded; the choice survives a refresh. */
function showModels(models: ListedModel[]): void {
  const chosen = ui.model.value;
  const options = models.map((model) => {
    const option = document.createElement('option');
    option.value = model.id;
    option.textContent = [model.id, model.parameter_count, model.quantization, model.loaded ? 'loaded' : undefined].filter(Boolean).join(' · ');
    return option;
  });
  ui.model.replaceChildren(ui.model.options[0], ...options);
  ui.model.value = models.some((model) => model.id === chosen) ? chosen : (models[0]?.id ?? '');
  ui.model.dataset.count = String(models.length);
}

function finishChat(): void {
  current = undefined;
  ui.send.disabled = false;
  ui.stop.disabled = true;
}

function receive(message: PortMessage): void {
  switch (message.type) {
    case 'connection':
      ui.status.textContent = message.state;
      ui.status.dataset.state = message.state;
      if (message.state === 'connected') listModels();
      return;
    case 'chunk':
      if (message.id !== current?.id) return;
      current.chunks++;
      if (typeof message.chunk.delta === 'string') ui.output.textContent += message.chunk.delta;
      return;
    case 'result':
      if (message.id === current?.id) {
        const text = message.response.response;
        if (current.chunks === 0 && typeof text === 'string') ui.output.textContent = text;
        ui.output.dataset.chunks = String(current.chunks);
        ui.output.dataset.done = 'true';
        finishChat();
      } else if (message.id === loading?.id) {
        loading = undefined;
        ui.loadModel.disabled = false;
        ui.progress.value = 1; // loaded (the progress events, when the backend sends them, said so already)
        listModels(); // it shows as loaded now
      } else if (message.id === listId) {
        listId = undefined;
        showModels((message.response.models ?? []) as ListedModel[]);
      }
      return;
    case 'error':
      showError(message.error.message);
      if (message.id !== null && message.id === current?.id) finishChat();
      if (message.id !== null && message.id === loading?.id) {
        loading = undefined;
        ui.loadModel.disabled = false;
      }
      return;
    case 'event': {
      const { data } = message;
      if (message.name === 'model_loading_progress') {
        // A load may evict other models first: only the loading model's own progress moves the bar.
        if (data.model_id !== loading?.model) return;
        if (typeof data.progress === 'number') ui.progress.value = data.progress;
      } else if (message.name === 'model_pull_progress') {
        const { completed_bytes: done, total_bytes: total } = data;
        if (typeof done === 'number' && typeof total === 'number' && total > 0) ui.progress.value = done / total;
      }
      if (typeof data.status === 'string') ui.progressStatus.textContent = data.status;
      return;
    }
  }
}

/**
 * Connects the port. Until the offscreen document listens, a port disconnects at once without a message, so a
 * port counts as up once its first message (the connection state) arrives; before that, it is tried again.
 */
function connectPort(attempt = 1): void {
  const candidate = chrome.runtime.connect({ name: PORT_NAME });
  let up = false;
  candidate.onMessage.addListener((message: PortMessage) => {
    if (!up) {
      up = true;
      port = candidate;
    }
    receive(message);
  });
  candidate.onDisconnect.addListener(() => {
    void chrome.runtime.lastError; // read, so Chrome does not log "Receiving end does not exist"
    if (up) {
      port = undefined;
      ui.status.textContent = ui.status.dataset.state = 'closed';
      if (current) finishChat();
      void start(); // the offscreen document went away: bring it back
    } else if (attempt < PORT_ATTEMPTS) {
      setTimeout(() => connectPort(attempt + 1), PORT_RETRY_MS);
    } else {
      showError('The offscreen document did not answer');
    }
  });
}

async function start(): Promise<void> {
  const reply = (await chrome.runtime.sendMessage({ type: 'ensure-offscreen' }).catch((error: unknown) => ({
    ok: false,
    error: String(error),
  }))) as EnsureOffscreenReply | undefined;
  if (reply && !reply.ok) showError(`Could not start the offscreen document: ${reply.error}`);
  connectPort();
}

ui.send.addEventListener('click', () => {
  const content = ui.prompt.value.trim();
  if (!content || current) return;
  const model = ui.model.value;
  const id = ++nextId;
  ui.output.textContent = '';
  delete ui.output.dataset.done;
  delete ui.output.dataset.chunks;
  showError('');
  const params = { messages: [{ role: 'user', content }], ...(model ? { model } : {}) };
  if (!send({ type: 'request', id, action: 'chat', params, stream: true })) return;
  current = { id, chunks: 0 };
  ui.send.disabled = true;
  ui.stop.disabled = false;
});

ui.stop.addEventListener('click', () => {
  if (current) send({ type: 'cancel', id: current.id });
});

ui.loadModel.addEventListener('click', () => {
  const modelId = ui.model.value;
  if (!modelId) return showError('Choose a model first');
  if (loading !== undefined) return;
  const id = ++nextId;
  showError('');
  ui.progress.value = 0;
  ui.progressStatus.textContent = '';
  if (!send({ type: 'request', id, action: 'load_model', params: { model_id: modelId } })) return;
  loading = { id, model: modelId };
  ui.loadModel.disabled = true;
});

ui.refreshModels.addEventListener('click', listModels);

ui.save.addEventListener('click', async () => {
  await saveSettings({ serverUrl: ui.serverUrl.value, token: ui.token.value });
  showError('');
  send({ type: 'reconnect' });
});

void start();
loadSettings().then(({ serverUrl, token }) => {
  ui.serverUrl.value = serverUrl;
  ui.token.value = token ?? '';
}, (error: unknown) => showError(String(error)));
