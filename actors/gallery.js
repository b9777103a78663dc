// In-page helpers for gallery pages: discovery by scrolling, seeking a card, opening
// and closing its panel. Installed once per page as window.__landmarkGallery.
//
// Why in-page: every step is one CDP round trip instead of dozens, and nothing here
// depends on requestAnimationFrame or Playwright's actionability checks, which stall
// on pages that are not in front. Scroll handlers are dispatched synchronously after
// setting scrollTop so lazy loaders and virtualised lists react at once, and waits
// are MutationObservers with deadlines.
(() => {
  if (window.__landmarkGallery) return;

  const scrollsY = (el) => /(auto|scroll|overlay)/.test(getComputedStyle(el).overflowY);

  // A panel is open when an element matching its selector is shown (see close()).
  const openPanel = (selector) => {
    for (const el of document.querySelectorAll(selector)) {
      if (el.tagName === "DIALOG" && !el.open) continue;
      if (el.hidden) continue;
      if (el.checkVisibility ? el.checkVisibility() : el.getClientRects().length > 0) return el;
    }
    return null;
  };

  // A <dialog>'s own close control (so the page's handlers run), else dialog.close().
  const closeDialog = (dialog) => {
    const own = dialog.querySelector(
      'form[method="dialog"] button, button[aria-label*="close" i], [data-close], .close'
    );
    if (own) own.click();
    if (dialog.open) dialog.close();
  };

  const cssPath = (el) => {
    if (el === document.scrollingElement || el === document.documentElement) return null;
    if (el.id) return `#${CSS.escape(el.id)}`;
    const parts = [];
    for (let node = el; node && node.nodeType === 1 && node !== document.body; node = node.parentElement) {
      const index = Array.prototype.indexOf.call(node.parentElement.children, node) + 1;
      parts.unshift(`${node.tagName.toLowerCase()}:nth-child(${index})`);
    }
    return `body > ${parts.join(" > ")}`;
  };

  // The nearest ancestor of a card that scrolls and overflows; else the nearest that is
  // set to scroll (a list too short to overflow yet, still loading); else the window.
  const findScroller = (cardSelector, explicit) => {
    if (explicit) return document.querySelector(explicit);
    const card = document.querySelector(cardSelector);
    let settable = null;
    for (let el = card && card.parentElement; el && el !== document.body; el = el.parentElement) {
      if (!scrollsY(el)) continue;
      if (el.scrollHeight > el.clientHeight + 1) return el;
      settable = settable || el;
    }
    return settable || document.scrollingElement;
  };

  const scrollBy = (scroller) => {
    const before = scroller.scrollTop;
    scroller.scrollTop = before + Math.max(1, Math.floor(scroller.clientHeight * 0.9));
    const target = scroller === document.scrollingElement ? window : scroller;
    target.dispatchEvent(new Event("scroll"));
    return scroller.scrollTop > before;
  };

  const scrollToTop = (scroller) => {
    scroller.scrollTop = 0;
    const target = scroller === document.scrollingElement ? window : scroller;
    target.dispatchEvent(new Event("scroll"));
  };

  // Resolve true when `changed()` holds after a mutation under `node`, false after `ms`.
  // Pages mutate for many reasons (status text, images); only what `changed` checks counts.
  const mutationUntil = (node, ms, changed) =>
    new Promise((resolve) => {
      let timer = null;
      const observer = new MutationObserver(() => {
        if (changed()) finish(true);
      });
      const finish = (value) => {
        observer.disconnect();
        clearTimeout(timer);
        resolve(value);
      };
      observer.observe(node, { childList: true, subtree: true });
      timer = setTimeout(() => finish(false), ms);
    });

  // The list grew (or, virtualised, shifted): its length or its last card changed.
  const cardsChange = (root, ms, cardSelector) => {
    const snapshot = () => {
      const cards = document.querySelectorAll(cardSelector);
      return [cards.length, cards[cards.length - 1]];
    };
    const [count, last] = snapshot();
    return mutationUntil(root, ms, () => {
      const [nowCount, nowLast] = snapshot();
      return nowCount !== count || nowLast !== last;
    });
  };

  const linkOf = (el, args) => {
    const link = args.linkSelector
      ? el.querySelector(args.linkSelector)
      : el.matches("a[href]") ? el : el.querySelector("a[href]");
    return link ? link.href : null;
  };

  // What one discovery (args.run) has already sent to Python. A step that sent every card
  // in the DOM made a long gallery quadratic: at 10,000 cards the actor's CPU went to
  // decoding cards it had seen, and its pages waited. A card comes again only if its
  // identity changed (a virtualised list reuses its elements); Python still drops repeats.
  let sentFor = null;
  let sent = new Set(); // [attr, href, text] of every card sent
  let sentText = new WeakMap(); // card -> its textContent when last read (text identities)

  const readCard = (el, args) => {
    let text = null;
    if (args.wantText) {
      const raw = el.textContent;
      if (args.run && sentText.get(el) === raw) return null; // unchanged since sent
      sentText.set(el, raw);
      text = (el.innerText || raw || "").trim();
    }
    return { attr: args.idAttr ? el.getAttribute(args.idAttr) : null, href: linkOf(el, args), text };
  };

  const collect = (args) => {
    if (args.run !== sentFor) {
      sentFor = args.run;
      sent = new Set();
      sentText = new WeakMap();
    }
    const cards = [];
    for (const el of document.querySelectorAll(args.cardSelector)) {
      const card = readCard(el, args);
      if (card === null) continue;
      if (args.run) {
        const key = JSON.stringify([card.attr, card.href, card.text]);
        if (sent.has(key)) continue;
        sent.add(key);
      }
      cards.push(card);
    }
    return cards;
  };

  // The card for one container: by its id attribute, else by its link. By id, the browser
  // matches the attribute itself: a seek asks at every step, and a loop over every card in
  // JavaScript made each step cost as much as the gallery was long.
  const findCard = (args) => {
    if (args.idAttr) {
      const sameId = `[${CSS.escape(args.idAttr)}="${CSS.escape(args.id)}"]`;
      for (const el of document.querySelectorAll(sameId)) {
        if (el.matches(args.cardSelector)) return el;
      }
      return null;
    }
    for (const el of document.querySelectorAll(args.cardSelector)) {
      if (linkOf(el, args) === args.href) return el;
    }
    return null;
  };

  const scrollerFor = (args) => {
    const scroller = findScroller(args.cardSelector, args.scrollContainer);
    if (!scroller) throw new Error(`scroll container not found: ${args.scrollContainer}`);
    return scroller;
  };

  window.__landmarkGallery = {
    // Wait until the first card exists (the list is often filled by a fetch after load).
    async ready(args) {
      const deadline = performance.now() + args.readyMs;
      while (!document.querySelector(args.cardSelector)) {
        const left = deadline - performance.now();
        const appeared = () => !!document.querySelector(args.cardSelector);
        if (left <= 0 || !(await mutationUntil(document.body, left, appeared))) {
          return !!document.querySelector(args.cardSelector);
        }
      }
      return true;
    },

    // The cards in the DOM now: discovery's first chunk, sent before any scrolling or
    // waiting, so extraction starts while the rest of the gallery is still being found.
    cards(args) {
      return collect(args);
    },

    // One discovery step: collect, scroll a screen, collect again; at the bottom,
    // wait up to idleMs for the list to grow. `exhausted` means it did not.
    async step(args) {
      const started = performance.now();
      const scroller = scrollerFor(args);
      const cards = collect(args);
      const moved = scrollBy(scroller);
      cards.push(...collect(args));
      let exhausted = false;
      let grewAfterMs = null;
      if (!moved) {
        const root = scroller === document.scrollingElement ? document.body : scroller;
        const grew = await cardsChange(root, args.idleMs, args.cardSelector);
        if (grew) {
          grewAfterMs = performance.now() - started;
          cards.push(...collect(args));
        } else {
          exhausted = true;
        }
      }
      return { cards, exhausted, grewAfterMs, scroller: cssPath(scroller) };
    },

    // Bring the container's card into the DOM and into view: search down, then once from
    // the top (a virtualised list may have dropped it above us). At most args.seekMs: deep
    // in a long gallery a fresh page (after a recycle, or a page replaced) needs a long way
    // down, and a seek cut off from outside left a page that had to be replaced, whose
    // successor started from the top again and was cut off the same way. Stopped from
    // inside, the page keeps its place and the next attempt goes on from there.
    async seek(args) {
      const scroller = scrollerFor(args);
      const until = args.seekUntil;
      for (let pass = 0; pass < 2; pass += 1) {
        for (let i = 0; i < args.maxSteps; i += 1) {
          const card = findCard(args);
          if (card) {
            // Only a card we had to scroll to is brought into view: el.click() needs no
            // layout, and scrolling every card in would load lazy images around it.
            if (pass > 0 || i > 0) card.scrollIntoView({ block: "center" });
            return { card };
          }
          const left = until - performance.now();
          if (left <= 0) return { timedOut: true };
          if (!scrollBy(scroller)) {
            const root = scroller === document.scrollingElement ? document.body : scroller;
            const wait = Math.min(args.idleMs, left);
            if (!(await cardsChange(root, wait, args.cardSelector))) {
              if (wait < args.idleMs) return { timedOut: true };
              break;
            }
          }
        }
        scrollToTop(scroller);
      }
      return {};
    },

    // Close whatever panel is open and wait until it is gone. A panel counts as closed when
    // no element matching the selector is shown: a native <dialog> stays in the DOM when
    // closed (no `open`), like a `hidden` or `display: none` panel. Closing: the job's close
    // control; else a <dialog>'s own close button, then dialog.close() (a modal dialog
    // ignores a synthetic Escape); else Escape.
    async close(args) {
      const shownPanel = () => openPanel(args.panelSelector);
      const panel = args.panelSelector && shownPanel();
      if (!panel) return true;
      const control = args.closeSelector && document.querySelector(args.closeSelector);
      if (control) control.click();
      else if (panel.tagName === "DIALOG") closeDialog(panel);
      else {
        const init = { key: "Escape", code: "Escape", keyCode: 27, bubbles: true };
        (document.activeElement || document.body).dispatchEvent(new KeyboardEvent("keydown", init));
      }
      if (!shownPanel()) return true;
      return new Promise((resolve) => {
        const observer = new MutationObserver(() => {
          if (!shownPanel()) finish(true);
        });
        const timer = setTimeout(() => finish(false), args.timeoutMs);
        const finish = (value) => {
          observer.disconnect();
          clearTimeout(timer);
          resolve(value);
        };
        observer.observe(document.body, { childList: true, subtree: true, attributes: true });
      });
    },

    // Open one card's panel by clicking it in-page; a previous panel is closed first.
    async open(args) {
      const t0 = performance.now();
      if (!(await this.close(args))) return { ok: false, reason: "previous panel did not close" };
      const t1 = performance.now();
      if (!(await this.ready(args))) return { ok: false, reason: "no card appeared in the gallery" };
      const { card, timedOut } = await this.seek({ ...args, seekUntil: t0 + args.seekMs });
      const name = args.id || args.href;
      if (timedOut) {
        const cards = document.querySelectorAll(args.cardSelector).length;
        const reason = `card ${name} not reached in time (${cards} cards loaded so far); ` +
          "the page keeps its place for the next attempt";
        return { ok: false, reason, kept: true };
      }
      if (!card) return { ok: false, reason: `card ${name} not found in the gallery` };
      const t2 = performance.now();
      const target = args.clickSelector ? card.querySelector(args.clickSelector) || card : card;
      target.click();
      const t3 = performance.now();
      return { ok: true, closeMs: t1 - t0, seekMs: t2 - t1, clickMs: t3 - t2 };
    },

    // Click mode's whole container in one call: open the card's panel, then wait for its
    // fields and read them (landmarks.js). `spec` is the plan (root, fields, and the
    // gallery's fixed arguments under `opening`), or null when the document should hold it
    // under `key`; `each` is what changes per container (id, href, deadlines). A document
    // without the plan says so before anything is clicked. The answer is landmarks.js's
    // wire() text.
    async openAndSettle(key, spec, each, timeoutMs, quietMs, errorSelector) {
      const landmark = window.__landmark;
      if (!landmark) return { missing: true };
      const plan = landmark.plan(key, spec);
      if (!plan) return { missingPlan: true };
      const opened = await this.open({ ...plan.opening, ...each });
      if (!opened.ok) return landmark.wire({ opened });
      const settled = await landmark.settle(plan, timeoutMs, quietMs, errorSelector);
      return landmark.wire({ ...settled, opened });
    },
  };
})();
