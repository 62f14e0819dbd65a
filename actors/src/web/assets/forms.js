// "Share a folder" (create_share + create_access_code) and "Attach" (add_share).

import { request, setLive } from './api.js';
import { absTime, base64Utf8, baseName, busy, field, filesRoute, h, replace, showError, toast } from './dom.js';

const EXPIRIES = [
  ['3600', '1 hour'],
  ['86400', '24 hours'],
  ['604800', '7 days'],
  ['2592000', '30 days'],
  ['never', 'Never'],
];

function radio(name, value, label, checked, id) {
  return h('label', { class: 'choice', for: id },
    h('input', { type: 'radio', name, value, id, checked }),
    h('span', null, label));
}

/** Copies `text`; with the Clipboard API where the page may use it (HTTPS, loopback). */
async function copyText(text, fallbackEl) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const range = document.createRange();
  range.selectNodeContents(fallbackEl);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
  if (!document.execCommand('copy')) throw new Error('copy is not allowed here: select the code and copy it');
}

function codeResult(answer, custom) {
  const parts = [];
  if (answer.access_code) {
    const code = h('code', { id: 'code-text', class: 'code-text' }, answer.access_code);
    const copy = h('button', { type: 'button', id: 'code-copy', class: 'small' }, 'Copy');
    copy.addEventListener('click', async () => {
      try {
        await copyText(answer.access_code, code);
        toast('Code copied.');
      } catch (e) {
        toast(e.message, 'error');
      }
    });
    parts.push(h('div', { class: 'code-line' }, code, copy));
  }
  if (custom) {
    parts.push(h('p', null, 'Username ', h('code', { id: 'code-username' }, answer.username || custom.username),
      ' and the password you chose. Tell them both to your friend by a safe way.'));
  }
  if (answer.url) {
    parts.push(h('p', { class: 'code-link' }, 'Or open this link on their computer: ',
      h('a', { id: 'code-url', href: answer.url }, answer.url)));
  }
  if (answer.qr_svg) {
    parts.push(h('figure', { id: 'qr', class: 'qr' },
      h('img', { src: `data:image/svg+xml;base64,${base64Utf8(answer.qr_svg)}`, alt: 'QR code of the link', width: 220, height: 220 }),
      h('figcaption', null, 'Scan it with the phone that should join.')));
  }
  const validity = [];
  validity.push(answer.expires ? `Valid until ${absTime(answer.expires)}` : 'Valid until cancelled');
  validity.push(answer.multi_use ? 'any number of computers may join with it' : 'one computer may join with it');
  parts.push(h('p', { class: 'muted' }, `${validity.join('; ')}. `, h('a', { href: '#/codes' }, 'Manage codes')));
  return parts;
}

export async function renderShare(view, { query }) {
  const presetPath = query.get('path') || '';
  const path = h('input', { id: 'share-path', name: 'path', type: 'text', required: true, value: presetPath, placeholder: '/srv/photos', autocomplete: 'off', spellcheck: 'false' });
  const mode = h('fieldset', { class: 'choices', id: 'share-mode' },
    h('legend', null, 'What may your friend do?'),
    radio('mode', 'read_write', 'Change files (read-write)', true, 'share-mode-rw'),
    radio('mode', 'read_only', 'Only read them (read-only)', false, 'share-mode-ro'),
    radio('mode', 'untrusted', 'Keep an encrypted backup, unable to read it (untrusted)', false, 'share-mode-untrusted'));
  const expiry = h('select', { id: 'share-expiry', name: 'expiry' },
    EXPIRIES.map(([value, label]) => h('option', { value, selected: value === '86400' }, label)));
  const multi = h('input', { type: 'checkbox', id: 'share-multi', name: 'multi_use' });
  const custom = h('input', { type: 'checkbox', id: 'share-custom', name: 'custom' });
  const username = h('input', { id: 'share-username', type: 'text', autocomplete: 'off', spellcheck: 'false' });
  const password = h('input', { id: 'share-password', type: 'password', autocomplete: 'new-password' });
  const customBox = h('div', { class: 'subfields', hidden: true },
    field('Username', username), field('Password', password, 'Your friend types both to join.'));
  custom.addEventListener('change', () => {
    customBox.hidden = !custom.checked;
    username.required = custom.checked;
    password.required = custom.checked;
  });
  const error = h('p', { id: 'share-error', class: 'error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', id: 'share-submit', class: 'primary' }, presetPath ? 'Create code' : 'Share');
  const result = h('section', { id: 'share-result', class: 'result', hidden: true, 'aria-live': 'polite' });

  const form = h('form', { id: 'share-form', class: 'form', novalidate: true },
    field('Folder on this computer', path, 'The full path of the folder on the computer that runs ClearSkies, such as /srv/photos.'),
    mode,
    h('div', { class: 'row' },
      field('Code valid for', expiry),
      h('div', { class: 'field checks' },
        h('label', { class: 'check', for: 'share-multi' }, multi, ' More than one computer may use it'),
        h('label', { class: 'check', for: 'share-custom' }, custom, ' Use a username and password instead of a code'))),
    customBox,
    error,
    h('div', { class: 'actions' }, submit));

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    showError(error, null);
    const dir = path.value.trim();
    if (!dir) {
      showError(error, new Error('Give the folder’s full path, such as /srv/photos.'));
      path.focus();
      return;
    }
    const command = {
      type: 'create_access_code',
      path: dir,
      mode: form.elements.mode.value,
      multi_use: multi.checked,
      expires_in: expiry.value === 'never' ? null : Number(expiry.value),
    };
    let creds = null;
    if (custom.checked) {
      creds = { username: username.value.trim(), password: password.value };
      if (!creds.username || !creds.password) {
        showError(error, new Error('Give both a username and a password.'));
        return;
      }
      Object.assign(command, creds);
    }
    busy(submit, 'Working…', async () => {
      try {
        try {
          await request({ type: 'create_share', path: dir });
          setLive('shares', await request({ type: 'list_shares' }));
        } catch (e) {
          if (e.code !== 'already_shared') throw e; // a new code for a folder shared already
        }
        const answer = await request(command);
        replace(result, h('h2', null, 'Send this to your friend'), h('p', { class: 'muted' }, `For ${dir}`), codeResult(answer, creds));
        result.dataset.accessId = answer.access_id || '';
        result.hidden = false;
        password.value = '';
        result.scrollIntoView({ block: 'nearest' });
      } catch (e) {
        showError(error, e);
      }
    });
  });

  replace(view, h('section', { class: 'page narrow' },
    h('div', { class: 'page-head' }, h('h1', null, presetPath ? `New code for ${baseName(presetPath)}` : 'Share a folder')),
    h('p', { class: 'lead' }, 'Your friend attaches the folder on their computer with the code (or the link, or the QR code). Nothing passes through anyone else’s server.'),
    form, result));
  (presetPath ? submit : path).focus();
}

