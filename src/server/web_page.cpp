#include "server/web_page.h"

#include <nlohmann/json.hpp>

namespace glimpse {

namespace {

// @POLICIES@, @PRESELECT@ and @MODEL@ are replaced by JSON values.
const char* kPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>glimpse</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; background: #f6f6f3; color: #222; }
  header { background: #20303c; color: #fff; padding: 10px 18px; }
  header b { font-size: 17px; }
  main { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; padding: 16px; }
  section { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 12px; }
  textarea, input[type=text], input[type=password] { width: 100%; box-sizing: border-box;
    font: 14px/1.4 ui-monospace, monospace; }
  #doc { height: 340px; }
  .row { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; margin: 8px 0; }
  #answer { white-space: pre-wrap; min-height: 120px; border: 1px solid #eee; padding: 8px; }
  #stats { font-size: 13px; color: #444; margin-top: 10px; }
  #stats td { padding: 1px 10px 1px 0; }
  button { padding: 6px 16px; font-size: 15px; }
  .err { color: #a00; }
</style>
</head>
<body>
<header><b>glimpse</b> &middot; <span id="model"></span></header>
<main>
<section>
  <label for="doc">Document</label>
  <textarea id="doc" placeholder="Paste a document here, or load a file below."></textarea>
  <div class="row"><input type="file" id="file" accept=".txt,.md,text/*"></div>
  <label for="question">Question</label>
  <input type="text" id="question" placeholder="What does the document say about ...?">
  <div class="row">
    <label>KV policy <select id="policy"></select></label>
    <label>budget <input type="number" id="budget" value="256" min="1" style="width:6em"></label>
    <label><input type="checkbox" id="agnostic"> compress before the question</label>
  </div>
  <div class="row">
    <label>max tokens <input type="number" id="maxtok" value="256" min="1" style="width:6em"></label>
    <label>API key <input type="password" id="key" style="width:10em"></label>
    <button id="ask">Ask</button>
  </div>
</section>
<section>
  <div>Answer</div>
  <div id="answer"></div>
  <div id="stats"></div>
</section>
</main>
<script>
const POLICIES = @POLICIES@, PRESELECT = @PRESELECT@;
document.getElementById('model').textContent = @MODEL@;
const sel = document.getElementById('policy');
for (const p of POLICIES) {
  const o = document.createElement('option');
  o.value = o.textContent = p;
  if (p === PRESELECT) o.selected = true;
  sel.appendChild(o);
}
const keyBox = document.getElementById('key');
keyBox.value = localStorage.getItem('glimpse-key') || '';
document.getElementById('file').addEventListener('change', async (e) => {
  const f = e.target.files[0];
  if (f) document.getElementById('doc').value = await f.text();
});
function mib(b) { return (b / 1048576).toFixed(2) + ' MiB'; }
function showStats(t, kv) {
  const rows = [
    ['KV policy', kv.policy + (kv.budget ? ' @ ' + kv.budget : '')],
    ['KV entries', kv.entries + ' of ' + kv.full_entries + ' (full cache)'],
    ['KV memory', mib(kv.bytes) + ' of ' + mib(kv.full_bytes)],
    ['prompt', t.prompt_n + ' tokens, ' + t.prompt_ms.toFixed(0) + ' ms (' + t.prompt_per_second.toFixed(1) + ' t/s)' +
               (t.cache_n ? ', ' + t.cache_n + ' more from the document cache' : '')],
    ['answer', t.predicted_n + ' tokens, ' + t.predicted_ms.toFixed(0) + ' ms (' + t.predicted_per_second.toFixed(1) + ' t/s)'],
  ];
  document.getElementById('stats').innerHTML = '<table>' + rows.map(
    r => '<tr><td>' + r[0] + '</td><td>' + r[1] + '</td></tr>').join('') + '</table>';
}
document.getElementById('ask').addEventListener('click', async () => {
  const doc = document.getElementById('doc').value, q = document.getElementById('question').value;
  const answer = document.getElementById('answer'), stats = document.getElementById('stats');
  answer.textContent = ''; answer.className = ''; stats.textContent = '';
  localStorage.setItem('glimpse-key', keyBox.value);
  const agnostic = document.getElementById('agnostic').checked;
  const messages = agnostic ? [{role: 'user', content: doc}, {role: 'user', content: q}]
                            : [{role: 'user', content: doc ? doc + '\n\n' + q : q}];
  const body = {messages, stream: true, temperature: 0,
                max_tokens: parseInt(document.getElementById('maxtok').value) || 256,
                kv_policy: sel.value, query_aware: !agnostic};
  if (sel.value !== 'none') body.kv_budget = parseInt(document.getElementById('budget').value) || 256;
  const headers = {'Content-Type': 'application/json'};
  if (keyBox.value) headers['Authorization'] = 'Bearer ' + keyBox.value;
  document.getElementById('ask').disabled = true;
  try {
    const res = await fetch('/v1/chat/completions', {method: 'POST', headers, body: JSON.stringify(body)});
    if (!res.ok) {
      const e = await res.json().catch(() => ({error: {message: res.statusText}}));
      throw new Error(e.error.message);
    }
    const reader = res.body.getReader(), dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += dec.decode(value, {stream: true});
      let at;
      while ((at = buf.indexOf('\n\n')) >= 0) {
        const line = buf.slice(0, at); buf = buf.slice(at + 2);
        if (!line.startsWith('data: ')) continue;
        const data = line.slice(6);
        if (data === '[DONE]') continue;
        const ev = JSON.parse(data);
        if (ev.error) throw new Error(ev.error.message);
        const ch = ev.choices && ev.choices[0];
        if (ch && ch.delta && ch.delta.content) answer.textContent += ch.delta.content;
        if (ev.timings && ev.kv) showStats(ev.timings, ev.kv);
      }
    }
    answer.dataset.done = '1';
  } catch (err) {
    answer.className = 'err';
    answer.textContent = 'error: ' + err.message;
    answer.dataset.done = '1';
  } finally {
    document.getElementById('ask').disabled = false;
  }
});
</script>
</body>
</html>
)HTML";

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

// JSON for a script context: "</" cannot close the script element.
std::string script_json(const nlohmann::json& j) {
  std::string s = j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  replace_all(s, "</", "<\\/");
  return s;
}

}  // namespace

std::string web_page(const std::vector<std::string>& policies, const std::string& preselect,
                     const std::string& model_id) {
  std::string page = kPage;
  replace_all(page, "@POLICIES@", script_json(policies));
  replace_all(page, "@PRESELECT@", script_json(preselect));
  replace_all(page, "@MODEL@", script_json(model_id));
  return page;
}

}  // namespace glimpse
