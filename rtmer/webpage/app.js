// rtmer's live page. It reads rtmer's WebSocket protocol, as every other client does:
// a "hello" on connect, then one "va" message per update and stream (see the README's
// Protocols section). Where the WebSocket server is comes from ?ws=URL in the page's
// address, else from config.json on the server that served the page, fetched again
// before every reconnection. Nothing else is loaded from anywhere.
(() => {
  "use strict";

  const TRAIL_SECONDS = 30; // the trail on the circumplex
  const SERIES_SECONDS = 60; // the time series
  const RETRY_FIRST = 0.5; // [s], doubling up to RETRY_MAX
  const RETRY_MAX = 3;
  const DEFAULT_WS = "ws://127.0.0.1:8765/";
  const STREAM_COLOURS = ["#ffc24b", "#3fd0ff", "#ff5fa2", "#7cf29a", "#c49bff", "#ff8a3d", "#f4f4f4", "#5ee6d0"];
  const MOODS = ["excited", "tense", "sad", "calm", "neutral"];
  const QUADRANTS = [ // name, sign of valence, sign of arousal, tint
    ["excited", 1, 1, "#ffd23f"],
    ["tense", -1, 1, "#ff5b5b"],
    ["sad", -1, -1, "#6aa6ff"],
    ["calm", 1, -1, "#5be3a4"],
  ];

  const params = new URLSearchParams(window.location.search);
  const pinnedUrl = params.get("ws");
  const subscribe = params.get("streams");
  const token = params.get("token"); // for a server that needs one; never shown, never stored

  const state = {
    connection: "connecting", // connecting | live | reconnecting | offline
    url: null,
    model: null,
    hellos: 0,
    updates: 0,
    retries: 0,
    retryAt: 0, // performance.now() of the next attempt
    serverTime: null, // the latest update's "time" [unix s]
    receivedAt: 0, // performance.now() when it arrived
    streams: new Map(), // id -> {id, colour, points: [{t, time, v, a, rv, ra, mood, gap}], last}
  };

  const $ = (id) => document.getElementById(id);
  const statusEl = $("status");
  const statusText = $("status-text");
  const updatesEl = $("updates");
  const modelEl = $("model");
  const streamsEl = $("streams");
  const cardTemplate = $("stream-card");
  const plane = $("circumplex");
  const series = $("timeseries");
  let dirty = true;
  let lastDraw = 0;

  // ---- data ---------------------------------------------------------------------------
  function streamOf(id) {
    let s = state.streams.get(id);
    if (!s) {
      s = { id, colour: STREAM_COLOURS[state.streams.size % STREAM_COLOURS.length], points: [], last: null, card: null };
      state.streams.set(id, s);
    }
    return s;
  }

  const finite = (x) => typeof x === "number" && Number.isFinite(x);

  function onHello(msg) {
    state.hellos += 1;
    const model = msg.model && typeof msg.model === "object" ? msg.model : {};
    state.model = typeof model.model_name === "string" ? model.model_name : null;
    if (Array.isArray(msg.streams)) {
      for (const id of msg.streams) if (typeof id === "string") streamOf(id);
    }
    for (const s of state.streams.values()) s.breakNext = true;
    renderCards();
  }

  function onUpdate(msg) {
    if (typeof msg.stream !== "string" || !finite(msg.time)) return;
    const s = streamOf(msg.stream);
    state.updates += 1;
    state.serverTime = msg.time;
    state.receivedAt = performance.now();
    const raw = msg.raw && typeof msg.raw === "object" ? msg.raw : {};
    const p = {
      t: finite(msg.t) ? msg.t : null,
      time: msg.time,
      v: finite(msg.valence) ? msg.valence : null,
      a: finite(msg.arousal) ? msg.arousal : null,
      rv: finite(raw.valence) ? raw.valence : null,
      ra: finite(raw.arousal) ? raw.arousal : null,
      mood: MOODS.includes(msg.mood) ? msg.mood : "neutral",
      seq: finite(msg.seq) ? msg.seq : null,
      // a new session, or the stream's time went back (a restarted rtmer): no line across
      gap: Boolean(s.breakNext) || (s.last !== null && s.last.t !== null && finite(msg.t) && msg.t < s.last.t),
    };
    s.breakNext = false;
    s.points.push(p);
    s.last = p;
    prune(s, msg.time);
    renderCard(s);
    dirty = true;
  }

  function prune(s, now) {
    const oldest = now - SERIES_SECONDS - 2;
    let k = 0;
    while (k < s.points.length && s.points[k].time < oldest) k += 1;
    if (k) s.points.splice(0, k);
  }

  // the server's clock now, estimated from the latest update, so that trails fade in
  // real time between updates and while disconnected (no dependence on this machine's clock)
  function serverNow() {
    if (state.serverTime === null) return null;
    return state.serverTime + (performance.now() - state.receivedAt) / 1000;
  }

  // ---- connection ---------------------------------------------------------------------
  function setConnection(kind, text) {
    state.connection = kind;
    statusEl.dataset.state = kind;
    statusText.textContent = text;
  }

  async function wsUrl() {
    if (pinnedUrl) return pinnedUrl;
    if (window.location.protocol === "file:") return DEFAULT_WS;
    try {
      const response = await fetch("config.json", { cache: "no-store" });
      if (!response.ok) return null;
      const config = await response.json();
      return typeof config.ws === "string" ? config.ws : null;
    } catch (err) {
      return null; // the server is not there (rtmer stopped): try again later
    }
  }

  function withToken(url) {
    if (!token) return url;
    const u = new URL(url);
    if (!u.searchParams.has("token")) u.searchParams.set("token", token);
    return u.href;
  }

  async function connect() {
    const url = await wsUrl();
    if (!url) {
      retry();
      return;
    }
    state.url = url;
    let ws;
    try {
      ws = new WebSocket(withToken(url));
    } catch (err) {
      setConnection("offline", `cannot use ${url}`);
      return;
    }
    ws.onopen = () => {
      state.retries = 0;
      setConnection("live", `live: ${url.split("?")[0]}`);
      if (subscribe) {
        const streams = subscribe.split(",").map((x) => x.trim()).filter(Boolean);
        ws.send(JSON.stringify({ type: "subscribe", streams }));
      }
    };
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (err) {
        return; // not ours to judge: the protocol says to ignore what is not understood
      }
      if (!msg || typeof msg !== "object") return;
      if (msg.type === "hello") onHello(msg);
      else if (msg.type === "va") onUpdate(msg);
    };
    ws.onclose = () => {
      ws.onmessage = null;
      retry();
    };
  }

  function retry() {
    const delay = Math.min(RETRY_MAX, RETRY_FIRST * 2 ** state.retries);
    state.retries += 1;
    state.retryAt = performance.now() + delay * 1000;
    setConnection(state.hellos ? "reconnecting" : "connecting", retryText());
    setTimeout(connect, delay * 1000);
  }

  function retryText() {
    const left = Math.max(0, (state.retryAt - performance.now()) / 1000);
    const what = state.hellos ? "disconnected, reconnecting" : "waiting for rtmer";
    return `${what} in ${left.toFixed(0)} s (attempt ${state.retries})`;
  }

  // ---- text ---------------------------------------------------------------------------
  const signed = (x) => (x === null ? "n/a" : (x >= 0 ? "+" : "\u2212") + Math.abs(x).toFixed(2));

  function renderCards() {
    $("waiting").hidden = state.streams.size > 0;
    for (const s of state.streams.values()) renderCard(s);
  }

  function renderCard(s) {
    if (!s.card) {
      const card = cardTemplate.content.firstElementChild.cloneNode(true);
      card.dataset.stream = s.id;
      card.style.setProperty("--stream", s.colour);
      card.querySelector(".name").textContent = s.id;
      streamsEl.appendChild(card);
      s.card = card;
      $("waiting").hidden = true;
    }
    const p = s.last;
    const card = s.card;
    const mood = card.querySelector(".mood");
    mood.textContent = p ? p.mood : "waiting";
    mood.className = `mood mood-${p ? p.mood : "neutral"}`;
    card.querySelector(".valence").textContent = p ? signed(p.v) : "";
    card.querySelector(".arousal").textContent = p ? signed(p.a) : "";
    card.querySelector(".valence-raw").textContent = p ? signed(p.rv) : "";
    card.querySelector(".arousal-raw").textContent = p ? signed(p.ra) : "";
    card.querySelector(".time").textContent = p && p.t !== null ? `t ${p.t.toFixed(1)} s` : "";
    updatesEl.textContent = String(state.updates);
    updatesEl.dataset.count = String(state.updates);
    modelEl.textContent = state.model ? `model ${state.model} \u00b7` : "";
  }

  // ---- drawing ------------------------------------------------------------------------
  function fit(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const h = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    const ctx = canvas.getContext("2d");
    return { ctx, w, h, ratio };
  }

  function drawPlane(now) {
    const { ctx, w, h, ratio } = fit(plane);
    const size = Math.min(w, h);
    const font = Math.max(11 * ratio, size / 26);
    const r = size / 2 - Math.max(ratio, size / 200);
    const cx = w / 2;
    const cy = h / 2;
    const X = (v) => cx + v * r;
    const Y = (a) => cy - a * r;
    ctx.clearRect(0, 0, w, h);

    for (const [name, sv, sa, tint] of QUADRANTS) { // the four regions, tinted and named
      ctx.fillStyle = tint + "14";
      ctx.fillRect(Math.min(cx, X(sv)), Math.min(cy, Y(sa)), r, r);
      ctx.fillStyle = tint + "c0";
      ctx.font = `700 ${font * 1.25}px system-ui, sans-serif`;
      ctx.textAlign = sv > 0 ? "right" : "left";
      ctx.textBaseline = sa > 0 ? "top" : "bottom";
      ctx.fillText(name.toUpperCase(), X(sv * 0.96), Y(sa * 0.96));
    }
    ctx.strokeStyle = "#2a313c";
    ctx.lineWidth = Math.max(1, ratio);
    ctx.strokeRect(X(-1), Y(1), 2 * r, 2 * r);
    ctx.beginPath();
    ctx.arc(cx, cy, r, 0, 2 * Math.PI);
    ctx.moveTo(X(-1), cy);
    ctx.lineTo(X(1), cy);
    ctx.moveTo(cx, Y(-1));
    ctx.lineTo(cx, Y(1));
    ctx.strokeStyle = "#4a5464";
    ctx.stroke();
    ctx.fillStyle = "#9aa4b2"; // the axes, named inside the square
    ctx.font = `400 ${font * 0.8}px system-ui, sans-serif`;
    const pad = font * 0.3;
    ctx.textBaseline = "bottom";
    ctx.textAlign = "right";
    ctx.fillText("valence +", X(1) - pad, cy - pad);
    ctx.textAlign = "left";
    ctx.fillText("valence \u2212", X(-1) + pad, cy - pad);
    ctx.textBaseline = "top";
    ctx.fillText("arousal +", cx + pad, Y(1) + pad);
    ctx.textBaseline = "bottom";
    ctx.fillText("arousal \u2212", cx + pad, Y(-1) - pad);

    if (now === null) return;
    const many = state.streams.size > 1;
    let index = -1;
    for (const s of state.streams.values()) {
      index += 1;
      const pts = s.points.filter((p) => p.v !== null && p.a !== null && now - p.time <= TRAIL_SECONDS);
      ctx.lineCap = "round";
      for (let k = 1; k < pts.length; k += 1) { // the trail, fading with age
        const p = pts[k];
        if (p.gap) continue;
        const q = pts[k - 1];
        const age = Math.max(0, now - p.time) / TRAIL_SECONDS;
        ctx.globalAlpha = Math.max(0.04, 1 - age) * 0.9;
        ctx.strokeStyle = s.colour;
        ctx.lineWidth = ratio * (1.5 + 3.5 * (1 - age)) * size / 700;
        ctx.beginPath();
        ctx.moveTo(X(q.v), Y(q.a));
        ctx.lineTo(X(p.v), Y(p.a));
        ctx.stroke();
      }
      ctx.globalAlpha = 1;
      const last = pts[pts.length - 1];
      if (!last) continue;
      const fresh = Math.max(0.25, 1 - Math.max(0, now - last.time) / TRAIL_SECONDS);
      if (last.rv !== null && last.ra !== null) { // the raw value: a ring
        ctx.globalAlpha = 0.8 * fresh;
        ctx.strokeStyle = s.colour;
        ctx.lineWidth = 2 * ratio;
        ctx.beginPath();
        ctx.arc(X(last.rv), Y(last.ra), size / 90, 0, 2 * Math.PI);
        ctx.stroke();
      }
      ctx.globalAlpha = fresh; // the smoothed value: a disc
      ctx.fillStyle = s.colour;
      ctx.strokeStyle = "#050608";
      ctx.lineWidth = 2.5 * ratio;
      ctx.beginPath();
      ctx.arc(X(last.v), Y(last.a), size / 55, 0, 2 * Math.PI);
      ctx.fill();
      ctx.stroke();
      if (many) { // its name, to the right of every other stream's and to the left of the rest
        const right = index % 2 === 0;
        ctx.font = `600 ${font}px system-ui, sans-serif`;
        ctx.textAlign = right ? "left" : "right";
        ctx.textBaseline = "middle";
        ctx.fillText(s.id, X(last.v) + (right ? 1 : -1) * size / 40, Y(last.a));
      }
      ctx.globalAlpha = 1;
    }
  }

  function drawSeries(now) {
    const { ctx, w, h, ratio } = fit(series);
    ctx.clearRect(0, 0, w, h);
    const font = Math.max(11 * ratio, Math.min(h / 12, w / 60));
    const left = font * 5;
    const right = font * 0.8;
    const gap = font * 0.6;
    const bottom = font * 1.5;
    const lane = (h - bottom - gap) / 2;
    const X = (time) => left + (1 - (now - time) / SERIES_SECONDS) * (w - left - right);
    const lanes = [["valence", "v", "rv", 0], ["arousal", "a", "ra", lane + gap]];
    ctx.font = `400 ${font}px system-ui, sans-serif`;
    for (const [name, key, rawKey, top] of lanes) {
      const Y = (x) => top + (1 - (x + 1) / 2) * lane;
      ctx.fillStyle = "#0e1116";
      ctx.fillRect(left, top, w - left - right, lane);
      ctx.strokeStyle = "#2a313c";
      ctx.lineWidth = Math.max(1, ratio);
      ctx.beginPath();
      for (const g of [-0.5, 0.5]) {
        ctx.moveTo(left, Y(g));
        ctx.lineTo(w - right, Y(g));
      }
      ctx.stroke();
      ctx.strokeStyle = "#4a5464";
      ctx.beginPath();
      ctx.moveTo(left, Y(0));
      ctx.lineTo(w - right, Y(0));
      ctx.stroke();
      ctx.fillStyle = "#eef1f5";
      ctx.textAlign = "left";
      ctx.textBaseline = "middle";
      ctx.fillText(name, 0, top + lane / 2);
      ctx.fillStyle = "#9aa4b2";
      ctx.textAlign = "right";
      ctx.font = `400 ${font * 0.75}px system-ui, sans-serif`;
      ctx.fillText("+1", left - font * 0.3, Y(1) + font * 0.4);
      ctx.fillText("\u22121", left - font * 0.3, Y(-1) - font * 0.4);
      ctx.font = `400 ${font}px system-ui, sans-serif`;
      if (now === null) continue;
      ctx.save();
      ctx.beginPath();
      ctx.rect(left, top, w - left - right, lane);
      ctx.clip();
      for (const s of state.streams.values()) {
        for (const [k, width, alpha] of [[rawKey, 1.2, 0.45], [key, 2.8, 1]]) {
          ctx.globalAlpha = alpha;
          ctx.strokeStyle = s.colour;
          ctx.lineWidth = width * ratio;
          ctx.beginPath();
          let pen = false;
          for (const p of s.points) {
            if (p[k] === null || p.gap) pen = false;
            if (p[k] === null) continue;
            if (pen) ctx.lineTo(X(p.time), Y(p[k]));
            else ctx.moveTo(X(p.time), Y(p[k]));
            pen = true;
          }
          ctx.stroke();
        }
      }
      ctx.globalAlpha = 1;
      ctx.restore();
    }
    ctx.fillStyle = "#9aa4b2";
    ctx.textBaseline = "bottom";
    ctx.textAlign = "center";
    ctx.font = `400 ${font * 0.8}px system-ui, sans-serif`;
    for (let s = 0; s <= SERIES_SECONDS; s += 10) {
      const x = left + (1 - s / SERIES_SECONDS) * (w - left - right);
      ctx.fillText(s === 0 ? "now" : `\u2212${s} s`, x, h);
    }
  }

  function frame(ms) {
    // redraw on new data, else 10 times a second (the trail fades, the retry counts down)
    if (dirty || ms - lastDraw > 100) {
      const now = serverNow();
      drawPlane(now);
      drawSeries(now);
      if (state.connection !== "live" && state.retryAt) statusText.textContent = retryText();
      dirty = false;
      lastDraw = ms;
    }
    window.requestAnimationFrame(frame);
  }

  // A read-only view for tests and debugging: plain data, copied.
  window.rtmerPage = Object.freeze({
    snapshot() {
      const streams = {};
      for (const s of state.streams.values()) {
        streams[s.id] = {
          colour: s.colour,
          points: s.points.map((p) => ({ t: p.t, time: p.time, valence: p.v, arousal: p.a,
            valence_raw: p.rv, arousal_raw: p.ra, mood: p.mood, seq: p.seq })),
        };
      }
      return { connection: state.connection, url: state.url, model: state.model, hellos: state.hellos,
        updates: state.updates, streams };
    },
  });

  new ResizeObserver(() => { dirty = true; }).observe(document.body);
  setConnection("connecting", "connecting");
  connect();
  window.requestAnimationFrame(frame);
})();
