"""The web viewer's one page: every stream as a card with its live view and numbers.

Plain HTML and JavaScript, no build step and nothing fetched from elsewhere (edge boxes are
often offline). ``/?stream=NAME`` shows one stream. Each card keeps ``data-seq`` (the newest
frame shown) and ``data-frames`` (frames shown so far) up to date, for people and for tests.
"""

INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>framebus</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 14px system-ui, sans-serif; margin: 1em; background: #111; color: #ddd; }
 h1 { font-size: 18px; margin: 0 0 .6em; } a { color: #8cf; }
 #streams { display: flex; flex-wrap: wrap; gap: 1em; }
 .card { background: #1c1c1c; border-radius: 6px; padding: .6em; width: 480px; }
 .card img { width: 100%; background: #000; min-height: 60px; display: block; }
 .name { font-weight: 600; } .stats { color: #aaa; font-size: 12px; margin-top: .3em; }
 .gone { opacity: .5; }
</style></head>
<body><h1>framebus streams <!--logout--></h1><div id="streams"><p id="empty">No streams yet.</p></div>
<script>
"use strict";
const only = new URLSearchParams(location.search).get("stream");
const cards = new Map();

function card(name) {
  let c = cards.get(name);
  if (c) return c;
  document.getElementById("empty")?.remove();
  const el = document.createElement("div");
  el.className = "card"; el.dataset.stream = name; el.dataset.seq = "0"; el.dataset.frames = "0";
  el.innerHTML = '<div><a class="name"></a> <span class="state"></span></div>' +
    '<img alt=""><div class="stats"><span class="nums"></span> · <a class="snap">snapshot</a></div>';
  const link = el.querySelector(".name");
  link.textContent = name; link.href = "?stream=" + encodeURIComponent(name);
  el.querySelector(".snap").href = "snapshot/" + encodeURIComponent(name) + ".jpg";
  document.getElementById("streams").appendChild(el);
  c = { el, img: el.querySelector("img"), stats: el.querySelector(".nums"),
        state: el.querySelector(".state"), latency: null, url: null };
  cards.set(name, c);
  connect(name, c);
  return c;
}

function connect(name, c) {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host +
                           "/ws/" + encodeURIComponent(name));
  ws.binaryType = "arraybuffer";
  ws.onopen = () => ws.send("next");
  ws.onmessage = (ev) => {
    if (typeof ev.data === "string") { c.state.textContent = JSON.parse(ev.data).status; return; }
    const view = new DataView(ev.data);
    const len = view.getUint32(0);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(ev.data, 4, len)));
    const url = URL.createObjectURL(new Blob([new Uint8Array(ev.data, 4 + len)], { type: "image/jpeg" }));
    c.img.onload = () => {
      if (c.url) URL.revokeObjectURL(c.url);
      c.url = url;
      c.el.dataset.seq = String(header.seq);
      c.el.dataset.frames = String(Number(c.el.dataset.frames) + 1);
      c.latency = header.latency_ms;
      c.state.textContent = header.stale ? "stale" : "";
      ws.send("next");  // ready for the newest frame: a slow page never builds a queue
    };
    c.img.onerror = () => ws.send("next");
    c.img.src = url;
  };
  ws.onclose = () => setTimeout(() => connect(name, c), 1000);
}

async function refresh() {
  try {
    const streams = await (await fetch("api/streams")).json();
    const seen = new Set();
    for (const s of streams) {
      if (only && s.name !== only) continue;
      seen.add(s.name);
      const c = card(s.name);
      c.el.classList.toggle("gone", !s.writer_alive);
      const fps = s.nominal_fps ? `${s.fps.toFixed(1)}/${s.nominal_fps} fps` : `${s.fps.toFixed(1)} fps`;
      const lat = c.latency == null ? "-" : `${c.latency.toFixed(1)} ms`;
      c.stats.textContent = s.error ? `unreadable: ${s.error}` :
        `${s.shape.join("x")} ${s.dtype} · ${fps} · latency ${lat} · ${s.subscribers} subscriber(s)` +
        ` · ${s.viewers} viewer(s)` + (s.writer_alive ? (s.stalled ? " · stalled" : "") : " · no writer");
    }
    for (const [name, c] of cards) if (!seen.has(name)) c.el.classList.add("gone");
  } catch (e) { /* the server restarts: try again next round */ }
  setTimeout(refresh, 1000);
}
refresh();
</script></body></html>
"""
