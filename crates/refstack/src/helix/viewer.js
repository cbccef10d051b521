/*
 * The stand-in's stream viewer: behaves like Helix's MoonlightStreamViewer (Nov 2025) so the
 * driver meets the same client as in production. One instance per mounted viewer; instances
 * share nothing (each has its own UUID, socket, peer connection and timers), which is what makes
 * two dialogs on one page two distinct Moonlight clients.
 *
 * Usage: new HelixStreamViewer(containerElement, {sessionId, lobbyId, account, moonlightSessionId?}).mount();
 *        (`account` is HelixAccount.load(): the token is read from it at each connect, as the
 *        real viewer reads `account.user.token`)
 *        viewer.unmount();
 *
 * Faithful to the real one where a user or a driver can tell (../shared/reference/helix-viewer.md):
 * the offer leaves as soon as WebRtcConfig arrives; peer states failed, disconnected and closed
 * all raise the error; the error alert carries its Reconnect button inside (it runs connect()
 * alone, without disconnect()); the toolbar is invisible unless connected and its Reconnect is
 * disabled while connecting; the status line has no ARIA role; a failed auto-join is logged as an
 * error object, the server's text only in the HTTP body; every `general` message is JSON.parse'd
 * and handled like a socket message (a string is an error);
 * input reaches the stream only from DOM events on the <video> and its container. Nothing here is
 * reachable from outside the page's own event handlers: a driver has to act as a user does.
 */
