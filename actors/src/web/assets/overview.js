// The overview: the daemon's state and one card per share, kept live by the event stream.

import { live, onLive, request, setLive } from './api.js';
import {
  absTime, baseName, busy, confirmDialog, empty, filesRoute, fmtBytes, fmtCount, fmtDuration, fmtRate, galleryRoute, h,
  now, replace, shortId, timeEl, toast, versionsRoute,
} from './dom.js';

// Transfer rate and ETA per share, from successive samples of the bytes still to fetch.
const WINDOW = 20; // seconds of samples the rate is computed over
const progress = new Map(); // id → {samples: [{t, left}], peak}

function remaining(share) {
  return Math.max(0, (share.pending_bytes || 0) - (share.partial_bytes || 0));
}

function sample(shares) {
  const t = now();
  const seen = new Set();
  for (const share of shares) {
    seen.add(share.id);
    let p = progress.get(share.id);
    if (!p) {
      p = { samples: [], peak: 0 };
      progress.set(share.id, p);
    }
    const left = remaining(share);
    if (!share.pending_files && !left) {
      p.samples = [];
      p.peak = 0;
      continue;
    }
    p.peak = Math.max(p.peak, share.pending_bytes || 0);
    p.samples.push({ t, left });
    p.samples = p.samples.filter((s) => t - s.t <= WINDOW);
  }
  for (const id of progress.keys()) if (!seen.has(id)) progress.delete(id);
}

/** {rate (bytes/s) or null, eta (s) or null, peak}. */
export function transfer(share) {
  const p = progress.get(share.id);
  if (!p || p.samples.length < 2) return { rate: null, eta: null, peak: p ? p.peak : 0 };
  const first = p.samples[0];
  const last = p.samples[p.samples.length - 1];
  const dt = now() - first.t;
  if (dt < 1) return { rate: null, eta: null, peak: p.peak };
  const rate = Math.max(0, (first.left - last.left) / dt);
  return { rate, eta: rate > 0 ? last.left / rate : null, peak: p.peak };
}

onLive((kind) => {
  if (kind === 'shares' && live.shares) sample(live.shares.shares || []);
});

// Per-share panels the user opened (kept across live updates).
const heldLists = new Map(); // id → {paths, held} | {error}

const MODES = { read_write: 'Read-write', read_only: 'Read-only', untrusted: 'Untrusted' };
export const modeName = (mode) => MODES[mode] || 'Unknown access';

/** [css class, label] of a share's state. */
export function shareState(share) {
  if (share.status === 'error') {
    if (share.error === 'disk full') return ['error', 'Disk full'];
    return ['error', 'Error'];
  }
  if (share.status === 'paused') return ['paused', 'Paused'];
  if (share.status === 'scanning') return ['busy', 'Scanning'];
  if (share.status === 'syncing') return ['busy', 'Syncing'];
  if (share.synced) return ['ok', 'In sync'];
  if (share.status === 'idle') return share.peers ? ['busy', 'Syncing'] : ['waiting', 'Waiting for peers'];
  return ['waiting', share.status || 'Unknown'];
}

function stat(label, ...value) {
  return h('div', { class: 'stat' }, h('dt', null, label), h('dd', null, value));
}

function alertBox(kind, ...content) {
  return h('div', { class: `alert alert-${kind}`, role: kind === 'error' ? 'alert' : null }, content);
}

function progressPart(share) {
  const left = remaining(share);
  if (!share.pending_files && !left) return null;
  const { rate, eta, peak } = transfer(share);
  const max = Math.max(peak, share.pending_bytes || 0, 1);
  const done = Math.max(0, max - left);
  const bits = [`${fmtCount(share.pending_files, 'file', 'files')}, ${fmtBytes(left)} to fetch`];
  if (rate) bits.push(fmtRate(rate));
  if (eta !== null) bits.push(`about ${fmtDuration(eta)} left`);
  else if (share.peers === 0) bits.push('no peer connected');
  return h('div', { class: 'share-transfer' },
    h('progress', { class: 'share-progress', max, value: done, 'aria-label': 'Fetched so far' }),
    h('p', { class: 'share-progress-text' }, bits.join(' · ')));
}