export async function renderAttach(view) {
  const code = h('input', { id: 'attach-code', type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'SYNC…', autocapitalize: 'characters' });
  const useCreds = h('input', { type: 'checkbox', id: 'attach-custom' });
  const username = h('input', { id: 'attach-username', type: 'text', autocomplete: 'off', spellcheck: 'false' });
  const password = h('input', { id: 'attach-password', type: 'password', autocomplete: 'off' });
  const codeBox = h('div', null, field('Access code', code, 'The code your friend sent, or the clearskies:// link.'));
  const credsBox = h('div', { class: 'subfields', hidden: true }, field('Username', username), field('Password', password));
  useCreds.addEventListener('change', () => {
    codeBox.hidden = useCreds.checked;
    credsBox.hidden = !useCreds.checked;
  });
  const path = h('input', { id: 'attach-path', type: 'text', placeholder: '/srv/From Dave', autocomplete: 'off', spellcheck: 'false' });
  const subtree = h('input', { id: 'attach-subtree', type: 'text', placeholder: 'Photos/2024', autocomplete: 'off', spellcheck: 'false' });
  const exclude = h('textarea', { id: 'attach-exclude', rows: 3, placeholder: '*.tmp\nnode_modules/', spellcheck: 'false' });
  const peer = h('input', { id: 'attach-peer', type: 'text', placeholder: 'nas.example.net:49221', autocomplete: 'off', spellcheck: 'false' });
  const error = h('p', { id: 'attach-error', class: 'error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', id: 'attach-submit', class: 'primary' }, 'Attach');
  const result = h('section', { id: 'attach-result', class: 'result', hidden: true, 'aria-live': 'polite' });

  const form = h('form', { id: 'attach-form', class: 'form', novalidate: true },
    codeBox,
    h('label', { class: 'check', for: 'attach-custom' }, useCreds, ' I have a username and password instead'),
    credsBox,
    field('Put it in this folder', path, 'A full path on the computer that runs ClearSkies; created if missing.'),
    h('details', { class: 'advanced' },
      h('summary', null, 'Selective sync and peer address'),
      field('Only this subfolder', subtree, 'Leave empty for the whole share.'),
      field('Never sync these', exclude, 'Patterns as in .gitignore, one per line.'),
      field('Peer address', peer, 'HOST:PORT of a computer that has the share, if it cannot be found by itself.')),
    error,
    h('div', { class: 'actions' }, submit));

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    showError(error, null);
    const command = { type: 'add_share', path: path.value.trim() };
    if (useCreds.checked) {
      command.username = username.value.trim();
      command.password = password.value;
    } else {
      let c = code.value.trim();
      const link = c.match(/^clearskies:\/\/[^/]*\/(.+)$/i);
      if (link) c = decodeURIComponent(link[1]);
      command.code = c;
    }
    if (subtree.value.trim()) command.subtree = subtree.value.trim();
    const patterns = exclude.value.split('\n').map((l) => l.trim()).filter(Boolean);
    if (patterns.length) command.exclude = patterns;
    if (peer.value.trim()) command.peer = peer.value.trim();
    busy(submit, 'Looking for the share… (up to a minute)', async () => {
      try {
        const answer = await request(command);
        setLive('shares', await request({ type: 'list_shares' }));
        replace(result,
          h('h2', null, 'Attached'),
          h('p', null, 'ClearSkies now syncs ', h('code', null, answer.path || command.path), ' with your friend.'),
          h('div', { class: 'actions' },
            h('a', { class: 'button primary', href: '#/', id: 'attach-done' }, 'See its progress'),
            answer.id ? h('a', { class: 'button', href: filesRoute(answer.id, '') }, 'Browse the files') : null));
        result.hidden = false;
        form.hidden = true;
        password.value = '';
      } catch (e) {
        showError(error, e);
      }
    });
  });

  replace(view, h('section', { class: 'page narrow' },
    h('div', { class: 'page-head' }, h('h1', null, 'Attach a shared folder')),
    h('p', { class: 'lead' }, 'Join a folder a friend shared with you: their files come here, and changes go both ways (as their code allows).'),
    form, result));
  code.focus();
}