(function () {
  'use strict';

  var AUTO_JOIN_DELAY_MS = 1000;
  var RETRY_MAX_SECONDS = 10;
  var STATS_INTERVAL_MS = 1000;
  var CLIPBOARD_POLL_MS = 2000;
  // Peer states that make the real client raise its error (IDX:465-475).
  var ERROR_STATES = ['failed', 'disconnected', 'closed'];
  var INPUT_CHANNELS = ['keyboard', 'mouseClicks', 'mouseAbsolute', 'mouseRelative', 'touch', 'controllers'];

  // crypto.randomUUID exists only in secure contexts; the test namespace serves plain http on a
  // non-loopback address, so build a v4 UUID from getRandomValues there.
  function randomUUID() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') {
      try { return window.crypto.randomUUID(); } catch (_) { /* insecure context */ }
    }
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  function make(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function HelixStreamViewer(container, opts) {
    this.container = container;
    this.sessionId = opts.sessionId;
    this.lobbyId = opts.lobbyId || '';
    this.opts = opts;
    // Per component, like React state: reconnects and retries keep it, a new mount does not.
    this.uuid = randomUUID();
    this.clientUniqueId = 'helix-agent-' + this.sessionId + '-' + this.lobbyId + '-' + this.uuid;
    // Helix's page may hand one in (the session-id-reuse fault: one id per agent session).
    this.moonlightSessionId = opts.moonlightSessionId || ('agent-' + this.sessionId + '-' + this.uuid);
    this.generation = 0;
    this.retryAttempt = 0;
    this.resetConnection();
    this.retryTimer = null;
    this.autoJoinTimer = null;
    this.clipboardTimer = null;
    this.statsTimer = null;
    this.lastStats = null;
    this.mounted = false;
    this.build();
  }

  HelixStreamViewer.prototype.build = function () {
    var self = this;
    // tabindex: keyboard input goes to the focused container, as in the real viewer.
    var root = make('div', { 'class': 'hv-viewer', 'data-session-id': this.sessionId, tabindex: '0' });
    var video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true;
    video.setAttribute('autoplay', '');
    video.setAttribute('playsinline', '');
    video.setAttribute('muted', '');
    video.style.width = '100%';
    video.style.height = '100%';
    video.style.backgroundColor = '#000';
    root.appendChild(video);

    var cursor = make('div', { id: 'custom-cursor', 'class': 'hv-cursor', 'aria-hidden': 'true' });
    root.appendChild(cursor);

    // Icon buttons with titles, invisible (opacity 0) unless connected.
    var toolbar = make('div', { 'class': 'hv-toolbar' });
    var videoToggle = make('button', { type: 'button', title: 'Disable Video' }, '\u25a3');
    var audioToggle = make('button', { type: 'button', title: 'Mute Audio' }, '\u266a');
    var reconnect = make('button', { type: 'button', title: 'Reconnect' }, '\u21bb');
    var stats = make('button', { type: 'button', title: 'Stats for Nerds' }, '\u2139');
    var fullscreen = make('button', { type: 'button', title: 'Enter Fullscreen' }, '\u26f6');
    [videoToggle, audioToggle, reconnect, stats, fullscreen].forEach(function (b) { toolbar.appendChild(b); });
    root.appendChild(toolbar);

    // The centred overlay: a spinner and a plain text line (MUI Typography: no ARIA role), and
    // the alerts. An MUI Alert has role "alert"; the error one carries its action inside.
    var overlay = make('div', { 'class': 'hv-overlay' });
    var spinner = make('div', { 'class': 'hv-spinner', 'aria-hidden': 'true' });
    var status = make('p', { 'class': 'hv-status' });
    var warning = make('div', { role: 'alert', 'class': 'hv-alert hv-alert-warning' });
    warning.hidden = true;
    var errorBox = make('div', { role: 'alert', 'class': 'hv-alert hv-alert-error' });
    errorBox.hidden = true;
    var errorIcon = make('div', { 'class': 'hv-alert-icon', 'aria-hidden': 'true' }, '!');
    var errorText = make('div', { 'class': 'hv-alert-message' });
    var errorAction = make('div', { 'class': 'hv-alert-action' });
    var errorReconnect = make('button', { type: 'button' }, 'Reconnect');
    errorAction.appendChild(errorReconnect);
    errorBox.appendChild(errorIcon);
    errorBox.appendChild(errorText);
    errorBox.appendChild(errorAction);
    overlay.appendChild(spinner);
    overlay.appendChild(status);
    overlay.appendChild(warning);
    overlay.appendChild(errorBox);
    root.appendChild(overlay);

    var statsBox = make('pre', { 'class': 'hv-stats' });
    statsBox.hidden = true;
    root.appendChild(statsBox);

    // Toolbar: disconnect() then connect(). Alert: setError(null); connect() — no disconnect().
    reconnect.addEventListener('click', function () { self.reconnect(); });
    errorReconnect.addEventListener('click', function () { self.clearError(); self.connect(); });
    stats.addEventListener('click', function () { self.toggleStats(); });
    fullscreen.addEventListener('click', function () { self.toggleFullscreen(); });
    videoToggle.addEventListener('click', function () {
      var off = videoToggle.getAttribute('title') === 'Disable Video';
      video.style.visibility = off ? 'hidden' : '';
      videoToggle.setAttribute('title', off ? 'Enable Video' : 'Disable Video');
    });
    audioToggle.addEventListener('click', function () {
      var mute = audioToggle.getAttribute('title') === 'Mute Audio';
      audioToggle.setAttribute('title', mute ? 'Unmute Audio' : 'Mute Audio');
    });
    root.addEventListener('mousemove', function (ev) {
      var r = root.getBoundingClientRect();
      cursor.style.left = (ev.clientX - r.left) + 'px';
      cursor.style.top = (ev.clientY - r.top) + 'px';
      cursor.style.display = 'block';
    });
    root.addEventListener('mouseleave', function () { cursor.style.display = 'none'; });
    this.bindInput(root, video);

    this.onFullscreenChange = function () {
      var on = document.fullscreenElement === root;
      fullscreen.setAttribute('title', on ? 'Exit Fullscreen' : 'Enter Fullscreen');
    };
    this.onPageHide = function () { self.teardown(); };

    this.el = {
      root: root, video: video, status: status, spinner: spinner, warning: warning, errorBox: errorBox,
      errorText: errorText, statsBox: statsBox, reconnect: reconnect
    };
  };

  // Mouse on the <video>, keys on the focused container, into the input data channels in
  // moonlight-web's big-endian wire format. The only way input reaches the stream.
  HelixStreamViewer.prototype.bindInput = function (root, video) {
    var self = this;
    function send(label, bytes) {
      var c = self.channels[label];
      if (c && c.readyState === 'open') c.send(bytes.buffer);
    }
    function position(ev) {
      var r = video.getBoundingClientRect();
      var b = new DataView(new ArrayBuffer(9));
      b.setUint8(0, 1);
      b.setInt16(1, Math.round(ev.clientX - r.left));
      b.setInt16(3, Math.round(ev.clientY - r.top));
      b.setInt16(5, Math.round(r.width));
      b.setInt16(7, Math.round(r.height));
      return b;
    }
    video.addEventListener('mousemove', function (ev) {
      send('mouseAbsolute', position(ev));
      if (ev.movementX || ev.movementY) {
        var b = new DataView(new ArrayBuffer(5));
        b.setUint8(0, 0);
        b.setInt16(1, ev.movementX);
        b.setInt16(3, ev.movementY);
        send('mouseRelative', b);
      }
    });
    function button(down) {
      return function (ev) {
        root.focus();
        var b = new DataView(new ArrayBuffer(2));
        b.setUint8(0, down ? 1 : 0);
        b.setUint8(1, ev.button + 1);
        send('mouseClicks', b);
      };
    }
    video.addEventListener('mousedown', button(true));
    video.addEventListener('mouseup', button(false));
    video.addEventListener('contextmenu', function (ev) { ev.preventDefault(); });
    video.addEventListener('wheel', function (ev) {
      var b = new DataView(new ArrayBuffer(5));
      b.setUint8(0, 2);
      b.setInt16(1, Math.round(ev.deltaX));
      b.setInt16(3, Math.round(ev.deltaY));
      send('mouseRelative', b);
    }, { passive: true });
    function key(down) {
      return function (ev) {
        var b = new DataView(new ArrayBuffer(4));
        b.setUint8(0, down ? 1 : 0);
        b.setUint16(1, ev.keyCode || 0);
        b.setUint8(3, (ev.shiftKey ? 1 : 0) | (ev.ctrlKey ? 2 : 0) | (ev.altKey ? 4 : 0) | (ev.metaKey ? 8 : 0));
        send('keyboard', b);
      };
    }
    root.addEventListener('keydown', key(true));
    root.addEventListener('keyup', key(false));
  };

  HelixStreamViewer.prototype.mount = function () {
    if (this.mounted) return this;
    this.mounted = true;
    this.container.appendChild(this.el.root);
    document.addEventListener('fullscreenchange', this.onFullscreenChange);
    window.addEventListener('pagehide', this.onPageHide);
    this.connect();
    return this;
  };

  HelixStreamViewer.prototype.unmount = function () {
    if (!this.mounted) return;
    this.mounted = false;
    clearTimeout(this.retryTimer);
    this.stopStats();
    this.teardown();
    this.setState('idle');
    document.removeEventListener('fullscreenchange', this.onFullscreenChange);
    window.removeEventListener('pagehide', this.onPageHide);
    if (this.el.root.parentNode) this.el.root.parentNode.removeChild(this.el.root);
  };

  HelixStreamViewer.prototype.setStatus = function (text) {
    this.el.status.textContent = text;
  };

  HelixStreamViewer.prototype.showSpinner = function (on) {
    this.el.spinner.hidden = !on;
  };

  // 'connecting', 'connected' or 'idle': the toolbar shows only when connected, and its
  // Reconnect is disabled while connecting (MSV:1038-1066).
  HelixStreamViewer.prototype.setState = function (state) {
    this.el.root.setAttribute('data-state', state);
    this.el.reconnect.disabled = state === 'connecting';
  };

  HelixStreamViewer.prototype.showError = function (text) {
    this.el.errorText.textContent = text;
    this.el.errorBox.hidden = false;
    this.el.warning.hidden = true;
    this.showSpinner(false);
    this.setState('idle');
  };

  HelixStreamViewer.prototype.showWarning = function (text) {
    this.el.warning.textContent = text;
    this.el.warning.hidden = false;
  };

  HelixStreamViewer.prototype.clearError = function () {
    this.el.errorText.textContent = '';
    this.el.errorBox.hidden = true;
  };

  HelixStreamViewer.prototype.token = function () {
    return (this.opts.account && this.opts.account.token) || null;
  };

  HelixStreamViewer.prototype.authHeaders = function () {
    return this.token() ? { Authorization: 'Bearer ' + this.token() } : {};
  };

  HelixStreamViewer.prototype.fetchJson = function (path, init) {
    var opts = Object.assign({ credentials: 'include', headers: this.authHeaders() }, init || {});
    return fetch(path, opts).then(function (r) {
      if (!r.ok) {
        return r.text().then(function (t) { throw new Error('HTTP ' + r.status + ': ' + t); });
      }
      return r.json();
    });
  };

  HelixStreamViewer.prototype.send = function (msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  };

  HelixStreamViewer.prototype.current = function (gen) {
    return this.mounted && gen === this.generation;
  };

  HelixStreamViewer.prototype.connect = function () {
    var self = this;
    // A new attempt: the previous one's handlers go quiet, but nothing of it is closed (the
    // alert's Reconnect calls connect() without disconnect()).
    var gen = ++this.generation;
    this.resetConnection();
    this.clearError();
    this.el.warning.hidden = true;
    this.showSpinner(true);
    this.setState('connecting');
    this.setStatus('Initializing...');
    if (!this.token()) {
      this.showError('Not authenticated - please log in');
      return;
    }
    var bitrate = 40000;
    var appId = null;
    this.fetchJson('/api/v1/config')
      .then(function (cfg) {
        if (cfg && cfg.streaming_bitrate_mbps) bitrate = cfg.streaming_bitrate_mbps * 1000;
      }, function (e) { console.warn('[HelixStreamViewer] config unavailable, using defaults:', e.message); })
      .then(function () { return self.fetchJson('/api/v1/wolf/ui-app-id'); })
      .then(function (ui) {
        appId = parseInt(ui.wolf_ui_app_id, 10);
        if (!self.current(gen)) return;
        self.openSocket(gen, appId, bitrate);
      })
      .catch(function (e) {
        if (self.current(gen)) self.showError('Failed to get Wolf UI app ID: ' + e.message);
      });
  };

  HelixStreamViewer.prototype.openSocket = function (gen, appId, bitrate) {
    var self = this;
    this.setStatus('Connecting to streaming server...');
    var scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    var ws = new WebSocket(scheme + location.host + '/moonlight/host/stream');
    this.ws = ws;
    ws.onopen = function () {
      if (!self.current(gen)) return;
      self.setStatus('Stream connected');
      self.send({ AuthenticateAndInit: {
        credentials: self.token(),
        session_id: self.moonlightSessionId,
        mode: 'create',
        client_unique_id: self.clientUniqueId,
        host_id: 0,
        app_id: appId,
        bitrate: bitrate,
        packet_size: 1024,
        fps: 60,
        width: 3840,
        height: 2160,
        video_sample_queue_size: 100,
        play_audio_local: false,
        audio_sample_queue_size: 20,
        video_supported_formats: 1,
        video_colorspace: 'Rec709',
        video_color_range_full: true
      } });
    };
    ws.onmessage = function (ev) {
      if (!self.current(gen)) return;
      var msg;
      try { msg = JSON.parse(ev.data); } catch (_) { console.warn('[HelixStreamViewer] unparseable message'); return; }
      self.onServerMessage(msg, gen);
    };
    ws.onerror = function () {
      if (self.current(gen)) console.warn('[HelixStreamViewer] WebSocket error');
    };
    ws.onclose = function (ev) {
      if (self.current(gen)) console.info('[HelixStreamViewer] WebSocket closed, code ' + ev.code);
    };
  };

  HelixStreamViewer.prototype.onServerMessage = function (msg, gen) {
    var self = this;
    if (typeof msg === 'string') {
      this.onErrorString(msg);
    } else if (msg.WebRtcConfig) {
      // The real client offers at once in create mode (IDX:226-233), not at a later stage.
      this.setupPeer(msg.WebRtcConfig, gen);
      this.chain(gen, function () { return self.makeOffer(); });
    } else if (msg.StageStarting) {
      this.setStatus(msg.StageStarting.stage);
    } else if (msg.StageComplete) {
      // Progress only: the next StageStarting names what comes next.
    } else if (msg.StageFailed) {
      // Helix does not handle StageFailed (a bad credential leaves the spinner running).
      console.warn('[HelixStreamViewer] stage failed:', JSON.stringify(msg.StageFailed));
    } else if (msg.Signaling) {
      this.chain(gen, function () { return self.onSignaling(msg.Signaling); });
    } else if (msg.ConnectionComplete) {
      this.retryAttempt = 0;
      this.setStatus('Streaming active');
      this.showSpinner(false);
      this.clearError();
      this.setState('connected');
      clearTimeout(this.autoJoinTimer);
      this.autoJoinTimer = setTimeout(function () { self.autoJoin(gen); }, AUTO_JOIN_DELAY_MS);
      this.pollClipboard(gen);
    } else if (msg.ConnectionTerminated) {
      this.showError('Stream terminated (code: ' + msg.ConnectionTerminated.error_code + ')');
    } else if (msg.ConnectionStatusUpdate) {
      this.el.root.setAttribute('data-connection-quality', msg.ConnectionStatusUpdate.status);
    } else if (msg.UpdateApp) {
      this.appTitle = msg.UpdateApp.app && msg.UpdateApp.app.title;
    }
  };

  // Signalling steps are async and must not interleave: an answer has to be applied before
  // the candidates that follow it.
  HelixStreamViewer.prototype.chain = function (gen, step) {
    var self = this;
    this.signaling = this.signaling.then(function () {
      if (self.current(gen)) return step();
    }).catch(function (e) {
      console.warn('[HelixStreamViewer] signalling failed:', e && e.message ? e.message : e);
    });
  };

  HelixStreamViewer.prototype.onErrorString = function (text) {
    var self = this;
    if (text === 'AlreadyStreaming') {
      this.retryAttempt += 1;
      var delay = Math.min(this.retryAttempt + 1, RETRY_MAX_SECONDS);
      this.showWarning('Stream busy (attempt ' + this.retryAttempt + ') - retrying in ' + delay + ' second' + (delay === 1 ? '' : 's') + '...');
      this.teardown();
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(function () { if (self.mounted) self.connect(); }, delay * 1000);
      return;
    }
    this.showError(text);
  };

  HelixStreamViewer.prototype.setupPeer = function (config, gen) {
    var self = this;
    if (this.pc) return;
    var iceServers = (config.ice_servers || []).map(function (s) {
      var out = { urls: s.urls };
      if (s.username) out.username = s.username;
      if (s.credential) out.credential = s.credential;
      return out;
    });
    var pc = new RTCPeerConnection({ iceServers: iceServers });
    this.pc = pc;
    INPUT_CHANNELS.forEach(function (label) { self.channels[label] = pc.createDataChannel(label); });
    pc.onicecandidate = function (ev) {
      if (!self.current(gen) || !ev.candidate || !ev.candidate.candidate) return;
      self.send({ Signaling: { AddIceCandidate: {
        candidate: ev.candidate.candidate,
        sdp_mid: ev.candidate.sdpMid,
        sdp_mline_index: ev.candidate.sdpMLineIndex,
        username_fragment: ev.candidate.usernameFragment || null
      } } });
    };
    pc.ontrack = function (ev) {
      if (!self.current(gen)) return;
      var video = self.el.video;
      var stream = ev.streams && ev.streams[0];
      if (ev.track.kind === 'video' || !video.srcObject) {
        video.srcObject = stream || new MediaStream([ev.track]);
      } else if (!stream || stream !== video.srcObject) {
        video.srcObject.addTrack(ev.track);
      }
      var played = video.play();
      if (played && played.catch) played.catch(function () { /* autoplay policy: muted, retried on frames */ });
    };
    pc.onconnectionstatechange = function () {
      if (!self.current(gen)) return;
      if (ERROR_STATES.indexOf(pc.connectionState) >= 0) {
        self.showError('Connection state is ' + pc.connectionState + ' (client: ' + self.clientUniqueId + ')');
      }
    };
    pc.ondatachannel = function (ev) {
      if (ev.channel.label !== 'general') return;
      ev.channel.onmessage = function (m) {
        if (!self.current(gen) || typeof m.data !== 'string') return;
        // Like the real client: every message is JSON (bare text throws in the page) and goes
        // the way of the socket's messages, so the JSON string "ConnectionTerminated" the
        // streamer's stop sends here is an error the user sees.
        self.onServerMessage(JSON.parse(m.data), gen);
      };
    };
  };

  HelixStreamViewer.prototype.makeOffer = function () {
    var self = this;
    var pc = this.pc;
    if (!pc || this.offerSent) return;
    this.offerSent = true;
    return pc.createOffer().then(function (offer) {
      return pc.setLocalDescription(offer);
    }).then(function () {
      self.send({ Signaling: { Description: { ty: 'offer', sdp: pc.localDescription.sdp } } });
    });
  };

  HelixStreamViewer.prototype.flushCandidates = function () {
    var pc = this.pc;
    var queued = this.pendingCandidates;
    this.pendingCandidates = [];
    return Promise.all(queued.map(function (c) {
      return pc.addIceCandidate(c).catch(function (e) { console.warn('[HelixStreamViewer] candidate refused:', e.message); });
    }));
  };

  HelixStreamViewer.prototype.onSignaling = function (sig) {
    var self = this;
    var pc = this.pc;
    if (!pc) return;
    if (sig.Description) {
      var d = sig.Description;
      if (d.ty === 'offer') {
        // The server's second offer adds the video track; the browser answers it.
        return pc.setRemoteDescription({ type: 'offer', sdp: d.sdp })
          .then(function () { return self.flushCandidates(); })
          .then(function () { return pc.createAnswer(); })
          .then(function (answer) { return pc.setLocalDescription(answer); })
          .then(function () { self.send({ Signaling: { Description: { ty: 'answer', sdp: pc.localDescription.sdp } } }); });
      }
      if (d.ty === 'answer') {
        return pc.setRemoteDescription({ type: 'answer', sdp: d.sdp }).then(function () { return self.flushCandidates(); });
      }
      return;
    }
    if (sig.AddIceCandidate) {
      var a = sig.AddIceCandidate;
      var c = { candidate: a.candidate, sdpMid: a.sdp_mid, sdpMLineIndex: a.sdp_mline_index };
      if (a.username_fragment) c.usernameFragment = a.username_fragment;
      if (!pc.remoteDescription) {
        this.pendingCandidates.push(c);
        return;
      }
      return pc.addIceCandidate(c).catch(function (e) { console.warn('[HelixStreamViewer] candidate refused:', e.message); });
    }
  };

  // Like axios: a non-2xx answer rejects with an Error whose message is generic; the server's
  // text stays in `response.data`, so it never reaches the console as text.
  HelixStreamViewer.prototype.autoJoin = function (gen) {
    if (!this.current(gen)) return;
    var url = '/api/v1/external-agents/' + encodeURIComponent(this.sessionId) + '/auto-join-lobby';
    fetch(url, { method: 'POST', credentials: 'include', headers: this.authHeaders() })
      .then(function (r) {
        return r.text().then(function (t) {
          if (r.ok) return;
          var err = new Error('Request failed with status code ' + r.status);
          err.name = 'AxiosError';
          err.response = { status: r.status, data: t };
          throw err;
        });
      })
      .catch(function (err) { console.error('[AUTO-JOIN] Error calling auto-join endpoint:', err); });
  };

  // Once connected, the remote clipboard every 2 s (MSV:540-600), until this attempt ends.
  HelixStreamViewer.prototype.pollClipboard = function (gen) {
    var self = this;
    clearInterval(this.clipboardTimer);
    var url = '/api/v1/external-agents/' + encodeURIComponent(this.sessionId) + '/clipboard';
    this.clipboardTimer = setInterval(function () {
      if (!self.current(gen)) { clearInterval(self.clipboardTimer); return; }
      fetch(url, { credentials: 'include', headers: self.authHeaders() })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (c) { if (c && c.type === 'text') self.remoteClipboard = c.data; })
        .catch(function () { /* the next poll tries again */ });
    }, CLIPBOARD_POLL_MS);
  };

  // The state of one connection attempt; a reconnect starts from here again.
  HelixStreamViewer.prototype.resetConnection = function () {
    this.ws = null;
    this.pc = null;
    this.channels = {};
    this.pendingCandidates = [];
    this.signaling = Promise.resolve();
    this.offerSent = false;
  };

  HelixStreamViewer.prototype.teardown = function () {
    this.generation += 1;
    clearTimeout(this.autoJoinTimer);
    clearInterval(this.clipboardTimer);
    var ws = this.ws;
    var pc = this.pc;
    this.resetConnection();
    if (ws) {
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      try { ws.close(); } catch (_) { /* already closed */ }
    }
    if (pc) {
      pc.onicecandidate = pc.ontrack = pc.onconnectionstatechange = pc.ondatachannel = null;
      try { pc.close(); } catch (_) { /* already closed */ }
    }
    this.el.video.srcObject = null;
  };

  // The toolbar's Reconnect: disconnect(), then connect().
  HelixStreamViewer.prototype.reconnect = function () {
    clearTimeout(this.retryTimer);
    this.retryAttempt = 0;
    this.teardown();
    this.connect();
  };

  HelixStreamViewer.prototype.toggleStats = function () {
    if (this.statsTimer) {
      this.stopStats();
      return;
    }
    var self = this;
    this.el.statsBox.hidden = false;
    this.el.statsBox.textContent = 'Collecting stats...';
    this.statsTimer = setInterval(function () { self.pollStats(); }, STATS_INTERVAL_MS);
    this.pollStats();
  };

  HelixStreamViewer.prototype.stopStats = function () {
    clearInterval(this.statsTimer);
    this.statsTimer = null;
    this.lastStats = null;
    this.el.statsBox.hidden = true;
  };

  HelixStreamViewer.prototype.pollStats = function () {
    var self = this;
    var pc = this.pc;
    if (!pc) {
      this.el.statsBox.textContent = 'No peer connection';
      return;
    }
    pc.getStats().then(function (report) {
      var video = null;
      var pair = null;
      report.forEach(function (s) {
        if (s.type === 'inbound-rtp' && s.kind === 'video') video = s;
        if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
      });
      var lines = ['Client: ' + self.clientUniqueId, 'Connection: ' + pc.connectionState];
      if (video) {
        var kbps = '';
        if (self.lastStats && video.timestamp > self.lastStats.timestamp) {
          var bits = (video.bytesReceived - self.lastStats.bytesReceived) * 8;
          kbps = Math.round(bits / (video.timestamp - self.lastStats.timestamp)) + ' kbps';
        }
        self.lastStats = { timestamp: video.timestamp, bytesReceived: video.bytesReceived };
        lines.push('Resolution: ' + (video.frameWidth || 0) + 'x' + (video.frameHeight || 0));
        lines.push('FPS: ' + (video.framesPerSecond || 0));
        lines.push('Bitrate: ' + kbps);
        lines.push('Frames decoded: ' + (video.framesDecoded || 0) + ', dropped: ' + (video.framesDropped || 0));
        lines.push('Packets lost: ' + (video.packetsLost || 0) + ', jitter: ' + (video.jitter || 0));
      } else {
        lines.push('No video yet');
      }
      if (pair && pair.currentRoundTripTime !== undefined) lines.push('RTT: ' + Math.round(pair.currentRoundTripTime * 1000) + ' ms');
      if (self.statsTimer) self.el.statsBox.textContent = lines.join('\n');
    }).catch(function () { /* peer closed between polls */ });
  };

  HelixStreamViewer.prototype.toggleFullscreen = function () {
    if (document.fullscreenElement === this.el.root) {
      document.exitFullscreen().catch(function () {});
    } else if (this.el.root.requestFullscreen) {
      this.el.root.requestFullscreen().catch(function (e) { console.warn('[HelixStreamViewer] fullscreen refused:', e.message); });
    }
  };

  // The app's account context: `GET /api/v1/auth/authenticated` (from the access_token cookie),
  // then `GET /api/v1/auth/user` for the token the viewer uses. `token` is filled in place, so a
  // viewer constructed before `ready` settles reads it through the getter below.
  var HelixAccount = {
    load: function () {
      var account = { user: null };
      Object.defineProperty(account, 'token', { get: function () { return account.user && account.user.token; } });
      account.ready = fetch('/api/v1/auth/authenticated', { credentials: 'include' })
        .then(function (r) { return r.ok ? r.json() : { authenticated: false }; })
        .then(function (a) {
          if (!a.authenticated) return null;
          return fetch('/api/v1/auth/user', { credentials: 'include' }).then(function (r) { return r.ok ? r.json() : null; });
        })
        .then(function (user) { account.user = user; }, function (e) { console.error('[account] loading the user failed:', e); });
      return account;
    }
  };

  window.HelixStreamViewer = HelixStreamViewer;
  window.HelixAccount = HelixAccount;
})();
