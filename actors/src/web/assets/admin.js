// Access codes, peers, settings and the log.

import { live, onLive, request, setLive } from './api.js';
import {
  absTime, baseName, busy, confirmDialog, empty, fmtBytes, h, replace, shortId, timeEl, toast,
} from './dom.js';
import { modeName } from './overview.js';

/** A peer's name by its ID, from the live peer list ('' if unknown). */
function peerName(id) {
  const entry = ((live.peers && live.peers.peers) || []).find((p) => p.peer === id && p.name);
  return entry ? entry.name : '';
}

function peerLabel(id) {
  const name = peerName(id);
  return h('span', { class: 'peer-label', title: id }, name ? `${name} ` : '', h('code', null, shortId(id)));
}

// Codes.

const CODE_STATES = { active: 'Active', expired: 'Expired', used: 'Used' };

export async function renderCodes(view) {
  const list = h('div', { id: 'codes' }, h('p', { class: 'loading' }, 'Loading…'));
  replace(view, h('section', { class: 'page wide' },
    h('div', { class: 'page-head' }, h('h1', null, 'Access codes'),
      h('div', { class: 'actions' }, h('a', { class: 'button primary', href: '#/share' }, 'New code'))),
    h('p', { class: 'lead' }, 'Codes this computer gave out, and multi-use codes it holds for the share\'s other peers (it admits friends with them too), with who joined here. Cancel a code you no longer want used; peers who joined stay (remove them under Peers).'),
    list));

  const load = async () => {
    const { codes = [] } = await request({ type: 'list_access_codes' });
    if (!codes.length) {
      replace(list, empty('No codes', 'Share a folder to make one.'));
      return;
    }
    codes.sort((a, b) => b.created - a.created);
    replace(list, h('div', { class: 'table-wrap' }, h('table', { class: 'codes' },
      h('thead', null, h('tr', null, ['Folder', 'Access', 'Kind', 'State', 'Created', 'Expires', 'Joined', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, codes.map((code) => {
        const cancel = h('button', { type: 'button', class: 'small danger code-cancel' }, 'Cancel');
        cancel.addEventListener('click', async () => {
          const ok = await confirmDialog({
            title: 'Cancel this code?',
            body: h('p', null, `Nobody can join ${code.path} with it any more. Peers who already joined stay.`),
            ok: 'Cancel the code',
            danger: true,
          });
          if (!ok) return;
          await busy(cancel, 'Cancelling…', async () => {
            try {
              await request({ type: 'cancel_access_code', access_id: code.access_id });
              toast('Code cancelled.');
              await load();
            } catch (e) {
              toast(e.message, 'error');
            }
          });
        });
        const joined = (code.used_by || []).length ? code.used_by.map((id) => peerLabel(id)) : h('span', { class: 'muted' }, 'nobody yet');
        return h('tr', { class: `code-row code-${code.state}`, 'data-access-id': code.access_id },
          h('td', { 'data-label': 'Folder', title: code.path }, baseName(code.path)),
          h('td', { 'data-label': 'Access' }, modeName(code.mode)),
          h('td', { 'data-label': 'Kind' }, code.username ? ['user ', h('code', null, code.username)] : ['code ', h('code', { title: code.access_id }, shortId(code.access_id))],
            code.multi_use ? h('span', { class: 'badge' }, 'multi-use') : null),
          h('td', { 'data-label': 'State' }, h('span', { class: `pill pill-${code.state === 'active' ? 'ok' : 'waiting'} code-state` }, CODE_STATES[code.state] || code.state)),
          h('td', { 'data-label': 'Created' }, timeEl(code.created)),
          h('td', { 'data-label': 'Expires' }, code.expires ? h('span', { title: absTime(code.expires) }, absTime(code.expires)) : 'never'),
          h('td', { 'data-label': 'Joined', class: 'code-used-by' }, joined),
          h('td', null, cancel));
      })))));
  };
  await load().catch((e) => replace(list, h('p', { class: 'error', role: 'alert' }, e.message)));
}

// Peers.

const PEER_STATES = { connected: 'Connected', found: 'Found', dialing: 'Connecting', offline: 'Offline' };
const SOURCES = { manual: 'configured', incoming: 'it connected to us', tracker: 'tracker', lan: 'local network' };

export async function renderPeers(view) {
  const list = h('div', { id: 'peers' }, h('p', { class: 'loading' }, 'Loading…'));
  replace(view, h('section', { class: 'page wide' },
    h('div', { class: 'page-head' }, h('h1', null, 'Peers')),
    h('p', { class: 'lead' }, 'The computers this one syncs with, per share. Removing a peer disconnects it and refuses it from now on.'),
    list));

  // Rows by peer, share and address: a row's cells are rebuilt when its data changed, its
  // Remove button is kept (so a click is not lost to a byte counter's update).
  const rows = new Map(); // key → {tr, json, actions}
  let tbody = null;

  function removeButton(p) {
    if (!p.peer) return null;
    const remove = h('button', { type: 'button', class: 'small danger peer-remove' }, 'Remove');
    remove.addEventListener('click', async () => {
      const ok = await confirmDialog({
        title: `Remove ${p.name || shortId(p.peer)}?`,
        body: [h('p', null, `It is disconnected from ${p.path} and refused from now on.`),
          h('p', null, 'To keep it from reading future changes of a read-write share, rotate the share’s keys too (clearskies keys rotate).')],
        ok: 'Remove',
        danger: true,
      });
      if (!ok) return;
      await busy(remove, 'Removing…', async () => {
        try {
          await request({ type: 'remove_peer', peer: p.peer, path: p.path });
          toast('Peer removed.');
          setLive('peers', await request({ type: 'list_peers' }));
        } catch (e) {
          toast(e.message, 'error');
        }
      });
    });
    return remove;
  }

  function cells(p) {
    const bytes = p.sent_bytes !== undefined || p.received_bytes !== undefined
      ? `${fmtBytes(p.sent_bytes || 0)} / ${fmtBytes(p.received_bytes || 0)}` : '—';
    return [
      h('td', { 'data-label': 'Peer' }, p.name ? h('strong', null, p.name) : null, p.name ? ' ' : null,
        p.peer ? h('code', { title: p.peer }, shortId(p.peer)) : h('span', { class: 'muted' }, 'not identified yet')),
      h('td', { 'data-label': 'Share', title: p.path }, baseName(p.path)),
      h('td', { 'data-label': 'Access' }, p.access_level ? modeName(p.access_level) : '—'),
      h('td', { 'data-label': 'State' }, h('span', { class: `pill pill-${p.state === 'connected' ? 'ok' : 'waiting'}` }, PEER_STATES[p.state] || p.state),
        p.failures ? h('span', { class: 'muted' }, ` (${p.failures} failed)`) : null),
      h('td', { 'data-label': 'Connection' }, [p.transport, p.address].filter(Boolean).join(' · ')),
      h('td', { 'data-label': 'Found via' }, SOURCES[p.source] || p.source),
      h('td', { 'data-label': 'Last seen' }, p.state === 'connected' ? 'now' : timeEl(p.last_seen)),
      h('td', { 'data-label': 'Sent / received' }, bytes),
    ];
  }

  const draw = () => {
    if (!live.peers) return;
    const peers = [...(live.peers.peers || [])];
    if (!peers.length) {
      rows.clear();
      tbody = null;
      replace(list, empty('No peers yet', 'Peers appear here when someone attaches one of your shares, or you attach theirs.'));
      return;
    }
    const order = { connected: 0, dialing: 1, found: 2, offline: 3 };
    peers.sort((a, b) => (order[a.state] ?? 9) - (order[b.state] ?? 9) || a.path.localeCompare(b.path) || String(a.address).localeCompare(String(b.address)));
    if (!tbody) {
      tbody = h('tbody');
      replace(list, h('div', { class: 'table-wrap' }, h('table', { class: 'peers' },
        h('thead', null, h('tr', null, ['Peer', 'Share', 'Access', 'State', 'Connection', 'Found via', 'Last seen', 'Sent / received', ''].map((t) => h('th', { scope: 'col' }, t)))),
        tbody)));
    }
    const wanted = [];
    const seen = new Set();
    for (const p of peers) {
      const key = JSON.stringify([p.peer || '', p.share, p.address]);
      if (seen.has(key)) continue;
      seen.add(key);
      const json = JSON.stringify(p);
      let row = rows.get(key);
      if (!row || (!row.actions.firstChild && p.peer)) {
        row = { tr: h('tr'), json: '', actions: h('td', null, removeButton(p)) };
        rows.set(key, row);
      }
      if (row.json !== json) {
        row.json = json;
        row.tr.className = `peer-row peer-${p.state}`;
        row.tr.dataset.peer = p.peer || '';
        row.tr.replaceChildren(...cells(p), row.actions);
      }
      wanted.push(row.tr);
    }
    for (const key of [...rows.keys()]) if (!seen.has(key)) rows.delete(key);
    let prev = null;
    for (const tr of wanted) {
      const at = prev ? prev.nextSibling : tbody.firstChild;
      if (at !== tr) tbody.insertBefore(tr, at);
      prev = tr;
    }
    const keep = new Set(wanted);
    for (const child of [...tbody.children]) if (!keep.has(child)) child.remove();
  };
  if (!live.peers) {
    try {
      const answer = await request({ type: 'list_peers' });
      if (!live.peers) setLive('peers', answer);
    } catch (e) {
      replace(list, h('p', { class: 'error', role: 'alert' }, e.message));
    }
  }
  draw();
  return onLive((kind) => {
    if (kind === 'peers') draw();
  });
}

// Settings.

const SOURCE_NAMES = { default: 'default', file: 'config.toml', environment: 'environment variable' };

/**
 * get_config's answer as rows: [{key, value, def, doc, runtime, source}]. Reads the plain
 * `config` map with `sources`, and per-setting details where the answer carries them
 * (`settings` as a list or a map, or each value as {value, default, doc, runtime}).
 */
function describe(answer) {
  const config = answer.config || {};
  const sources = answer.sources || {};
  let meta = answer.settings || answer.details || {};
  if (Array.isArray(meta)) meta = Object.fromEntries(meta.map((m) => [m.name || m.key, m]));
  return Object.keys(config).sort().map((key) => {
    let value = config[key];
    let m = meta[key] || {};
    if (value && typeof value === 'object' && !Array.isArray(value) && 'value' in value) {
      m = { ...value, ...m };
      value = value.value;
    }
    let runtime = m.runtime;
    if (runtime === undefined && typeof m.applies === 'string') runtime = /runtime|once/.test(m.applies);
    if (runtime === undefined && typeof m.applies === 'boolean') runtime = m.applies;
    return { key, value, def: m.default, doc: m.doc || m.description, runtime, source: m.source || sources[key] };
  });
}

function settingControl(row) {
  const id = `setting-${row.key}`;
  const sample = row.value ?? row.def;
  if (row.key === 'listen') return [h('output', { id, class: 'setting-value' }, row.value ?? 'not listening'), 'readonly'];
  if (typeof sample === 'boolean') return [h('input', { id, type: 'checkbox', class: 'setting-input', checked: Boolean(row.value) }), 'bool'];
  if (Array.isArray(sample)) return [h('input', { id, type: 'text', class: 'setting-input', value: (row.value || []).join(', '), placeholder: 'HOST:PORT, …', spellcheck: 'false' }), 'list'];
  if (typeof sample === 'number') return [h('input', { id, type: 'text', class: 'setting-input', inputmode: 'numeric', value: String(row.value ?? ''), spellcheck: 'false' }), 'number'];
  return [h('input', { id, type: 'text', class: 'setting-input', value: row.value ?? '', spellcheck: 'false' }), 'text'];
}

function readControl(input, kind) {
  if (kind === 'bool') return input.checked;
  if (kind === 'list') return input.value.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);
  const text = input.value.trim();
  if (kind === 'number' && /^-?\d+$/.test(text)) return Number(text);
  return text;
}

const show = (value) => (value === undefined ? '' : Array.isArray(value) ? value.join(', ') || 'none' : value === null || value === '' ? 'none' : String(value));

export async function renderSettings(view) {
  const list = h('div', { id: 'settings', class: 'settings' }, h('p', { class: 'loading' }, 'Loading…'));
  replace(view, h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Settings')),
    h('p', { class: 'lead' }, 'Saved in config.toml in the data directory. Some apply at once, others when the daemon next starts; a variable set in the daemon’s environment wins over both.'),
    list));
  const answer = await request({ type: 'get_config' });
  const rows = describe(answer);
  replace(list, rows.map((row) => {
    const [control, kind] = settingControl(row);
    const message = h('p', { class: 'setting-message', role: 'status', hidden: true });
    const facts = [];
    if (row.def !== undefined) facts.push(`default ${show(row.def)}`);
    if (row.runtime === true) facts.push('applies at once');
    if (row.runtime === false) facts.push('applies at the next start');
    if (row.source && row.source !== 'default') facts.push(`set in the ${SOURCE_NAMES[row.source] || row.source}`);
    let save = null;
    if (kind !== 'readonly') {
      save = h('button', { type: 'submit', class: 'small setting-save' }, 'Save');
    }
    const form = h('form', { class: `setting${row.source === 'environment' ? ' from-env' : ''}`, 'data-key': row.key, novalidate: true },
      h('div', { class: 'setting-text' },
        h('label', { for: control.id, class: 'setting-key' }, h('code', null, row.key)),
        row.doc ? h('p', { class: 'setting-doc' }, row.doc) : null,
        facts.length ? h('p', { class: 'setting-facts muted' }, facts.join(' · ')) : null),
      h('div', { class: 'setting-edit' }, kind === 'bool' ? h('label', { class: 'switch', for: control.id }, control, h('span', null, 'on')) : control, save),
      message);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (!save) return;
      message.hidden = true;
      message.className = 'setting-message';
      busy(save, 'Saving…', async () => {
        try {
          await request({ type: 'set_config_value', key: row.key, value: readControl(control, kind) });
          message.textContent = 'Saved; in effect now.';
          message.classList.add('ok');
        } catch (e) {
          message.textContent = e.message;
          message.classList.add(e.code === 'needs_restart' ? 'note' : 'error');
          if (e.code === 'needs_restart') message.dataset.code = 'needs_restart';
        }
        message.hidden = false;
      });
    });
    return form;
  }));
}