function heldPart(share) {
  if (!share.held_deletions) return null;
  const listed = heldLists.get(share.id);
  const show = h('button', { type: 'button', class: 'small share-held-show' }, listed ? 'Refresh list' : 'Show them');
  const confirm = h('button', { type: 'button', class: 'small danger share-held-confirm' }, 'Confirm deletions');
  show.addEventListener('click', () => busy(show, 'Loading…', async () => {
    try {
      const answer = await request({ type: 'confirm_deletes', path: share.path, dry_run: true });
      heldLists.set(share.id, answer);
    } catch (e) {
      heldLists.set(share.id, { error: e.message });
    }
    redraw(share.id);
  }));
  confirm.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: 'Confirm the deletions?',
      body: [h('p', null, `${fmtCount(share.held_deletions, 'file or directory was', 'files and directories were')} deleted in ${share.path} at once. `,
        'Confirming records the deletions, and peers delete them too.'),
      h('p', null, 'If this was a mistake (a disk not mounted, a folder moved away), put the files back instead.')],
      ok: 'Confirm deletions',
      danger: true,
    });
    if (!ok) return;
    await busy(confirm, 'Confirming…', async () => {
      try {
        await request({ type: 'confirm_deletes', path: share.path, dry_run: false });
        heldLists.delete(share.id);
        toast('Deletions confirmed.');
      } catch (e) {
        toast(e.message, 'error');
      }
    });
  });
  let list = null;
  if (listed && listed.error) list = h('p', { class: 'error' }, listed.error);
  else if (listed) {
    list = h('ul', { class: 'held-list' }, (listed.paths || []).map((p) => h('li', null, p)));
    if (listed.held > (listed.paths || []).length) list.appendChild(h('li', { class: 'muted' }, `and ${listed.held - listed.paths.length} more`));
  }
  return alertBox('warn',
    h('p', null, h('strong', null, `${fmtCount(share.held_deletions, 'deletion is', 'deletions are')} held back.`),
      ' Too many files disappeared at once, so nothing is deleted on peers until you confirm.'),
    list,
    h('div', { class: 'actions' }, show, confirm));
}

function revertPart(share) {
  if (!share.local_changes || share.mode !== 'read_only') return null;
  const revert = h('button', { type: 'button', class: 'small share-revert' }, 'Revert');
  revert.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: 'Revert the local changes?',
      body: h('p', null, `The files changed here are moved into the share's versions and the read-write peers' copies come back in ${share.path}.`),
      ok: 'Revert',
      danger: true,
    });
    if (!ok) return;
    await busy(revert, 'Reverting…', async () => {
      try {
        const answer = await request({ type: 'revert', path: share.path });
        toast(`${fmtCount((answer.moved || []).length, 'file', 'files')} moved into the versions.`);
      } catch (e) {
        toast(e.message, 'error');
      }
    });
  });
  return alertBox('warn',
    h('p', null, h('strong', null, `${fmtCount(share.local_changes, 'local change', 'local changes')}.`),
      ' This is a read-only share: changes made here stay here and are not sent to peers.'),
    h('div', { class: 'actions' }, revert));
}

function alertsPart(share) {
  const alerts = [];
  if (share.status === 'error' && share.error === 'disk full') {
    alerts.push(alertBox('error', h('p', null, h('strong', null, 'The disk is full. '),
      'Downloads wait until there is space again (see min_free_space in the settings).')));
  } else if (share.status === 'error' && share.error) {
    alerts.push(alertBox('error', h('p', { class: 'share-error' }, share.error)));
  }
  if (share.alone_since) {
    alerts.push(alertBox('warn', h('p', { class: 'share-alone', title: `since ${absTime(share.alone_since)}` },
      `No peer has been connected for ${fmtDuration(now() - share.alone_since)}: changes here reach no other computer.`)));
  }
  if (share.unwatched) alerts.push(alertBox('info', h('p', null, `Changes are found by periodic scans: ${share.unwatched}`)));
  return alerts;
}

function headPart(share) {
  const [stateClass, stateText] = shareState(share);
  return h('header', { class: 'share-head' },
    h('div', { class: 'share-title' },
      h('h2', { class: 'share-name' }, h('a', { href: filesRoute(share.id, '') }, baseName(share.path))),
      h('p', { class: 'share-path', title: share.path }, share.path)),
    h('span', { class: `share-state pill pill-${stateClass}`, title: share.error || '' }, stateText));
}

