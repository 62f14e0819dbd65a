// A share's files: the folder listing, the gallery, the player and a file's versions.

import { live, request, shareById } from './api.js';
import {
  absTime, baseName, busy, confirmDialog, empty, fileKind, filesRoute, fmtBytes, fmtCount, galleryRoute, h, joinPath,
  parentDir, playRoute, rawUrl, replace, shortId, thumbUrl, timeEl, toast, versionsRoute,
} from './dom.js';

const PAGE = 200;

async function theShare(id) {
  const share = await shareById(id);
  if (!share) throw new Error('There is no such share here (it may have been detached).');
  return share;
}

/** Share name / a / b, each a link (to the files or the gallery). */
function breadcrumb(share, dir, route) {
  const crumbs = [h('a', { href: route(share.id, '') }, baseName(share.path))];
  let at = '';
  for (const part of dir.split('/').filter(Boolean)) {
    at = joinPath(at, part);
    crumbs.push(h('span', { class: 'sep', 'aria-hidden': 'true' }, '/'));
    crumbs.push(h('a', { href: route(share.id, at) }, part));
  }
  const last = crumbs[crumbs.length - 1];
  last.setAttribute('aria-current', 'page');
  return h('nav', { class: 'breadcrumb', 'aria-label': 'Folder' }, crumbs);
}

