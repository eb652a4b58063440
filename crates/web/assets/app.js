// Shoal's web UI: reads the node's state from /api/v1, follows
// /api/v1/events, and sends commands with the page's CSRF token. Text from
// peers only ever goes into textContent, never into HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
let csrf = meta("shoal-csrf");

const state = {
  status: null,
  peers: [],
  transfers: new Map(),
  files: [],
  settings: null,
  browsing: null,
  log: [],
};
const LOG_KEEP = 2000;

// ---- talking to the node ------------------------------------------------

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (method !== "GET") opts.headers["X-Shoal-CSRF"] = csrf;
  if (body instanceof FormData) {
    opts.body = body;
  } else if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch("/api/v1" + path, opts);
  if (r.status === 401) {
    showLogin();
    throw new Error("not signed in");
  }
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error((data && data.error) || `${r.status} ${r.statusText}`);
  return data;
}

function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
}

function fail(e) { toast(String(e.message || e)); }

// ---- formatting ------------------------------------------------------------

function bytes(n) {
  if (n == null) return "";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + u[i];
}

function eta(t) {
  if (!t.speed || t.total <= t.done) return "";
  const s = Math.round((t.total - t.done) / t.speed);
  if (s < 60) return s + " s left";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s left";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min left";
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function button(text, onClick, cls) {
  const b = el("button", cls, text);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    toast(what + " copied");
  } catch {
    window.prompt("Copy " + what, text);
  }
}

// ---- header ----------------------------------------------------------------

function renderStatus() {
  const s = state.status;
  if (!s) return;
  $("name").textContent = s.name;
  $("short-id").textContent = s.short_id;
  const pill = $("net-state");
  pill.textContent = s.state.toUpperCase();
  pill.className = "pill " + s.state;
  $("port").textContent = s.port
    ? "port " + s.port + (s.reach ? " · " + s.reach + (s.relay ? " via " + s.relay : "") : "")
    : "";
  $("start-stop").textContent = s.port ? "Stop network" : "Start network";
  document.title = `Shoal: ${s.name} (${s.state})`;
}

$("short-id").addEventListener("click", () => state.status && copy(state.status.peer_id, "peer id"));
$("start-stop").addEventListener("click", () => {
  const running = state.status && state.status.port;
  api("POST", running ? "/network/stop" : "/network/start").catch(fail);
});

// ---- tabs ------------------------------------------------------------------

const tabs = ["peers", "transfers", "share", "files", "settings"];
function show(view) {
  for (const t of tabs) {
    $("tab-" + t).setAttribute("aria-selected", String(t === view));
    $("tab-" + t).tabIndex = t === view ? 0 : -1;
    $("view-" + t).hidden = t !== view;
  }
  if (view === "settings") loadSettings();
}
tabs.forEach((t, i) => {
  const b = $("tab-" + t);
  b.addEventListener("click", () => show(t));
  b.addEventListener("keydown", (e) => {
    const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
    if (!step) return;
    const next = tabs[(i + step + tabs.length) % tabs.length];
    show(next);
    $("tab-" + next).focus();
  });
});

// ---- peers and browsing ----------------------------------------------------

function renderPeers() {
  const list = $("peers");
  list.replaceChildren();
  for (const p of state.peers) {
    const li = el("li");
    if (state.browsing === p.peer_id) li.classList.add("active");
    li.append(el("span", "title", p.name));
    li.append(el("span", "meta mono", p.peer_id.slice(0, 12)));
    li.append(el("span", "badge " + (p.verdict || "new"), p.verdict || "new"));
    if (p.reach) li.append(el("span", "badge reach-" + p.reach, p.reach));
    li.append(el("span", "meta", p.files == null ? "? files" : p.files + (p.files === 1 ? " file" : " files")));
    li.append(button("Browse", () => browse(p), "small"));
    list.append(li);
  }
  $("no-peers").hidden = state.peers.length > 0;
  for (const id of ["share-peer", "send-peer"]) {
    const sel = $(id);
    const was = sel.value;
    sel.replaceChildren();
    for (const p of state.peers) {
      const o = el("option", "", p.name + " (" + p.peer_id.slice(0, 8) + ")");
      o.value = p.peer_id;
      sel.append(o);
    }
    if (was) sel.value = was;
  }
  updateSendButton();
}

