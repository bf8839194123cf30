/* Mediaplane QoE: playback beacons and CMCD for hls.js, shaka-player and dash.js pages.
 *
 * Served by every Mediaplane server at /static/mediaplane-qoe.js. On any page, another site's
 * included (the beacons go to the server the script came from; CORS allows any origin):
 *
 *   <script src="https://media.example.com/static/mediaplane-qoe.js"></script>
 *   <script>
 *     const qoe = MediaplaneQoE.view({ playbackId: "PLAYBACK_ID" });
 *     // hls.js: CMCD is set when the player is made, so pass the view's config in
 *     const hls = new Hls(qoe.hlsConfig({ ...yourConfig }));
 *     qoe.attach(video, hls);              // before hls.loadSource(…)
 *     // shaka-player: qoe.attach(video, player) before player.load(…)
 *     // dash.js:      qoe.attach(video, player) before player.initialize(…)/attachSource(…)
 *   </script>
 *
 * What it sends: view_start, first_frame (startup_ms), rebuffer_start / rebuffer_end
 * (duration_ms), rendition_switch (bitrate, width, height), error (code, fatal), seek, pause,
 * end, and a heartbeat every `heartbeatSeconds` while playing or stalled (position, rendition,
 * bitrate, width, height, watched_ms: the view's playing time so far). view_start, heartbeats
 * and switches carry the player's size too (player_width, player_height: the video element
 * in device pixels), for the upscale/downscale percentages, and heartbeats and switches the
 * host the latest media segment came from (cdn: the CDN breakdown of a multi-CDN setup). Batches go to POST /api/v1/beacons
 * every `flushSeconds` (when something waits) and when the page is hidden
 * (navigator.sendBeacon). The server counts a view among its real-time viewers while its
 * newest event is younger than 15 s (MEDIAPLANE_REALTIME_WINDOW_SECONDS): the defaults put a
 * viewer on the asset's page within 2 s of starting, and keep them there while they watch. The player's own CMCD
 * (CTA-5004) is turned on with the view id as `sid` and the playback id as `cid`, sent as
 * query arguments (no CORS preflight per segment).
 *
 * Privacy: a random anonymous viewer id is kept in localStorage ("mediaplane-qoe-viewer");
 * the server keeps only a keyed hash of it. Pass `viewerId: null` to send none.
 *
 * Options of MediaplaneQoE.view({...}): playbackId (required), server (default: this
 * script's origin), viewerId, flushSeconds (2), heartbeatSeconds (5).
 */
