// The gallery page: pages of cards appended as the scroller nears its end, a detail
// panel filled by a delayed API call. Loading is driven by the scroller's scroll event
// plus a light interval check, never IntersectionObserver or requestAnimationFrame:
// both stall on a page that is not in front, and extraction pages never are.
'use strict';
(() => {
  const cfg = JSON.parse(document.getElementById('gallery-config').textContent);
  const h = cfg.prefix;
  const ROW = cfg.row_height;
  const scroller = document.querySelector(`.${h}-scroller`);
  const grid = document.querySelector(`.${h}-grid`);
  const status = document.querySelector(`.${h}-status`);
  const side = document.querySelector(`.${h}-side`);
  const items = [];
  const titles = new Map();
  // Read by tests and curious humans; the page itself never needs it.
  const state = { loaded: 0, total: null, loading: false, columns: 0, staleResponses: 0 };
  window.gallery = state;
  let retryAt = 0;
  let rendered = 0; // plain mode: cards appended so far
  let windowKey = ''; // virtual mode: the range now in the DOM
  let live = new Map(); // virtual mode: id -> card in the DOM
  const topSpacer = el('div', { class: `${h}-spacer`, 'aria-hidden': 'true' });
  const bottomSpacer = el('div', { class: `${h}-spacer`, 'aria-hidden': 'true' });

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === true) node.setAttribute(name, '');
      else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, String(value));
    }
    node.append(...children);
    return node;
  }

  function makeCard(item) {
    return el('a', { class: `${h}-card`, 'data-id': item.id, href: `/item/${item.id}` },
      el('img', { src: `/thumb/${item.id}.png`, width: cfg.thumb_size, height: cfg.thumb_size, alt: '', loading: 'lazy' }),
      el('span', { class: `${h}-title` }, item.title));
  }

  function updateColumns() {
    const columns = Math.max(1, Math.floor(grid.clientWidth / cfg.card_width));
    if (columns === state.columns) return;
    state.columns = columns;
    grid.style.gridTemplateColumns = `repeat(${columns}, minmax(0, 1fr))`;
    windowKey = '';
  }

  function renderPlain() {
    if (rendered === items.length) return;
    const fragment = document.createDocumentFragment();
    while (rendered < items.length) fragment.append(makeCard(items[rendered++]));
    grid.append(fragment);
  }

  // Keep the rows from one screen above to one screen below the viewport; spacers
  // stand in for the rest so the scroll height (and the scrollbar) stay true.
  function renderWindow() {
    const columns = state.columns;
    const rows = Math.ceil(items.length / columns);
    const view = scroller.clientHeight;
    const top = scroller.scrollTop - grid.offsetTop;
    const last = Math.min(rows - 1, Math.floor((top + 2 * view) / ROW));
    const first = Math.min(Math.max(0, Math.floor((top - view) / ROW)), Math.max(0, last));
    const key = `${first}:${last}:${items.length}:${columns}`;
    if (key === windowKey) return;
    windowKey = key;
    const next = new Map();
    for (let i = first * columns; i < Math.min(items.length, (last + 1) * columns); i++) {
      next.set(items[i].id, live.get(items[i].id) || makeCard(items[i]));
    }
    live = next;
    topSpacer.style.height = `${first * ROW}px`;
    bottomSpacer.style.height = `${Math.max(0, rows - 1 - last) * ROW}px`;
    grid.replaceChildren(topSpacer, ...next.values(), bottomSpacer);
  }

  function updateStatus() {
    const done = state.total !== null && items.length >= state.total;
    if (done) status.setAttribute('data-complete', '');
    status.textContent = done ? `All ${state.total} items loaded` : `Loaded ${items.length} items`;
  }

  function render() {
    updateColumns();
    if (cfg.virtualize) renderWindow();
    else renderPlain();
    updateStatus();
  }

  function nearEnd() {
    return scroller.scrollTop + 2 * scroller.clientHeight >= scroller.scrollHeight;
  }

  async function loadMore() {
    const done = state.total !== null && items.length >= state.total;
    if (state.loading || done || Date.now() < retryAt) return;
    state.loading = true;
    try {
      const response = await fetch(`/api/items?offset=${items.length}&limit=${cfg.page_size}`);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const page = await response.json();
      state.total = page.total;
      for (const item of page.items) {
        if (item.position !== items.length) continue; // a late duplicate page
        items.push(item);
        titles.set(item.id, item.title);
      }
      state.loaded = items.length;
      render();
    } catch (error) {
      retryAt = Date.now() + 1000;
      status.textContent = `Could not load more items (${error.message}); retrying`;
    } finally {
      state.loading = false;
    }
  }

  function tick() {
    render();
    if (nearEnd()) loadMore();
  }

  // ---- detail panel ----
  let panel = null;
  let openToken = 0;

  // cfg.panel "dialog": one native <dialog>, shown modal and closed in place (it stays in
  // the DOM, and only the browser's own Escape, not a synthetic one, closes it).
  const dialog = cfg.panel === 'dialog' ? el('dialog', { class: `${h}-panel` }) : null;
  if (dialog) {
    document.body.append(dialog);
    dialog.addEventListener('close', () => {
      if (dialog.open) return; // reopened before this (queued) event ran
      openToken++;
      panel = null;
    });
  }

  function closePanel() {
    openToken++;
    if (dialog) {
      if (dialog.open) dialog.close();
    } else if (panel) panel.remove();
    panel = null;
  }

  function alertNode(text) {
    return el('div', { role: 'alert', class: `${h}-error` }, text);
  }

  function rowNode(row) {
    const attrs = { class: `${h}-row` };
    if (row.hidden === 'attribute') attrs.hidden = true;
    if (row.hidden === 'aria') Object.assign(attrs, { class: `${h}-row ${h}-ghost`, 'aria-hidden': 'true' });
    return el('div', attrs,
      el('span', { class: `${h}-label` }, row.label),
      el('span', { class: `${h}-value` }, row.value));
  }

  function detailNodes(item) {
    return [
      el('img', { class: `${h}-preview`, src: item.image, width: cfg.media_size, height: cfg.media_size, alt: item.title }),
      ...item.rows.map(rowNode),
      el('a', { class: `${h}-dl`, href: item.image, download: true }, 'Download'),
    ];
  }

  async function fetchDetail(id) {
    try {
      const response = await fetch(`/api/item/${encodeURIComponent(id)}`);
      if (!response.ok) return [alertNode(`Could not load item: HTTP ${response.status}`)];
      return detailNodes(await response.json());
    } catch (error) {
      return [alertNode(`Could not load item: ${error.message}`)];
    }
  }

  function openPanel(id) {
    closePanel();
    const token = ++openToken;
    const close = el('button', { type: 'button', class: `${h}-close`, 'aria-label': 'Close' }, '\u00d7');
    close.addEventListener('click', closePanel);
    const body = el('div', { class: `${h}-body` }, el('p', { class: `${h}-loading` }, 'Loading\u2026'));
    const heading = el('h2', { id: `${h}-heading`, class: `${h}-heading` }, titles.get(id) || id);
    if (dialog) {
      dialog.replaceChildren(close, heading, body);
      Object.entries({ 'aria-busy': 'true', 'aria-labelledby': `${h}-heading`, 'data-item': id })
        .forEach(([name, value]) => dialog.setAttribute(name, value));
      panel = dialog;
      dialog.showModal();
    } else {
      panel = el('div', {
        role: 'dialog', 'aria-modal': 'true', 'aria-busy': 'true', 'aria-labelledby': `${h}-heading`,
        'data-item': id, class: `${h}-panel`,
      }, close, heading, body);
      side.append(panel);
    }
    const opened = panel;
    fetchDetail(id).then((nodes) => {
      // A response for a panel the user has since replaced or closed must not land anywhere.
      if (token !== openToken || opened !== panel) {
        state.staleResponses++;
        return;
      }
      body.replaceChildren(...nodes);
      opened.removeAttribute('aria-busy');
    });
  }

  grid.addEventListener('click', (event) => {
    const card = event.target.closest('a[data-id]');
    if (!card || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    openPanel(card.dataset.id);
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !dialog) closePanel();
  });
  scroller.addEventListener('scroll', tick, { passive: true });
  window.addEventListener('resize', tick);
  setInterval(tick, cfg.check_interval_ms);
  tick();
})();