function statsPart(share) {
  const selection = [];
  if (share.subtree) selection.push(`only ${share.subtree}`);
  if (share.exclude && share.exclude.length) selection.push(`excluding ${share.exclude.join(', ')}`);
  return h('dl', { class: 'stats' },
    stat('Access', h('span', { class: 'share-mode' }, modeName(share.mode))),
    stat('Files', `${Number(share.files).toLocaleString()} · ${fmtBytes(share.bytes)}`),
    stat('Peers', h('span', { class: 'share-peers' }, String(share.peers))),
    stat('Last sync', share.synced && share.in_sync_since ? 'now' : timeEl(share.last_synced)),
    stat('Share ID', h('code', { title: share.id, class: 'share-id' }, shortId(share.id))),
    selection.length ? stat('Selective', selection.join('; ')) : null);
}

function actionsPart(share) {
  const detach = h('button', { type: 'button', class: 'ghost danger share-detach' }, 'Detach');
  detach.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: `Detach ${baseName(share.path)}?`,
      body: [h('p', null, 'ClearSkies stops syncing ', h('code', null, share.path), '.'),
        h('p', null, 'The files stay on this disk; peers keep their copies.')],
      ok: 'Detach',
      danger: true,
    });
    if (!ok) return;
    await busy(detach, 'Detaching…', async () => {
      try {
        await request({ type: 'remove_share', path: share.path });
        toast(`${share.path} is no longer synced.`);
        setLive('shares', await request({ type: 'list_shares' }));
      } catch (e) {
        toast(e.message, 'error');
      }
    });
  });
  return h('footer', { class: 'actions share-actions' },
    h('a', { class: 'button share-browse', href: filesRoute(share.id, '') }, 'Browse'),
    h('a', { class: 'button share-gallery', href: galleryRoute(share.id, '') }, 'Gallery'),
    h('a', { class: 'button share-newcode', href: `#/share?path=${encodeURIComponent(share.path)}` }, 'New code'),
    h('a', { class: 'button ghost share-versions', href: versionsRoute(share.id, '') }, 'Versions'),
    detach);
}

// A card is made of parts, each rebuilt only when what it shows changed, so a button is
// not replaced under the pointer by an update that does not concern it.
const heldVersions = new Map(); // id → a counter bumped when its held list changes
const PARTS = [
  ['head', (s) => [s.path, s.status, s.error, s.synced, s.peers], headPart],
  // While it transfers, rebuilt every tick too (the rate and the ETA move).
  ['transfer', (s) => [s.pending_files, s.pending_bytes, s.partial_bytes, s.peers, s.pending_files ? Math.floor(now() / 2) : 0], progressPart],
  ['stats', (s) => [s.mode, s.files, s.bytes, s.peers, s.synced, s.in_sync_since, s.last_synced, s.id, s.subtree, s.exclude], statsPart],
  ['alerts', (s) => [s.status, s.error, s.alone_since && Math.floor(now() / 60), s.unwatched], alertsPart],
  ['held', (s) => [s.path, s.held_deletions, heldVersions.get(s.id) || 0], heldPart],
  ['revert', (s) => [s.path, s.mode, s.local_changes], revertPart],
  ['actions', (s) => [s.id, s.path], actionsPart],
];

/** Makes (or brings up to date) the card of `share`. */
function card(share, el) {
  const [stateClass] = shareState(share);
  if (!el) {
    el = h('article', { class: 'share-card' }, PARTS.map(([name]) => h('div', { class: 'part', 'data-part': name })));
  }
  el.className = `share-card state-${stateClass}`;
  el.dataset.id = share.id;
  el.dataset.path = share.path;
  el.dataset.status = share.status;
  el.dataset.synced = share.synced ? 'true' : 'false';
  for (const [name, keyOf, build] of PARTS) {
    const slot = el.querySelector(`:scope > [data-part="${name}"]`);
    const key = JSON.stringify(keyOf(share));
    if (slot.dataset.key === key) continue;
    slot.dataset.key = key;
    replace(slot, build(share));
  }
  return el;
}