(function (global) {
  "use strict";
  var script = document.currentScript;
  var scriptOrigin = script && script.src ? new URL(script.src, location.href).origin : "";
  var MAX_QUEUE = 200;
  // events that carry the player's size (against the rendition's: upscaled or downscaled)
  var SIZED = { view_start: true, heartbeat: true, rendition_switch: true };

  function randomId() {
    if (global.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    return Math.random().toString(36).slice(2) + Date.now().toString(36);
  }

  function anonymousViewer() {
    try {
      var id = localStorage.getItem("mediaplane-qoe-viewer");
      if (!id) { id = randomId(); localStorage.setItem("mediaplane-qoe-viewer", id); }
      return id;
    } catch (e) { return null; }  // storage refused: no viewer id
  }

  function kind(player) {
    if (!player) return null;
    if (typeof player.loadSource === "function" && player.levels !== undefined) return "hls.js";
    if (typeof player.getVariantTracks === "function") return "shaka-player";
    if (typeof player.updateSettings === "function" && typeof player.getVersion === "function")
      return "dash.js";
    return null;
  }

  function version(player, name) {
    try {
      if (name === "hls.js") return (player.constructor && player.constructor.version) || null;
      if (name === "shaka-player") return (global.shaka && shaka.Player.version) || null;
      if (name === "dash.js") return player.getVersion();
    } catch (e) { /* unknown */ }
    return null;
  }

  function View(opts) {
    if (!opts || !opts.playbackId) throw new Error("MediaplaneQoE.view needs a playbackId");
    this.playbackId = String(opts.playbackId);
    this.server = (opts.server || scriptOrigin || location.origin).replace(/\/$/, "");
    this.viewId = randomId();
    this.viewerId = opts.viewerId === undefined ? anonymousViewer() : opts.viewerId;
    this.flushSeconds = opts.flushSeconds || 2;
    this.heartbeatSeconds = opts.heartbeatSeconds || 5;
    this.queue = [];
    this.seq = 0;
    this.player = { name: "html5", version: null };
    this.state = { started: 0, firstFrame: false, waitingSince: 0, seeking: false,
      playingSince: 0, watchedMs: 0, position: 0, rendition: null, bitrate: null, width: null,
      height: null, ended: false };
  }

  /* The hls.js config with CMCD on for this view (pass it to `new Hls(…)`). */
  View.prototype.hlsConfig = function (config) {
    var out = Object.assign({}, config || {});
    out.cmcd = Object.assign({ sessionId: this.viewId, contentId: this.playbackId,
      useHeaders: false }, out.cmcd || {});
    return out;
  };

  View.prototype.watched = function () {
    var s = this.state;
    return s.watchedMs + (s.playingSince ? Date.now() - s.playingSince : 0);
  };

  View.prototype.emit = function (type, fields) {
    var e = { id: String(++this.seq), type: type, ts: Date.now() };
    var v = this.video;
    if (v && isFinite(v.currentTime)) e.position_s = Math.max(0, v.currentTime);
    if (this.state.rendition) e.rendition = this.state.rendition;
    if (this.state.bitrate) e.bitrate = this.state.bitrate;
    if (SIZED[type] && v) {  // the player's size on the page, in device pixels (bounded)
      var ratio = global.devicePixelRatio || 1;
      e.player_width = Math.min(16384, Math.max(0, Math.round(v.clientWidth * ratio)));
      e.player_height = Math.min(16384, Math.max(0, Math.round(v.clientHeight * ratio)));
      if (this.state.cdn) e.cdn = this.state.cdn;
    }
    for (var k in fields || {}) if (fields[k] !== undefined && fields[k] !== null) e[k] = fields[k];
    this.queue.push(e);
    if (this.queue.length > MAX_QUEUE) this.queue.splice(0, this.queue.length - MAX_QUEUE);
  };

  View.prototype.body = function (events) {
    var doc = { view_id: this.viewId, playback_id: this.playbackId, player: this.player,
      sent_at: Date.now(), events: events };
    if (this.viewerId) doc.viewer_id = this.viewerId;
    if (!doc.player.version) delete doc.player.version;
    return JSON.stringify(doc);
  };

  /* Send what is queued. A failed batch goes back in the queue (the server drops repeats). */
  View.prototype.flush = function (leaving) {
    if (!this.queue.length) return Promise.resolve();
    var events = this.queue.splice(0, this.queue.length);
    var url = this.server + "/api/v1/beacons";
    var body = this.body(events);
    var self = this;
    if (leaving && navigator.sendBeacon) {
      if (navigator.sendBeacon(url, new Blob([body], { type: "text/plain" }))) return Promise.resolve();
    }
    // text/plain: a "simple" request, no preflight from another site
    return fetch(url, { method: "POST", body: body, keepalive: true, mode: "cors",
      credentials: "omit", headers: { "Content-Type": "text/plain" } })
      .then(function (r) {
        if (r.status === 429 || r.status >= 500) throw new Error("beacons " + r.status);
      })
      .catch(function () { self.queue = events.concat(self.queue).slice(-MAX_QUEUE); });
  };

  View.prototype.rendition = function (bitrate, width, height) {
    var name = height ? height + "p" : bitrate ? Math.round(bitrate / 1000) + "k" : null;
    if (name === this.state.rendition && bitrate === this.state.bitrate) return;
    this.state.rendition = name;
    this.state.bitrate = bitrate || null;
    this.state.width = width || null;
    this.state.height = height || null;
    this.emit("rendition_switch", { bitrate: bitrate || undefined, width: width || undefined,
      height: height || undefined });
  };

  /* A media segment came from `url`: its host is the CDN the view is on. */
  View.prototype.served = function (url) {
    try { this.state.cdn = new URL(url, global.location.href).host || null; } catch (e) { /* */ }
  };

  View.prototype.error = function (code, message, fatal) {
    this.emit("error", { code: String(code).replace(/[^A-Za-z0-9 _.+\/:-]/g, "_").slice(0, 48) || "unknown",
      message: message ? String(message).slice(0, 256) : undefined, fatal: !!fatal });
    if (fatal) this.flush();
  };

  View.prototype.hookPlayer = function (player) {
    var name = kind(player), self = this;
    if (!name) return;
    this.player = { name: name, version: version(player, name) };
    if (name === "hls.js") {
      var H = player.constructor;
      player.on(H.Events.LEVEL_SWITCHED, function (_, data) {
        var l = player.levels[data.level] || {};
        self.rendition(l.bitrate, l.width, l.height);
      });
      player.on(H.Events.ERROR, function (_, data) { self.error(data.details, data.reason, data.fatal); });
      player.on(H.Events.FRAG_LOADED, function (_, data) { self.served(data.frag.url); });
    } else if (name === "shaka-player") {
      player.configure({ cmcd: { enabled: true, sessionId: this.viewId, contentId: this.playbackId,
        useHeaders: false } });
      var active = function () {
        var t = player.getVariantTracks().filter(function (t) { return t.active; })[0];
        if (t) self.rendition(t.videoBandwidth || t.bandwidth, t.width, t.height);
      };
      player.addEventListener("adaptation", active);
      player.addEventListener("variantchanged", active);
      player.addEventListener("trackschanged", active);
      var net = player.getNetworkingEngine && player.getNetworkingEngine();
      if (net) net.registerResponseFilter(function (type, response) {
        if (type === 1) self.served(response.uri);  // RequestType.SEGMENT
      });
      player.addEventListener("error", function (e) {
        var d = e.detail || {};
        self.error(d.code, d.message, d.severity === 2);
      });
    } else if (name === "dash.js") {
      player.updateSettings({ streaming: { cmcd: { enabled: true, sid: this.viewId,
        cid: this.playbackId, mode: "query" } } });
      var events = (global.dashjs && dashjs.MediaPlayer.events) || {};
      player.on(events.QUALITY_CHANGE_RENDERED || "qualityChangeRendered", function (e) {
        if (e.mediaType !== "video") return;
        var r = e.newRepresentation || {};
        self.rendition(r.bandwidth, r.width, r.height);
      });
      player.on(events.FRAGMENT_LOADING_COMPLETED || "fragmentLoadingCompleted", function (e) {
        if (e.request && e.request.url) self.served(e.request.url);
      });
      player.on(events.ERROR || "error", function (e) {
        var err = e.error || {};
        self.error(err.code || "dash", err.message, true);
      });
    }
  };

  /* Follow `video` (and the player driving it, when given) from now on. */
  View.prototype.attach = function (video, player) {
    var self = this, s = this.state;
    this.video = video;
    this.hookPlayer(player);
    s.started = Date.now();
    this.emit("view_start");
    var stopPlaying = function () {
      if (s.playingSince) { s.watchedMs += Date.now() - s.playingSince; s.playingSince = 0; }
    };
    video.addEventListener("playing", function () {
      if (!s.firstFrame) {
        s.firstFrame = true;
        self.emit("first_frame", { startup_ms: Math.max(0, Date.now() - s.started) });
      } else if (s.waitingSince) {
        self.emit("rebuffer_end", { duration_ms: Date.now() - s.waitingSince });
      }
      s.waitingSince = 0;
      s.playingSince = Date.now();
    });
    video.addEventListener("waiting", function () {
      if (!s.firstFrame || s.seeking || s.waitingSince) return;
      stopPlaying();
      s.waitingSince = Date.now();
      self.emit("rebuffer_start");
    });
    video.addEventListener("seeking", function () {
      s.seeking = true;
      self.emit("seek", { from_s: s.position, to_s: video.currentTime });
    });
    video.addEventListener("seeked", function () { s.seeking = false; });
    video.addEventListener("timeupdate", function () {
      if (!s.seeking) s.position = video.currentTime;
    });
    video.addEventListener("pause", function () {
      stopPlaying();
      if (!video.ended) self.emit("pause", { watched_ms: self.watched() });
    });
    video.addEventListener("ended", function () { self.end(); });
    video.addEventListener("error", function () {
      var e = video.error;
      self.error("MEDIA_ERR_" + (e ? e.code : 0), e && e.message, true);
    });
    this.heartbeat = setInterval(function () {
      // stalled too: a long stall is a viewer who is still there (and rebuffering)
      if (s.playingSince || s.waitingSince)
        self.emit("heartbeat", { watched_ms: self.watched(), width: s.width, height: s.height });
    }, this.heartbeatSeconds * 1000);
    this.timer = setInterval(function () { self.flush(); }, this.flushSeconds * 1000);
    addEventListener("pagehide", function () { self.end(true); });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") self.flush(true);
    });
    return this;
  };

  /* The view is over (played out, or the page goes away): send what is left. */
  View.prototype.end = function (leaving) {
    var s = this.state;
    if (!s.ended) {
      if (s.playingSince) { s.watchedMs += Date.now() - s.playingSince; s.playingSince = 0; }
      // a viewer who gives up while waiting: the stall counts up to the exit
      if (s.waitingSince) {
        this.emit("rebuffer_end", { duration_ms: Date.now() - s.waitingSince });
        s.waitingSince = 0;
      }
      s.ended = true;
      this.emit("end", { watched_ms: s.watchedMs });
      clearInterval(this.heartbeat);
    }
    return this.flush(leaving);
  };

  global.MediaplaneQoE = { view: function (opts) { return new View(opts); }, version: "1" };
})(window);