// The log.

export async function renderLog(view) {
  const pre = h('pre', { id: 'log', class: 'log', tabindex: 0 });
  const refresh = h('button', { type: 'button', id: 'log-refresh' }, 'Refresh');
  const auto = h('input', { type: 'checkbox', id: 'log-auto' });
  const lines = h('select', { id: 'log-lines' }, [200, 500, 2000].map((n) => h('option', { value: n, selected: n === 500 }, `${n} lines`)));
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  let timer = null;

  const load = async () => {
    try {
      const answer = await request({ type: 'recent_log', lines: Number(lines.value) });
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      pre.textContent = (answer.lines || []).join('\n') || '(the log is empty)';
      if (atBottom || !pre.dataset.loaded) pre.scrollTop = pre.scrollHeight;
      pre.dataset.loaded = 'true';
      error.hidden = true;
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    }
  };
  refresh.addEventListener('click', () => busy(refresh, 'Loading…', load));
  lines.addEventListener('change', load);
  auto.addEventListener('change', () => {
    clearInterval(timer);
    timer = auto.checked ? setInterval(load, 3000) : null;
  });
  replace(view, h('section', { class: 'page wide' },
    h('div', { class: 'page-head' }, h('h1', null, 'Log'),
      h('div', { class: 'actions' }, lines,
        h('label', { class: 'check', for: 'log-auto' }, auto, ' Auto-refresh'), refresh)),
    error, pre));
  await load();
  return () => clearInterval(timer);
}