function summary() {
  const pause = h('button', { type: 'button', id: 'pause-toggle', disabled: true }, 'Pause all');
  const facts = h('div', { class: 'facts' });
  const banner = h('p', { class: 'alert alert-warn', id: 'paused-banner', hidden: true }, 'Syncing is paused on this computer.');
  pause.addEventListener('click', () => {
    const paused = Boolean(live.status && live.status.paused);
    busy(pause, paused ? 'Resuming…' : 'Pausing…', async () => {
      try {
        await request({ type: paused ? 'resume' : 'pause' });
        setLive('status', await request({ type: 'status' }));
      } catch (e) {
        toast(e.message, 'error');
      }
    }).then(update);
  });
  function update() {
    const s = live.status;
    if (!s) return;
    if (!pause.classList.contains('busy')) {
      pause.disabled = false;
      pause.textContent = s.paused ? 'Resume all' : 'Pause all';
      pause.classList.toggle('primary', Boolean(s.paused));
    }
    banner.hidden = !s.paused;
    replace(facts,
      h('span', { class: 'fact', title: 'Uploading' }, '↑ ', fmtRate(s.upload_rate || 0)),
      h('span', { class: 'fact', title: 'Downloading' }, '↓ ', fmtRate(s.download_rate || 0)),
      h('span', { class: 'fact' }, fmtCount(s.peers || 0, 'peer', 'peers'), ' connected'));
  }
  const el = h('div', { class: 'summary' }, banner, h('div', { class: 'summary-row' }, facts, pause));
  return [el, update];
}

let redraw = () => {};

export async function renderOverview(view) {
  const top = h('div', { class: 'page-head' },
    h('h1', null, 'Shares'),
    h('div', { class: 'actions' },
      h('a', { class: 'button primary', href: '#/share', id: 'go-share' }, 'Share a folder'),
      h('a', { class: 'button', href: '#/attach', id: 'go-attach' }, 'Attach')));
  const [summaryBox, drawSummary] = summary();
  const list = h('div', { id: 'shares', class: 'cards' }, h('p', { class: 'loading' }, 'Loading…'));
  replace(view, h('section', { class: 'page' }, top, summaryBox, list));

  const cards = new Map(); // id → element
  const drawShares = () => {
    if (!live.shares) return;
    const shares = [...(live.shares.shares || [])].sort((a, b) => a.path.localeCompare(b.path));
    if (!shares.length) {
      cards.clear();
      replace(list, empty('No shares yet',
        'Share a folder to get a code for a friend, or attach a folder someone shared with you.',
        h('a', { class: 'button primary', href: '#/share' }, 'Share a folder'),
        h('a', { class: 'button', href: '#/attach' }, 'Attach with a code')));
      return;
    }
    if (!cards.size) performance.mark('clearskies:shares-drawn');
    const wanted = shares.map((share) => {
      const el = card(share, cards.get(share.id));
      cards.set(share.id, el);
      return el;
    });
    for (const id of [...cards.keys()]) if (!shares.some((s) => s.id === id)) cards.delete(id);
    // Moved into place without touching the cards that stay (so focus stays put).
    let prev = null;
    for (const el of wanted) {
      const at = prev ? prev.nextSibling : list.firstChild;
      if (at !== el) list.insertBefore(el, at);
      prev = el;
    }
    const keep = new Set(wanted);
    for (const child of [...list.children]) if (!keep.has(child)) child.remove();
  };
  redraw = (id) => {
    heldVersions.set(id, (heldVersions.get(id) || 0) + 1);
    drawShares();
  };

  const off = onLive((kind) => {
    if (kind === 'shares') drawShares();
    if (kind === 'status') drawSummary();
  });
  drawSummary();
  if (!live.shares) {
    try {
      const answer = await request({ type: 'list_shares' });
      if (!live.shares) setLive('shares', answer); // (an event may have come meanwhile)
    } catch (e) {
      replace(list, h('p', { class: 'error' }, e.message));
    }
  }
  drawShares();
  // While something transfers, its rate and ETA move without events.
  const tick = setInterval(drawShares, 2000);
  return () => {
    off();
    clearInterval(tick);
    redraw = () => {};
  };
}
