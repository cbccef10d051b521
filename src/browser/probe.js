// helix-e2e in-page probe.
//
// Installed with Page.addScriptToEvaluateOnNewDocument, so it runs before any script of the page.
// It must stay invisible to the page: constructors are wrapped with Proxies (prototype, name,
// instanceof and static constants stay native), and every hook calls the native code first and
// swallows its own failures. Events go to the driver through a CDP binding, batched, because the
// driver must never poll the page.
(function () {
  'use strict';
  // Frames would reuse the top page's ids; the viewers under test live in the top document.
  if (window.top !== window || window.__helixProbeInstalled) return;
  try {
    Object.defineProperty(window, '__helixProbeInstalled', { value: true, enumerable: false });
  } catch (_) { return; }

  const BINDING = '__HELIX_BINDING__';
  const FLUSH_MS = 100;
  const STATS_MS = 1000;
  const FRAME_MS = 200;
  const LUMA_W = __HELIX_LUMA_W__;
  const LUMA_H = __HELIX_LUMA_H__;

  // Captured before the page runs, so a page that replaces these cannot break the probe.
  const nativeStringify = JSON.stringify;
  const nativeParse = JSON.parse;
  const nativeSetTimeout = window.setTimeout.bind(window);
  const nativeSetInterval = window.setInterval.bind(window);
  const origin = performance.timeOrigin;
  const now = () => origin + performance.now();
  let binding = window[BINDING];

  let queue = [];
  let flushScheduled = false;
  function flush() {
    flushScheduled = false;
    if (queue.length === 0) return;
    if (typeof binding !== 'function') binding = window[BINDING];
    if (typeof binding !== 'function') { schedule(); return; }
    const batch = queue;
    queue = [];
    try { binding(nativeStringify(batch)); } catch (_) { /* the driver is gone */ }
  }
  function schedule() {
    if (!flushScheduled) { flushScheduled = true; nativeSetTimeout(flush, FLUSH_MS); }
  }
  function emit(kind, fields) {
    const ev = fields || {};
    ev.kind = kind;
    ev.t = now();
    queue.push(ev);
    schedule();
  }
  // The last batch of a page that is going away would otherwise be lost.
  window.addEventListener('pagehide', flush, true);

  function safe(fn) {
    return function () { try { return fn.apply(this, arguments); } catch (_) { return undefined; } };
  }

  emit('page_load', { url: String(location.href) });

  // ---- ICE ufrags: how a WebSocket is tied to the peer connection whose signalling it carries.
  const UFRAG_RE = /a=ice-ufrag:([A-Za-z0-9+\/]+)/g;
  const CAND_UFRAG_RE = /\bufrag ([A-Za-z0-9+\/]+)/g;
  function ufragsIn(text) {
    const out = [];
    if (typeof text !== 'string') return out;
    let m;
    UFRAG_RE.lastIndex = 0;
    while ((m = UFRAG_RE.exec(text)) !== null) out.push(m[1]);
    CAND_UFRAG_RE.lastIndex = 0;
    while ((m = CAND_UFRAG_RE.exec(text)) !== null) out.push(m[1]);
    return out;
  }

  const wsUfrags = new Map(); // ws id -> Set of ufrags
  const pcs = new Map(); // pc id -> { pc, ufrags: Set, closed }
  const linked = new Set(); // "ws:pc"

  function pcUfrags(entry) {
    const pc = entry.pc;
    for (const d of [pc.localDescription, pc.remoteDescription]) {
      if (d && d.sdp) for (const u of ufragsIn(d.sdp)) entry.ufrags.add(u);
    }
    return entry.ufrags;
  }
  const checkLinks = safe(function () {
    for (const [ws, wset] of wsUfrags) {
      if (wset.size === 0) continue;
      for (const [pcId, entry] of pcs) {
        const key = ws + ':' + pcId;
        if (linked.has(key)) continue;
        for (const u of pcUfrags(entry)) {
          if (wset.has(u)) { linked.add(key); emit('link', { ws: ws, pc: pcId }); break; }
        }
      }
    }
  });
  function noteWsText(wsId, text) {
    const us = ufragsIn(text);
    if (us.length === 0) return;
    const set = wsUfrags.get(wsId);
    for (const u of us) set.add(u);
    checkLinks();
  }

  // ---- WebSocket
  const NativeWS = window.WebSocket;
  let nextWs = 0;
  const wsIds = new WeakMap();
  function describe(data) {
    if (typeof data === 'string') {
      try { return { msg: nativeParse(data), text: data }; } catch (_) { return { msg: data, text: data }; }
    }
    let n = 0;
    try { n = data.byteLength !== undefined ? data.byteLength : (data.size || 0); } catch (_) { /* opaque */ }
    return { msg: { binary: n }, text: null };
  }
  if (typeof NativeWS === 'function') {
    const nativeSend = NativeWS.prototype.send;
    NativeWS.prototype.send = function (data) {
      safe(function (ws) {
        const id = wsIds.get(ws);
        if (id === undefined) return;
        const d = describe(data);
        emit('ws_message', { ws: id, dir: 'sent', msg: d.msg });
        if (d.text !== null) noteWsText(id, d.text);
      })(this);
      return nativeSend.apply(this, arguments);
    };
    const wsProxy = new Proxy(NativeWS, {
      construct(target, args, newTarget) {
        const ws = Reflect.construct(target, args, newTarget);
        safe(function () {
          const id = nextWs++;
          wsIds.set(ws, id);
          wsUfrags.set(id, new Set());
          const url = String(ws.url);
          ws.addEventListener('open', safe(function () { emit('ws_open', { ws: id, url: url }); }));
          ws.addEventListener('message', safe(function (e) {
            const d = describe(e.data);
            emit('ws_message', { ws: id, dir: 'received', msg: d.msg });
            if (d.text !== null) noteWsText(id, d.text);
          }));
          ws.addEventListener('close', safe(function (e) {
            emit('ws_close', { ws: id, code: e.code | 0, reason: String(e.reason || '') });
            flush();
          }));
        })();
        return ws;
      },
    });
    // So that `ws.constructor === WebSocket` still holds for the page.
    NativeWS.prototype.constructor = wsProxy;
    window.WebSocket = wsProxy;
  }

  // ---- RTCPeerConnection
  const NativePC = window.RTCPeerConnection;
  // Keyed by the track object: track ids are chosen by the remote side and need not be unique
  // (the stand-in names every video track "video"), so ids would cross-link viewers of one page.
  const trackToPc = new WeakMap();
  let nextPc = 0;
  function redactConfig(cfg) {
    try {
      const c = nativeParse(nativeStringify(cfg || {}));
      if (Array.isArray(c.iceServers)) {
        for (const s of c.iceServers) if (s && s.credential !== undefined) s.credential = '<redacted>';
      }
      return c;
    } catch (_) { return {}; }
  }
  if (typeof NativePC === 'function') {
    const proto = NativePC.prototype;
    const pcIds = new WeakMap();
    const wrapDescription = function (name) {
      const native = proto[name];
      proto[name] = function () {
        const pc = this;
        const p = native.apply(this, arguments);
        safe(function () {
          const id = pcIds.get(pc);
          if (id === undefined || !p || typeof p.then !== 'function') return;
          p.then(safe(function () { checkLinks(); }), function () {});
        })();
        return p;
      };
    };
    wrapDescription('setLocalDescription');
    wrapDescription('setRemoteDescription');
    const nativeAddIce = proto.addIceCandidate;
    proto.addIceCandidate = function (c) {
      safe(function (pc) {
        const id = pcIds.get(pc);
        if (id === undefined || !c) return;
        const cand = typeof c === 'string' ? c : c.candidate;
        if (cand) emit('candidate', { pc: id, local: false, candidate: String(cand) });
      })(this);
      return nativeAddIce.apply(this, arguments);
    };

    // close() fires no connectionstatechange, yet the pc is finished.
    const nativeClose = proto.close;
    proto.close = function () {
      safe(function (pc) {
        const id = pcIds.get(pc);
        const entry = id === undefined ? undefined : pcs.get(id);
        if (entry && !entry.closed) {
          entry.closed = true;
          emit('pc_state', { pc: id, which: 'connection', state: 'closed' });
        }
      })(this);
      return nativeClose.apply(this, arguments);
    };

    const proxy = new Proxy(NativePC, {
      construct(target, args, newTarget) {
        const pc = Reflect.construct(target, args, newTarget);
        safe(function () {
          const id = nextPc++;
          pcIds.set(pc, id);
          const entry = { pc: pc, ufrags: new Set(), closed: false };
          pcs.set(id, entry);
          emit('pc_created', { pc: id, config: redactConfig(args[0]) });
          const watch = function (event, which, prop) {
            pc.addEventListener(event, safe(function () {
              const state = String(pc[prop]);
              if (prop === 'connectionState' && state === 'closed') entry.closed = true;
              emit('pc_state', { pc: id, which: which, state: state });
            }));
          };
          watch('signalingstatechange', 'signaling', 'signalingState');
          watch('iceconnectionstatechange', 'ice_connection', 'iceConnectionState');
          watch('icegatheringstatechange', 'ice_gathering', 'iceGatheringState');
          watch('connectionstatechange', 'connection', 'connectionState');
          pc.addEventListener('icecandidate', safe(function (e) {
            if (e.candidate && e.candidate.candidate) {
              emit('candidate', { pc: id, local: true, candidate: String(e.candidate.candidate) });
            }
          }));
          pc.addEventListener('track', safe(function (e) {
            trackToPc.set(e.track, id);
            checkVideos();
          }));
        })();
        return pc;
      },
    });
    proto.constructor = proxy;
    window.RTCPeerConnection = proxy;
    if (window.webkitRTCPeerConnection === NativePC) window.webkitRTCPeerConnection = proxy;
  }

  // ---- getStats, once a second per live pc
  function candText(c) {
    if (!c) return '?';
    const addr = c.address || c.ip || '?';
    return (c.candidateType || '?') + ' ' + addr + ':' + c.port;
  }
  const sampleStats = safe(function (id, report) {
    let inbound = null;
    let transport = null;
    const pairs = [];
    report.forEach(function (s) {
      if (s.type === 'inbound-rtp' && (s.kind === 'video' || s.mediaType === 'video')) {
        if (!inbound || (s.bytesReceived || 0) > (inbound.bytesReceived || 0)) inbound = s;
      } else if (s.type === 'transport') {
        transport = s;
      } else if (s.type === 'candidate-pair') {
        pairs.push(s);
      }
    });
    let pair = null;
    if (transport && transport.selectedCandidatePairId) pair = report.get(transport.selectedCandidatePairId) || null;
    if (!pair) pair = pairs.find(function (p) { return p.nominated && p.state === 'succeeded'; }) || null;
    const num = function (v) { return typeof v === 'number' ? v : null; };
    const stats = {
      frames_decoded: null, frames_received: null, frame_width: null, frame_height: null,
      freeze_count: null, total_freezes_duration: null, packets_lost: null,
      packets_received: null, bytes_received: null, candidate_pair: null,
    };
    if (inbound) {
      stats.frames_decoded = num(inbound.framesDecoded);
      stats.frames_received = num(inbound.framesReceived);
      stats.frame_width = num(inbound.frameWidth);
      stats.frame_height = num(inbound.frameHeight);
      stats.freeze_count = num(inbound.freezeCount);
      stats.total_freezes_duration = num(inbound.totalFreezesDuration);
      stats.packets_lost = num(inbound.packetsLost);
      stats.packets_received = num(inbound.packetsReceived);
      stats.bytes_received = num(inbound.bytesReceived);
    }
    if (pair) {
      const l = report.get(pair.localCandidateId);
      const r = report.get(pair.remoteCandidateId);
      const proto = (l && l.protocol) || (r && r.protocol) || '?';
      stats.candidate_pair = candText(l) + ' <-> ' + candText(r) + ' (' + proto + ')';
    }
    emit('stats', { pc: id, stats: stats });
  });
  nativeSetInterval(safe(function () {
    for (const [id, entry] of pcs) {
      if (entry.closed) continue;
      const pc = entry.pc;
      if (pc.connectionState === 'closed' || pc.signalingState === 'closed') { entry.closed = true; continue; }
      try {
        NativePC.prototype.getStats.call(pc).then(function (r) { sampleStats(id, r); }, function () {});
      } catch (_) { /* a pc torn down mid-call */ }
    }
  }), STATS_MS);

  // ---- <video> elements that show a MediaStream
  const videos = new Map(); // video id -> element
  const videoIds = new WeakMap();
  const videoLinked = new Set(); // "pc:video"
  const presented = new WeakMap(); // element -> count
  let nextVideo = 0;
  // While the user's input is recent (a trusted key press, as a keyboard or CDP Input makes),
  // every presented frame is sampled at presentation time, so the moment a picture first shows
  // the input is known to a frame, not to the 200 ms sampling below.
  const WATCH_MS = 1500;
  let watchUntil = 0;
  window.addEventListener('keydown', function (ev) { if (ev.isTrusted) watchUntil = performance.now() + WATCH_MS; }, true);
  function startPresentedCounter(el) {
    if (presented.has(el) || typeof el.requestVideoFrameCallback !== 'function') return;
    presented.set(el, 0);
    const tick = function (nowTs, meta) {
      presented.set(el, (presented.get(el) || 0) + 1);
      if (nowTs < watchUntil) samplePresented(el, meta && meta.presentationTime ? meta.presentationTime : nowTs);
      el.requestVideoFrameCallback(tick);
    };
    el.requestVideoFrameCallback(tick);
  }
  function videoId(el) {
    let id = videoIds.get(el);
    if (id === undefined) { id = nextVideo++; videoIds.set(el, id); videos.set(id, el); }
    return id;
  }
  const linkVideo = safe(function (el) {
    const id = videoIds.get(el);
    const s = el.srcObject;
    if (id === undefined || !s || typeof s.getTracks !== 'function') return;
    for (const t of s.getTracks()) {
      const pc = trackToPc.get(t);
      if (pc === undefined) continue;
      const key = pc + ':' + id;
      if (!videoLinked.has(key)) { videoLinked.add(key); emit('video_link', { pc: pc, video: id }); }
    }
  });
  function checkVideos() { for (const el of videos.values()) linkVideo(el); }
  const srcDesc = Object.getOwnPropertyDescriptor(HTMLMediaElement.prototype, 'srcObject');
  if (srcDesc && srcDesc.set) {
    Object.defineProperty(HTMLMediaElement.prototype, 'srcObject', {
      configurable: true,
      enumerable: srcDesc.enumerable,
      get: srcDesc.get,
      set: function (v) {
        srcDesc.set.call(this, v);
        safe(function (el) {
          if (!(el instanceof HTMLVideoElement) || !v) return;
          videoId(el);
          startPresentedCounter(el);
          linkVideo(el);
        })(this);
      },
    });
  }

  // FNV-1a 32-bit, hex: short and stable enough to tell moving pictures from stuck ones.
  function fnv1a(bytes) {
    let h = 0x811c9dc5;
    for (let i = 0; i < bytes.length; i++) { h ^= bytes[i]; h = Math.imul(h, 0x01000193) >>> 0; }
    return ('00000000' + h.toString(16)).slice(-8);
  }
  function base64(bytes) {
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x2000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x2000));
    return btoa(s);
  }
  let canvas = null;
  let ctx = null;
  const sampleVideo = safe(function (id, el) {
    const w = el.videoWidth | 0;
    const h = el.videoHeight | 0;
    const sample = { video_width: w, video_height: h, presented: presented.get(el) || 0, mean_luma: 0, hash: '', luma: '' };
    if (w > 0 && h > 0 && el.readyState >= 2) {
      if (!canvas) {
        canvas = document.createElement('canvas');
        canvas.width = LUMA_W;
        canvas.height = LUMA_H;
        ctx = canvas.getContext('2d', { willReadFrequently: true });
      }
      ctx.drawImage(el, 0, 0, LUMA_W, LUMA_H);
      const px = ctx.getImageData(0, 0, LUMA_W, LUMA_H).data;
      const luma = new Uint8Array(LUMA_W * LUMA_H);
      let sum = 0;
      for (let i = 0, j = 0; j < luma.length; i += 4, j++) {
        const y = Math.round(0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]);
        luma[j] = y;
        sum += y;
      }
      sample.mean_luma = sum / luma.length;
      sample.hash = fnv1a(luma);
      sample.luma = base64(luma);
    }
    emit('frame', { video: id, sample: sample });
  });
  let presentedCanvas = null;
  let presentedCtx = null;
  const samplePresented = safe(function (el, presentationTime) {
    const id = videoIds.get(el);
    if (id === undefined || !(el.videoWidth > 0)) return;
    if (!presentedCanvas) {
      presentedCanvas = document.createElement('canvas');
      presentedCanvas.width = LUMA_W;
      presentedCanvas.height = LUMA_H;
      presentedCtx = presentedCanvas.getContext('2d', { willReadFrequently: true });
    }
    presentedCtx.drawImage(el, 0, 0, LUMA_W, LUMA_H);
    const px = presentedCtx.getImageData(0, 0, LUMA_W, LUMA_H).data;
    const luma = new Uint8Array(LUMA_W * LUMA_H);
    for (let i = 0, j = 0; j < luma.length; i += 4, j++) luma[j] = Math.round(0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]);
    emit('presented', { video: id, sample: { presented_at: origin + presentationTime, luma: base64(luma) } });
  });
  nativeSetInterval(safe(function () {
    for (const [id, el] of videos) {
      if (!el.srcObject || !el.isConnected) continue;
      linkVideo(el);
      sampleVideo(id, el);
    }
  }), FRAME_MS);

  // ---- Text the page shows as status or error. Generic on purpose: ARIA alerts and live
  // regions where a page has them, and any text drawn over a <video> (a viewer's overlay: the
  // real one's status line is a plain Typography with no role). Labels of buttons inside are not
  // part of the text (an MUI alert carries its "Reconnect" action inside the alert element).
  const ROLE_SELECTOR = '[role="alert"], [role="status"], [aria-live]';
  const CONTROLS = 'button, [role="button"], a, input, select, textarea';
  const lastUi = new WeakMap();
  let uiScheduled = false;
  function shown(el) {
    for (let e = el; e; e = e.parentElement) {
      const cs = getComputedStyle(e);
      if (cs.display === 'none' || cs.visibility === 'hidden' || parseFloat(cs.opacity) < 0.1) return false;
    }
    return true;
  }
  function textOf(el) {
    const parts = [];
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const p = n.parentElement;
      if (p && p.closest(CONTROLS) && el.contains(p.closest(CONTROLS))) continue;
      // Icons and decorations hidden from assistive technology are not part of the message.
      if (p && p.closest('[aria-hidden="true"]') && el.contains(p.closest('[aria-hidden="true"]'))) continue;
      parts.push(n.nodeValue);
    }
    return parts.join(' ').replace(/\s+/g, ' ').trim();
  }
  function inside(r, boxes) {
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    return boxes.some(function (b) { return x >= b.left && x <= b.right && y >= b.top && y <= b.bottom; });
  }
  // Elements with their own text whose centre lies over a shown video, outside any ARIA region.
  function overlayTexts() {
    const boxes = [];
    for (const v of document.querySelectorAll('video')) {
      const r = v.getBoundingClientRect();
      if (r.width > 0 && r.height > 0) boxes.push(r);
    }
    const out = new Set();
    if (boxes.length === 0 || !document.body) return out;
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!el || out.has(el) || !n.nodeValue.trim()) continue;
      if (el.closest(CONTROLS) || el.closest(ROLE_SELECTOR) || el.closest('script, style, pre')) continue;
      if (inside(el.getBoundingClientRect(), boxes)) out.add(el);
    }
    return out;
  }
  const scanUi = safe(function () {
    uiScheduled = false;
    const els = new Set(document.querySelectorAll(ROLE_SELECTOR));
    for (const el of overlayTexts()) els.add(el);
    for (const el of els) {
      const text = shown(el) ? textOf(el) : '';
      if (lastUi.get(el) === text) continue;
      lastUi.set(el, text);
      if (text) emit('ui_text', { text: text.slice(0, 500), role: el.getAttribute('role') || '' });
    }
  });
  // An overlay that was hidden and comes back with the same text is news again; a scan on
  // attribute changes (hidden, style, class) catches that as well as text changes.
  try {
    new MutationObserver(function () {
      if (!uiScheduled) { uiScheduled = true; nativeSetTimeout(scanUi, 100); }
    }).observe(document, { childList: true, subtree: true, characterData: true, attributes: true, attributeFilter: ['hidden', 'style', 'class', 'data-state'] });
  } catch (_) { /* no document yet: nothing to watch */ }
})();
