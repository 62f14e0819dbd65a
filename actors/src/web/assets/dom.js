// DOM building and formatting helpers. Everything the server sends (file names, peer
// names, paths, messages) goes into the page as text or as an encoded URL, never as markup.

const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'open', 'multiple', 'required', 'readOnly']);

/**
 * h('a', {href: '#/', class: 'x', on: {click: f}}, 'text', child, [more]) → an element.
 * Attributes go through setAttribute (or a property for PROPS); children are nodes or text.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'on') {
        for (const [event, fn] of Object.entries(value)) el.addEventListener(event, fn);
      } else if (key === 'text') {
        el.textContent = String(value);
      } else if (PROPS.has(key)) {
        el[key] = value;
      } else {
        el.setAttribute(key, value === true ? '' : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces `el`'s children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const $ = (css, root = document) => root.querySelector(css);

// Numbers and times.

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];

/** 1234567 → "1.2 MB" (powers of 1000, as file managers show them). */
export function fmtBytes(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  let i = 0;
  let v = n;
  while (v >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i += 1;
  }
  const digits = i === 0 || v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${v.toFixed(digits)} ${UNITS[i]}`;
}

export const fmtRate = (bps) => `${fmtBytes(bps)}/s`;

export function fmtCount(n, one, many) {
  return `${Number(n).toLocaleString()} ${n === 1 ? one : many}`;
}

/** Seconds → "45 s", "3 min", "2 h 5 min", "3 days". */
export function fmtDuration(secs) {
  if (!Number.isFinite(secs) || secs < 0) return '—';
  const s = Math.round(secs);
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const hrs = Math.floor(s / 3600);
  if (hrs < 48) {
    const rest = Math.round((s - hrs * 3600) / 60);
    return rest ? `${hrs} h ${rest} min` : `${hrs} h`;
  }
  return `${Math.round(s / 86400)} days`;
}

export const now = () => Date.now() / 1000;

/** Unix seconds → "just now", "2 min ago", "yesterday", or a date. */
export function relTime(unix) {
  if (unix === null || unix === undefined) return 'never';
  const ago = now() - unix;
  if (ago < -60) return `in ${fmtDuration(-ago)}`;
  if (ago < 10) return 'just now';
  if (ago < 60) return `${Math.round(ago)} s ago`;
  if (ago < 3600) return `${Math.round(ago / 60)} min ago`;
  if (ago < 86400) return `${Math.round(ago / 3600)} h ago`;
  if (ago < 2 * 86400) return 'yesterday';
  if (ago < 14 * 86400) return `${Math.round(ago / 86400)} days ago`;
  return absTime(unix, false);
}

// Made once: toLocaleString with options builds a new formatter on every call, which
// costs more than drawing the row it is for.
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

/** Unix seconds → a local date and time. */
export function absTime(unix, withTime = true) {
  if (unix === null || unix === undefined) return '—';
  return (withTime ? dateTime : dateOnly).format(new Date(unix * 1000));
}

/** A <time> element showing a relative time, its title the exact one. */
export function timeEl(unix) {
  if (unix === null || unix === undefined) return h('span', { class: 'muted' }, 'never');
  return h('time', { datetime: new Date(unix * 1000).toISOString(), title: absTime(unix), 'data-unix': unix }, relTime(unix));
}

/** Refreshes the relative times already on the page. */
export function refreshTimes(root = document) {
  for (const t of root.querySelectorAll('time[data-unix]')) t.textContent = relTime(Number(t.dataset.unix));
}

export const shortId = (id) => (id ? String(id).slice(0, 8) : '—');

/** The last component of a path ("/srv/Photos/" → "Photos"). */
export function baseName(path) {
  const parts = String(path).split('/').filter(Boolean);
  return parts.length ? parts[parts.length - 1] : String(path);
}

// Paths and URLs.

/** "a/b c/d" → "a/b%20c/d": each component percent-encoded. */
export function encodePath(rel) {
  return String(rel).split('/').filter(Boolean).map(encodeURIComponent).join('/');
}

/** The reverse of encodePath for a hash route's rest. */
export function decodePath(encoded) {
  return encoded.split('/').filter(Boolean).map(safeDecode).join('/');
}

function safeDecode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export const joinPath = (dir, name) => (dir ? `${dir}/${name}` : name);

export function parentDir(rel) {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

const HEX = /^[0-9a-f]{16,128}$/i;
export const isShareId = (id) => HEX.test(id);

export const rawUrl = (id, rel, download = false) => `/s/${id}/raw/${encodePath(rel)}${download ? '?download=1' : ''}`;
export const thumbUrl = (id, rel, size = 'small') => `/s/${id}/thumb/${encodePath(rel)}?size=${size}`;
export const filesRoute = (id, dir) => `#/s/${id}/${encodePath(dir)}`;
export const galleryRoute = (id, dir) => `#/g/${id}/${encodePath(dir)}`;
export const playRoute = (id, rel) => `#/play/${id}/${encodePath(rel)}`;
export const versionsRoute = (id, rel) => `#/versions/${id}/${encodePath(rel)}`;

const IMAGE = new Set(['jpg', 'jpeg', 'png', 'gif', 'webp', 'bmp', 'tif', 'tiff', 'heic', 'heif', 'avif']);
const VIDEO = new Set(['mp4', 'm4v', 'webm', 'mkv', 'mov', 'ogv']);
const AUDIO = new Set(['mp3', 'm4a', 'aac', 'ogg', 'oga', 'opus', 'flac', 'wav']);

/** 'image', 'video', 'audio' or 'other', by the name's extension. */
export function fileKind(name) {
  const dot = name.lastIndexOf('.');
  const ext = dot > 0 ? name.slice(dot + 1).toLowerCase() : '';
  if (IMAGE.has(ext)) return 'image';
  if (VIDEO.has(ext)) return 'video';
  if (AUDIO.has(ext)) return 'audio';
  return 'other';
}

/** A UTF-8 string as base64 (btoa takes only Latin-1). */
export function base64Utf8(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

// Feedback.

/** A short message at the bottom of the screen. */
export function toast(message, kind = 'info') {
  const box = document.getElementById('toast');
  if (!box) return;
  const item = h('div', { class: `toast toast-${kind}` }, message);
  box.appendChild(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}

/** An error (or notice) line for a form: `errorBox(el, e)` fills or clears it. */
export function showError(el, error) {
  if (!error) {
    replace(el);
    el.hidden = true;
    return;
  }
  replace(el, error.message || String(error));
  el.hidden = false;
}

/**
 * A modal confirmation: resolves true when confirmed. `body` is text or nodes.
 */
export function confirmDialog({ title, body, ok = 'OK', danger = false }) {
  const dialog = document.getElementById('dialog');
  return new Promise((resolve) => {
    const okButton = h('button', { type: 'submit', id: 'dialog-ok', class: danger ? 'danger' : 'primary', value: 'ok' }, ok);
    const cancel = h('button', { type: 'submit', id: 'dialog-cancel', value: 'cancel', formnovalidate: true }, 'Cancel');
    replace(
      dialog,
      h('form', { method: 'dialog', class: 'dialog-body' },
        h('h2', { id: 'dialog-title' }, title),
        h('div', { class: 'dialog-text' }, body),
        h('div', { class: 'actions' }, cancel, okButton)),
    );
    const done = () => {
      dialog.removeEventListener('close', done);
      resolve(dialog.returnValue === 'ok');
    };
    dialog.returnValue = '';
    dialog.addEventListener('close', done);
    dialog.showModal();
    cancel.focus();
  });
}

/** Runs `work` with `button` disabled and showing `busyText`; returns work's result. */
export async function busy(button, busyText, work) {
  const text = button.textContent;
  button.disabled = true;
  button.classList.add('busy');
  if (busyText) button.textContent = busyText;
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.classList.remove('busy');
    button.textContent = text;
  }
}

/** A labelled form field: label, control and an optional hint. */
export function field(label, control, hint) {
  const id = control.id;
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    control,
    hint ? h('p', { class: 'hint' }, hint) : null);
}

/** An empty-state panel. */
export function empty(title, text, ...actions) {
  return h('div', { class: 'empty' }, h('p', { class: 'empty-title' }, title), text ? h('p', null, text) : null,
    actions.length ? h('div', { class: 'actions' }, actions) : null);
}