/** Pages of list_files: load() gives the next page's entries (null when done). */
function lister(share, dir) {
  let next;
  let done = false;
  return {
    get done() {
      return done;
    },
    async load() {
      if (done) return null;
      const command = { type: 'list_files', path: share.path, dir, limit: PAGE };
      if (next) command.after = next;
      const answer = await request(command);
      next = answer.next || null;
      done = !next;
      return answer.entries || [];
    },
  };
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

/** Folders first, then by `key`; conflict copies right after the file they conflict with. */
function arrange(entries, key, ascending) {
  const dir = ascending ? 1 : -1;
  const cmp = (a, b) => {
    if (a.dir !== b.dir) return a.dir ? -1 : 1;
    let c = 0;
    if (key === 'size') c = (a.size || 0) - (b.size || 0);
    else if (key === 'mtime') c = (a.mtime || 0) - (b.mtime || 0);
    if (!c) c = collator.compare(a.name, b.name);
    return c * dir;
  };
  const names = new Set(entries.map((e) => e.name));
  const copies = new Map();
  const main = [];
  for (const e of entries) {
    if (e.conflict_of && names.has(e.conflict_of)) {
      if (!copies.has(e.conflict_of)) copies.set(e.conflict_of, []);
      copies.get(e.conflict_of).push(e);
    } else main.push(e);
  }
  main.sort(cmp);
  const out = [];
  for (const e of main) {
    out.push(e);
    for (const c of copies.get(e.name) || []) out.push(c);
  }
  return out;
}

function badges(entry) {
  const out = [];
  if (entry.conflict_of) out.push(h('span', { class: 'badge badge-conflict', title: `A conflict copy of ${entry.conflict_of}` }, `conflict copy of ${entry.conflict_of}`));
  if (entry.pending) out.push(h('span', { class: 'badge badge-pending' }, 'fetching'));
  else if (!entry.dir && !entry.here) out.push(h('span', { class: 'badge badge-remote', title: 'Only on peers: it is streamed from one when you open it' }, 'on peers'));
  return out;
}

function fileRow(share, dir, entry) {
  const rel = joinPath(dir, entry.name);
  const kind = entry.dir ? 'dir' : fileKind(entry.name);
  let icon;
  if (kind === 'image') {
    icon = h('span', { class: 'thumb' }, h('img', { src: thumbUrl(share.id, rel, 'small'), alt: '', loading: 'lazy', decoding: 'async', width: 48, height: 48 }));
  } else {
    icon = h('span', { class: `icon icon-${kind}`, 'aria-hidden': 'true' });
  }
  let nameLink;
  if (entry.dir) nameLink = h('a', { href: filesRoute(share.id, rel), class: 'file-name' }, entry.name);
  else if (kind === 'video' || kind === 'audio') nameLink = h('a', { href: playRoute(share.id, rel), class: 'file-name' }, entry.name);
  else nameLink = h('a', { href: rawUrl(share.id, rel), class: 'file-name', target: '_blank', rel: 'noopener' }, entry.name);

  const actions = entry.dir ? [] : [
    (kind === 'video' || kind === 'audio') ? h('a', { class: 'button small file-play', href: playRoute(share.id, rel) }, 'Play') : null,
    h('a', { class: 'button small file-open', href: rawUrl(share.id, rel), target: '_blank', rel: 'noopener' }, 'Open'),
    h('a', { class: 'button small file-download', href: rawUrl(share.id, rel, true), download: entry.name }, 'Download'),
    h('a', { class: 'button small ghost file-versions', href: versionsRoute(share.id, rel) }, 'Versions'),
  ];
  const classes = ['file-row', entry.dir ? 'is-dir' : 'is-file'];
  if (entry.conflict_of) classes.push('is-conflict');
  if (!entry.dir && !entry.here) classes.push('not-here');
  return h('tr', { class: classes.join(' '), 'data-name': entry.name, 'data-kind': kind },
    h('td', { class: 'col-icon' }, icon),
    h('td', { class: 'col-name', 'data-label': 'Name' }, nameLink, badges(entry)),
    h('td', { class: 'col-size', 'data-label': 'Size' }, entry.dir ? '' : fmtBytes(entry.size)),
    h('td', { class: 'col-mtime', 'data-label': 'Modified' }, entry.mtime ? timeEl(entry.mtime) : ''),
    h('td', { class: 'col-actions' }, h('div', { class: 'actions' }, actions)));
}

export async function renderFiles(view, { id, rest: dir }) {
  const share = await theShare(id);
  const pages = lister(share, dir);
  let entries = [];
  let sortKey = 'name';
  let ascending = true;

  const body = h('tbody');
  const more = h('button', { type: 'button', id: 'files-more', hidden: true }, 'Load more');
  const count = h('p', { class: 'muted', id: 'files-count' });
  const header = (key, label) => {
    const b = h('button', { type: 'button', class: 'sort', 'data-key': key }, label);
    b.addEventListener('click', () => {
      if (sortKey === key) ascending = !ascending;
      else {
        sortKey = key;
        ascending = true;
      }
      draw();
    });
    return h('th', { scope: 'col', class: `col-${key}`, 'aria-sort': 'none' }, b);
  };
  const table = h('table', { id: 'files', class: 'files' },
    h('thead', null, h('tr', null,
      h('th', { class: 'col-icon' }), header('name', 'Name'), header('size', 'Size'), header('mtime', 'Modified'),
      h('th', { class: 'col-actions' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
    body);

  function draw() {
    for (const th of table.querySelectorAll('thead th[aria-sort]')) {
      const key = th.querySelector('button').dataset.key;
      th.setAttribute('aria-sort', key === sortKey ? (ascending ? 'ascending' : 'descending') : 'none');
    }
    replace(body, arrange(entries, sortKey, ascending).map((e) => fileRow(share, dir, e)));
    if (!entries.length && pages.done) replace(body, h('tr', null, h('td', { colspan: 5 }, empty('This folder is empty'))));
    more.hidden = pages.done;
    const files = entries.filter((e) => !e.dir).length;
    count.textContent = `${fmtCount(entries.length - files, 'folder', 'folders')}, ${fmtCount(files, 'file', 'files')}${pages.done ? '' : ' so far'}`;
  }

  async function loadMore() {
    const page = await pages.load();
    if (page) entries = entries.concat(page);
    draw();
  }
  more.addEventListener('click', () => busy(more, 'Loading…', () => loadMore().catch((e) => toast(e.message, 'error'))));

  replace(view, h('section', { class: 'page wide' },
    h('div', { class: 'page-head' },
      breadcrumb(share, dir, filesRoute),
      h('div', { class: 'actions' },
        dir ? h('a', { class: 'button', href: filesRoute(share.id, parentDir(dir)), id: 'files-up' }, 'Up') : null,
        h('a', { class: 'button', href: galleryRoute(share.id, dir), id: 'files-gallery' }, 'Gallery'))),
    h('div', { class: 'table-wrap' }, table),
    h('div', { class: 'list-foot' }, count, more)));
  await loadMore();
}

// The gallery: thumbnails of a folder's images; a click opens the large one.

function lightbox(share, items, index) {
  const box = document.getElementById('lightbox');
  let at = index;
  const show = () => {
    const item = items[at];
    const img = h('img', { src: thumbUrl(share.id, item.rel, 'large'), alt: item.name, id: 'lightbox-img' });
    replace(box,
      h('div', { class: 'lightbox-body' },
        h('figure', null, img,
          h('figcaption', null,
            h('span', { class: 'lightbox-name' }, item.name),
            h('span', { class: 'muted' }, ` ${at + 1} of ${items.length}`))),
        h('div', { class: 'lightbox-bar' },
          h('button', { type: 'button', id: 'lightbox-prev', disabled: at === 0, on: { click: () => move(-1) } }, '←'),
          h('a', { class: 'button', href: rawUrl(share.id, item.rel), target: '_blank', rel: 'noopener' }, 'Original'),
          h('a', { class: 'button', href: rawUrl(share.id, item.rel, true), download: item.name }, 'Download'),
          h('button', { type: 'button', id: 'lightbox-next', disabled: at === items.length - 1, on: { click: () => move(1) } }, '→'),
          h('button', { type: 'button', id: 'lightbox-close', on: { click: () => box.close() } }, 'Close'))));
    box.dataset.index = String(at);
  };
  const move = (delta) => {
    const to = at + delta;
    if (to < 0 || to >= items.length) return;
    at = to;
    show();
  };
  const onKey = (event) => {
    if (event.key === 'ArrowRight') move(1);
    else if (event.key === 'ArrowLeft') move(-1);
    else return;
    event.preventDefault();
  };
  const onClick = (event) => {
    if (event.target === box) box.close(); // the backdrop
  };
  document.addEventListener('keydown', onKey);
  box.addEventListener('click', onClick);
  box.addEventListener('close', () => {
    document.removeEventListener('keydown', onKey);
    box.removeEventListener('click', onClick);
    replace(box);
  }, { once: true });
  show();
  box.showModal();
  box.focus();
}

export async function renderGallery(view, { id, rest: dir }) {
  const share = await theShare(id);
  const pages = lister(share, dir);
  const items = [];
  const folders = [];
  const grid = h('div', { id: 'gallery', class: 'gallery' });
  const folderBar = h('div', { class: 'folders' });
  const more = h('button', { type: 'button', id: 'gallery-more', hidden: true }, 'Load more');
  const note = h('p', { class: 'muted', id: 'gallery-count' });

  function add(entries) {
    for (const e of entries) {
      if (e.dir) {
        folders.push(e.name);
        folderBar.appendChild(h('a', { class: 'chip', href: galleryRoute(share.id, joinPath(dir, e.name)) }, e.name));
        continue;
      }
      if (fileKind(e.name) !== 'image') continue;
      const index = items.length;
      const item = { name: e.name, rel: joinPath(dir, e.name) };
      items.push(item);
      grid.appendChild(h('button', { type: 'button', class: 'gallery-item', 'data-name': e.name, title: e.name, on: { click: () => lightbox(share, items, index) } },
        h('span', { class: 'thumb' }, h('img', { src: thumbUrl(share.id, item.rel, 'small'), alt: e.name, loading: 'lazy', decoding: 'async' })),
        e.here ? null : h('span', { class: 'badge badge-remote' }, 'on peers')));
    }
    more.hidden = pages.done;
    note.textContent = `${fmtCount(items.length, 'picture', 'pictures')}${pages.done ? '' : ' so far'}`;
    if (pages.done && !items.length) grid.replaceWith(empty('No pictures in this folder', folders.length ? 'Pick a folder above.' : null));
  }
  const loadMore = async () => add((await pages.load()) || []);
  more.addEventListener('click', () => busy(more, 'Loading…', () => loadMore().catch((e) => toast(e.message, 'error'))));

  replace(view, h('section', { class: 'page wide' },
    h('div', { class: 'page-head' },
      breadcrumb(share, dir, galleryRoute),
      h('div', { class: 'actions' },
        dir ? h('a', { class: 'button', href: galleryRoute(share.id, parentDir(dir)) }, 'Up') : null,
        h('a', { class: 'button', href: filesRoute(share.id, dir), id: 'gallery-files' }, 'List'))),
    folderBar, grid, h('div', { class: 'list-foot' }, note, more)));
  await loadMore();
}

// The player: audio and video straight from the raw URL (Range requests let it seek).

export async function renderPlayer(view, { id, rest: rel }) {
  const share = await theShare(id);
  const name = baseName(rel);
  const kind = fileKind(name);
  const src = rawUrl(share.id, rel);
  const problem = h('p', { class: 'error', id: 'player-error', hidden: true });
  const media = h(kind === 'audio' ? 'audio' : 'video', { id: 'player', controls: true, preload: 'metadata', src });
  media.addEventListener('error', () => {
    problem.textContent = 'This browser cannot play this file. Download it and play it with another program.';
    problem.hidden = false;
  });
  replace(view, h('section', { class: 'page wide' },
    h('div', { class: 'page-head' },
      breadcrumb(share, parentDir(rel), filesRoute),
      h('div', { class: 'actions' },
        h('a', { class: 'button', href: src, target: '_blank', rel: 'noopener' }, 'Open'),
        h('a', { class: 'button', href: rawUrl(share.id, rel, true), download: name }, 'Download'))),
    h('h1', { class: 'player-title' }, name),
    h('div', { class: `player player-${kind === 'audio' ? 'audio' : 'video'}` }, media),
    problem));
  return () => {
    media.pause();
    media.removeAttribute('src');
    media.load();
  };
}

// Versions: what the share kept of a file (or of all), and restoring one.

const WHY = { replaced: 'Replaced by a peer’s change', deleted: 'Deleted by a peer', restored: 'Replaced by a restore', reverted: 'Replaced by a revert', unknown: 'Kept' };

/** A peer by its name (when the live peer list knows it) and short ID. */
function byPeer(id) {
  const known = ((live.peers && live.peers.peers) || []).find((p) => p.peer === id && p.name);
  return h('span', { title: id }, known ? `${known.name} ` : '', h('code', null, shortId(id)));
}

export async function renderVersions(view, { id, rest: rel }) {
  const share = await theShare(id);
  const list = h('div', { id: 'versions' }, h('p', { class: 'loading' }, 'Loading…'));
  replace(view, h('section', { class: 'page wide' },
    h('div', { class: 'page-head' },
      rel ? breadcrumb(share, parentDir(rel), filesRoute) : breadcrumb(share, '', filesRoute),
      h('div', { class: 'actions' }, rel ? h('a', { class: 'button', href: versionsRoute(share.id, '') }, 'All versions in the share') : null)),
    h('h1', null, rel ? `Versions of ${baseName(rel)}` : 'Versions kept in this share'),
    h('p', { class: 'lead' }, 'When a peer changes or deletes a file, the copy that was here is kept for a while (see versions_keep_days).'),
    list));

  const load = async () => {
    const command = { type: 'list_versions', path: share.path };
    if (rel) command.file = rel;
    const answer = await request(command);
    const versions = [...(answer.versions || [])].reverse(); // newest first
    if (!versions.length) {
      replace(list, empty('No versions kept', rel ? 'Nobody has changed or deleted this file since versions are kept.' : null));
      return;
    }
    replace(list, h('div', { class: 'table-wrap' }, h('table', { class: 'versions' },
      h('thead', null, h('tr', null, rel ? null : h('th', null, 'File'), h('th', null, 'Kept'), h('th', null, 'Why'), h('th', null, 'By'), h('th', null, 'Size'), h('th', null))),
      h('tbody', null, versions.map((v) => {
        const file = String(v.path || rel).replace(/^\//, '');
        const restore = h('button', { type: 'button', class: 'small version-restore' }, 'Restore');
        restore.addEventListener('click', async () => {
          const ok = await confirmDialog({
            title: `Restore ${baseName(file)}?`,
            body: h('p', null, `The version kept ${absTime(v.time)} goes back in place; what is there now is kept as a version first.`),
            ok: 'Restore',
          });
          if (!ok) return;
          await busy(restore, 'Restoring…', async () => {
            try {
              const answer = await request({ type: 'restore_version', path: share.path, file, version: v.stored });
              toast(`Restored ${answer.restored || file}.`);
              await load();
            } catch (e) {
              toast(e.message, 'error');
            }
          });
        });
        return h('tr', { class: 'version-row', 'data-stored': v.stored },
          rel ? null : h('td', { 'data-label': 'File' }, h('a', { href: versionsRoute(share.id, file) }, file)),
          h('td', { 'data-label': 'Kept' }, timeEl(v.time)),
          h('td', { 'data-label': 'Why' }, WHY[v.why] || WHY.unknown),
          h('td', { 'data-label': 'By' }, v.by ? byPeer(v.by) : '—'),
          h('td', { 'data-label': 'Size' }, fmtBytes(v.size)),
          h('td', null, restore));
      })))));
  };
  try {
    await load();
  } catch (e) {
    replace(list, h('p', { class: 'error', role: 'alert' }, e.message));
  }
}
