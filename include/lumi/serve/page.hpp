#pragma once
// The chat page GET / serves: one static file, no framework and nothing fetched from elsewhere. It talks to
// /v1/chat/completions with stream: true and shows the answer as it arrives; Stop aborts the request (the
// server frees its row).
#include <string_view>

namespace lumi::serve {

inline constexpr std::string_view chat_page = R"lumi(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lumi chat</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; display: flex; flex-direction: column; height: 100vh; }
  header { padding: .6em 1em; background: #1d2733; color: #eee; display: flex; gap: 1em; align-items: center; flex-wrap: wrap; }
  header label { font-size: .85em; }
  header input { width: 5em; }
  #log { flex: 1; overflow-y: auto; padding: 1em; }
  .msg { max-width: 48em; margin: .4em 0; padding: .5em .8em; border-radius: .5em; white-space: pre-wrap; }
  .user { background: #dbe9ff; margin-left: auto; }
  .assistant { background: #f1f1f1; }
  .error { background: #ffe0e0; }
  .msg[data-state=stopped]::after { content: " [stopped]"; color: #888; }
  form { display: flex; gap: .5em; padding: .6em 1em; border-top: 1px solid #ccc; }
  textarea { flex: 1; font: inherit; height: 3.2em; }
</style>
</head>
<body>
<header>
  <strong>lumi</strong> <span id="model">…</span>
  <label>temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.7"></label>
  <label>max tokens <input id="max_tokens" type="number" min="1" step="1" value="128"></label>
  <label>API key <input id="key" type="password" style="width:8em"></label>
  <button id="reset" type="button">New chat</button>
</header>
<div id="log"></div>
<form id="form">
  <textarea id="input" placeholder="Type a message; Enter sends, Shift+Enter is a new line"></textarea>
  <button id="send" type="submit">Send</button>
  <button id="stop" type="button" disabled>Stop</button>
</form>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let model = null, history = [], controller = null;

function headers() {
  const h = { "Content-Type": "application/json" };
  if ($("key").value) h["Authorization"] = "Bearer " + $("key").value;
  return h;
}
function bubble(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  $("log").appendChild(div);
  $("log").scrollTop = $("log").scrollHeight;
  return div;
}
async function loadModel() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error ? body.error.message : r.statusText);
    model = body.data[0].id;
    $("model").textContent = model;
  } catch (e) { $("model").textContent = "(" + e.message + ")"; }
}
async function send(text) {
  if (!model) await loadModel();
  history.push({ role: "user", content: text });
  bubble("user", text);
  const out = bubble("assistant", "");
  out.dataset.state = "streaming";
  controller = new AbortController();
  $("send").disabled = true; $("stop").disabled = false;
  let answer = "";
  try {
    const r = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(), signal: controller.signal,
      body: JSON.stringify({ model, messages: history, stream: true,
                             temperature: Number($("temperature").value), max_tokens: Number($("max_tokens").value) }),
    });
    if (!r.ok) { const body = await r.json(); throw new Error(body.error ? body.error.message : r.statusText); }
    const reader = r.body.getReader(), decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end); buffer = buffer.slice(end + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        for (const choice of chunk.choices) {
          if (choice.delta && choice.delta.content) { answer += choice.delta.content; out.textContent = answer; }
        }
        $("log").scrollTop = $("log").scrollHeight;
      }
    }
    out.dataset.state = "done";
  } catch (e) {
    if (e.name === "AbortError") { out.dataset.state = "stopped"; }
    else { out.className = "msg error"; out.textContent = answer + (answer ? "\n" : "") + "error: " + e.message; out.dataset.state = "error"; }
  }
  history.push({ role: "assistant", content: answer });
  controller = null;
  $("send").disabled = false; $("stop").disabled = true;
}
$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("input").value.trim();
  if (!text || controller) return;
  $("input").value = "";
  send(text);
});
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("form").requestSubmit(); }
});
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
$("reset").addEventListener("click", () => { if (controller) controller.abort(); history = []; $("log").innerHTML = ""; });
loadModel();
</script>
</body>
</html>
)lumi";

}  // namespace lumi::serve
