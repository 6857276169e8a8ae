#include "serve/web_page.h"

namespace razor::serve {
namespace {

// Plain HTML + CSS + vanilla JS. Element ids and the data-* attributes of the sequence cards are what
// tests/serve_browser/test_web_page.py reads: keep them stable.
constexpr std::string_view kPage = R"razorpage(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>razor serve</title>
<link rel="icon" href="data:,">
<style>
  body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d232a; background: #f4f5f7; }
  header { padding: 8px 16px; background: #1d232a; color: #eef; display: flex; gap: 16px; align-items: center; }
  header h1 { font-size: 16px; margin: 0; }
  header .grow { flex: 1; }
  main { display: flex; gap: 16px; padding: 16px; align-items: flex-start; }
  section { background: #fff; border: 1px solid #d8dce2; border-radius: 6px; padding: 12px; }
  #chat { flex: 3; min-width: 0; }
  #kv-panel { flex: 2; min-width: 300px; }
  h2 { font-size: 14px; margin: 0 0 8px; }
  #messages { height: 55vh; overflow-y: auto; border: 1px solid #e3e6ea; border-radius: 4px; padding: 8px; }
  .msg { margin: 0 0 10px; white-space: pre-wrap; word-wrap: break-word; }
  .msg .role { font-weight: 600; font-size: 12px; color: #667; display: block; }
  .msg.user .text { background: #eef3ff; }
  .msg.error .text { color: #b00020; }
  .msg .text { display: block; padding: 4px 6px; border-radius: 4px; }
  .settings { display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0; font-size: 13px; }
  .settings input { width: 70px; }
  textarea { width: 100%; box-sizing: border-box; height: 80px; font: inherit; }
  .buttons { display: flex; gap: 8px; margin-top: 6px; }
  button { font: inherit; padding: 4px 14px; }
  .bar { height: 14px; background: #e3e6ea; border-radius: 3px; overflow: hidden; }
  .bar > div { height: 100%; background: #3b7ddd; width: 0; }
  .muted { color: #667; font-size: 12px; }
  .seq-card { border: 1px solid #e3e6ea; border-radius: 4px; padding: 8px; margin-top: 10px; }
  .seq-card .stats { font-size: 12px; margin: 4px 0; }
  .seq-card canvas { display: block; image-rendering: pixelated; border: 1px solid #ccd; }
  .legend span { display: inline-block; width: 10px; height: 10px; margin: 0 3px 0 10px; vertical-align: middle; }
</style>
</head>
<body>
<header>
  <h1>razor serve</h1><span id="model" class="muted"></span><span class="grow"></span>
  <label>API key <input id="api-key" type="password" autocomplete="off" placeholder="(none)"></label>
</header>
<main>
  <section id="chat">
    <h2>Chat</h2>
    <div id="messages"></div>
    <div class="settings">
      <label>max_tokens <input id="max-tokens" type="number" min="1" value="256"></label>
      <label>temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.7"></label>
      <label>KV <select id="kv">
        <option value="">server default</option><option value="full">full</option>
        <option value="razor">razor</option><option value="streaming">streaming</option>
      </select></label>
      <button id="clear" type="button">clear chat</button>
    </div>
    <textarea id="prompt" placeholder="Message (Enter sends, Shift+Enter is a new line)"></textarea>
    <div class="buttons">
      <button id="send" type="button">Send</button>
      <button id="stop" type="button" disabled>Stop</button>
      <span id="chat-status" class="muted"></span>
    </div>
  </section>
  <section id="kv-panel">
    <h2>KV cache</h2>
    <div class="bar" title="pool in use"><div id="pool-fill"></div></div>
    <div id="pool-text" class="muted">&nbsp;</div>
    <div class="legend muted">heads: layers &rarr;, KV heads &darr;;
      <span style="background:#3b7ddd"></span>full <span style="background:#e8720c"></span>compressed
      (brighter: more of the sequence held)</div>
    <div id="kv-status" class="muted"></div>
    <div id="sequences"></div>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const conversation = [];  // {role, content}, oldest first
let controller = null;  // the running chat request's AbortController

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  const r = document.createElement("span");
  r.className = "role";
  r.textContent = role;
  const t = document.createElement("span");
  t.className = "text";
  t.textContent = text;
  div.append(r, t);
  $("messages").append(div);
  $("messages").scrollTop = $("messages").scrollHeight;
  return t;
}

async function errorText(res) {
  try { const j = await res.json(); return (j.error && j.error.message) || res.statusText; }
  catch (e) { return res.status + " " + res.statusText; }
}

async function send() {
  const text = $("prompt").value;
  if (!text.trim() || controller) return;
  $("prompt").value = "";
  conversation.push({role: "user", content: text});
  addMessage("user", text);
  const out = addMessage("assistant", "");
  const body = {messages: conversation, stream: true};
  const maxTokens = parseInt($("max-tokens").value, 10);
  if (maxTokens > 0) body.max_tokens = maxTokens;
  const temperature = parseFloat($("temperature").value);
  if (!isNaN(temperature)) body.temperature = temperature;
  if ($("kv").value) body.razor = {kv: $("kv").value};
  controller = new AbortController();
  $("send").disabled = true;
  $("stop").disabled = false;
  $("chat-status").textContent = "streaming...";
  let answer = "", failed = null;
  try {
    const res = await fetch("/v1/chat/completions", {method: "POST", headers: headers(true),
                                                     body: JSON.stringify(body), signal: controller.signal});
    if (!res.ok) throw new Error(await errorText(res));
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "", done = false;
    while (!done) {
      const chunk = await reader.read();
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, {stream: true});
      let end;
      while (!done && (end = buffer.indexOf("\n\n")) >= 0) {  // one server-sent event
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") { done = true; break; }
          const j = JSON.parse(data);
          if (j.error) throw new Error(j.error.message);
          const delta = j.choices && j.choices[0] && j.choices[0].delta;
          if (delta && delta.content) {
            answer += delta.content;
            out.textContent = answer;
            $("messages").scrollTop = $("messages").scrollHeight;
          }
        }
      }
    }
    if (done) reader.cancel().catch(() => {});
  } catch (e) {
    failed = e.name === "AbortError" ? "stopped" : e.message;
  }
  if (answer) conversation.push({role: "assistant", content: answer});
  else conversation.pop();  // not answered: not sent again with the next message
  if (failed && failed !== "stopped") addMessage("error", failed);
  out.parentElement.dataset.done = "1";
  $("chat-status").textContent = failed === "stopped" ? "stopped" : "";
  controller = null;
  $("send").disabled = false;
  $("stop").disabled = true;
}

function mib(bytes) { return (bytes / 1048576).toFixed(bytes < 10485760 ? 2 : 1) + " MiB"; }

// Layers along x, KV heads along y; colour: the share of the sequence a head holds; compressed heads orange.
function drawHeatmap(canvas, s) {
  const cw = Math.max(4, Math.floor(320 / Math.max(1, s.n_layers)));
  const ch = Math.max(8, Math.min(24, Math.floor(96 / Math.max(1, s.n_kv_heads))));
  canvas.width = Math.max(1, s.n_layers * cw);
  canvas.height = Math.max(1, s.n_kv_heads * ch);
  const g = canvas.getContext("2d");
  g.fillStyle = "#101418";
  g.fillRect(0, 0, canvas.width, canvas.height);
  for (let l = 0; l < s.n_layers; ++l) {
    for (let h = 0; h < s.n_kv_heads; ++h) {
      const held = (s.head_tokens[l] || [])[h] || 0;
      const f = s.length > 0 ? Math.min(1, held / s.length) : 0;
      const light = 18 + Math.round(52 * f);
      const compressed = (s.head_compressed[l] || [])[h];
      g.fillStyle = compressed ? `hsl(28, 90%, ${light}%)` : `hsl(215, 70%, ${light}%)`;
      g.fillRect(l * cw, h * ch, cw - 1, ch - 1);
    }
  }
}

function card() {
  const div = document.createElement("div");
  div.className = "seq-card";
  div.innerHTML = '<div><b class="title"></b></div><div class="stats"></div><canvas></canvas>';
  return div;
}

function renderSequences(report) {
  const pool = report.pool_bytes || 0;
  const used = pool ? Math.min(100, 100 * report.kv_bytes_held / pool) : 0;
  $("pool-fill").style.width = (report.kv_bytes_held > 0 ? Math.max(0.5, used) : 0) + "%";
  $("pool-text").textContent = `pool: ${mib(report.kv_bytes_held)} of ${mib(pool)} in use (${used.toFixed(2)} %); ` +
      `${report.running} running, ${report.waiting} waiting; full-cache equivalent ` +
      mib(report.kv_bytes_full_equivalent);
  const box = $("sequences");
  const seen = new Set();
  for (const s of report.sequences) {
    const id = String(s.id);
    seen.add(id);
    let div = box.querySelector(`.seq-card[data-seq-id="${id}"]`);
    if (!div) { div = card(); div.dataset.seqId = id; box.append(div); }
    Object.assign(div.dataset, {kv: s.kv, length: s.length, kvBytes: s.kv_bytes, fullBytes: s.full_bytes,
                                reduction: s.reduction, heads: s.heads, headsCompressed: s.heads_compressed});
    div.querySelector(".title").textContent = `sequence ${id} (${s.kv})`;
    const phase = s.prefilled < s.prompt_tokens ? `prefill ${s.prefilled}/${s.prompt_tokens}`
                                                : `prompt ${s.prompt_tokens}, generated ${s.generated}`;
    div.querySelector(".stats").innerHTML = "";
    div.querySelector(".stats").append(
        `${phase}; length ${s.length}`, document.createElement("br"),
        `KV ${mib(s.kv_bytes)} held, full cache ${mib(s.full_bytes)}, ` +
        `reduction ${(100 * s.reduction).toFixed(1)} %`, document.createElement("br"),
        `compressed heads ${s.heads_compressed} / ${s.heads}`);
    drawHeatmap(div.querySelector("canvas"), s);
  }
  for (const div of [...box.querySelectorAll(".seq-card")])
    if (!seen.has(div.dataset.seqId)) div.remove();
  $("kv-status").textContent = report.sequences.length ? "" : "no sequence running";
}

async function poll() {
  try {
    const res = await fetch("/razor/sequences", {headers: headers(false), cache: "no-store"});
    if (!res.ok) $("kv-status").textContent = "/razor/sequences: " + await errorText(res);
    else renderSequences(await res.json());
  } catch (e) {
    $("kv-status").textContent = "/razor/sequences: " + e.message;
  }
  setTimeout(poll, 500);
}

async function loadModel() {
  try {
    const res = await fetch("/v1/models", {headers: headers(false)});
    if (res.ok) { const j = await res.json(); $("model").textContent = j.data[0].id; }
  } catch (e) {}
}

$("send").addEventListener("click", send);
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
$("clear").addEventListener("click", () => {
  if (!controller) { conversation.length = 0; $("messages").innerHTML = ""; }
});
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); }
});
$("api-key").addEventListener("change", loadModel);
loadModel();
poll();
</script>
</body>
</html>
)razorpage";

}  // namespace

std::string_view WebPageHtml() { return kPage; }

}  // namespace razor::serve
