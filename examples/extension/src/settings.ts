/**
 * Settings in `chrome.storage.local`: `serverUrl` (default http://127.0.0.1:8080) and `token` (optional).
 * Only the service worker and the popup read storage: an offscreen document may use `chrome.runtime` alone, so it
 * asks the service worker (`{ type: 'get-settings' }`).
 */
import { DEFAULT_SERVER_URL, type Settings } from './protocol.ts';

export async function loadSettings(): Promise<Settings> {
  const stored = await chrome.storage.local.get(['serverUrl', 'token']);
  const serverUrl = typeof stored.serverUrl === 'string' && stored.serverUrl.trim() ? stored.serverUrl.trim() : DEFAULT_SERVER_URL;
  const token = typeof stored.token === 'string' && stored.token.trim() ? stored.token.trim() : undefined;
  return token ? { serverUrl, token } : { serverUrl };
}

/** Stores the settings; an empty server URL or token removes the key (back to the default, or no token). */
export async function saveSettings(settings: { serverUrl?: string; token?: string }): Promise<void> {
  const serverUrl = settings.serverUrl?.trim();
  const token = settings.token?.trim();
  await chrome.storage.local.set({ ...(serverUrl ? { serverUrl } : {}), ...(token ? { token } : {}) });
  const removed = [...(serverUrl ? [] : ['serverUrl']), ...(token ? [] : ['token'])];
  if (removed.length) await chrome.storage.local.remove(removed);
}
