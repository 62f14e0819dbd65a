// ClearSkies' web interface: the session, the router (hash routes) and the page frame.
// Pages are in overview.js, forms.js (share, attach), files.js (files, gallery, player,
// versions) and admin.js (codes, peers, settings, log).

import { connectEvents, live, loadSession, logout, onLive, session } from './api.js';
import { decodePath, h, isShareId, refreshTimes, replace } from './dom.js';
import { renderOverview } from './overview.js';
import { renderAttach, renderShare } from './forms.js';
import { renderFiles, renderGallery, renderPlayer, renderVersions } from './files.js';
import { renderCodes, renderLog, renderPeers, renderSettings } from './admin.js';

const view = document.getElementById('view');
let cleanup = null;

/** The hash route: [name, params]. */
function parseRoute() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [pathPart, queryPart = ''] = hash.split('?');
  const query = new URLSearchParams(queryPart);
  const parts = pathPart.split('/').filter(Boolean);
  const [first = '', second = ''] = parts;
  const rest = decodePath(parts.slice(2).join('/'));
  const withShare = (name) => (isShareId(second) ? [name, { id: second.toLowerCase(), rest, query }] : ['missing', {}]);
  switch (first) {
    case '': return ['overview', { query }];
    case 'share': return ['share', { query }];
    case 'attach': return ['attach', { query }];
    case 's': return withShare('files');
    case 'g': return withShare('gallery');
    case 'play': return withShare('play');
    case 'versions': return withShare('versions');
    case 'codes': return ['codes', { query }];
    case 'peers': return ['peers', { query }];
    case 'settings': return ['settings', { query }];
    case 'log': return ['log', { query }];
    default: return ['missing', {}];
  }
}

const PAGES = {
  overview: [renderOverview, 'Overview', 'overview'],
  share: [renderShare, 'Share a folder', 'share'],
  attach: [renderAttach, 'Attach a share', 'attach'],
  files: [renderFiles, 'Files', 'overview'],
  gallery: [renderGallery, 'Gallery', 'overview'],
  play: [renderPlayer, 'Player', 'overview'],
  versions: [renderVersions, 'Versions', 'overview'],
  codes: [renderCodes, 'Access codes', 'codes'],
  peers: [renderPeers, 'Peers', 'peers'],
  settings: [renderSettings, 'Settings', 'settings'],
  log: [renderLog, 'Log', 'log'],
  missing: [renderMissing, 'Not found', ''],
};

function renderMissing(el) {
  replace(el, h('section', { class: 'page' },
    h('h1', null, 'Nothing here'),
    h('p', null, 'This address does not lead to a page of ClearSkies.'),
    h('p', null, h('a', { href: '#/', class: 'button' }, 'Back to the overview'))));
}

async function route() {
  if (cleanup) {
    try {
      cleanup();
    } catch (e) {
      console.error(e);
    }
    cleanup = null;
  }
  const lightbox = document.getElementById('lightbox');
  if (lightbox && lightbox.open) lightbox.close();
  const [name, params] = parseRoute();
  const [render, title, tab] = PAGES[name];
  document.title = `${title} · ClearSkies`;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.route === tab) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  replace(view, h('p', { class: 'loading' }, 'Loading…'));
  view.dataset.page = name;
  try {
    const c = await render(view, params);
    cleanup = typeof c === 'function' ? c : null;
    // For measuring (benches/web/measure.py): when a page's first content is on screen.
    performance.mark(`clearskies:rendered:${name}`);
  } catch (e) {
    if (e && e.status === 401) return;
    console.error(e);
    replace(view, h('section', { class: 'page' },
      h('h1', null, title),
      h('p', { class: 'error', role: 'alert' }, (e && e.message) || String(e))));
  }
  view.focus({ preventScroll: true });
}

function showConnection() {
  const dot = document.getElementById('live');
  if (!dot) return;
  dot.classList.toggle('on', live.connected);
  dot.title = live.connected ? 'Live: updates arrive as they happen' : 'Reconnecting to the daemon…';
  replace(dot, live.connected ? 'Live' : 'Offline');
  const paused = live.status && live.status.paused;
  document.body.classList.toggle('paused', Boolean(paused));
}

async function start() {
  try {
    await loadSession();
  } catch (e) {
    if (e.status !== 401) {
      replace(view, h('p', { class: 'error', role: 'alert' }, `The daemon cannot be reached: ${e.message}`));
    }
    return;
  }
  const footer = document.getElementById('footer');
  if (footer && session) {
    replace(footer, session.software || 'clearskies',
      session.https ? '' : h('span', { class: 'muted' }, ' · plain HTTP: use it on your own network or through a tunnel only'));
  }
  document.getElementById('logout').addEventListener('click', () => logout());
  onLive((kind) => {
    if (kind === 'connection' || kind === 'status') showConnection();
  });
  showConnection();
  connectEvents();
  window.addEventListener('hashchange', route);
  setInterval(() => refreshTimes(view), 15000);
  await route();
}

start();