async function browse(p) {
  state.browsing = p.peer_id;
  renderPeers();
  $("browse").hidden = false;
  $("browse-title").textContent = "Files of " + p.name;
  const list = $("listing");
  list.replaceChildren(el("li", "muted", "Asking " + p.name + "…"));
  try {
    const got = await api("GET", "/peers/" + encodeURIComponent(p.peer_id) + "/files");
    if (state.browsing !== p.peer_id) return;
    list.replaceChildren();
    if (!got.files.length) list.append(el("li", "muted", p.name + " shares nothing."));
    for (const f of got.files) {
      const li = el("li");
      li.append(el("span", "title", f.name));
      li.append(el("span", "meta", bytes(f.size) + (f.encrypted ? " · encrypted" : "")));
      li.append(button("Download", () => download(p.peer_id + ":" + f.name), "small primary"));
      list.append(li);
    }
  } catch (e) {
    list.replaceChildren(el("li", "error", "Cannot list " + p.name + ": " + e.message));
  }
}

async function download(target) {
  try {
    await api("POST", "/downloads", { target });
    show("transfers");
  } catch (e) { fail(e); }
}

$("get-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const t = $("get-target").value.trim();
  if (t) download(t).then(() => { $("get-target").value = ""; });
});
$("refresh-peers").addEventListener("click", () => api("GET", "/peers").then((p) => { state.peers = p; renderPeers(); }).catch(fail));

// ---- transfers -------------------------------------------------------------

function renderTransfers() {
  const list = $("transfers");
  list.replaceChildren();
  const all = [...state.transfers.values()].sort((a, b) => b.id - a.id);
  for (const t of all) list.append(transferRow(t));
  $("no-transfers").hidden = all.length > 0;
  const running = all.filter((t) => t.state === "running").length;
  $("running-count").textContent = running ? String(running) : "";
}

function transferRow(t) {
  const li = el("li");
  li.dataset.id = t.id;
  li.append(el("span", "title", (t.direction === "push" ? "↑ " : "↓ ") + t.name));
  li.append(el("span", "meta", (t.direction === "push" ? "to " : "from ") + t.peer));
  li.append(el("span", "badge " + t.state, t.state));
  const bar = el("div", "bar");
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-label", "progress of " + t.name);
  bar.append(el("div"));
  li.append(bar);
  li.append(el("span", "meta numbers"));
  const id = t.id;
  if (t.state === "running" && !t.finishing) {
    li.append(button("Pause", () => act(id, "pause"), "small"));
    li.append(button("Cancel", () => act(id, "cancel"), "small danger"));
  } else if (t.state === "paused" || t.state === "failed") {
    li.append(button("Resume", () => act(id, "resume"), "small primary"));
    li.append(button("Cancel", () => act(id, "cancel"), "small danger"));
  }
  if (t.state === "needs-passphrase") {
    const form = el("form", "row");
    const input = el("input");
    input.type = "password";
    input.placeholder = "Passphrase to open it";
    input.setAttribute("aria-label", "passphrase for " + t.name);
    input.autocomplete = "off";
    const go = el("button", "small primary", "Open");
    go.type = "submit";
    form.append(input, go);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      go.disabled = true;
      try {
        const done = await api("POST", "/transfers/" + id + "/open", { passphrase: input.value });
        state.transfers.set(done.id, done);
        renderTransfers();
      } catch (err) { fail(err); go.disabled = false; }
    });
    li.append(form);
  }
  if (t.error) li.append(el("span", "meta error", t.error));
  if (t.path) li.append(el("span", "meta mono", t.path));
  updateNumbers(li, t);
  return li;
}

function updateNumbers(li, t) {
  const pct = t.total ? Math.floor((t.done / t.total) * 100) : t.state === "done" ? 100 : 0;
  const bar = li.querySelector(".bar");
  bar.setAttribute("aria-valuenow", String(pct));
  bar.firstChild.style.width = pct + "%";
  const parts = [pct + "%", bytes(t.done) + " of " + bytes(t.total)];
  if (t.state === "running") {
    if (t.speed) parts.push(bytes(t.speed) + "/s");
    const left = eta(t);
    if (left) parts.push(left);
    if (t.direction === "download") parts.push(t.sources + (t.sources === 1 ? " source" : " sources"));
  }
  if (t.via && t.direction === "download") parts.push("via " + t.via);
  li.querySelector(".numbers").textContent = parts.join(" · ");
}

async function act(id, action) {
  try {
    const t = await api("POST", "/transfers/" + id + "/" + action);
    if (t) { state.transfers.set(t.id, t); renderTransfers(); }
  } catch (e) { fail(e); }
}

