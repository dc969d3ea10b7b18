// certflow local console: plain JS, no dependencies. Reads the REST API and /console/api/* on the same origin.
// Every value from the server goes into the page as text (textContent), never as HTML.
'use strict';

(() => {
  const $ = (selector, root = document) => root.querySelector(selector);

  /** el('td', { class: 'num' }, 'text', childNode …) */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'on') for (const [type, fn] of Object.entries(v)) node.addEventListener(type, fn);
      else if (k === 'class') node.className = v;
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const status = $('#status');
  function say(message, isError = false) {
    status.textContent = message;
    status.classList.toggle('error', isError);
  }

  async function api(method, path, body) {
    const res = await fetch(path, {
      method,
      headers: { accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let data = text;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON */
    }
    if (!res.ok && res.status !== 303) {
      const err = new Error(data && data.message ? `${data.code}: ${data.message}` : `HTTP ${res.status}`);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  const badge = (value) => el('span', { class: `badge s-${String(value).toLowerCase()}` }, value);
  const date = (iso) => (iso ? new Date(iso).toLocaleString() : '');
  const short = (id) => (id && id.length > 16 ? `${id.slice(0, 12)}…` : id || '');
  function ms(value) {
    if (value === undefined || value === null) return '';
    if (value < 1000) return `${value} ms`;
    if (value < 60000) return `${(value / 1000).toFixed(1)} s`;
    return `${Math.floor(value / 60000)} min ${Math.round((value % 60000) / 1000)} s`;
  }
  const json = (value) => (value === undefined ? '' : JSON.stringify(value, null, 2));
  /** details whose content is built when first opened (long histories stay fast); `key` keeps it open across
   * refreshes of a running execution */
  const openDetails = new Set();
  function details(label, fields, key) {
    const shown = fields.filter(([, v]) => v !== undefined && v !== null);
    if (shown.length === 0) return '';
    const node = el('details', {}, el('summary', {}, label));
    let filled = false;
    const fill = () => {
      if (filled) return;
      filled = true;
      node.append(
        ...shown.flatMap(([name, v]) => [el('h4', {}, name), el('pre', {}, typeof v === 'string' ? v : json(v))]),
      );
    };
    node.addEventListener('toggle', () => {
      if (node.open) {
        fill();
        openDetails.add(key);
      } else openDetails.delete(key);
    });
    if (key !== undefined && openDetails.has(key)) {
      fill();
      node.open = true;
    }
    return node;
  }
  function fillRows(tbody, rows, emptyText, columns) {
    tbody.replaceChildren(...rows);
    if (rows.length === 0) tbody.append(el('tr', {}, el('td', { colspan: columns, class: 'muted' }, emptyText)));
  }

  // -- the schema-driven choices (key types, revocation reasons) come from the OpenAPI document ------------------
  let openApi;
  async function schemaEnum(path, method, pointer) {
    openApi ??= await api('GET', '/openapi.json');
    let node = openApi.paths[path][method].requestBody.content['application/json'].schema;
    for (const part of pointer) node = node[part];
    return node.enum || [];
  }

  // -- views --------------------------------------------------------------------------------------------------
  const views = ['batches', 'executions', 'execution', 'cas', 'inventory'];
  let timer;
  function show(view, ...args) {
    clearInterval(timer);
    say('');
    for (const v of views) $(`#view-${v}`).hidden = v !== view;
    const current = view === 'execution' ? 'executions' : view;
    for (const a of document.querySelectorAll('header nav a[data-view]')) {
      if (a.dataset.view === current) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const render = { batches, executions, execution, cas, inventory }[view];
    render(...args).catch((e) => say(e.message, true));
  }
  function route() {
    const [view, ...args] = location.hash.slice(1).split('/').map(decodeURIComponent);
    show(views.includes(view) ? view : 'batches', ...args);
  }
  window.addEventListener('hashchange', route);

  // batches ---------------------------------------------------------------------------------------------------
  let batchFormReady = false;
  async function batches() {
    document.title = 'Batches · certflow';
    if (!batchFormReady) {
      const form = $('#batch-form');
      const { suppliers } = await api('GET', '/console/api/suppliers');
      form.supplier.replaceChildren(...suppliers.map((s) => el('option', {}, s)));
      const keyTypes = await schemaEnum('/supplier/{supplierId}/certificates', 'post', ['properties', 'keyType']);
      form.keyType.replaceChildren(...keyTypes.map((k) => el('option', {}, k)));
      form.addEventListener('submit', startBatch);
      batchFormReady = true;
    }
    await refreshBatches();
    timer = setInterval(() => refreshBatches().catch((e) => say(e.message, true)), 1000);
  }

  async function startBatch(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const body = { quantity: Number(form.quantity.value), keyType: form.keyType.value };
    const certInfo = {};
    if (form.commonName.value.trim()) certInfo.commonName = form.commonName.value.trim();
    if (form.includeCA.checked) certInfo.includeCA = true;
    if (Object.keys(certInfo).length) body.certInfo = certInfo;
    const button = $('button[type=submit]', form);
    button.disabled = true;
    try {
      const { taskId } = await api('POST', `/supplier/${encodeURIComponent(form.supplier.value)}/certificates`, body);
      say(`Batch ${taskId} started.`);
      await refreshBatches();
    } catch (e) {
      say(`The batch was not started: ${e.message}`, true);
    } finally {
      button.disabled = false;
    }
  }

  async function refreshBatches() {
    const { batches: list } = await api('GET', '/console/api/batches');
    const rows = list.map((b) => {
      const done = b.chunksTotal - b.chunksPending;
      return el(
        'tr',
        { 'data-task': b.taskId },
        el('td', {}, el('code', { title: b.taskId }, b.taskId)),
        el('td', {}, b.supplierId),
        el(
          'td',
          {},
          badge(b.status),
          b.error ? el('div', { class: 'muted' }, `${b.error.code}: ${b.error.message}`) : '',
        ),
        el(
          'td',
          { class: 'num' },
          el('progress', { max: b.chunksTotal, value: done, 'aria-label': `chunks done of ${b.taskId}` }),
          ` ${done} / ${b.chunksTotal} chunks`,
        ),
        el('td', { class: 'num' }, b.quantity.toLocaleString()),
        el('td', {}, date(b.createdAt)),
        el(
          'td',
          {},
          el('a', { href: `#execution/certflow-bulk-issuance/${encodeURIComponent(b.taskId)}` }, 'Execution'),
          b.status === 'complete'
            ? [
                ' · ',
                el(
                  'a',
                  { href: `/certificates/${encodeURIComponent(b.taskId)}`, download: `certificates-${b.taskId}.zip` },
                  'Download zip',
                ),
              ]
            : '',
        ),
      );
    });
    fillRows($('#batches-table tbody'), rows, 'No batches yet: start one above.', 7);
  }

  // executions -------------------------------------------------------------------------------------------------
  let executionsFormReady = false;
  async function executions() {
    document.title = 'Executions · certflow';
    const form = $('#executions-filter');
    // the state machines and their counts, read each time the view opens (the selection is kept)
    const machines = await api('GET', '/console/api/state-machines');
    const selected = form.stateMachine.value;
    form.stateMachine.replaceChildren(
      el('option', { value: '' }, 'all'),
      ...machines.map((m) =>
        el('option', { value: m.name, selected: m.name === selected }, `${m.name} (${m.executions})`),
      ),
    );
    if (!executionsFormReady) {
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        refreshExecutions().catch((err) => say(err.message, true));
      });
      executionsFormReady = true;
    }
    await refreshExecutions();
    timer = setInterval(() => refreshExecutions().catch((e) => say(e.message, true)), 2000);
  }

  async function refreshExecutions() {
    const form = $('#executions-filter');
    const q = new URLSearchParams();
    if (form.stateMachine.value) q.set('stateMachine', form.stateMachine.value);
    if (form.status.value) q.set('status', form.status.value);
    const { executions: list } = await api('GET', `/console/api/executions?${q}`);
    const rows = list.map((x) =>
      el(
        'tr',
        {},
        el(
          'td',
          {},
          el(
            'a',
            { href: `#execution/${encodeURIComponent(x.stateMachineName)}/${encodeURIComponent(x.name)}` },
            x.name,
          ),
        ),
        el('td', {}, x.stateMachineName),
        el('td', {}, badge(x.status), x.error ? el('div', { class: 'muted' }, x.error) : ''),
        el('td', {}, date(x.startDate)),
        el('td', { class: 'num' }, ms(x.durationMs)),
      ),
    );
    fillRows($('#executions-table tbody'), rows, 'No executions.', 5);
  }

  async function execution(stateMachine, name) {
    document.title = `${name} · certflow`;
    openDetails.clear();
    const render = async () => {
      const x = await api(
        'GET',
        `/console/api/executions/${encodeURIComponent(stateMachine)}/${encodeURIComponent(name)}`,
      );
      $('#h-execution').textContent = `Execution ${x.name}`;
      const summary = [
        ['State machine', x.stateMachineName],
        ['Status', badge(x.status)],
        ['Execution ARN', el('code', {}, x.executionArn)],
        ['Started', date(x.startDate)],
        ['Stopped', date(x.stopDate)],
        ['Duration', ms(x.durationMs)],
        ...(x.error ? [['Error', x.error]] : []),
        ...(x.cause ? [['Cause', typeof x.cause === 'string' ? x.cause : json(x.cause)]] : []),
        ...(x.truncated ? [['History', 'truncated (too many events)']] : []),
      ];
      $('#execution-summary').replaceChildren(...summary.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
      $('#execution-input').textContent = json(x.input);
      $('#execution-output').textContent = x.output === undefined ? '—' : json(x.output);
      fillRows(
        $('#states-table tbody'),
        x.states.map((s, i) =>
          el(
            'tr',
            {},
            el('th', { scope: 'row' }, s.name),
            el('td', {}, s.type || ''),
            el('td', { class: 'num' }, s.mapIndex ?? ''),
            el('td', {}, badge(s.status), s.error ? el('div', { class: 'muted' }, s.error) : ''),
            el('td', { class: 'num' }, ms(s.startedAfterMs)),
            el('td', { class: 'num' }, ms(s.durationMs)),
            el('td', { class: 'num' }, s.retries),
            el(
              'td',
              {},
              details(
                'Input / output',
                [
                  ['Input', s.input],
                  ['Output', s.output],
                  ['Cause', s.cause],
                ],
                `state-${i}`,
              ),
            ),
          ),
        ),
        'No states entered yet.',
        8,
      );
      fillRows(
        $('#events-table tbody'),
        x.events.map((e) =>
          el(
            'tr',
            {},
            el('td', { class: 'num' }, e.id),
            el('td', {}, e.type),
            el('td', {}, e.stateName || e.parentStateName || ''),
            el('td', { class: 'num' }, e.mapIndex ?? ''),
            el('td', { class: 'num' }, ms(e.startedAfterMs)),
            el('td', {}, new Date(e.timestamp).toISOString()),
            el(
              'td',
              {},
              details(
                'Details',
                [
                  ['Input', e.input],
                  ['Output', e.output],
                  ['Error', e.error],
                  ['Cause', e.cause],
                  ['Retry', e.retry],
                  ['Caught', e.caught],
                ],
                `event-${e.id}`,
              ),
            ),
          ),
        ),
        'No events.',
        7,
      );
      return x.status;
    };
    if ((await render()) === 'RUNNING') {
      timer = setInterval(async () => {
        try {
          if ((await render()) !== 'RUNNING') clearInterval(timer);
        } catch (e) {
          say(e.message, true);
        }
      }, 1000);
    }
  }

  // CA hierarchy -------------------------------------------------------------------------------------------------
  async function loadCas() {
    const { cas: list } = await api('GET', '/cas');
    return list;
  }

  async function cas() {
    document.title = 'CA hierarchy · certflow';
    const list = await loadCas();
    const children = new Map();
    for (const ca of list) {
      const parent = ca.parentId && list.some((p) => p.caId === ca.parentId) ? ca.parentId : '';
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(ca);
    }
    const now = Date.now();
    const branch = (parentId) =>
      el(
        'ul',
        { class: parentId ? '' : 'tree' },
        (children.get(parentId) || []).map((ca) => {
          const expired = Date.parse(ca.notAfter) < now;
          return el(
            'li',
            {},
            el(
              'article',
              { class: `ca ${ca.status}`, 'aria-label': `${ca.kind} CA ${ca.commonName}`, 'data-ca': ca.caId },
              el('h3', {}, ca.commonName),
              el('span', { class: 'muted' }, ca.kind),
              badge(expired ? 'expired' : ca.status),
              el('span', {}, `expires ${date(ca.notAfter)}`),
              el('span', { class: 'muted' }, ca.keyType),
              el('code', { title: ca.caId }, short(ca.caId)),
              el('a', { href: `#inventory/${ca.caId}` }, 'Certificates'),
              ca.status === 'active'
                ? el(
                    'button',
                    {
                      type: 'button',
                      class: 'small danger',
                      on: {
                        click: () =>
                          confirmRevoke(
                            ca.caId,
                            `${ca.kind} CA ${ca.commonName} and every certificate it issued`,
                            cas,
                            'cACompromise',
                          ),
                      },
                    },
                    'Revoke…',
                  )
                : '',
            ),
            children.has(ca.caId) ? branch(ca.caId) : '',
          );
        }),
      );
    $('#ca-tree').replaceChildren(list.length ? branch('') : el('p', {}, 'No CAs.'));
  }

  // inventory ----------------------------------------------------------------------------------------------------
  const pages = { tokens: [undefined], index: 0 };
  let inventoryFormReady = false;
  async function inventory(issuer) {
    document.title = 'Inventory · certflow';
    const form = $('#inventory-form');
    const list = await loadCas();
    const selected = issuer || form.issuer.value;
    form.issuer.replaceChildren(
      el('option', { value: '' }, 'any issuer (give an expiry date)'),
      ...list.map((ca) =>
        el('option', { value: ca.caId, selected: ca.caId === selected }, `${ca.commonName} (${short(ca.caId)})`),
      ),
    );
    if (!selected && list.length) form.issuer.value = list[list.length - 1].caId;
    if (!inventoryFormReady) {
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        pages.tokens = [undefined];
        pages.index = 0;
        searchInventory().catch((err) => say(err.message, true));
      });
      $('#page-next').addEventListener('click', () => {
        pages.index += 1;
        searchInventory().catch((err) => say(err.message, true));
      });
      $('#page-prev').addEventListener('click', () => {
        pages.index = Math.max(0, pages.index - 1);
        searchInventory().catch((err) => say(err.message, true));
      });
      inventoryFormReady = true;
    }
    pages.tokens = [undefined];
    pages.index = 0;
    await searchInventory();
  }

  async function searchInventory() {
    const form = $('#inventory-form');
    const q = new URLSearchParams({ limit: form.limit.value });
    if (form.issuer.value) q.set('issuer', form.issuer.value);
    if (form.status.value) q.set('status', form.status.value);
    if (form.expiringBefore.value)
      q.set('expiringBefore', new Date(`${form.expiringBefore.value}T00:00:00Z`).toISOString());
    const token = pages.tokens[pages.index];
    if (token) q.set('nextToken', token);
    const page = await api('GET', `/certificates?${q}`);
    pages.tokens[pages.index + 1] = page.nextToken;
    pages.tokens.length = pages.index + 2;
    const rows = page.items.map((c) =>
      el(
        'tr',
        { 'data-certificate': c.certificateId },
        el('th', { scope: 'row' }, c.commonName),
        el('td', {}, el('code', { title: c.certificateId }, short(c.certificateId))),
        el('td', {}, c.kind),
        el('td', {}, badge(c.status), c.revocationReason ? el('div', { class: 'muted' }, c.revocationReason) : ''),
        el('td', {}, date(c.notAfter)),
        el('td', {}, c.thingName || ''),
        el('td', {}, c.batchId ? el('code', { title: c.batchId }, short(c.batchId)) : ''),
        el(
          'td',
          {},
          el(
            'button',
            {
              type: 'button',
              class: 'small danger',
              disabled: c.status !== 'active',
              'aria-label': `Revoke ${c.commonName}`,
              on: {
                click: () =>
                  confirmRevoke(
                    c.certificateId,
                    `${c.kind} certificate ${c.commonName} (${short(c.certificateId)})`,
                    searchInventory,
                  ),
              },
            },
            'Revoke…',
          ),
        ),
      ),
    );
    fillRows($('#inventory-table tbody'), rows, 'No certificates match.', 8);
    $('#page-number').textContent = `Page ${pages.index + 1}`;
    $('#page-prev').disabled = pages.index === 0;
    $('#page-next').disabled = !page.nextToken;
  }

  // revocation, with a confirmation ------------------------------------------------------------------------------
  async function confirmRevoke(id, what, after, defaultReason = 'keyCompromise') {
    const dialog = $('#revoke-dialog');
    const reasons = await schemaEnum('/certificates/{taskId}/revoke', 'post', ['properties', 'reason']);
    const select = $('#revoke-reason');
    select.replaceChildren(...reasons.map((r) => el('option', { selected: r === defaultReason }, r)));
    $('#revoke-text').textContent = `Revoke the ${what}?`;
    dialog.returnValue = '';
    dialog.showModal();
    $('button[value=cancel]', dialog).focus();
    await new Promise((resolve) => dialog.addEventListener('close', resolve, { once: true }));
    if (dialog.returnValue !== 'revoke') {
      say('Revocation cancelled.');
      return;
    }
    try {
      const result = await api('POST', `/certificates/${encodeURIComponent(id)}/revoke`, { reason: select.value });
      say(`Revoked ${short(id)} (${result.reason})${result.crlNumber ? `, CRL #${result.crlNumber} published` : ''}.`);
    } catch (e) {
      say(`Not revoked: ${e.message}`, true);
    }
    await after();
  }

  route();
})();
