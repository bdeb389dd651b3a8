// The admin console's page, script and style, compiled in (no framework, no
// CDN, works offline). The script builds the page from GET /api/connections
// with textContent only (never innerHTML with data), and sends the CSRF token
// from <meta name="csrf"> with every POST.
#include "server/console.hpp"

namespace xo::server {

const char* const kConsoleCss = R"CSS(
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; background: #f5f6f8; color: #1d2330; }
header { background: #1d2330; color: #fff; padding: 12px 24px; display: flex; align-items: center; gap: 24px; }
header h1 { font-size: 18px; margin: 0; flex: 1; }
header button { background: transparent; color: #fff; border: 1px solid #fff8; }
main { padding: 20px 24px; max-width: 1200px; }
table { border-collapse: collapse; width: 100%; background: #fff; box-shadow: 0 1px 3px #0002; }
th, td { text-align: left; padding: 10px 12px; border-bottom: 1px solid #e3e6ec; vertical-align: top; }
th { background: #eef0f4; font-weight: 600; font-size: 13px; }
.state { font-weight: 700; padding: 2px 8px; border-radius: 10px; white-space: nowrap; }
.state-active { background: #d8f3df; color: #146c2e; }
.state-failing { background: #fbdcdc; color: #a01616; }
.state-needs-authorization { background: #fff0c2; color: #7a5a00; }
.state-idle { background: #e8eaef; color: #4a5160; }
.cause { margin-top: 6px; font-size: 13px; }
.fix { font-size: 13px; color: #35517a; }
.warn { color: #9a5b00; font-size: 13px; }
button { font: inherit; padding: 5px 12px; border-radius: 4px; border: 1px solid #8a93a6; background: #fff; cursor: pointer; margin: 0 6px 6px 0; }
button:hover { background: #eef0f4; }
pre { background: #111827; color: #e5e7eb; padding: 10px; border-radius: 4px; white-space: pre-wrap; font-size: 12px; }
.code { font: 700 22px monospace; letter-spacing: 2px; }
.login { max-width: 360px; margin: 80px auto; background: #fff; padding: 24px; box-shadow: 0 1px 3px #0002; }
.login input { width: 100%; padding: 8px; margin: 8px 0 16px; box-sizing: border-box; }
.error { color: #a01616; }
.muted { color: #6b7280; font-size: 13px; }
)CSS";

const char* const kConsoleJs = R"JS(
'use strict';
const csrf = document.querySelector('meta[name="csrf"]').content;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k === 'onclick') e.addEventListener('click', v); else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}, body: JSON.stringify(body)};
  const r = await fetch(path, opts);
  if (r.status === 401) { location.reload(); throw new Error('signed out'); }
  return {status: r.status, data: await r.json()};
}

function ago(seconds) {
  if (seconds < 120) return seconds + ' s';
  if (seconds < 7200) return Math.round(seconds / 60) + ' min';
  return Math.round(seconds / 3600) + ' h';
}

const results = {};   // connection -> element kept across refreshes (test output, authorization)

function stateClass(s) { return 'state state-' + s.toLowerCase().replace(/ /g, '-'); }

function row(c) {
  const state = el('td', {},
    el('span', {class: stateClass(c.state), id: 'state-' + c.name, 'data-state': c.state}, c.state));
  if (c.diagnosis) {
    state.append(el('div', {class: 'cause'}, c.diagnosis.cause));
    state.append(el('div', {class: 'fix'}, 'Fix: ' + c.diagnosis.fix));
  }
  const token = el('td', {}, c.token_expires_in !== undefined ? 'expires in ' + ago(c.token_expires_in) : '—');
  for (const cr of c.credentials) {
    token.append(el('div', {class: cr.warning ? 'warn' : 'muted'}, cr.text));
    if (cr.warning) token.append(el('div', {class: 'fix'}, cr.warning));
  }
  const last = el('td', {}, c.last_error ? c.last_error.summary : '—');
  const actions = el('td', {});
  const out = results[c.name] || (results[c.name] = el('div', {id: 'out-' + c.name}));
  actions.append(el('button', {id: 'test-' + c.name, onclick: () => runTest(c.name)}, 'Test'));
  if (c.interactive) actions.append(el('button', {id: 'authorize-' + c.name, onclick: () => authorize(c)}, 'Authorize'));
  if (c.authorization) {
    const a = c.authorization, box = el('div', {id: 'authorization-' + c.name, 'data-state': a.state});
    if (a.state === 'pending' && a.user_code) {
      box.append(el('div', {}, 'Open ', el('a', {href: a.verification_uri, target: '_blank', rel: 'noopener', id: 'verify-' + c.name}, a.verification_uri),
                     ' and enter the code:'), el('div', {class: 'code', id: 'code-' + c.name}, a.user_code),
                 el('div', {class: 'muted'}, 'waiting for ' + a.mailbox + ' to sign in…'));
    } else if (a.state === 'pending' && a.authorize_url) {
      box.append(el('a', {href: a.authorize_url, id: 'signin-' + c.name}, 'Sign in as ' + a.mailbox));
    } else {
      box.append(el('div', {class: a.state === 'done' ? 'muted' : 'error'}, a.message));
    }
    actions.append(box);
  }
  actions.append(out);
  return el('tr', {id: 'conn-' + c.name},
    el('td', {}, el('strong', {}, c.name), el('div', {class: 'muted'}, c.provider + ' · ' + c.flow + (c.mailbox ? ' · ' + c.mailbox : ''))),
    state, token, last, actions);
}

async function refresh() {
  const {data} = await api('/api/connections');
  const counters = data.counters;
  document.getElementById('counters').textContent =
    'messages relayed ' + counters.messages_relayed + ' · refused ' + counters.messages_refused +
    ' · failed ' + counters.messages_failed + ' · sessions ' + counters.sessions_active;
  const body = document.getElementById('connections');
  body.replaceChildren(...data.connections.map(row));
  document.getElementById('store-error').textContent = data.store_error ? 'token store: ' + data.store_error : '';
}

async function runTest(name) {
  const out = results[name];
  out.replaceChildren(el('div', {class: 'muted'}, 'testing…'));
  const {status, data} = await api('/api/connections/' + encodeURIComponent(name) + '/test', {protocol: 'smtp'});
  if (status !== 200) { out.replaceChildren(el('div', {class: 'error'}, data.error)); return; }
  const lines = data.steps.map(s => String(s.ms).padStart(6) + ' ms  ' + s.name.padEnd(18) + ' ' + s.result.padEnd(6) + ' ' + s.detail +
    (s.result === 'ok' ? '' : '\n             cause: ' + s.cause + '\n             fix:   ' + s.fix));
  lines.push('verdict: ' + data.verdict);
  out.replaceChildren(el('pre', {id: 'test-output-' + name, 'data-ok': String(data.ok)}, lines.join('\n')));
  refresh();
}

async function authorize(c) {
  const {status, data} = await api('/api/connections/' + encodeURIComponent(c.name) + '/authorize', {});
  if (status !== 200) results[c.name].replaceChildren(el('div', {class: 'error'}, data.error + (data.advice ? ': ' + data.advice : '')));
  refresh();
}

document.getElementById('logout').addEventListener('click', async () => { await api('/logout', {}); location.reload(); });
refresh();
setInterval(refresh, 2000);
)JS";

const char* const kConsolePage = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="csrf" content="{{CSRF}}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>xoauth2-proxy</title><link rel="stylesheet" href="/console.css"></head>
<body><header><h1>xoauth2-proxy: connections</h1><span id="counters"></span><button id="logout">Sign out</button></header>
<main><p class="error" id="store-error"></p>
<table><thead><tr><th>Connection</th><th>State</th><th>Token and credentials</th><th>Last error</th><th></th></tr></thead>
<tbody id="connections"></tbody></table>
<p class="muted">Test runs the same steps as <code>xoauth2-proxy test</code> (nothing is sent). Authorize signs a mailbox in for the interactive flows.</p>
</main><script src="/console.js"></script></body></html>
)HTML";

const char* const kConsoleLogin = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>xoauth2-proxy: sign in</title><link rel="stylesheet" href="/console.css"></head>
<body><form class="login" method="post" action="/login"><h1>xoauth2-proxy</h1>{{MESSAGE}}
<label for="password">Admin password</label><input type="password" id="password" name="password" autofocus autocomplete="current-password">
<button type="submit" id="signin">Sign in</button></form></body></html>
)HTML";

}  // namespace xo::server