function progress(batch) {
  for (const m of batch) {
    const t = state.transfers.get(m.id);
    if (!t) continue;
    Object.assign(t, m);
    const li = $("transfers").querySelector(`li[data-id="${m.id}"]`);
    if (li) updateNumbers(li, t);
  }
}

// ---- sharing and sending ---------------------------------------------------

let shareFile = null;
let sendFile = null;

function lockChoice() { return document.querySelector('input[name="lock"]:checked').value; }
document.querySelectorAll('input[name="lock"]').forEach((r) => r.addEventListener("change", () => {
  $("lock-passphrase").hidden = lockChoice() !== "passphrase";
  $("lock-peer").hidden = lockChoice() !== "peer";
}));

function chooseShare(file) {
  shareFile = file;
  $("share-chosen").textContent = file ? file.name + " (" + bytes(file.size) + ")" : "";
  $("share-go").disabled = !file;
}
$("share-file").addEventListener("change", (e) => chooseShare(e.target.files[0] || null));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const f = e.dataTransfer && e.dataTransfer.files[0];
  if (f) chooseShare(f);
});
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("share-file").click(); } });

// Uploads go through XMLHttpRequest for its upload progress.
function upload(path, form, bar) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("POST", "/api/v1" + path);
    x.setRequestHeader("X-Shoal-CSRF", csrf);
    if (bar) {
      bar.hidden = false;
      x.upload.onprogress = (e) => { if (e.lengthComputable) bar.firstChild.style.width = Math.floor((e.loaded / e.total) * 100) + "%"; };
    }
    x.onload = () => {
      if (bar) bar.hidden = true;
      let data = null;
      try { data = JSON.parse(x.responseText); } catch { /* empty */ }
      if (x.status >= 200 && x.status < 300) resolve(data);
      else reject(new Error((data && data.error) || x.status + " " + x.statusText));
    };
    x.onerror = () => { if (bar) bar.hidden = true; reject(new Error("the upload broke off; try again")); };
    x.send(form);
  });
}

$("share-go").addEventListener("click", async () => {
  if (!shareFile) return;
  const form = new FormData();
  const lock = lockChoice();
  form.append("lock", lock);
  if (lock === "passphrase") {
    const p = $("share-pass").value;
    if (!p) return toast("Enter a passphrase");
    if (p !== $("share-pass2").value) return toast("The passphrases differ");
    form.append("passphrase", p);
  }
  if (lock === "peer") {
    if (!$("share-peer").value) return toast("Choose the peer to encrypt to");
    form.append("peer", $("share-peer").value);
  }
  form.append("file", shareFile, shareFile.name);
  $("share-go").disabled = true;
  try {
    const got = await upload("/shares", form, $("share-progress"));
    toast("Shared as " + got.path);
    chooseShare(null);
    $("share-file").value = "";
    $("share-pass").value = $("share-pass2").value = "";
  } catch (e) { fail(e); $("share-go").disabled = false; }
});

function updateSendButton() { $("send-go").disabled = !(sendFile && $("send-peer").value); }
$("send-file").addEventListener("change", (e) => {
  sendFile = e.target.files[0] || null;
  $("send-chosen").textContent = sendFile ? sendFile.name + " (" + bytes(sendFile.size) + ")" : "";
  updateSendButton();
});
$("send-peer").addEventListener("change", updateSendButton);
$("send-go").addEventListener("click", async () => {
  const form = new FormData();
  form.append("peer", $("send-peer").value);
  form.append("file", sendFile, sendFile.name);
  $("send-go").disabled = true;
  try {
    await upload("/pushes", form, null);
    sendFile = null;
    $("send-file").value = "";
    $("send-chosen").textContent = "";
    show("transfers");
  } catch (e) { fail(e); }
  updateSendButton();
});

// ---- local files -----------------------------------------------------------

function renderFiles() {
  const list = $("files");
  list.replaceChildren();
  for (const f of state.files) {
    const li = el("li");
    li.append(el("span", "title", f.name));
    li.append(el("span", "meta", bytes(f.size) + (f.encrypted ? " · encrypted" : "")));
    li.append(button("Copy id", () => copy(f.content_id, "content id"), "small"));
    if (f.link) li.append(button("Copy link", () => copy(f.link, "link"), "small primary"));
    list.append(li);
  }
  $("no-files").hidden = state.files.length > 0;
}

// ---- settings --------------------------------------------------------------

async function loadSettings() {
  try {
    state.settings = await api("GET", "/settings");
    fillSettings();
  } catch (e) { fail(e); }
}

