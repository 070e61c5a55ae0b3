// The sandbox page: the customer's phone and the agent's panel, both driven through the emulators'
// `/_sandbox` control routes, so every message really travels Meta → Xypr → Genesys and back.
// Text only ever goes into the page through textContent (never innerHTML).
"use strict";
(() => {
  const cfg = JSON.parse(document.getElementById("xypr-config").textContent);
  const demo = cfg.demo || {};
  const POLL_MS = 700;
  const TEMPLATE_NAMESPACE = "sandbox";  // Genesys names WhatsApp templates `namespace@name`
  const EMOJIS = ["\u{1F44D}", "\u2764\uFE0F", "\u{1F602}", "\u{1F62E}", "\u{1F622}", "\u{1F64F}"];
  const $ = (id) => document.getElementById(id);
  const ui = {
    name: $("customer-name"), waId: $("customer-wa-id"), customerForm: $("customer-form"),
    customerInput: $("customer-input"), customerSend: $("customer-send"), customerThread: $("customer-thread"),
    customerAttach: $("customer-attach"), customerFile: $("customer-file"), customerLocation: $("customer-location"),
    customerPending: $("customer-pending"), customerPendingName: $("customer-pending-name"),
    customerReply: $("customer-reply"), customerReplyText: $("customer-reply-text"),
    locationForm: $("location-form"),
    agentForm: $("agent-form"), agentInput: $("agent-input"), agentSend: $("agent-send"),
    agentThread: $("agent-thread"), agentCustomer: $("agent-customer"), agentCustomerLabel: $("agent-customer-label"),
    agentConversation: $("agent-conversation"), agentTyping: $("agent-typing"),
    agentAttach: $("agent-attach"), agentFile: $("agent-file"), agentPending: $("agent-pending"),
    agentPendingName: $("agent-pending-name"), agentQuick: $("agent-quick"), quickForm: $("quick-form"),
    agentTemplate: $("agent-template"), templateForm: $("template-form"), templateName: $("template-name"),
    templatePreview: $("template-preview"), templateParams: $("template-params"),
    status: $("status-line"),
  };
  const state = {
    customerFile: null, agentFile: null, replyTo: null, reactingTo: null, templates: [], lastCustomer: null,
    texts: new Map(), signatures: { customer: "", agent: "", customers: "" },
  };

  // --- small helpers ---------------------------------------------------------------------------------
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  const query = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString();
  const metaUrl = (path, params) => cfg.metaPrefix + path + (params ? "?" + query(params) : "");
  const genesysUrl = (path, params) => cfg.genesysPrefix + path + (params ? "?" + query(params) : "");
  const digits = (value) => String(value || "").replace(/\D/g, "");
  const timeOf = (date) => date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const unixTime = (seconds) => timeOf(new Date(Number(seconds) * 1000));
  const oneLine = (text, max = 80) => {
    const flat = String(text || "").replace(/\s+/g, " ").trim();
    return flat.length > max ? flat.slice(0, max - 1) + "\u2026" : flat;
  };
  // Only this page's own origin is ever loaded into <img>/<audio>/<video>: the sandbox asks no outside host.
  function sameOrigin(url) {
    try {
      const parsed = new URL(String(url || ""), location.href);
      return parsed.origin === location.origin ? parsed.href : null;
    } catch (_) {
      return null;
    }
  }
  const webLink = (url) => (/^https?:\/\//i.test(String(url || "")) ? String(url) : null);
  // Message text with its web addresses as links (both apps do this; a location reaches Genesys as a maps
  // URL). Built from text nodes, and a link opens only on a click, in a new tab, without a referrer.
  function textBlock(text) {
    const block = el("div", "text");
    const parts = String(text).split(/(https?:\/\/[^\s<>"]+)/i);
    parts.forEach((part, i) => {
      if (i % 2 === 0) { if (part) block.append(part); return; }
      const trimmed = part.replace(/[.,;:!?)\]]+$/, "");
      const link = el("a", "", trimmed);
      link.href = trimmed;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      block.append(link, part.slice(trimmed.length));
    });
    return block;
  }
  function sizeOf(bytes) {
    if (!bytes && bytes !== 0) return "";
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  async function answerOf(response) {
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (!response.ok) {
      let detail = data && (data.detail || data.message || (data.error && data.error.message));
      if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
      throw new Error(typeof detail === "string" ? detail : `HTTP ${response.status}`);
    }
    return data;
  }
  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!response.ok) throw new Error(`${url} answered ${response.status}`);
    return response.json();
  }
  const postJSON = async (url, body) => answerOf(await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  }));
  const postForm = async (url, form) => answerOf(await fetch(url, { method: "POST", body: form }));

  let errorShownUntil = 0;
  function setStatus(text, isError) {
    if (!isError && Date.now() < errorShownUntil) return;  // let an error stay readable for a while
    if (isError) errorShownUntil = Date.now() + 6000;
    ui.status.textContent = text;
    ui.status.className = isError ? "error" : "";
  }
  function webhookProblem(result, what) {
    if (result && !(result.webhook_status >= 200 && result.webhook_status < 300)) {
      setStatus(`${what} answered ${result.webhook_status || "nothing"} after ${result.attempts} attempt(s)`, true);
    }
  }

  // --- scrolling: a thread follows the newest message unless the reader scrolled up --------------------
  const pinned = new Map();
  for (const thread of [ui.customerThread, ui.agentThread]) {
    pinned.set(thread, true);
    thread.addEventListener("scroll", () => {
      pinned.set(thread, thread.scrollHeight - thread.scrollTop - thread.clientHeight < 48);
    });
    // Thumbnails and players grow the thread after it rendered: stay at the bottom if we were there.
    thread.addEventListener("load", () => { if (pinned.get(thread)) thread.scrollTop = thread.scrollHeight; }, true);
    thread.addEventListener("loadedmetadata", () => { if (pinned.get(thread)) thread.scrollTop = thread.scrollHeight; }, true);
    // A window resized (or a sheet opened below) keeps the newest message in view.
    new ResizeObserver(() => { if (pinned.get(thread)) thread.scrollTop = thread.scrollHeight; }).observe(thread);
  }
  function renderThread(thread, nodes) {
    const follow = pinned.get(thread);
    thread.replaceChildren(...nodes);
    if (follow) thread.scrollTop = thread.scrollHeight;
  }
  function follow(thread) {
    pinned.set(thread, true);
    thread.scrollTop = thread.scrollHeight;
  }

  // --- the customer (identity shared by both panes) ---------------------------------------------------
  ui.name.value = localStorage.getItem("xypr.sandbox.name") || "Sheena Nelson";
  ui.waId.value = localStorage.getItem("xypr.sandbox.waId") || "16505551234";
  function switchCustomer(waId, name) {
    ui.waId.value = waId;
    if (name) ui.name.value = name;
    localStorage.setItem("xypr.sandbox.waId", digits(waId));
    localStorage.setItem("xypr.sandbox.name", ui.name.value.trim());
    state.replyTo = null;
    state.reactingTo = null;
    updateReplyBar();
    state.signatures.customer = state.signatures.agent = state.signatures.customers = "";
    follow(ui.customerThread);
    follow(ui.agentThread);
    refresh();
  }
  ui.name.addEventListener("change", () => localStorage.setItem("xypr.sandbox.name", ui.name.value.trim()));
  ui.waId.addEventListener("change", () => switchCustomer(digits(ui.waId.value)));
  ui.agentCustomer.addEventListener("change", () => {
    const option = ui.agentCustomer.selectedOptions[0];
    switchCustomer(ui.agentCustomer.value, option ? option.dataset.name : "");
  });
  $("tenant-name").textContent = demo.tenant_name || "";
  $("business-name").textContent = demo.tenant_name || "Business";
  $("business-number").textContent = demo.display_phone_number || (demo.phone_number_id ? `Number ${demo.phone_number_id}` : "");

  // --- rendering media, shared by both panes ------------------------------------------------------------
  function fileCard(href, name, meta) {
    const card = el(href ? "a" : "div", "file");
    if (href) { card.href = href; card.download = name || ""; }
    const ext = (String(name || "").split(".").pop() || "file").slice(0, 4);
    card.append(el("span", "file-icon", ext));
    const text = el("span", "file-text");
    text.append(el("span", "file-name", name || "document"));
    if (meta) text.append(el("span", "file-meta", meta));
    card.append(text);
    return card;
  }
  // kind: image | sticker | video | audio | document; src: a same-origin URL or null; link: an outside URL.
  function mediaNode({ kind, src, link, name, mime, size, caption }) {
    if (src && (kind === "image" || kind === "sticker")) {
      const anchor = el("a", "media");
      anchor.href = src;
      anchor.target = "_blank";
      anchor.rel = "noopener";
      const image = el("img", kind === "sticker" ? "thumb sticker" : "thumb");
      image.src = src;
      image.alt = caption || name || (kind === "sticker" ? "Sticker" : "Image");
      image.loading = "lazy";
      anchor.append(image);
      return anchor;
    }
    if (src && (kind === "video" || kind === "audio")) {
      const player = el(kind, "media");
      player.controls = true;
      player.preload = "metadata";
      player.src = src;
      player.setAttribute("aria-label", `${kind === "video" ? "Video" : "Audio"} ${name || ""}`.trim());
      return player;
    }
    const label = name || { image: "Image", sticker: "Sticker", video: "Video", audio: "Audio" }[kind] || "Document";
    const meta = [mime, sizeOf(size)].filter(Boolean).join(" \u00b7 ");
    return fileCard(src || webLink(link), label, meta);
  }
  function placeNode(place) {
    const box = el("div", "place");
    const map = el("div", "map", "\u{1F4CD}");
    map.setAttribute("aria-hidden", "true");
    box.append(map);
    if (place.name) box.append(el("div", "place-name", place.name));
    if (place.address) box.append(el("div", "place-address", place.address));
    box.append(el("div", "place-coords", `${place.latitude}, ${place.longitude}`));
    return box;
  }
  const kindOfMime = (mime) => {
    const type = String(mime || "").toLowerCase();
    if (type === "image/webp") return "sticker";
    if (type === "image/jpeg" || type === "image/png") return "image";
    if (type.startsWith("video/")) return "video";
    if (type.startsWith("audio/")) return "audio";
    return "document";
  };
  const genesysKind = (mediaType, mime) => {
    const kind = String(mediaType || "").toLowerCase();
    if (kind === "image") return String(mime).toLowerCase() === "image/webp" ? "sticker" : "image";
    if (kind === "video" || kind === "audio") return kind;
    return "document";
  };

  // --- templates (the Meta emulator's approved templates of the demo WABA) ------------------------------
  const fill = (text, values) => String(text || "").replace(/\{\{\s*(\w+)\s*\}\}/g, (whole, key) => {
    const value = values[key];
    return value !== undefined && value !== "" ? value : whole;
  });
  const placeholders = (text) => [...new Set([...String(text || "").matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]))];
  const component = (template, type) => (template.components || []).find((c) => String(c.type).toUpperCase() === type) || {};
  const findTemplate = (name, language) => state.templates.find((t) => t.name === name && (!language || t.language === language));
  function valuesOf(parameters) {
    const values = {};
    (parameters || []).forEach((p, i) => {
      values[p.parameter_name || p.name || String(i + 1)] = p.text !== undefined ? p.text : (p.payload || "");
    });
    return values;
  }

  // --- the WhatsApp side ---------------------------------------------------------------------------------
  // Each item: who sent it, what it shows, and what a reply quotes of it.
  function customerItem(record, order) {
    const message = record.message;
    const type = message.type;
    const part = message[type] || {};
    const item = {
      at: record.timestamp, order: record.sequence || order, own: true, wamid: record.wamid, type, quoteOf: (message.context || {}).id,
      webhook: record.webhook_status, attempts: record.attempts, text: "", media: null, place: null, summary: "",
    };
    if (type === "text") item.text = part.body || "";
    else if (type === "interactive") item.text = (part.button_reply || part.list_reply || {}).title || "[interactive reply]";
    else if (type === "button") item.text = part.text || part.payload || "";
    else if (type === "location") item.place = part;
    else if (["image", "sticker", "video", "audio", "document"].includes(type)) {
      item.media = { kind: type, src: metaUrl(`/_sandbox/media/${encodeURIComponent(part.id || "")}`), name: part.filename, mime: part.mime_type };
      item.text = part.caption || "";
    } else item.text = `[${type}]`;
    item.summary = item.text || (item.place ? `\u{1F4CD} ${item.place.name || "Location"}` : item.media ? mediaSummary(item.media) : type);
    return item;
  }
  const mediaSummary = (media) => ({
    image: "\u{1F4F7} Photo", sticker: "Sticker", video: "\u{1F3A5} Video", audio: "\u{1F3B5} Audio",
  }[media.kind] || `\u{1F4C4} ${media.name || "Document"}`);

  function businessItem(record, order, failures) {
    const body = record.body || {};
    const type = body.type || "text";
    const part = body[type] || {};
    const item = {
      at: record.timestamp, order: record.sequence || order, own: false, wamid: record.wamid, type, status: record.status,
      failure: failures[record.wamid] || "", quoteOf: (body.context || {}).message_id,
      kind: "", text: "", media: null, place: null, chips: [], header: "", footer: "", summary: "",
    };
    if (type === "text") item.text = part.body || "";
    else if (type === "template") describeTemplateSend(item, part);
    else if (type === "interactive") {
      const action = part.action || {};
      const header = part.header || {};
      if (header.type === "text") item.header = header.text || "";
      if (header.type === "image" && header.image) item.media = { kind: "image", src: sameOrigin(header.image.link), link: header.image.link };
      item.text = (part.body || {}).text || "";
      if ((part.footer || {}).text) item.footer = part.footer.text;
      for (const button of action.buttons || []) {
        const reply = button.reply || {};
        item.chips.push({ kind: "button_reply", id: reply.id, title: reply.title });
      }
      for (const section of action.sections || []) {
        for (const row of section.rows || []) item.chips.push({ kind: "list_reply", id: row.id, title: row.title, description: row.description });
      }
      if (part.type === "cta_url" && action.parameters) item.text += `\n\u{1F517} ${action.parameters.display_text}: ${action.parameters.url}`;
    } else if (type === "location") item.place = part;
    else if (type === "contacts") {
      item.kind = "Contact";
      item.text = (Array.isArray(body.contacts) ? body.contacts : []).map((c) => (c.name || {}).formatted_name).join(", ");
    } else if (["image", "sticker", "video", "audio", "document"].includes(type)) {
      const src = part.id ? metaUrl(`/_sandbox/media/${encodeURIComponent(part.id)}`) : sameOrigin(part.link);
      item.media = { kind: type, src, link: part.link, name: part.filename };
      item.text = part.caption || "";
    } else if (type === "reaction") item.text = `Reacted ${part.emoji || ""}`;
    else { item.kind = type; item.text = ""; }
    item.summary = item.text || item.header || (item.place ? `\u{1F4CD} ${item.place.name || "Location"}` : item.media ? mediaSummary(item.media) : item.kind);
    return item;
  }

  function describeTemplateSend(item, part) {
    const language = (part.language || {}).code || "";
    const sent = {};
    for (const c of part.components || []) {
      const type = String(c.type).toLowerCase();
      if (type === "button") sent[`button${c.index}`] = valuesOf(c.parameters);
      else sent[type] = valuesOf(c.parameters);
    }
    const known = findTemplate(part.name, language);
    item.kind = `Template \u00b7 ${part.name}`;
    if (!known) {
      const values = Object.values(sent.body || {});
      item.text = `${part.name} (${language})${values.length ? "\n" + values.join(" \u00b7 ") : ""}`;
      return;
    }
    item.header = fill(component(known, "HEADER").text, sent.header || {});
    item.text = fill(component(known, "BODY").text, sent.body || {});
    item.footer = component(known, "FOOTER").text || "";
    (component(known, "BUTTONS").buttons || []).forEach((button, index) => {
      if (String(button.type).toUpperCase() !== "QUICK_REPLY") return;
      const payload = Object.values(sent[`button${index}`] || {})[0] || button.text;
      item.chips.push({ kind: "button", title: button.text, payload });
    });
  }

  function tick(status) {
    if (status === "read") return { text: "\u2713\u2713", cls: "tick read", label: "read" };
    if (status === "delivered") return { text: "\u2713\u2713", cls: "tick", label: "delivered" };
    if (status === "sent") return { text: "\u2713", cls: "tick", label: "sent" };
    if (status === "failed") return { text: "!", cls: "tick failed", label: "failed" };
    return { text: "\u{1F552}", cls: "tick", label: "accepted" };
  }

  function quoteNode(wamid, whoFor) {
    const quoted = state.texts.get(wamid);
    const box = el("div", "quote");
    box.append(el("span", "quote-who", quoted ? whoFor(quoted) : "Message"));
    box.append(el("span", "quote-text", quoted ? oneLine(quoted.summary) : "an earlier message"));
    return box;
  }

  function renderCustomer(inbound, sent, failures) {
    const items = [];
    const reactions = {};
    inbound.forEach((record, i) => {
      if (record.message.type === "reaction") {
        const part = record.message.reaction || {};
        reactions[part.message_id] = part.emoji || "";
        return;
      }
      items.push(customerItem(record, i));
    });
    sent.forEach((record, i) => items.push(businessItem(record, 100000 + i, failures)));
    items.sort((a, b) => a.order - b.order);
    for (const item of items) state.texts.set(item.wamid, item);
    const signature = JSON.stringify([items, reactions, state.reactingTo]);
    if (signature === state.signatures.customer) return;
    state.signatures.customer = signature;
    if (!items.length) {
      renderThread(ui.customerThread, [el("div", "empty", "Write to the business: your message goes to Meta's webhook, then through Xypr to Genesys.")]);
      return;
    }
    const whoFor = (quoted) => (quoted.own ? "You" : demo.tenant_name || "Business");
    renderThread(ui.customerThread, items.map((item) => customerRow(item, reactions[item.wamid] || "", whoFor)));
  }

  function customerRow(item, reaction, whoFor) {
    const row = el("div", item.own ? "row own" : "row");
    row.dataset.wamid = item.wamid;
    const bubble = el("div", "bubble");
    if (item.quoteOf) bubble.append(quoteNode(item.quoteOf, whoFor));
    if (item.kind) bubble.append(el("div", "kind", item.kind));
    if (item.header) bubble.append(el("div", "template-header", item.header));
    if (item.media) bubble.append(mediaNode({ ...item.media, caption: item.text }));
    if (item.place) bubble.append(placeNode(item.place));
    if (item.text) bubble.append(textBlock(item.text));
    if (item.footer) bubble.append(el("div", "template-footer", item.footer));
    if (item.chips && item.chips.length) {
      const chips = el("div", "chips");
      for (const chip of item.chips) {
        const button = el("button", "chip", chip.title);
        button.type = "button";
        button.addEventListener("click", () => answerChip(chip, item.wamid));
        chips.append(button);
      }
      bubble.append(chips);
    }
    const footer = el("div", "footer-line");
    footer.append(el("span", "", unixTime(item.at)));
    if (!item.own) {
      const t = tick(item.status);
      const mark = el("span", t.cls, t.text);
      mark.title = t.label;
      mark.setAttribute("aria-label", t.label);
      footer.append(mark);
    }
    bubble.append(footer);
    if (item.own && !(item.webhook >= 200 && item.webhook < 300)) {
      bubble.append(el("div", "note", `Xypr's webhook answered ${item.webhook || "nothing"} after ${item.attempts} attempt(s)`));
    }
    if (item.failure) bubble.append(el("div", "note", item.failure));
    row.append(bubble);
    if (reaction) {
      const badge = el("div", "reaction", reaction);
      badge.setAttribute("aria-label", `You reacted ${reaction}`);
      row.append(badge);
    }
    const actions = el("div", "actions");
    const snippet = oneLine(item.summary, 40);
    const reply = el("button", "action", "Reply");
    reply.type = "button";
    reply.setAttribute("aria-label", `Reply to \u201c${snippet}\u201d`);
    reply.addEventListener("click", () => startReply(item));
    const react = el("button", "action", "React");
    react.type = "button";
    react.setAttribute("aria-label", `React to \u201c${snippet}\u201d`);
    react.setAttribute("aria-expanded", String(state.reactingTo === item.wamid));
    react.addEventListener("click", () => {
      state.reactingTo = state.reactingTo === item.wamid ? null : item.wamid;
      rerenderCustomer();
      const picker = ui.customerThread.querySelector(".picker");
      if (picker) picker.scrollIntoView({ block: "nearest" });
    });
    actions.append(reply, react);
    row.append(actions);
    if (state.reactingTo === item.wamid) row.append(reactionPicker(item, reaction));
    return row;
  }

  // Redraw from the last poll at once (opening the reaction picker should not wait for the next poll).
  function rerenderCustomer() {
    state.signatures.customer = "";
    if (state.lastCustomer) renderCustomer(...state.lastCustomer);
  }

  function reactionPicker(item, current) {
    const picker = el("div", "picker");
    picker.setAttribute("role", "group");
    picker.setAttribute("aria-label", "Choose a reaction");
    for (const emoji of EMOJIS) {
      const button = el("button", "", emoji);
      button.type = "button";
      button.setAttribute("aria-label", `React with ${emoji}`);
      button.setAttribute("aria-pressed", String(current === emoji));
      button.addEventListener("click", () => sendReaction(item.wamid, emoji));
      picker.append(button);
    }
    if (current) {
      const remove = el("button", "remove", "Remove");
      remove.type = "button";
      remove.setAttribute("aria-label", "Remove the reaction");
      remove.addEventListener("click", () => sendReaction(item.wamid, ""));
      picker.append(remove);
    }
    return picker;
  }

  function startReply(item) {
    state.replyTo = item.wamid;
    updateReplyBar();
    ui.customerInput.focus();
  }
  function updateReplyBar() {
    const quoted = state.replyTo && state.texts.get(state.replyTo);
    ui.customerReply.hidden = !state.replyTo;
    ui.customerReplyText.textContent = quoted ? oneLine(quoted.summary) : "";
  }
  $("customer-reply-cancel").addEventListener("click", () => { state.replyTo = null; updateReplyBar(); });

  async function sendAsCustomer(payload) {
    const waId = digits(ui.waId.value);
    if (!waId) throw new Error("enter the customer's WhatsApp id (digits)");
    const body = { phone_number_id: demo.phone_number_id, name: ui.name.value.trim() || "Customer", ...payload };
    const result = await postJSON(metaUrl(`/_sandbox/customers/${encodeURIComponent(waId)}/messages`), body);
    webhookProblem(result, "Xypr's webhook");
    follow(ui.customerThread);
    await refresh();
    return result;
  }
  // The reply context goes with the next message of any kind, then the bar closes.
  const withReply = (payload, replyTo) => (replyTo ? { ...payload, context_id: replyTo } : payload);
  function replied(replyTo) {
    if (state.replyTo !== replyTo) return;  // another reply was started meanwhile
    state.replyTo = null;
    updateReplyBar();
  }

  function answerChip(chip, wamid) {
    let payload;
    if (chip.kind === "button") {
      payload = { type: "button", content: { payload: chip.payload, text: chip.title }, context_id: wamid };
    } else {
      const reply = { id: chip.id, title: chip.title };
      if (chip.kind === "list_reply" && chip.description) reply.description = chip.description;
      payload = { type: "interactive", content: { type: chip.kind, [chip.kind]: reply }, context_id: wamid };
    }
    sendAsCustomer(payload).catch((error) => setStatus(`Could not send: ${error.message}`, true));
  }

  function sendReaction(wamid, emoji) {
    state.reactingTo = null;
    sendAsCustomer({ type: "reaction", content: { message_id: wamid, emoji } })
      .catch((error) => setStatus(`Could not react: ${error.message}`, true));
  }

  // Attachments: the file waits above the composer; Send uploads it to Meta's media store and sends it.
  ui.customerAttach.addEventListener("click", () => ui.customerFile.click());
  ui.customerFile.addEventListener("change", () => {
    state.customerFile = ui.customerFile.files[0] || null;
    ui.customerPending.hidden = !state.customerFile;
    ui.customerPendingName.textContent = state.customerFile ? `${state.customerFile.name} (${sizeOf(state.customerFile.size)})` : "";
    ui.customerInput.placeholder = state.customerFile ? "Add a caption" : "Message";
    ui.customerInput.focus();
  });
  function clearCustomerFile() {
    state.customerFile = null;
    ui.customerFile.value = "";
    ui.customerPending.hidden = true;
    ui.customerInput.placeholder = "Message";
  }
  $("customer-pending-remove").addEventListener("click", clearCustomerFile);

  async function sendCustomerFile(file, caption, replyTo) {
    const form = new FormData();
    form.append("phone_number_id", demo.phone_number_id);
    form.append("file", file, file.name);
    if (file.type) form.append("type", file.type);
    const media = await postForm(metaUrl("/_sandbox/media"), form);
    const kind = kindOfMime(media.mime_type);
    const payload = { type: kind, media_id: media.id };
    if (caption && ["image", "video", "document"].includes(kind)) payload.caption = caption;
    if (kind === "document") payload.filename = file.name;
    await sendAsCustomer(withReply(payload, replyTo));
    // Audio and stickers carry no caption on WhatsApp: the words follow as their own message.
    if (caption && !payload.caption) await sendAsCustomer({ text: caption });
  }

  ui.customerForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = ui.customerInput.value.trim();
    const file = state.customerFile;
    if (!text && !file) return;
    const replyTo = state.replyTo;
    ui.customerSend.disabled = true;
    try {
      if (file) await sendCustomerFile(file, text, replyTo);
      else await sendAsCustomer(withReply({ text }, replyTo));
      replied(replyTo);
      // Only what was sent is cleared: a file or words added while it travelled stay.
      if (state.customerFile === file) clearCustomerFile();
      if (ui.customerInput.value.trim() === text) ui.customerInput.value = "";
    } catch (error) {
      setStatus(`Could not send as customer: ${error.message}`, true);
    } finally {
      ui.customerSend.disabled = false;
      ui.customerInput.focus();
    }
  });

  // Sheets (location, quick replies, template): one toggle button each, Cancel closes.
  function sheet(toggle, form, cancel, onOpen) {
    const show = (open) => {
      form.hidden = !open;
      toggle.setAttribute("aria-expanded", String(open));
      if (open) {
        if (onOpen) onOpen();
        const first = form.querySelector("input, select, textarea");
        if (first) first.focus();
      }
    };
    toggle.addEventListener("click", () => show(form.hidden));
    cancel.addEventListener("click", () => { show(false); toggle.focus(); });
    return show;
  }
  const showLocation = sheet(ui.customerLocation, ui.locationForm, $("location-cancel"));
  ui.locationForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const place = { latitude: Number($("location-lat").value), longitude: Number($("location-lng").value) };
    const name = $("location-name").value.trim();
    const address = $("location-address").value.trim();
    if (name) place.name = name;
    if (address) place.address = address;
    const button = $("location-send");
    const replyTo = state.replyTo;
    button.disabled = true;
    try {
      await sendAsCustomer(withReply({ type: "location", content: place }, replyTo));
      replied(replyTo);
      showLocation(false);
    } catch (error) {
      setStatus(`Could not send the location: ${error.message}`, true);
    } finally {
      button.disabled = false;
    }
  });

  // --- the Genesys side ----------------------------------------------------------------------------------
  function customersOf(inbound, received) {
    const customers = new Map();
    const seen = (id, name, at) => {
      if (!id) return;
      const known = customers.get(id) || { id, name: "", at: 0 };
      customers.set(id, { id, name: name || known.name, at: Math.max(known.at, at) });
    };
    for (const r of inbound) seen(r.wa_id, r.name, Number(r.timestamp) * 1000);
    for (const r of received) {
      if (r.kind !== "message" && r.kind !== "structured") continue;
      const from = (r.body.channel || {}).from || {};
      seen(r.customer_id, [from.firstName, from.lastName].filter(Boolean).join(" ") || from.nickname, Date.parse(r.time) || 0);
    }
    return [...customers.values()].sort((a, b) => b.at - a.at);
  }

  function updateCustomers(customers) {
    const current = digits(ui.waId.value);
    const list = customers.some((c) => c.id === current) || !current ? customers : [{ id: current, name: ui.name.value.trim() }, ...customers];
    const signature = JSON.stringify([list.map((c) => [c.id, c.name]), current]);
    if (signature === state.signatures.customers) return;
    state.signatures.customers = signature;
    ui.agentCustomer.replaceChildren(...list.map((c) => {
      const option = el("option", "", c.name ? `${c.name} \u00b7 ${c.id}` : c.id);
      option.value = c.id;
      option.dataset.name = c.name || "";
      return option;
    }));
    ui.agentCustomer.value = current;
    // A picker only when there is someone to pick between.
    ui.agentCustomerLabel.hidden = list.length < 2;
  }

  function agentAttachmentNode(attachment, ownSend) {
    // The agent's own files are shown from the emulated Genesys; what Xypr delivered, from Xypr's URL.
    const preview = ownSend && attachment.id ? genesysUrl(`/_sandbox/attachments/${encodeURIComponent(attachment.id)}/content`) : null;
    return mediaNode({
      kind: genesysKind(attachment.mediaType, attachment.mime),
      src: preview || sameOrigin(attachment.url),
      link: attachment.url,
      name: attachment.filename,
      mime: attachment.mime,
      size: attachment.contentSizeBytes,
      caption: attachment.text,
    });
  }

  function sentContentNodes(content) {
    const nodes = [];
    const options = [];
    for (const entry of content) {
      if (entry.contentType === "Attachment" && entry.attachment) nodes.push(agentAttachmentNode(entry.attachment, true));
      else if (entry.contentType === "QuickReply" && entry.quickReply) options.push(entry.quickReply.text);
      else if (entry.contentType === "Notification" && entry.template) nodes.push(templateCard(entry.template));
      else nodes.push(el("div", "kind", entry.contentType));
    }
    if (options.length) {
      nodes.push(el("div", "chips-label", "Quick replies offered"));
      const chips = el("div", "chips");
      for (const text of options) {
        const chip = el("button", "chip", text);
        chip.type = "button";
        chip.disabled = true;
        chips.append(chip);
      }
      nodes.push(chips);
    }
    return nodes;
  }

  function templateCard(template) {
    const name = String(template.id || "").split("@").pop();
    const card = el("div", "template-card");
    card.append(el("div", "kind", `Template \u00b7 ${name} \u00b7 ${template.language || ""}`));
    const known = findTemplate(name, String(template.language || "").replace("-", "_"));
    const header = valuesOf((template.header || {}).parameters);
    const body = valuesOf((template.body || {}).parameters);
    if (known) {
      const headerText = fill(component(known, "HEADER").text, header);
      if (headerText) card.append(el("div", "template-header", headerText));
      card.append(el("div", "text", fill(component(known, "BODY").text, body)));
    }
    const params = [...Object.entries(header).map(([k, v]) => [`header {{${k}}}`, v]), ...Object.entries(body).map(([k, v]) => [`{{${k}}}`, v])];
    if (params.length) {
      const list = el("ul", "params");
      for (const [key, value] of params) {
        const item = el("li", "", `${key} = `);
        item.append(el("b", "", value));
        list.append(item);
      }
      card.append(list);
    }
    return card;
  }

  function renderAgent(received, sent, customers) {
    updateCustomers(customers);
    const customerId = digits(ui.waId.value);
    const receipts = {};
    let typingAt = 0;
    let conversation = "";
    for (const r of received) {
      if (r.kind === "receipt") {
        const reason = ((r.body.reasons || [])[0] || {});
        receipts[r.id] = { status: r.body.status, reason: reason.code || "", message: reason.message || "" };
      } else if (r.kind === "event" && r.customer_id === customerId) {
        typingAt = Math.max(typingAt, Date.parse(r.time) || 0);
      } else if (r.customer_id === customerId && r.conversation_id) {
        conversation = r.conversation_id;
      }
    }
    ui.agentTyping.hidden = !(typingAt && Date.now() - typingAt < 6000);
    ui.agentConversation.textContent = conversation ? `Conversation ${conversation} \u00b7 ${customerId}` : `No conversation yet with ${customerId || "anyone"}`;
    const canSend = Boolean(customerId);
    for (const button of [ui.agentSend, $("quick-send"), $("template-send")]) button.disabled = !canSend;
    ui.agentInput.placeholder = conversation ? "Reply to the customer" : "Waiting for a customer message\u2026";

    const items = [];
    received.forEach((r, i) => {
      if (r.customer_id !== customerId || (r.kind !== "message" && r.kind !== "structured")) return;
      const from = (r.body.channel || {}).from || {};
      const name = [from.firstName, from.lastName].filter(Boolean).join(" ") || from.nickname || from.id;
      const text = r.kind === "structured"
        ? `Chose: ${(((r.body.content || [])[0] || {}).buttonResponse || {}).text || ""}`
        : (r.body.text || "");
      items.push({ at: Date.parse(r.time) || 0, order: i, own: false, who: name, text, content: r.body.content || [] });
    });
    sent.forEach((s, i) => {
      if (s.to !== customerId || !s.body || s.body.type === "Event") return;
      items.push({
        at: Date.parse(s.time) || 0, order: 100000 + i, own: true, who: "You (agent)", text: s.body.text || "",
        content: s.body.content || [], receipt: receipts[s.id] || null, webhook: s.webhook_status, attempts: s.attempts,
      });
    });
    items.sort((a, b) => a.at - b.at || a.order - b.order);
    const signature = JSON.stringify([items, state.templates.length]);
    if (signature === state.signatures.agent) return;
    state.signatures.agent = signature;
    if (!items.length) {
      renderThread(ui.agentThread, [el("div", "empty", "Customer messages delivered by Xypr to Genesys appear here.")]);
      return;
    }
    renderThread(ui.agentThread, items.map((item) => {
      const row = el("div", item.own ? "row own" : "row");
      const bubble = el("div", "bubble");
      bubble.append(el("div", "who", item.who));
      // An attachment's caption is also the message text: show the file first, then the words once.
      if (item.own) {
        if (item.text) bubble.append(textBlock(item.text));
        bubble.append(...sentContentNodes(item.content));
      } else {
        for (const entry of item.content) {
          if (entry.contentType === "Attachment" && entry.attachment) bubble.append(agentAttachmentNode(entry.attachment, false));
        }
        if (item.text) bubble.append(textBlock(item.text));
      }
      const footer = el("div", "footer-line");
      footer.append(el("span", "", item.at ? timeOf(new Date(item.at)) : ""));
      if (item.own) {
        const receipt = item.receipt;
        const label = receipt ? (receipt.status === "Failed" ? `Failed: ${receipt.reason}` : receipt.status) : "Sent";
        footer.append(el("span", `receipt ${receipt ? receipt.status.toLowerCase() : ""}`, label));
      }
      bubble.append(footer);
      if (item.own && !(item.webhook >= 200 && item.webhook < 300)) {
        bubble.append(el("div", "note", `Xypr's webhook answered ${item.webhook || "nothing"} after ${item.attempts} attempt(s)`));
      }
      if (item.receipt && item.receipt.message) bubble.append(el("div", "note", item.receipt.message));
      row.append(bubble);
      return row;
    }));
  }

  async function sendAsAgent(message) {
    const customerId = digits(ui.waId.value);
    if (!customerId) throw new Error("pick a customer first");
    const path = `/_sandbox/integrations/${encodeURIComponent(demo.integration_id)}/agent/messages`;
    const result = await postJSON(genesysUrl(path), { to: customerId, ...message });
    webhookProblem(result, "Xypr's Genesys webhook");
    follow(ui.agentThread);
    await refresh();
    return result;
  }

  ui.agentAttach.addEventListener("click", () => ui.agentFile.click());
  ui.agentFile.addEventListener("change", () => {
    state.agentFile = ui.agentFile.files[0] || null;
    ui.agentPending.hidden = !state.agentFile;
    ui.agentPendingName.textContent = state.agentFile ? `${state.agentFile.name} (${sizeOf(state.agentFile.size)})` : "";
    ui.agentInput.focus();
  });
  function clearAgentFile() {
    state.agentFile = null;
    ui.agentFile.value = "";
    ui.agentPending.hidden = true;
  }
  $("agent-pending-remove").addEventListener("click", clearAgentFile);

  ui.agentForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = ui.agentInput.value.trim();
    const file = state.agentFile;
    if (!text && !file) return;
    ui.agentSend.disabled = true;
    try {
      if (file) {
        // Genesys hosts the agent's file and sends Xypr its URL (here: the emulated Genesys's own URL).
        const form = new FormData();
        form.append("file", file, file.name);
        const attachment = await postForm(genesysUrl("/_sandbox/attachments"), form);
        const message = { type: "Text", content: [{ contentType: "Attachment", attachment }] };
        if (text) message.text = text;
        await sendAsAgent(message);
        if (state.agentFile === file) clearAgentFile();
      } else {
        await sendAsAgent({ text });
      }
      if (ui.agentInput.value.trim() === text) ui.agentInput.value = "";
    } catch (error) {
      setStatus(`Could not send as agent: ${error.message}`, true);
    } finally {
      ui.agentSend.disabled = false;
      ui.agentInput.focus();
    }
  });

  const showQuick = sheet(ui.agentQuick, ui.quickForm, $("quick-cancel"), () => showTemplate(false));
  ui.quickForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const options = $("quick-options").value.split("\n").map((line) => line.trim()).filter(Boolean);
    if (!options.length) { setStatus("Write at least one option.", true); return; }
    const content = options.map((text) => ({ contentType: "QuickReply", quickReply: { text, payload: text, action: "Message" } }));
    const question = $("quick-text").value.trim();
    const button = $("quick-send");
    button.disabled = true;
    try {
      await sendAsAgent({ type: "Structured", ...(question ? { text: question } : {}), content });
      showQuick(false);
    } catch (error) {
      setStatus(`Could not send the quick replies: ${error.message}`, true);
    } finally {
      button.disabled = false;
    }
  });

  const showTemplate = sheet(ui.agentTemplate, ui.templateForm, $("template-cancel"), () => { showQuick(false); loadTemplates(); });
  function selectedTemplate() {
    const [name, language] = String(ui.templateName.value || "").split("|");
    return findTemplate(name, language);
  }
  function templateInputs() {
    return [...ui.templateParams.querySelectorAll("input")];
  }
  function renderTemplateForm() {
    const template = selectedTemplate();
    const previous = Object.fromEntries(templateInputs().map((input) => [input.id, input.value]));
    ui.templateParams.replaceChildren();
    if (!template) { ui.templatePreview.textContent = ""; return; }
    const customerName = ui.name.value.trim().split(" ")[0] || "there";
    const samples = { header: ["A-1042"], body: [customerName, "A-1042", "Friday"] };
    for (const part of ["header", "body"]) {
      placeholders(component(template, part.toUpperCase()).text).forEach((key, i) => {
        const id = `template-${part}-${key}`;
        const label = el("label", "", `${part === "header" ? "Header" : "Body"} {{${key}}}`);
        label.htmlFor = id;
        const input = el("input");
        input.id = id;
        input.dataset.part = part;
        input.dataset.key = key;
        input.required = true;
        input.maxLength = 200;
        input.value = previous[id] !== undefined ? previous[id] : (samples[part][i] || "");
        input.addEventListener("input", previewTemplate);
        label.append(input);
        ui.templateParams.append(label);
      });
    }
    previewTemplate();
  }
  function templateValues() {
    const values = { header: {}, body: {} };
    for (const input of templateInputs()) values[input.dataset.part][input.dataset.key] = input.value;
    return values;
  }
  function previewTemplate() {
    const template = selectedTemplate();
    if (!template) return;
    const values = templateValues();
    const preview = [];
    const header = fill(component(template, "HEADER").text, values.header);
    if (header) preview.push(el("div", "template-header", header));
    preview.push(el("div", "text", fill(component(template, "BODY").text, values.body)));
    const footer = component(template, "FOOTER").text;
    if (footer) preview.push(el("div", "template-footer", footer));
    ui.templatePreview.replaceChildren(...preview);
  }
  async function loadTemplates() {
    if (!demo.waba_id) return;
    try {
      const templates = await getJSON(metaUrl("/_sandbox/templates", { waba_id: demo.waba_id }));
      const signature = JSON.stringify(templates);
      if (signature === JSON.stringify(state.templates)) return;
      state.templates = templates;
      const chosen = ui.templateName.value;
      ui.templateName.replaceChildren(...templates.map((t) => {
        const option = el("option", "", `${t.name} (${t.language})`);
        option.value = `${t.name}|${t.language}`;
        return option;
      }));
      if (chosen && templates.some((t) => `${t.name}|${t.language}` === chosen)) ui.templateName.value = chosen;
      renderTemplateForm();
      state.signatures.customer = state.signatures.agent = "";
    } catch (error) {
      setStatus(`Could not list the templates: ${error.message}`, true);
    }
  }
  ui.templateName.addEventListener("change", renderTemplateForm);
  ui.templateForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const template = selectedTemplate();
    if (!template) return;
    const values = templateValues();
    const parameters = (map) => Object.entries(map).map(([name, text]) => ({ name, text }));
    const notification = { id: `${TEMPLATE_NAMESPACE}@${template.name}`, language: template.language };
    if (Object.keys(values.header).length) notification.header = { type: "Text", parameters: parameters(values.header) };
    notification.body = { parameters: parameters(values.body) };
    const button = $("template-send");
    button.disabled = true;
    try {
      await sendAsAgent({ type: "Structured", content: [{ contentType: "Notification", template: notification }] });
      showTemplate(false);
    } catch (error) {
      setStatus(`Could not send the template: ${error.message}`, true);
    } finally {
      button.disabled = false;
    }
  });

  // --- polling -----------------------------------------------------------------------------------------
  let inFlight = false;
  async function refresh() {
    if (inFlight) return;
    inFlight = true;
    try {
      const waId = digits(ui.waId.value);
      const number = demo.phone_number_id;
      const [inbound, sent, failed, received, agentSent] = await Promise.all([
        getJSON(metaUrl("/_sandbox/inbound", { phone_number_id: number })),
        waId ? getJSON(metaUrl("/_sandbox/sent", { phone_number_id: number, to: waId })) : [],
        waId ? getJSON(metaUrl("/_sandbox/statuses", { phone_number_id: number, to: waId, status: "failed" })) : [],
        getJSON(genesysUrl("/_sandbox/received", { integration_id: demo.integration_id })),
        getJSON(genesysUrl("/_sandbox/sent", { integration_id: demo.integration_id })),
      ]);
      const failures = {};
      for (const s of failed) {
        const statuses = s.body.entry[0].changes[0].value.statuses || [];
        const error = ((statuses[0] || {}).errors || [])[0] || {};
        failures[s.wamid] = `Failed ${error.code || ""}: ${error.title || ""}`;
      }
      state.lastCustomer = [inbound.filter((r) => r.wa_id === waId), sent, failures];
      renderCustomer(...state.lastCustomer);
      renderAgent(received, agentSent, customersOf(inbound, received));
      updateReplyBar();
      setStatus(`Live \u00b7 updated ${new Date().toLocaleTimeString()}`, false);
    } catch (error) {
      setStatus(`Sandbox unreachable: ${error.message}`, true);
    } finally {
      inFlight = false;
    }
  }

  // A tab in the background stops polling (five requests every 700 ms would keep an otherwise idle
  // sandbox busy) and catches up as soon as it is shown again.
  async function loop() {
    if (document.hidden) {
      document.addEventListener("visibilitychange", loop, { once: true });
      return;
    }
    await refresh();
    setTimeout(loop, POLL_MS);
  }
  loadTemplates().then(loop);
})();
