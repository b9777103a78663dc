// In-page landmark resolution: every field of one opened container in one call.
//
// Python (actors/extraction.py) evaluates this file once per document (or adds it as an
// init script) and then calls window.__landmark.settle(...) once per container, so the
// whole wait-and-read costs one CDP round trip. Labels arrive already normalised by the
// Python twin of normalise(); keep the two in step.
//
// The plan (root, fields, labels, regexes, strategy orders, cached paths) is the same for
// container after container: Python sends it once per document with its key, and then the
// key alone (see plan() below and extraction.evaluate_planned).
(() => {
  'use strict';
  const VERSION = 4;
  if (window.__landmark && window.__landmark.version === VERSION) return;

  // JavaScript's \s plus the zero-width space; the Python twin uses the same class.
  const WS = /[\t\n\v\f\r \u00a0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff]+/g;
  const SKIP = new Set(['script', 'style', 'template', 'noscript', 'head', 'title', 'meta', 'link']);
  const TEXT_CAP = 20000; // elements with more text than this are never labels
  const REGEX_CAP = 300; // label_regex is only tried on short texts
  const REJECTED = Object.freeze({ reject: true, shown: false, ownText: false, visible: false, block: false });
  // After a prefix label: a colon, a dash standing alone, or plain whitespace.
  const PREFIX_SEP = /^(?:\s*[:：]|\s*[-—–](?=\s|$)|\s)\s*/;
  const LEADING_SEP = /^(?:[:：]|[-—–](?=\s|$))\s*/;
  // "date modified: 2025" is not the label "date" followed by a value.
  const LONGER_LABEL = /^[\p{L} ]{1,40}[:：]/u;
  const VALUE_TAGS = 'img,a[href],input,textarea,select,video,audio';
  // A label in these ranks below one in the main content: site navigation, asides, menus
  // (a <footer> only when it is the page's, not an article's).
  const ASIDE = 'nav,aside,menu,[role=navigation],[role=complementary],[role=contentinfo],[role=menu],[role=menubar],[role=tablist],[role=search]';
  const LINK_LIST = 3; // links side by side, at least: a filter list, breadcrumbs, a menu
  // Between the items of a list, only separators: "Ada, Grace and Alan".
  const LIST_GLUE = /^(?:[\s,;|/·•&+]|\band\b|\bor\b)*$/i;
  const TIES_LOOKED = 8; // candidates of equal standing compared for disagreement
  const OTHERS_KEPT = 3; // other values of equal standing reported with the one taken

  // Direction marks are invisible: "ASIN\u200f:\u200e" is the label "ASIN:". Dropped, not spaced.
  const BIDI = /[\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
  const collapse = (s) => s.replace(BIDI, '').replace(WS, ' ').trim();
  const normalise = (s) => collapse(s).toLowerCase().replace(/[:：]+$/, '').trim();
  const ok = (value, path = null) => ({ value, error: null, path });
  const fail = (error) => ({ value: null, error, path: null });

  // The URL an <img> shows. Without images (browser.load_images off, the default) nothing
  // is fetched and the browser never picks a currentSrc, so this picks as it would have
  // (HTML's "select an image source"): the first <source> before the <img> in a <picture>
  // whose media and type apply, else the <img>'s own srcset (with src as its 1x), else src.
  // The choice is the browser's for this viewport at a density of 1, except for a `sizes`
  // this cannot evaluate (the next entry, or the viewport's width, stands in).
  const IMAGE_TYPES = /^image\/(avif|webp|png|x-png|apng|jpeg|jpg|pjpeg|gif|svg\+xml|bmp|x-icon|vnd\.microsoft\.icon|x-xbitmap)$/i;
  function imageUrl(img) {
    if (img.currentSrc) return img.currentSrc;
    const picture = img.parentElement && img.parentElement.localName === 'picture' ? img.parentElement : null;
    for (const source of picture ? picture.children : []) {
      if (source === img) break; // sources after the <img> are never considered
      if (source.localName !== 'source' || !source.getAttribute('srcset')) continue;
      const media = source.getAttribute('media');
      if (media && !matchMedia(media).matches) continue;
      const type = source.getAttribute('type');
      if (type && !IMAGE_TYPES.test(type.trim())) continue;
      const url = pickCandidate(srcsetCandidates(source.getAttribute('srcset')), source.getAttribute('sizes'), img);
      if (url) return url;
    }
    const src = img.getAttribute('src') ? img.src : null; // src="" names no image
    const own = img.getAttribute('srcset') ? srcsetCandidates(img.getAttribute('srcset')) : [];
    if (src && !own.some((c) => c.w !== null || c.x === 1)) own.push({ url: img.getAttribute('src'), x: 1, w: null });
    return pickCandidate(own, img.getAttribute('sizes'), img) || src;
  }

  // HTML's srcset parser, less its error cases: a URL runs to whitespace (trailing commas
  // end it), its descriptors to the next comma outside parentheses.
  function srcsetCandidates(srcset) {
    const out = [];
    let i = 0;
    while (i < srcset.length) {
      while (i < srcset.length && /[\s,]/.test(srcset[i])) i += 1;
      let j = i;
      while (j < srcset.length && !/\s/.test(srcset[j])) j += 1;
      let url = srcset.slice(i, j);
      let descriptors = '';
      if (url.endsWith(',')) {
        url = url.replace(/,+$/, '');
      } else {
        let depth = 0;
        let k = j;
        for (; k < srcset.length && !(srcset[k] === ',' && depth === 0); k += 1) {
          if (srcset[k] === '(') depth += 1;
          else if (srcset[k] === ')') depth = Math.max(0, depth - 1);
        }
        descriptors = srcset.slice(j, k);
        j = k + 1;
      }
      i = j;
      if (!url) continue;
      let x = null;
      let w = null;
      for (const token of descriptors.trim().split(/\s+/)) {
        const m = token.match(/^(\d*\.?\d+(?:e[+-]?\d+)?)([xw])$/i);
        if (m && m[2].toLowerCase() === 'x') x = parseFloat(m[1]);
        else if (m) w = parseFloat(m[1]);
      }
      if (x === null && w === null) x = 1;
      if ((x !== null && x > 0) || (w !== null && w > 0)) out.push({ url, x, w });
    }
    return out;
  }

  // The candidate for a density of window.devicePixelRatio: the smallest at least that
  // dense, else the densest (a width descriptor's density is its width over the slot's).
  function pickCandidate(candidates, sizes, img) {
    if (!candidates.length) return null;
    const slot = candidates.some((c) => c.w !== null) ? slotWidth(sizes, img) : 1;
    const dense = candidates.map((c) => ({ url: c.url, density: c.x !== null ? c.x : c.w / slot }));
    dense.sort((a, b) => a.density - b.density);
    const ratio = window.devicePixelRatio || 1;
    const chosen = dense.find((c) => c.density >= ratio) || dense[dense.length - 1];
    try {
      return new URL(chosen.url, document.baseURI).href;
    } catch (e) {
      return null; // not a URL: the field says "value empty", the other fields stand
    }
  }

  // The width in CSS pixels `sizes` gives an image: the first entry whose media condition
  // holds and whose length can be read (px, em, rem, viewport units, calc/min/max/clamp of
  // them), `auto` as the image's laid-out width; else the viewport's width (HTML's 100vw).
  function slotWidth(sizes, img) {
    for (const entry of topLevelSplit(sizes || '')) {
      const text = entry.trim();
      const lengthAt = text.endsWith(')') ? functionStart(text) : text.search(/\S+$/);
      if (lengthAt < 0) continue;
      const media = text.slice(0, lengthAt).trim();
      if (media && !matchMedia(media).matches) continue;
      const length = text.slice(lengthAt);
      if (length === 'auto') return Math.max(1, img.getBoundingClientRect().width || window.innerWidth);
      const px = lengthPx(length);
      if (px !== null) return Math.max(1, px);
    }
    return window.innerWidth;
  }

  function topLevelSplit(text) {
    const parts = [];
    let depth = 0;
    let from = 0;
    for (let i = 0; i < text.length; i += 1) {
      if (text[i] === '(') depth += 1;
      else if (text[i] === ')') depth = Math.max(0, depth - 1);
      else if (text[i] === ',' && depth === 0) {
        parts.push(text.slice(from, i));
        from = i + 1;
      }
    }
    parts.push(text.slice(from));
    return parts;
  }

  // Where the function call ending `text` starts (its name included), or -1.
  function functionStart(text) {
    let depth = 0;
    for (let i = text.length - 1; i >= 0; i -= 1) {
      if (text[i] === ')') depth += 1;
      else if (text[i] === '(' && --depth === 0) {
        const name = text.slice(0, i).match(/[a-z-]*$/i);
        return i - name[0].length;
      }
    }
    return -1;
  }

  // A length in CSS pixels: relative units made absolute first, then CSS Typed OM does the
  // arithmetic of calc(), min(), max() and clamp(); null when it cannot.
  function lengthPx(length) {
    const vw = window.innerWidth / 100;
    const vh = window.innerHeight / 100;
    const em = parseFloat(getComputedStyle(document.documentElement).fontSize) || 16;
    const per = { px: 1, vw, vh, vmin: Math.min(vw, vh), vmax: Math.max(vw, vh), em, rem: em };
    const absolute = length.replace(/(\d*\.?\d+)(px|vw|vh|vmin|vmax|em|rem)\b/gi,
      (_, n, unit) => `${parseFloat(n) * per[unit.toLowerCase()]}px`);
    try {
      const value = CSSNumericValue.parse(absolute).to('px').value;
      return Number.isFinite(value) ? value : null;
    } catch (e) {
      return null;
    }
  }

  // An image not loaded yet (images off, or lazy and not reached) has no size of its own,
  // so its empty box says nothing of how it shows; one whose style sizes it 0 is hidden.
  function unloadedImage(el) {
    if (el.localName !== 'img' || el.complete) return false;
    if (!el.computedStyleMap) return true;
    const style = el.computedStyleMap();
    return !['width', 'height', 'max-width', 'max-height'].some((property) => {
      const value = style.get(property);
      return value instanceof CSSUnitValue && value.value === 0;
    });
  }

  function ownStatus(el) {
    if (SKIP.has(el.localName) || el.hasAttribute('hidden')) return REJECTED;
    if (el.getAttribute('aria-hidden') === 'true') return REJECTED;
    const cs = getComputedStyle(el);
    if (cs.display === 'none' || cs.contentVisibility === 'hidden') return REJECTED;
    const contents = cs.display === 'contents';
    let boxed = true;
    if (!contents) {
      // Inside a closed <details> or content-visibility:hidden, boxes exist but never paint.
      if (el.checkVisibility && !el.checkVisibility()) return REJECTED;
      const r = el.getBoundingClientRect();
      if ((r.width === 0 || r.height === 0) && !unloadedImage(el)) {
        if (el.getClientRects().length === 0) return REJECTED; // not rendered at all
        if (cs.overflowX !== 'visible' || cs.overflowY !== 'visible') return REJECTED;
        boxed = false;
      }
    }
    const visible = cs.visibility === 'visible';
    return {
      reject: false,
      shown: visible && (contents || boxed),
      ownText: visible,
      visible,
      block: !contents && !cs.display.startsWith('inline'),
    };
  }

  function compileRegex(source) {
    try {
      return { re: new RegExp(source, 'iu'), error: null };
    } catch (e) {
      try {
        return { re: new RegExp(source, 'i'), error: null };
      } catch (e2) {
        return { re: null, error: `label_regex not valid in the browser: ${e2.message}` };
      }
    }
  }

  // One resolve() call. Visibility (computed style, boxes) is the costly part, so it is
  // computed lazily and memoised: only for label candidates, their ancestors and the
  // value elements, never for the whole page.
  class Ctx {
    constructor(root, fields) {
      this.root = root;
      this.fields = fields;
      this.memo = new Map();
      this.texts = new Map();
      this.exact = new Map(); // normalised label -> [{fi, prio}]
      this.labels = []; // {label, fi, after, prio}: prio is the label's place in the field's list
      this.regexes = fields.map((f) => (f.labelRegex ? compileRegex(f.labelRegex) : null));
      fields.forEach((f, fi) => {
        (f.labels || []).forEach((label, prio) => {
          if (!label) return;
          if (!this.exact.has(label)) this.exact.set(label, []);
          this.exact.get(label).push({ fi, prio });
          this.labels.push({ label, fi, after: f.relation === 'after', prio });
        });
      });
      // Prefix labels and regexes match texts of any length; exact labels only short ones.
      this.openEnded = fields.some((f) => f.relation === 'after' || f.labelRegex);
      this.longest = Math.max(0, ...this.labels.map((l) => l.label.length));
      this.candidates = null;
    }

    status(el) {
      let st = this.memo.get(el);
      if (st) return st;
      const parent = el.parentElement;
      st = parent && this.status(parent).reject ? REJECTED : ownStatus(el);
      this.memo.set(el, st);
      return st;
    }

    // One walk over the root's text nodes collects the label candidates of every field.
    // A label is the text of the element holding it: the cheap textContent pre-filters,
    // the visible text decides.
    index() {
      if (this.candidates) return this.candidates;
      const candidates = this.fields.map(() => []);
      const seen = new Set();
      const walker = document.createTreeWalker(this.root, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const el = node.parentElement;
        if (!el || seen.has(el) || SKIP.has(el.localName) || !/\S/.test(node.data)) continue;
        seen.add(el);
        const only = el.firstChild === node && node.nextSibling === null;
        const raw = only ? node.data : el.textContent;
        if (raw.length > TEXT_CAP || !(this.couldMatch(raw) || (!only && this.couldMatch(node.data)))) continue;
        if (this.status(el).reject) continue;
        for (const m of this.matches(this.textOf(el))) candidates[m.fi].push({ ...m, el });
      }
      for (let fi = 0; fi < candidates.length; fi++) {
        // The innermost match wins: a wrapper around a label is not another label.
        const all = candidates[fi];
        const list = all.filter((c) => !all.some((o) => o.el !== c.el && c.el.contains(o.el)));
        for (const c of list) c.demoted = this.demoted(c.el);
        // The main content first, then the user's label order, exact before prefix, then
        // the order of the page.
        list.sort(
          (a, b) =>
            a.demoted - b.demoted ||
            a.prio - b.prio ||
            a.rank - b.rank ||
            (a.el.compareDocumentPosition(b.el) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1),
        );
        candidates[fi] = list;
      }
      this.candidates = candidates;
      return candidates;
    }

    // A cheap first look: most texts on a page are far longer than any label.
    couldMatch(raw) {
      if (!this.openEnded && raw.length > this.longest * 2 + 16 && collapse(raw).length > this.longest + 2) return false;
      return this.matches(collapse(raw)).length > 0;
    }

    // A label in navigation, an aside or a menu, or a link whose neighbour is another link
    // (a filter list, breadcrumbs): 1, else 0. Such a match is used only when nothing in
    // the main content matches.
    demoted(el) {
      if (el.closest(ASIDE)) return 1;
      const footer = el.closest('footer');
      if (footer && !footer.closest('article,main,section')) return 1;
      const link = el.closest('a[href]');
      if (!link) return 0;
      let item = link;
      for (let up = 0; up < 2 && item.parentElement && this.textOf(item.parentElement) === this.textOf(link); up++) {
        item = item.parentElement;
      }
      // Its siblings of the same kind, each a link: <li><a>…</a></li> × 3, or <a> × 3. A
      // label link beside its value link (<a>Publisher</a>: <a>Contoso</a>) is not a list.
      const parent = item.parentElement;
      if (!parent) return 0;
      let links = 0;
      for (const sib of parent.children) {
        if (sib.localName === item.localName && (sib.matches('a[href]') || sib.querySelector('a[href]'))) links++;
      }
      return links >= LINK_LIST ? 1 : 0;
    }

    // Which fields a text labels: [{fi, prio, rank, rest, kind, label}]; rank 0 exact,
    // 1 prefix, 2 weak prefix; prio the label's place in the field's list (a regex: last).
    matches(text) {
      if (!text) return [];
      const norm = normalise(text);
      const out = [];
      for (const { fi, prio } of this.exact.get(norm) || []) out.push({ fi, prio, rank: 0, rest: '', kind: 'label', label: norm });
      if (out.length === 0) {
        const low = text.toLowerCase();
        const source = low.length === text.length ? text : low;
        let longest = 0;
        const prefixed = [];
        for (const { label, fi, after, prio } of this.labels) {
          if (label.length >= low.length || !low.startsWith(label)) continue;
          const sep = PREFIX_SEP.exec(source.slice(label.length));
          if (!sep) continue;
          const rest = source.slice(label.length + sep[0].length);
          const plain = sep[0].trim() === '';
          if (!rest || (plain && LONGER_LABEL.test(rest))) continue;
          longest = Math.max(longest, label.length);
          if (after) prefixed.push({ fi, prio, rank: plain ? 2 : 1, rest, kind: 'label', len: label.length, label });
        }
        for (const m of prefixed) if (m.len === longest) out.push(m);
      }
      if (text.length <= REGEX_CAP) {
        this.regexes.forEach((rx, fi) => {
          if (!rx || !rx.re || out.some((m) => m.fi === fi)) return;
          const m = rx.re.exec(norm);
          if (!m) return;
          let rest = '';
          if (this.fields[fi].relation === 'after') {
            const m2 = rx.re.exec(text);
            if (m2) rest = collapse(text.slice(m2.index + m2[0].length)).replace(/^[:：\-—–]\s*/, '');
          }
          const prio = (this.fields[fi].labels || []).length;
          out.push({ fi, prio, rank: m[0] === norm ? 0 : 1, rest, kind: 'regex', label: m[0] });
        });
      }
      return out;
    }

    // Visible text of an element: hidden parts left out, blocks and <br> spaced.
    textOf(el) {
      let text = this.texts.get(el);
      if (text !== undefined) return text;
      const parts = [];
      const collect = (node) => {
        const st = this.status(node);
        for (let n = node.firstChild; n; n = n.nextSibling) {
          if (n.nodeType === 3) {
            if (st.ownText) parts.push(n.data);
          } else if (n.nodeType === 1) {
            if (n.localName === 'br') parts.push(' ');
            else if (!this.status(n).reject) {
              const block = this.status(n).block;
              if (block) parts.push(' ');
              collect(n);
              if (block) parts.push(' ');
            }
          }
        }
      };
      if (!this.status(el).reject) collect(el);
      text = collapse(parts.join(''));
      this.texts.set(el, text);
      return text;
    }

    isLabel(el) {
      return this.exact.has(normalise(this.textOf(el)));
    }

    // Is this element, or something in it, exactly a label of some field? Then it is a
    // neighbour's row, never a value.
    isOrHasLabel(el) {
      if (this.status(el).reject) return false;
      if (this.isLabel(el)) return true;
      const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
      const seen = new Set();
      let budget = 200;
      for (let node = walker.nextNode(); node && budget-- > 0; node = walker.nextNode()) {
        const parent = node.parentElement;
        if (!parent || seen.has(parent) || !/\S/.test(node.data)) continue;
        seen.add(parent);
        if (!this.status(parent).reject && this.isLabel(parent)) return true;
      }
      return false;
    }

    hasContent(el) {
      return this.textOf(el) !== '' || el.matches(VALUE_TAGS) || el.querySelector(VALUE_TAGS) !== null;
    }

    // A wrapper adds nothing when its text is the label's text: climbing it keeps the row.
    canClimb(cur) {
      const parent = cur.parentElement;
      return !!parent && parent !== this.root && this.root.contains(parent) && this.textOf(parent) === this.textOf(cur);
    }

    // The element's own text nodes, without its children's: <h1>Title <small>sub</small></h1>.
    ownTextOf(el) {
      const st = this.status(el);
      if (st.reject || !st.ownText) return '';
      const parts = [];
      for (let n = el.firstChild; n; n = n.nextSibling) if (n.nodeType === 3) parts.push(n.data);
      return collapse(parts.join(' '));
    }

    elementValue(el, own = false) {
      if (el.matches('input,textarea,select')) return el.value ? ok(el.value) : fail('value empty');
      const text = own ? this.ownTextOf(el) : this.textOf(el);
      if (text) return ok(text);
      if (own && !el.matches('img,a[href]')) return fail('value empty'); // not a child's link
      const media = el.matches('img') ? el : [...el.querySelectorAll('img')].find((i) => !this.status(i).reject);
      const url = media && imageUrl(media);
      if (url) return ok(url);
      const link = el.matches('a[href]') ? el : [...el.querySelectorAll('a[href]')].find((a) => !this.status(a).reject);
      if (link && link.href) return ok(link.href);
      return fail('value empty');
    }

    // A value element for a field: one text, or for a many field the items of a list.
    valueOf(el, field) {
      if (!field.many) return this.elementValue(el, field.own);
      const items = this.listItems(el, field.own);
      return items ? ok(items) : this.elementValue(el, field.own);
    }

    // The items of a list element: its repeated children (<li>, links, spans of one kind)
    // with only separators between them, or lines split by <br>. null when it is one text
    // (Python then splits it on the field's separator).
    listItems(el, own) {
      let cur = el;
      for (let depth = 0; depth < 4; depth++) {
        const lines = this.lines(cur);
        if (lines) return lines;
        const kids = [...cur.children].filter((k) => !this.status(k).reject && this.hasContent(k));
        if (kids.length === 1 && this.textOf(kids[0]) === this.textOf(cur)) {
          // A list of one is still a list: its item is not split on the separator.
          if (cur.matches('ul,ol') && kids[0].localName === 'li') return [this.textOf(kids[0])];
          cur = kids[0];
          continue;
        }
        if (kids.length < 2 || kids.some((k) => k.localName !== kids[0].localName)) return null;
        const loose = [...cur.childNodes].filter((n) => n.nodeType === 3).map((n) => n.data).join(' ');
        if (!LIST_GLUE.test(loose)) return null;
        // "<span>Free</span> <span>delivery</span>" is a phrase: inline words count as items
        // only with a separator between them; list items, links and blocks need none.
        const itemish = kids[0].localName === 'li' || kids[0].matches('a[href]') || this.status(kids[0]).block;
        if (!itemish && !/\S/.test(loose)) return null;
        const items = kids.map((k) => this.elementValue(k, own).value).filter((v) => v !== null);
        return items.length ? items : null;
      }
      return null;
    }

    // "Tags: <a>x</a>, <a>y</a>": the value element and its like that follow it, with only
    // separators between them; null when it stands alone.
    siblingRun(first) {
      const run = [first];
      let glue = '';
      for (let n = first.nextSibling; n; n = n.nextSibling) {
        if (n.nodeType === 3) {
          glue += n.data;
          if (!LIST_GLUE.test(glue)) break;
          continue;
        }
        if (n.nodeType !== 1) continue;
        if (n.localName !== first.localName || this.status(n).reject || this.isOrHasLabel(n)) break;
        run.push(n);
        glue = '';
      }
      const itemish = first.localName === 'li' || first.matches('a[href]') || this.status(first).block;
      return run.length >= 2 && itemish ? run : null;
    }

    // Lines split by <br>, inline markup and all: "Ada <i>Lovelace</i><br>Grace Hopper".
    lines(el) {
      if (!el.querySelector(':scope > br')) return null;
      const items = [''];
      const st = this.status(el);
      for (let n = el.firstChild; n; n = n.nextSibling) {
        if (n.nodeType === 1 && n.localName === 'br') items.push('');
        else if (n.nodeType === 3 && st.ownText) items[items.length - 1] += n.data;
        else if (n.nodeType === 1 && !this.status(n).reject) items[items.length - 1] += ` ${this.textOf(n)} `;
      }
      const kept = items.map(collapse).filter((t) => t);
      return kept.length >= 2 ? kept : null;
    }

    after(label) {
      let cur = label;
      for (let level = 0; level < 3; level++) {
        const parts = [];
        const parentStatus = this.status(cur.parentElement || cur);
        for (let n = cur.nextSibling; n; n = n.nextSibling) {
          if (n.nodeType === 3) {
            if (parentStatus.ownText) parts.push(n.data);
            continue;
          }
          if (n.nodeType !== 1) continue;
          if (n.localName === 'br') break;
          const st = this.status(n);
          if (st.reject) continue;
          if (this.isOrHasLabel(n)) break;
          if (st.block && collapse(parts.join(''))) break;
          parts.push(' ', this.textOf(n), ' ');
          if (st.block) break;
        }
        const text = collapse(parts.join('')).replace(LEADING_SEP, '');
        if (text) return ok(text);
        if (!this.canClimb(cur)) break;
        cur = cur.parentElement;
      }
      return fail('value empty');
    }

    next(label, field) {
      let cur = label;
      for (let level = 0; level < 3; level++) {
        const parentStatus = this.status(cur.parentElement || cur);
        for (let n = cur.nextSibling; n; n = n.nextSibling) {
          if (n.nodeType === 3) {
            const text = parentStatus.ownText ? collapse(n.data).replace(LEADING_SEP, '') : '';
            if (text) return ok(text);
            continue;
          }
          if (n.nodeType !== 1) continue;
          const st = this.status(n);
          // An image not loaded yet or an empty link has no size but is still the value.
          const media = n.matches(VALUE_TAGS) || n.querySelector(VALUE_TAGS) !== null;
          if (!st.visible || !(st.shown || media) || !this.hasContent(n)) continue;
          if (this.isOrHasLabel(n)) return fail('value empty');
          const run = field.many ? this.siblingRun(n) : null;
          if (run) {
            const items = run.map((k) => this.elementValue(k, field.own).value).filter((v) => v !== null);
            if (items.length) return ok(items);
          }
          return this.valueOf(n, field);
        }
        if (!this.canClimb(cur)) break;
        cur = cur.parentElement;
      }
      return fail('value empty');
    }

    cell(label, field) {
      const cell = label.closest('dt,dd,th,td,[role=cell],[role=gridcell],[role=rowheader],[role=columnheader]');
      if (!cell || !this.root.contains(cell)) return fail('label not in a cell');
      let value = null;
      const tag = cell.localName;
      if (tag === 'dt') {
        for (let s = cell.nextElementSibling; s && !value; s = s.nextElementSibling) {
          if (s.localName === 'dd') value = s;
          else if (s.localName !== 'dt') break;
        }
      } else if (tag === 'th' || cell.getAttribute('role') === 'columnheader') {
        const columnHeader = !!cell.closest('thead') || cell.getAttribute('role') === 'columnheader';
        if (!columnHeader) value = this.nextCell(cell, 'td');
        if (!value) value = this.columnCell(cell);
      } else {
        value = this.nextCell(cell, tag === 'td' ? 'td' : null);
      }
      if (!value) return fail('value empty');
      if (this.status(value).reject || this.isOrHasLabel(value)) return fail('value empty');
      return this.valueOf(value, field);
    }

    nextCell(cell, tag) {
      for (let s = cell.nextElementSibling; s; s = s.nextElementSibling) {
        if (this.status(s).reject) continue;
        if (!tag || s.localName === tag) return s;
        if (s.localName !== 'th') return null;
      }
      return null;
    }

    // A column header: the cell in the same column of the first body row.
    columnCell(th) {
      const row = th.parentElement;
      const table = th.closest('table');
      if (!row || !table || !row.cells) return null;
      let column = 0;
      for (const c of row.cells) {
        if (c === th) break;
        column += c.colSpan || 1;
      }
      for (const r of table.rows) {
        if (r === row || r.closest('thead') || r.closest('table') !== table) continue;
        if (![...r.cells].some((c) => c.localName === 'td')) continue;
        let at = 0;
        for (const c of r.cells) {
          if (at === column) return c;
          at += c.colSpan || 1;
          if (at > column) return null;
        }
        return null;
      }
      return null;
    }

    attr(label, name) {
      let value = label.getAttribute(name);
      if (value === null) {
        const holder = label.parentElement && label.parentElement.closest(`[${CSS.escape(name)}]`);
        const page = holder === document.documentElement || holder === document.body;
        if (holder && !page && this.root.contains(holder)) value = holder.getAttribute(name);
      }
      if (value === null) {
        const sib = label.nextElementSibling;
        const holder = sib && (sib.hasAttribute(name) ? sib : sib.querySelector(`[${CSS.escape(name)}]`));
        if (holder) value = holder.getAttribute(name);
      }
      value = value === null ? '' : collapse(value);
      return value ? ok(value) : fail('value empty');
    }

    apply(field, cand) {
      const el = cand.el;
      switch (field.relation) {
        case 'after':
          return cand.rest ? ok(cand.rest) : this.after(el);
        case 'cell':
          return this.cell(el, field);
        case 'attr':
          return this.attr(el, field.attr);
        default:
          return this.next(el, field);
      }
    }

    pathTo(el) {
      const path = [];
      for (let cur = el; cur && cur !== this.root; cur = cur.parentElement) {
        path.unshift(Array.prototype.indexOf.call(cur.parentElement.children, cur));
      }
      return path;
    }

    viaLandmark(field, fi) {
      const rx = this.regexes[fi];
      if (rx && rx.error && !(field.labels || []).length) return fail(rx.error);
      const candidates = this.index()[fi];
      if (candidates.length === 0) return fail(rx && rx.error ? rx.error : 'label not found');
      // The first candidate with a value wins. Others of equal standing (place, label,
      // kind of match) that give a different value go with it, so that Python can say the
      // field was ambiguous once the values are finished ("$12" and "12.00 USD" may agree).
      let first = null;
      let best = null;
      let looked = 0;
      const others = [];
      for (const cand of candidates) {
        if (best && !(cand.demoted === best.cand.demoted && cand.prio === best.cand.prio && cand.rank === best.cand.rank)) break;
        const result = this.apply(field, cand);
        if (result.value === null) {
          first = first || result;
        } else if (!best) {
          best = { cand, result };
        } else if (JSON.stringify(result.value) !== JSON.stringify(best.result.value) && others.length < OTHERS_KEPT) {
          if (!others.some((o) => JSON.stringify(o) === JSON.stringify(result.value))) others.push(result.value);
        }
        if (best && ++looked >= TIES_LOOKED) break;
      }
      if (!best) return first;
      return { ...ok(best.result.value, this.pathTo(best.cand.el)), others, label: best.cand.label };
    }

    viaCache(field, fi) {
      let el = this.root;
      for (const i of field.cachedPath) {
        el = el && el.children[i];
        if (!el) return fail('cache stale');
      }
      if (this.status(el).reject) return fail('cache stale');
      const found = this.matches(this.textOf(el)).find((m) => m.fi === fi);
      if (!found) return fail('cache stale');
      // A remembered place never outranks the user's label order: below the first label,
      // the landmark search decides.
      if (found.prio > 0) return fail('cache below a higher label');
      const cand = { ...found, el };
      const result = this.apply(field, cand);
      return result.value !== null ? ok(result.value, field.cachedPath.slice()) : result;
    }

    viaCss(field) {
      let el;
      try {
        el = this.root.querySelector(field.css);
      } catch (e) {
        return fail(`invalid css selector: ${field.css}`);
      }
      if (!el) return fail('css matched nothing');
      const attr = field.relation === 'attr' && field.attr;
      const read = (e) => {
        if (!attr) return this.elementValue(e, field.own);
        const value = collapse(e.getAttribute(attr) || '');
        return value ? ok(value) : fail('value empty');
      };
      if (!field.many) return read(el);
      // An attribute is read wherever the element is (a <meta> in the head); a text only
      // from what is shown.
      const all = [...this.root.querySelectorAll(field.css)].filter((e) => attr || !this.status(e).reject);
      if (all.length === 1 && !attr) return this.valueOf(all[0], field);
      const items = all.map((e) => read(e).value).filter((v) => v !== null);
      return items.length ? ok(items) : fail('value empty');
    }

    resolveField(field, fi) {
      let landmarkError = null;
      let lastError = 'no strategy to try';
      for (const strategy of field.order || ['cached', 'landmark', 'css']) {
        let result;
        if (strategy === 'cached' && field.cachedPath) result = this.viaCache(field, fi);
        else if (strategy === 'landmark' && ((field.labels || []).length || field.labelRegex)) result = this.viaLandmark(field, fi);
        else if (strategy === 'css' && field.css) result = this.viaCss(field);
        else continue;
        if (result.value !== null) {
          const found = { value: result.value, strategy, error: null, path: result.path };
          if (result.others && result.others.length) Object.assign(found, { others: result.others, label: result.label });
          return found;
        }
        lastError = result.error;
        if (strategy === 'landmark') landmarkError = result.error;
      }
      return { value: null, strategy: null, error: landmarkError || lastError, path: null };
    }
  }

  function findRoot(selector) {
    // The whole document: <meta property=og:…> in the head is a value a css field may read.
    if (!selector) return { root: document.documentElement, error: null };
    let all;
    try {
      all = document.querySelectorAll(selector);
    } catch (e) {
      return { root: null, error: `invalid root selector: ${selector}` };
    }
    if (all.length === 0) return { root: null, error: 'root not found' };
    const probe = new Ctx(all[0], []);
    for (const el of all) if (!probe.status(el).reject) return { root: el, error: null };
    return { root: all[0], error: null };
  }

  function resolve(spec) {
    const fields = spec.fields || [];
    const found = findRoot(spec.root);
    const out = { fields: {}, rootFound: !!found.root, rootError: found.error };
    if (!found.root) {
      for (const f of fields) out.fields[f.name] = { value: null, strategy: null, error: found.error, path: null };
      return out;
    }
    const ctx = new Ctx(found.root, fields);
    fields.forEach((f, fi) => {
      out.fields[f.name] = ctx.resolveField(f, fi);
    });
    return out;
  }

  function errorShown(spec, errorSelector) {
    if (!errorSelector) return null;
    const { root } = findRoot(spec.root);
    const scope = root || document;
    const ctx = new Ctx(root || document.documentElement, []);
    for (const el of scope.querySelectorAll(errorSelector)) {
      if (ctx.status(el).reject) continue;
      const text = ctx.textOf(el);
      if (text) return text;
    }
    return null;
  }

  function summarise(result, fields) {
    let any = false;
    let required = true;
    for (const f of fields) {
      const r = result.fields[f.name];
      if (r && r.value !== null) any = true;
      else if (f.required) required = false;
    }
    return { any, complete: fields.length === 0 || (required && (any || fields.some((f) => f.required))) };
  }

  function settle(spec, timeoutMs, quietMs, errorSelector) {
    return new Promise((done, failed) => {
      const fields = spec.fields || [];
      const started = performance.now();
      let lastChange = started;
      let lastCheck = -Infinity;
      let last = null;
      let finished = false;
      let observer = null;
      let observed = null;
      let pending = null;
      let ticker = null;
      let deadline = null;

      if (errorSelector) {
        try {
          document.querySelector(errorSelector);
        } catch (e) {
          done({ state: 'error', result: resolve(spec), errorText: `invalid error selector: ${errorSelector}`, waitedMs: 0 });
          return;
        }
      }

      const cleanup = () => {
        if (observer) observer.disconnect();
        if (pending) clearTimeout(pending);
        if (ticker !== null) clearInterval(ticker);
        if (deadline !== null) clearTimeout(deadline);
      };
      const finish = (state, errorText = null) => {
        if (finished) return;
        finished = true;
        cleanup();
        done({ state, result: last, errorText, waitedMs: performance.now() - started });
      };
      const watch = () => {
        const target = (spec.root && findRoot(spec.root).root) || document.documentElement || document;
        if (target === observed) return;
        if (!observer) {
          observer = new MutationObserver(() => {
            lastChange = performance.now();
            schedule();
          });
        } else {
          observer.disconnect();
        }
        observer.observe(target, { subtree: true, childList: true, characterData: true, attributes: true });
        observed = target;
      };
      const check = () => {
        if (finished) return;
        if (pending) clearTimeout(pending);
        pending = null;
        lastCheck = performance.now();
        try {
          last = resolve(spec);
          if (last.rootError && last.rootError !== 'root not found') return finish('error', last.rootError);
          const { any, complete } = summarise(last, fields);
          if (complete) return finish('ready');
          const errorText = errorShown(spec, errorSelector);
          if (errorText) return finish('error', errorText);
          const now = performance.now();
          if (any && now - lastChange >= quietMs) return finish('ready');
          if (now - started >= timeoutMs) return finish('timeout');
          watch();
        } catch (e) {
          finished = true;
          cleanup();
          failed(e);
        }
      };
      // Mutations come in bursts: re-resolve at most once per 10 ms (a microtask when
      // the last look is older than that, else a short timer).
      const schedule = () => {
        if (finished || pending !== null) return;
        const wait = 10 - (performance.now() - lastCheck);
        if (wait > 0) {
          pending = setTimeout(check, wait);
        } else {
          pending = 0;
          queueMicrotask(check);
        }
      };

      check();
      if (finished) return;
      ticker = setInterval(check, 100);
      deadline = setTimeout(check, Math.max(0, timeoutMs - (performance.now() - started)) + 1);
    });
  }

  // The plans this document holds, by key, the most recently used last. A call brings its
  // plan when Python does not know the document to hold it; otherwise only the key, and
  // null here means "send it again" (a new document, or a plan evicted).
  const PLANS_KEPT = 16;
  const plans = new Map();
  function plan(key, spec) {
    const held = spec || plans.get(key);
    if (!held) return null;
    plans.delete(key);
    plans.set(key, held);
    if (plans.size > PLANS_KEPT) plans.delete(plans.keys().next().value);
    return held;
  }

  // An answer (settle's, or resolve's wrapped like it) as Python reads it: one JSON text,
  // which crosses CDP, the driver and the Playwright client as a single string instead of
  // a tree of tagged values, without what Python does not use (the root's error, a field's
  // null error, strategy or path, and the path of a cached field, which Python sent).
  function wire(answer) {
    const out = { ...answer };
    const result = answer.result;
    if (result) {
      const fields = {};
      for (const name of Object.keys(result.fields)) {
        const r = result.fields[name];
        const f = {};
        if (r.value !== null) f.value = r.value;
        if (r.strategy !== null) f.strategy = r.strategy;
        if (r.error !== null) f.error = r.error;
        if (r.path !== null && r.strategy !== 'cached') f.path = r.path;
        if (r.others) Object.assign(f, { others: r.others, label: r.label });
        fields[name] = f;
      }
      out.result = { fields, rootFound: result.rootFound };
    }
    return JSON.stringify(out);
  }

  window.__landmark = Object.freeze({ version: VERSION, normalise, plan, resolve, settle, wire });
})();
