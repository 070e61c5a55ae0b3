// The Xypr agent widget inside Genesys Cloud: sign in through Genesys (silently in a hidden frame, or in a
// popup when Genesys asks for it), trade the Genesys token for a short-lived Xypr token kept in memory
// (no cookies), then show the conversation and follow it live until the Client App SDK says `stop`.
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("widget-config").textContent);
  const labels = config.labels;
  const params = new URLSearchParams(window.location.search);
  const conversationId = params.get("gcConversationId") || config.conversationId;
  const lang = config.lang;
  const statusEl = document.getElementById("widget-status");
  const root = document.getElementById("conversation");

  let sdk = null;
  let token = null; // the Xypr access token: in this variable only
  let refreshToken = null;
  let stopped = false;
  let stream = null; // AbortController of the live connection
  const timers = new Set();
  let attention = 0;
  let replyTo = null;

  function later(fn, ms) {
    const id = window.setTimeout(() => { timers.delete(id); if (!stopped) fn(); }, ms);
    timers.add(id);
    return id;
  }

  function say(text) {
    statusEl.textContent = text || "";
    statusEl.hidden = !text;
  }

  // -- Client App SDK ------------------------------------------------------------------------------------

  function startSdk() {
    const apps = window.purecloud && window.purecloud.apps;
    if (!apps || window.parent === window) return;
    try {
      sdk = new apps.ClientApp({ gcHostOriginQueryParam: "gcHostOrigin", gcTargetEnvQueryParam: "gcTargetEnv" });
    } catch (error) {
      sdk = null; // not inside Genesys (or an unknown environment): the widget still works on its own
      return;
    }
    sdk.lifecycle.addStopListener(stop);
    sdk.lifecycle.bootstrapped();
  }

  function stop() {
    // Genesys closes the widget: no request may follow.
    stopped = true;
    if (stream) stream.abort();
    timers.forEach((id) => window.clearTimeout(id));
    timers.clear();
    token = null;
    refreshToken = null;
    if (sdk) sdk.lifecycle.stopped();
  }

  function toast(title, message, type) {
    if (sdk) sdk.alerting.showToastPopup(title, message, { type: type || "info", showCloseButton: true });
  }

  function setAttention(count) {
    attention = count;
    if (sdk) sdk.alerting.setAttentionCount(count);
  }

  // -- signing in ----------------------------------------------------------------------------------------

  function randomState() {
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function authorizeUrl(state, silent) {
    const query = new URLSearchParams({
      response_type: "token",
      client_id: config.clientId,
      redirect_uri: config.redirectUri + "/signed-in",
      state: state,
    });
    if (silent) query.set("prompt", "none");
    return config.loginUrl + "/oauth/authorize?" + query.toString();
  }

  // The Genesys token arrives in the URL fragment of /widget/signed-in, which posts it here.
  function waitForToken(state, timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = window.setTimeout(() => { cleanup(); reject(new Error("timeout")); }, timeoutMs);
      function onMessage(event) {
        if (event.origin !== window.location.origin || !event.data || event.data.type !== "xypr-genesys-token") return;
        const fragment = new URLSearchParams(event.data.fragment || "");
        if (fragment.get("state") !== state) return;
        cleanup();
        if (fragment.get("access_token")) resolve(fragment.get("access_token"));
        else reject(new Error(fragment.get("error") || "refused"));
      }
      function cleanup() { window.clearTimeout(timer); window.removeEventListener("message", onMessage); }
      window.addEventListener("message", onMessage);
    });
  }

  async function silentGenesysToken() {
    const state = randomState();
    const frame = document.createElement("iframe");
    frame.hidden = true;
    frame.title = "Genesys Cloud sign-in";
    const waiting = waitForToken(state, 5000); // then the button: Genesys wants the agent to sign in
    frame.src = authorizeUrl(state, true);
    document.body.appendChild(frame);
    try {
      return await waiting;
    } finally {
      frame.remove();
    }
  }

  function popupGenesysToken() {
    const box = document.getElementById("sign-in");
    box.hidden = false;
    say("");
    return new Promise((resolve, reject) => {
      document.getElementById("sign-in-button").onclick = () => {
        const state = randomState();
        const popup = window.open(authorizeUrl(state, false), "xypr-genesys-sign-in", "width=480,height=640");
        if (!popup) { reject(new Error("popup blocked")); return; }
        waitForToken(state, 300000).then((value) => { box.hidden = true; resolve(value); }, reject);
      };
    });
  }

  async function exchange(genesysToken) {
    // Form-encoded, as OAuth token endpoints take it (RFC 6749 / 8693 field names).
    const body = new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      subject_token: genesysToken,
    });
    if (config.region) body.set("region", config.region);
    const answer = await fetch("/auth/token", { method: "POST", body: body, credentials: "omit" });
    if (!answer.ok) throw new Error(await errorText(answer));
    keepTokens(await answer.json());
  }

  function keepTokens(tokens) {
    token = tokens.access_token || tokens.accessToken;
    refreshToken = tokens.refresh_token || tokens.refreshToken || null;
    const seconds = Number(tokens.expires_in || tokens.expiresIn || 900);
    later(refresh, Math.max(30, seconds * 0.8) * 1000);
  }

  async function refresh() {
    if (!refreshToken) return;
    const body = new URLSearchParams({ refresh_token: refreshToken });
    const answer = await fetch("/auth/refresh", { method: "POST", body: body, credentials: "omit" });
    if (answer.ok) keepTokens(await answer.json());
  }

  async function signIn() {
    let genesysToken;
    try {
      genesysToken = await silentGenesysToken();
    } catch (error) {
      genesysToken = await popupGenesysToken();
    }
    await exchange(genesysToken);
  }

  // -- talking to Xypr -----------------------------------------------------------------------------------

  async function errorText(answer) {
    try {
      const body = await answer.json();
      return (body.error && body.error.message) || answer.statusText;
    } catch (error) {
      return answer.statusText;
    }
  }

  function api(path, options) {
    if (stopped) return Promise.reject(new Error("stopped"));
    const init = Object.assign({ credentials: "omit" }, options || {});
    init.headers = Object.assign({ Authorization: "Bearer " + token }, init.headers || {});
    const separator = path.indexOf("?") >= 0 ? "&" : "?";
    return fetch("/widget/api/conversations/" + encodeURIComponent(conversationId) + path + separator + "lang=" + lang, init);
  }

  function postJson(path, body) {
    return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  }

  async function load() {
    say(labels.loading);
    const answer = await api("");
    root.innerHTML = await answer.text();
    say("");
    if (!answer.ok) return false;
    wire();
    return true;
  }

  // -- live updates (server-sent events, read with fetch so the token stays in a header) -------------------

  async function follow() {
    let delay = 1000;
    while (!stopped) {
      stream = new AbortController();
      try {
        const answer = await api("/events", { signal: stream.signal, headers: { Accept: "text/event-stream" } });
        if (!answer.ok || !answer.body) throw new Error(String(answer.status));
        delay = 1000;
        say("");
        const reader = answer.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            dispatch(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch (error) {
        if (stopped) return;
        say(labels.live_lost);
      }
      if (stopped) return;
      await new Promise((resolve) => later(resolve, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }

  let firstBatch = true;
  function dispatch(block) {
    let event = "message";
    const data = [];
    block.split("\n").forEach((line) => {
      if (line.startsWith("event: ")) event = line.slice(7);
      else if (line.startsWith("data: ")) data.push(line.slice(6));
    });
    if (!data.length) return;
    const payload = JSON.parse(data.join("\n"));
    if (event === "bubble") showBubble(payload);
    else if (event === "window") showWindow(payload);
  }

  function showBubble(payload) {
    const thread = document.getElementById("thread");
    if (!thread) return;
    const existing = document.getElementById("msg-" + payload.id);
    const holder = document.createElement("template");
    holder.innerHTML = payload.html.trim();
    const fresh = holder.content.firstElementChild;
    if (existing) {
      const wasFailed = existing.classList.contains("failed");
      existing.replaceWith(fresh);
      if (!wasFailed && payload.status === "failed") toast(labels.status_failed, payload.failure || "", "error");
    } else {
      thread.appendChild(fresh);
      document.querySelector(".history .empty").hidden = true;
      fresh.scrollIntoView({ block: "end" });
      if (payload.direction === "in" && !firstBatch) setAttention(attention + 1);
      if (payload.status === "failed") toast(labels.status_failed, payload.failure || "", "error");
    }
  }

  // -- the 24-hour window ------------------------------------------------------------------------------

  function showWindow(state) {
    const box = document.getElementById("window");
    if (!box) return;
    box.dataset.open = state.open ? "true" : "false";
    box.dataset.closesAt = state.closesAt || "";
    firstBatch = false;
    tickWindow();
  }

  function tickWindow() {
    const box = document.getElementById("window");
    if (!box) return;
    const closesAt = box.dataset.closesAt ? Date.parse(box.dataset.closesAt) : 0;
    const left = closesAt - Date.now();
    const open = box.dataset.open === "true" && left > 0;
    box.querySelector(".window-open").hidden = !open;
    box.querySelector(".window-closed").hidden = open;
    if (open) {
      const minutes = Math.ceil(left / 60000);
      box.querySelector(".countdown").textContent = box.dataset.templateOpen
        .replace("{h}", String(Math.floor(minutes / 60))).replace("{m}", String(minutes % 60));
    }
    lockComposer(!open);
    if (windowTimer) window.clearTimeout(windowTimer);
    if (open) windowTimer = later(tickWindow, Math.min(left + 50, 30000 - (Date.now() % 1000)));
  }
  let windowTimer = null;

  function lockComposer(closed) {
    const composer = document.getElementById("composer");
    if (!composer) return;
    composer.querySelectorAll("#text-form textarea, #send-button, #attach-button, #interactive-form button, .bubble-actions button")
      .forEach((el) => { el.disabled = closed; });
    document.querySelectorAll(".bubble-actions button").forEach((el) => { el.disabled = closed; });
    composer.classList.toggle("closed", closed);
    const templates = document.getElementById("templates");
    if (closed && templates && !templates.open) templates.open = true;
  }

  // -- sending -----------------------------------------------------------------------------------------

  function showError(form, message) {
    const box = form.querySelector(".form-error");
    if (!box) return;
    box.textContent = message || "";
    box.hidden = !message;
  }

  async function submit(form, request) {
    showError(form, "");
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const answer = await request();
      if (!answer.ok) { showError(form, await errorText(answer)); return false; }
      return true;
    } catch (error) {
      showError(form, labels.error);
      return false;
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      tickWindow();
    }
  }

  function wire() {
    const thread = document.getElementById("thread");
    if (thread) thread.addEventListener("click", onThreadClick);
    document.addEventListener("click", () => { if (attention) setAttention(0); }, { capture: true });
    const textForm = document.getElementById("text-form");
    if (!textForm) { tickWindow(); return; }
    textForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = document.getElementById("compose-text");
      const text = input.value.trim();
      if (!text) return;
      const body = { text: text };
      if (replyTo) body.replyTo = replyTo;
      if (await submit(textForm, () => postJson("/messages", body))) { input.value = ""; setReply(null); }
    });
    document.getElementById("suggest-button").addEventListener("click", () => {
      const text = document.getElementById("compose-text").value.trim();
      if (text && sdk) sdk.conversations.proposeInteractionMessage("insert", text);
    });
    document.getElementById("reply-cancel").addEventListener("click", () => setReply(null));
    const attach = document.getElementById("attach-file");
    document.getElementById("attach-button").addEventListener("click", () => attach.click());
    attach.addEventListener("change", () => sendFile(textForm, attach));
    const interactive = document.getElementById("interactive-form");
    interactive.addEventListener("submit", async (event) => {
      event.preventDefault();
      const kind = event.submitter ? event.submitter.value : "buttons";
      const options = Array.from(interactive.querySelectorAll(".option")).map((i) => i.value.trim()).filter(Boolean);
      const body = { kind: kind, text: document.getElementById("interactive-text").value.trim(), options: options };
      const listButton = document.getElementById("list-button").value.trim();
      if (kind === "list" && listButton) body.listButton = listButton;
      if (await submit(interactive, () => postJson("/interactive", body))) interactive.reset();
    });
    document.getElementById("templates").addEventListener("toggle", loadTemplates);
    tickWindow();
  }

  const LIMITS = { image: 5, video: 16, audio: 16, document: 100, sticker: 0.5 };
  function whatsappKind(type) {
    if (type === "image/jpeg" || type === "image/png") return "image";
    if (type === "image/webp") return "sticker";
    if (type === "video/mp4" || type === "video/3gpp") return "video";
    if (/^audio\/(aac|amr|mpeg|mp4|ogg)$/.test(type)) return "audio";
    if (/^(application\/|text\/plain)/.test(type)) return "document";
    return null;
  }

  // Type and size are checked before anything is uploaded (the server checks them again).
  function checkFile(file) {
    const kind = whatsappKind(file.type);
    if (!kind) return labels.bad_type;
    if (file.size > LIMITS[kind] * 1024 * 1024) return labels.too_large.replace("{limit}", LIMITS[kind] + " MB");
    return null;
  }

  async function sendFile(form, input) {
    const file = input.files[0];
    if (!file) return;
    const problem = checkFile(file);
    if (problem) { showError(form, problem); input.value = ""; return; }
    const data = new FormData();
    data.append("file", file);
    data.append("caption", document.getElementById("compose-text").value.trim());
    if (await submit(form, () => api("/media", { method: "POST", body: data }))) {
      document.getElementById("compose-text").value = "";
    }
    input.value = "";
  }

  function setReply(bubble) {
    replyTo = bubble ? bubble.dataset.id : null;
    const banner = document.getElementById("reply-banner");
    if (!banner) return;
    banner.hidden = !bubble;
    if (bubble) {
      const text = bubble.querySelector(".text, .location, .file, img");
      document.getElementById("reply-quote").textContent = text ? (text.alt || text.textContent.trim()) : "";
      document.getElementById("compose-text").focus();
    }
  }

  async function onThreadClick(event) {
    const button = event.target.closest("button");
    if (!button) return;
    const bubble = button.closest(".bubble");
    if (button.dataset.action === "reply") setReply(bubble);
    else if (button.dataset.action === "react") {
      const row = bubble.querySelector(".emoji-row");
      row.hidden = !row.hidden;
      button.setAttribute("aria-expanded", String(!row.hidden));
    } else if (button.dataset.emoji) {
      bubble.querySelector(".emoji-row").hidden = true;
      const answer = await postJson("/reactions", { messageId: bubble.dataset.id, emoji: button.dataset.emoji });
      if (!answer.ok) toast(labels.error, await errorText(answer), "error");
    }
  }

  // -- templates ---------------------------------------------------------------------------------------

  let templatesLoaded = false;
  async function loadTemplates() {
    if (templatesLoaded || !document.getElementById("templates").open) return;
    templatesLoaded = true;
    const answer = await api("/templates");
    document.getElementById("template-picker").innerHTML = await answer.text();
    const form = document.getElementById("template-form");
    if (!form) return;
    form.addEventListener("change", (event) => {
      if (event.target.id === "template-select") chooseTemplate(form);
      else if (event.target.classList.contains("header-media-file")) uploadHeader(form, event.target);
      preview(form);
    });
    form.addEventListener("input", () => preview(form));
    form.addEventListener("submit", (event) => { event.preventDefault(); sendTemplate(form); });
  }

  function activeFields(form) {
    return form.querySelector(".template-fields:not([hidden])");
  }

  function chooseTemplate(form) {
    const key = form.querySelector("#template-select").value;
    form.querySelectorAll(".template-fields").forEach((fields) => {
      const chosen = fields.dataset.key === key;
      fields.hidden = !chosen;
      fields.disabled = !chosen;
    });
  }

  function fill(text, values) {
    return (text || "").replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, (match, name) => values[name] || match);
  }

  function preview(form) {
    const fields = activeFields(form);
    const box = document.getElementById("template-preview");
    const send = document.getElementById("send-template");
    if (!fields) { box.textContent = ""; send.disabled = true; return; }
    const values = { header: {}, body: {} };
    let complete = true;
    fields.querySelectorAll(".parameter").forEach((input) => {
      const value = input.value.trim();
      if (!value) complete = false;
      if (values[input.dataset.component]) values[input.dataset.component][input.dataset.name] = value;
    });
    if (fields.dataset.media) {
      const url = fields.querySelector(".header-media-url").value.trim();
      if (!/^https?:\/\/[^\s/]+\/?\S*$/.test(url)) complete = false;
    }
    box.textContent = "";
    const parts = [
      fields.dataset.media ? "[" + fields.dataset.media + "]" : fill(fields.dataset.header, values.header),
      fill(fields.dataset.body, values.body),
      fields.dataset.footer,
    ].filter(Boolean);
    parts.forEach((part, index) => {
      const p = document.createElement("p");
      p.textContent = part;
      if (index === 0 && fields.dataset.header) p.className = "template-header";
      box.appendChild(p);
    });
    send.disabled = !complete || document.getElementById("composer").classList.contains("sending");
  }

  async function uploadHeader(form, input) {
    const file = input.files[0];
    if (!file) return;
    const problem = checkFile(file);
    if (problem) { showError(form, problem); input.value = ""; return; }
    const data = new FormData();
    data.append("file", file);
    const answer = await api("/uploads", { method: "POST", body: data });
    if (!answer.ok) { showError(form, await errorText(answer)); return; }
    const stored = await answer.json();
    const fields = activeFields(form);
    fields.querySelector(".header-media-url").value = stored.url;
    fields.dataset.filename = stored.filename;
    preview(form);
  }

  async function sendTemplate(form) {
    const fields = activeFields(form);
    if (!fields) return;
    const body = { template: fields.dataset.key, values: {} };
    fields.querySelectorAll(".parameter").forEach((input) => { body.values[input.dataset.key] = input.value.trim(); });
    if (fields.dataset.media) {
      body.headerMediaUrl = fields.querySelector(".header-media-url").value.trim();
      if (fields.dataset.filename) body.headerMediaFilename = fields.dataset.filename;
    }
    if (await submit(form, () => postJson("/templates", body))) {
      form.reset();
      chooseTemplate(form);
      preview(form);
      toast(labels.template_sent, fields.dataset.key.split("|")[0], "success");
    }
  }

  // -- start -------------------------------------------------------------------------------------------

  async function main() {
    startSdk();
    if (!conversationId) { say(labels.not_found); return; }
    try {
      await signIn();
    } catch (error) {
      say(labels.sign_in_failed + ": " + error.message);
      return;
    }
    if (stopped) return;
    try {
      if (await load()) follow();
    } catch (error) {
      if (!stopped) say(labels.error);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
  else main();
})();
