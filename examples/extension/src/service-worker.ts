/**
 * The service worker: keeps the offscreen document (which holds the WebRTC connection) alive, and hands it the
 * settings from `chrome.storage.local`. Service workers have no RTCPeerConnection, hence the offscreen document.
 */
import type { EnsureOffscreenReply, WorkerMessage } from './protocol.ts';
import { loadSettings } from './settings.ts';

const OFFSCREEN_PATH = 'offscreen.html';

let creating: Promise<void> | undefined;

async function hasOffscreenDocument(): Promise<boolean> {
  if (chrome.runtime.getContexts) {
    const contexts = await chrome.runtime.getContexts({
      contextTypes: ['OFFSCREEN_DOCUMENT'],
      documentUrls: [chrome.runtime.getURL(OFFSCREEN_PATH)],
    });
    return contexts.length > 0;
  }
  return chrome.offscreen.hasDocument();
}

/** Creates the offscreen document unless it exists; concurrent callers share one creation. */
async function ensureOffscreen(): Promise<void> {
  if (await hasOffscreenDocument()) return;
  creating ??= chrome.offscreen
    .createDocument({
      url: OFFSCREEN_PATH,
      reasons: ['WEB_RTC'],
      justification: 'Holds the WebRTC data channel to the TabAgent server (service workers have no RTCPeerConnection).',
    })
    .catch(async (error: unknown) => {
      // Another creation (e.g. from before this worker restarted) may have won the race.
      if (!(await hasOffscreenDocument())) throw error;
    })
    .finally(() => {
      creating = undefined;
    });
  await creating;
}

function ensureInBackground(): void {
  ensureOffscreen().catch((error: unknown) => console.error('tabagent: could not create the offscreen document', error));
}

chrome.runtime.onInstalled.addListener(ensureInBackground);
chrome.runtime.onStartup.addListener(ensureInBackground);

chrome.runtime.onMessage.addListener((message: WorkerMessage, _sender, sendResponse) => {
  switch (message?.type) {
    case 'ensure-offscreen':
      ensureOffscreen().then(
        () => sendResponse({ ok: true } satisfies EnsureOffscreenReply),
        (error: unknown) => sendResponse({ ok: false, error: String(error) } satisfies EnsureOffscreenReply),
      );
      return true; // answers asynchronously
    case 'get-settings':
      loadSettings().then(sendResponse, () => sendResponse(undefined));
      return true;
    default:
      return false;
  }
});
