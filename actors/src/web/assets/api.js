// The daemon's web API: the session, control commands (POST /api/request with the CSRF
// token) and the live events (GET /api/events).

let csrf = null;
export let session = null;

/** A command's error: `code` as the control protocol names it, `message` for people. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Leaves for the login page (no session, or it ended). */
export function toLogin() {
  if (location.pathname !== '/login') location.assign('/login');
}

async function body(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    return { error: 'bad_answer', message: `The server answered HTTP ${response.status} with something that is not JSON.` };
  }
}

/** GET /api/session: the CSRF token and the software; to the login page without one. */
export async function loadSession() {
  const r = await fetch('/api/session', { credentials: 'same-origin', cache: 'no-store' });
  if (r.status === 401) {
    toLogin();
    throw new ApiError(401, 'login_required', 'Not logged in');
  }
  const answer = await body(r);
  if (!r.ok) throw new ApiError(r.status, answer.error, answer.message || `HTTP ${r.status}`);
  csrf = answer.csrf;
  session = answer;
  return answer;
}

/**
 * Sends one control command (`{type: …, …}`) and returns its answer. A command's error is
 * thrown as an ApiError with the server's message.
 */
export async function request(command, retried = false) {
  let r;
  try {
    r = await fetch('/api/request', {
      method: 'POST',
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf || '' },
      body: JSON.stringify(command),
    });
  } catch {
    throw new ApiError(0, 'network', 'The daemon cannot be reached. Is it running?');
  }
  if (r.status === 401) {
    toLogin();
    throw new ApiError(401, 'login_required', 'Your session ended: log in again.');
  }
  const answer = await body(r);
  if (r.status === 403 && answer.error === 'csrf' && !retried) {
    // The token changed (a new session in another tab): take the new one, try once more.
    await loadSession();
    return request(command, true);
  }
  if (!r.ok || (answer && typeof answer.error === 'string')) {
    throw new ApiError(r.status, answer.error || 'http', answer.message || `The server answered HTTP ${r.status}.`);
  }
  return answer;
}

/** POST /logout, then the login page. */
export async function logout() {
  try {
    await fetch('/logout', { method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': csrf || '' } });
  } finally {
    location.assign('/login');
  }
}

// Live events: the latest `shares`, `peers` and `status` answers.

export const live = { shares: null, peers: null, status: null, connected: false };
const listeners = new Set();

/** Calls fn(kind) whenever `kind` ('shares', 'peers', 'status', 'connection') changes. */
export function onLive(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Records an answer fetched directly (e.g. after a command) as if it came as an event. */
export function setLive(kind, value) {
  live[kind] = value;
  notify(kind);
}

function notify(kind) {
  for (const fn of [...listeners]) {
    try {
      fn(kind);
    } catch (e) {
      console.error(e);
    }
  }
}

let source = null;
let retryDelay = 1000;

/** Opens the event stream (again, after an error, with a growing delay). */
let closeOnLeave = false;

export function connectEvents() {
  if (source) source.close();
  source = new EventSource('/api/events');
  if (!closeOnLeave) {
    // A page left with its stream open keeps holding one of the browser's six connections
    // to this host (Chromium keeps it for about a minute): after a few pages the next one
    // waits for a free connection. Close it on leaving; reopen if the page comes back.
    closeOnLeave = true;
    window.addEventListener('pagehide', () => {
      if (source) source.close();
      source = null;
    });
    window.addEventListener('pageshow', (event) => {
      if (event.persisted && !source) connectEvents();
    });
  }
  source.addEventListener('open', () => {
    retryDelay = 1000;
    live.connected = true;
    notify('connection');
  });
  for (const kind of ['shares', 'peers', 'status']) {
    source.addEventListener(kind, (event) => {
      try {
        live[kind] = JSON.parse(event.data);
      } catch {
        return;
      }
      notify(kind);
    });
  }
  source.addEventListener('error', () => {
    live.connected = false;
    notify('connection');
    if (source.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
    source.close();
    source = null;
    // Closed for good (an HTTP error): no session any more, or the daemon is gone.
    setTimeout(async () => {
      try {
        await loadSession();
      } catch {
        /* to the login page, or the daemon is down: try again later */
      }
      retryDelay = Math.min(retryDelay * 2, 30000);
      connectEvents();
    }, retryDelay);
  });
}

/** The shares, from the live events or (before the first) from list_shares. */
export async function shares() {
  if (live.shares) return live.shares.shares || [];
  const answer = await request({ type: 'list_shares' });
  if (!live.shares) live.shares = answer;
  return answer.shares || [];
}

/** The share with this ID, or null. */
export async function shareById(id) {
  return (await shares()).find((s) => s.id === id) || null;
}