function fillSettings() {
  const s = state.settings;
  if (!s) return;
  for (const input of $("settings-form").querySelectorAll("[data-key]")) {
    const v = s[input.dataset.key];
    if (input.type === "checkbox") input.checked = !!v;
    else if (input.dataset.list !== undefined) input.value = (v || []).join("\n");
    else input.value = v == null ? "" : String(v);
  }
  $("s-downloads").placeholder = s.downloads_default || "";
}

$("settings-revert").addEventListener("click", () => { fillSettings(); $("settings-msg").textContent = ""; });
$("settings-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const out = Object.assign({}, state.settings);
  delete out.web_password_set;
  delete out.downloads_default;
  for (const input of $("settings-form").querySelectorAll("[data-key]")) {
    const k = input.dataset.key;
    if (input.type === "checkbox") { out[k] = input.checked; continue; }
    const v = input.value.trim();
    if (input.dataset.list !== undefined) out[k] = v.split("\n").map((x) => x.trim()).filter(Boolean);
    else if (input.dataset.number !== undefined) {
      if (v === "") delete out[k];
      else if (!/^\d+$/.test(v)) { $("settings-msg").textContent = "Limits are whole bytes per second"; return; }
      else out[k] = Number(v);
    } else if (v === "") delete out[k];
    else out[k] = v;
  }
  const msg = $("settings-msg");
  msg.textContent = "Saving…";
  msg.className = "";
  try {
    state.settings = await api("PUT", "/settings", out);
    fillSettings();
    msg.textContent = "Saved to config.toml";
  } catch (err) {
    msg.textContent = err.message;
    msg.className = "error";
  }
});

// ---- the log ---------------------------------------------------------------

function logVisible(l) {
  const on = [...document.querySelectorAll(".lvl:checked")].map((c) => c.value);
  const f = $("log-filter").value.toLowerCase();
  return on.includes(l.level) && (!f || l.text.toLowerCase().includes(f));
}

function logItem(l) {
  const li = el("li", l.level);
  li.append(el("span", "time", l.time));
  li.append(document.createTextNode(l.text));
  return li;
}

function renderLog() {
  const box = $("log");
  box.replaceChildren(...state.log.filter(logVisible).map(logItem));
  box.scrollTop = box.scrollHeight;
}

function addLog(l) {
  state.log.push(l);
  if (state.log.length > LOG_KEEP) state.log.shift();
  if (!logVisible(l)) return;
  const box = $("log");
  const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 30;
  box.append(logItem(l));
  while (box.childElementCount > LOG_KEEP) box.firstChild.remove();
  if (atEnd) box.scrollTop = box.scrollHeight;
}
document.querySelectorAll(".lvl").forEach((c) => c.addEventListener("change", renderLog));
$("log-filter").addEventListener("input", renderLog);

// ---- following the node ----------------------------------------------------

let source = null;
function follow() {
  if (source) source.close();
  source = new EventSource("/api/v1/events");
  const on = (name, f) => source.addEventListener(name, (e) => f(JSON.parse(e.data)));
  on("status", (s) => { state.status = s; renderStatus(); });
  on("peers", (p) => { state.peers = p; renderPeers(); });
  on("transfers", (all) => { state.transfers = new Map(all.map((t) => [t.id, t])); renderTransfers(); });
  on("transfer", (t) => { state.transfers.set(t.id, t); renderTransfers(); });
  on("progress", progress);
  on("files", (f) => { state.files = f; renderFiles(); });
  on("settings", (s) => { state.settings = s; fillSettings(); });
  on("log", addLog);
  source.onerror = () => {
    const pill = $("net-state");
    if (source.readyState === EventSource.CLOSED) {
      pill.textContent = "NO NODE";
      pill.className = "pill offline";
      setTimeout(start, 3000);
    }
  };
}

async function start() {
  try {
    const [lines] = await Promise.all([api("GET", "/log")]);
    state.log = lines.slice(-LOG_KEEP);
    renderLog();
    follow();
  } catch (e) {
    if (e.message !== "not signed in") setTimeout(start, 3000);
  }
}

// ---- signing in ------------------------------------------------------------

function showLogin() {
  $("login").hidden = false;
  $("password").focus();
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("login-error").textContent = "";
  try {
    const r = await fetch("/api/v1/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ password: $("password").value }),
    });
    const data = await r.json();
    if (!r.ok) throw new Error(data.error || r.statusText);
    csrf = data.csrf;
    $("password").value = "";
    $("login").hidden = true;
    start();
  } catch (err) {
    $("login-error").textContent = err.message;
  }
});

if (meta("shoal-login") === "1") showLogin();
else start();
