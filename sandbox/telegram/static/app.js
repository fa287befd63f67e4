// Web chat for the Telegram emulator: vanilla JS, no build step. All text goes through
// text nodes; bot formatting is rebuilt from Bot API entities with a fixed set of tags.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { user: null, feed: null, entries: new Map(), toastTimer: null, actionTimer: null,
  botUsername: null, inline: { id: null, timer: null }, paid: new Set(), paying: new Set() };

async function api(path, options = {}) {
  const opts = { ...options };
  if (opts.json !== undefined) {
    opts.body = JSON.stringify(opts.json);
    opts.headers = { "Content-Type": "application/json" };
    delete opts.json;
  }
  const resp = await fetch("/_emu" + path, opts);
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.error || resp.statusText);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function toast(text) {
  const box = $("#toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(state.toastTimer);
  state.toastTimer = setTimeout(() => { box.hidden = true; }, 2500);
}

// ---- entities -> DOM (only Telegram's formatting; every string is a text node) -------------
function safeUrl(url) {
  try {
    const parsed = new URL(url, location.href);
    return ["http:", "https:", "tg:", "mailto:"].includes(parsed.protocol) ? parsed.href : null;
  } catch (e) {
    return null;
  }
}

function entityNode(entity) {
  switch (entity.type) {
    case "bold": return el("b");
    case "italic": return el("i");
    case "underline": return el("u");
    case "strikethrough": return el("s");
    case "code": return el("code");
    case "pre": return el("pre");
    case "blockquote": case "expandable_blockquote": return el("blockquote");
    case "spoiler": {
      const span = el("span", { class: "spoiler", title: "spoiler" });
      span.addEventListener("click", () => span.classList.toggle("shown"));
      return span;
    }
    case "text_link": {
      const href = safeUrl(entity.url);
      return href ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }) : el("span");
    }
    default: return el("span");
  }
}

function renderEntities(text, entities) {
  const root = el("span", { class: "text" });
  const list = (entities || []).slice().sort((a, b) => a.offset - b.offset || b.length - a.length);
  function build(parent, start, end, items) {
    let pos = start;
    let i = 0;
    while (i < items.length) {
      const entity = items[i];
      i += 1;
      if (entity.offset < pos || entity.offset >= end) continue;
      if (entity.offset > pos) parent.append(text.slice(pos, entity.offset));
      const stop = Math.min(entity.offset + entity.length, end);
      const inner = [];
      while (i < items.length && items[i].offset < stop) { inner.push(items[i]); i += 1; }
      const node = entityNode(entity);
      build(node, entity.offset, stop, inner);
      parent.append(node);
      pos = stop;
    }
    if (pos < end) parent.append(text.slice(pos, end));
  }
  build(root, 0, text.length, list);
  return root;
}

// ---- messages --------------------------------------------------------------------------------
function fileUrl(fileId) { return "/_emu/files/" + encodeURIComponent(fileId); }

function keyboard(message) {
  const rows = (message.reply_markup && message.reply_markup.inline_keyboard) || [];
  if (!rows.length) return null;
  const box = el("div", { class: "kb" });
  for (const row of rows) {
    const line = el("div", { class: "row" });
    for (const button of row) {
      if (button.url) {
        const href = safeUrl(button.url);
        line.append(el("a", href ? { href, target: "_blank", rel: "noopener" } : {}, button.text));
      } else if (button.pay) {
        line.append(payButton(message, button.text));
      } else if (button.callback_data !== undefined) {
        line.append(el("button", { type: "button", onclick: () => press(message, button) },
          button.text));
      } else {
        line.append(el("button", { type: "button", disabled: "" }, button.text));
      }
    }
    box.append(line);
  }
  return box;
}

// ---- Telegram Stars: invoice cards, the pay button, payment service lines ---------------------
function payButton(message, label) {
  const id = message.message_id;
  if (state.paid.has(id)) {
    return el("button", { type: "button", class: "paid", disabled: "" }, "Paid ✓");
  }
  const attrs = { type: "button", class: "pay", onclick: () => payInvoice(message) };
  if (state.paying.has(id)) attrs.disabled = "";
  return el("button", attrs, label);
}

function invoiceCard(message) {
  const inv = message.invoice;
  const card = el("div", { class: "invoice" },
    el("div", { class: "invoice-title" }, inv.title),
    el("div", { class: "invoice-desc" }, inv.description),
    el("div", { class: "invoice-price" }, "⭐ " + inv.total_amount));
  const custom = message.reply_markup && message.reply_markup.inline_keyboard;
  if (!custom || !custom.length) {
    card.append(el("div", { class: "kb" },
      el("div", { class: "row" }, payButton(message, "Pay ⭐ " + inv.total_amount))));
  }
  return card;
}

function serviceLine(entry) {
  const m = entry.message;
  const paid = m.successful_payment;
  const refund = m.refunded_payment;
  const text = paid
    ? `You paid ⭐ ${paid.total_amount} (${paid.invoice_payload})`
    : `⭐ ${refund.total_amount} refunded (${refund.invoice_payload})`;
  return el("div", { class: "service", "data-id": String(m.message_id),
    title: (paid || refund).telegram_payment_charge_id }, text);
}

function setStars(balance) {
  $("#stars").textContent = "⭐ " + balance;
  $("#stars").hidden = false;
}

async function refreshPayments() {
  try {
    const info = await api("/payments");
    for (const inv of info.invoices) {
      if (inv.chat_id === state.user.id && inv.telegram_payment_charge_id) {
        state.paid.add(inv.message_id);
        const entry = state.entries.get(inv.message_id);
        if (entry) upsert(entry);
      }
    }
    const stars = await api(`/users/${state.user.id}/stars`);
    setStars(stars.balance);
  } catch (e) { toast(e.message); }
}

async function payInvoice(message) {
  const id = message.message_id;
  state.paying.add(id);
  if (state.entries.has(id)) upsert(state.entries.get(id));
  try {
    const resp = await api("/pay", { method: "POST",
      json: { chat_id: state.user.id, message_id: id } });
    if (resp.status === "paid") { state.paid.add(id); setStars(resp.balance); }
    else if (resp.status === "declined") toast(resp.error_message || "Payment declined");
    else if (resp.status === "timeout") toast("The bot did not confirm the payment in time");
    else if (resp.status === "insufficient_balance") toast(`Not enough stars (⭐ ${resp.balance})`);
  } catch (e) { toast(e.message); }
  state.paying.delete(id);
  const entry = state.entries.get(id);
  if (entry) upsert(entry);
}

function bubble(entry) {
  const m = entry.message;
  if (!entry.deleted && (m.successful_payment || m.refunded_payment)) return serviceLine(entry);
  const node = el("div", { class: "bubble " + (entry.outgoing ? "bot" : "user"),
    "data-id": String(m.message_id) });
  if (entry.deleted) {
    node.classList.add("deleted");
    node.append("message deleted");
    return node;
  }
  if (m.via_bot) node.append(el("div", { class: "meta" }, "via @" + m.via_bot.username));
  if (m.photo && m.photo.length) {
    const largest = m.photo[m.photo.length - 1];
    node.append(el("img", { src: fileUrl(largest.file_id), alt: "photo",
      width: String(largest.width), height: String(largest.height) }));
  }
  if (m.video) {
    const attrs = { src: fileUrl(m.video.file_id), controls: "", playsinline: "", muted: "" };
    if (m.video.width) attrs.width = String(m.video.width);
    if (m.video.height) attrs.height = String(m.video.height);
    node.append(el("video", attrs));
  }
  if (m.document) {
    node.append(el("a", { class: "doc", href: fileUrl(m.document.file_id),
      download: m.document.file_name || "file" }, m.document.file_name || "file"));
  }
  if (m.invoice) node.append(invoiceCard(m));
  if (m.text !== undefined) node.append(renderEntities(m.text, m.entities));
  if (m.caption !== undefined) node.append(renderEntities(m.caption, m.caption_entities));
  const kb = keyboard(m);
  if (kb) node.append(kb);
  const when = new Date(1000 * (m.edit_date || m.date)).toLocaleTimeString();
  node.append(el("div", { class: "meta" }, (entry.history.length ? "edited " : "") + when));
  return node;
}

function upsert(entry) {
  state.entries.set(entry.message_id, entry);
  const box = $("#messages");
  const fresh = bubble(entry);
  const old = box.querySelector(`[data-id="${entry.message_id}"]`);
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  if (old) old.replaceWith(fresh);
  else box.append(fresh);
  if (atBottom || !old) box.scrollTop = box.scrollHeight;
  if (entry.outgoing && !old) replyKeyboard(entry);
}

function replyKeyboard(entry) {
  const markup = entry.reply_keyboard;
  if (!markup) return;
  const box = $("#reply-kb");
  box.replaceChildren();
  if (!markup.keyboard) { box.hidden = true; return; }
  for (const row of markup.keyboard) {
    const line = el("div", { class: "row" });
    for (const button of row) {
      const label = typeof button === "string" ? button : button.text;
      line.append(el("button", { type: "button", onclick: () => sendText(label) }, label));
    }
    box.append(line);
  }
  box.hidden = false;
}

function showAction(action) {
  $("#status").textContent = action.replace("_", " ") + "…";
  clearTimeout(state.actionTimer);
  state.actionTimer = setTimeout(() => { $("#status").textContent = "bot"; }, 5000);
}

function onEvent(event) {
  if (event.type === "snapshot") {
    state.entries.clear();
    $("#messages").replaceChildren();
    for (const entry of event.transcript.messages) upsert(entry);
    $("#blocked").checked = event.transcript.blocked;
  } else if (["message", "edit", "delete"].includes(event.type)) {
    if (event.entry.outgoing && event.type === "message") $("#status").textContent = "bot";
    upsert(event.entry);
  } else if (event.type === "action") {
    showAction(event.action);
  } else if (event.type === "callback_answer" && event.answer.answer) {
    const text = event.answer.answer.text;
    if (text) (event.answer.answer.show_alert ? alert : toast)(text);
  } else if (event.type === "stars") {
    setStars(event.balance);
  } else if (event.type === "blocked") {
    $("#blocked").checked = event.blocked;
  } else if (event.type === "inline_answer" && event.inline_query.id === state.inline.id) {
    showInlineResults(event.inline_query);
  }
}

// ---- inline mode: "@bot words" in the composer asks the bot, results show above it ------------
function inlineQueryOf(text) {
  const match = /^@(\w+)(?:\s+([\s\S]*))?$/.exec(text);
  if (!match) return null;
  if (state.botUsername && match[1].toLowerCase() !== state.botUsername.toLowerCase()) return null;
  return match[2] || "";
}

function hideInline() {
  state.inline.id = null;
  $("#inline-results").hidden = true;
  $("#inline-results").replaceChildren();
}

function onComposerInput() {
  clearTimeout(state.inline.timer);
  const query = inlineQueryOf($("#text").value);
  if (query === null) { hideInline(); return; }
  state.inline.timer = setTimeout(async () => {
    try {
      const resp = await api(`/users/${state.user.id}/inline`, { method: "POST", json: { query } });
      state.inline.id = resp.inline_query_id;
    } catch (e) { toast(e.message); }
  }, 300);
}

function showInlineResults(record) {
  const box = $("#inline-results");
  box.replaceChildren();
  const answer = record.answer || { results: [] };
  for (const result of answer.results) {
    const label = result.title || result.id;
    const content = result.type === "photo" && result.photo_file_id
      ? el("img", { src: fileUrl(result.photo_file_id), alt: label })
      : label;
    box.append(el("button", { type: "button", class: "inline-item",
      onclick: () => chooseInline(record.id, result.id) }, content));
  }
  if (!answer.results.length && answer.button && answer.button.start_parameter) {
    box.append(el("button", { type: "button", class: "inline-item",
      onclick: () => { hideInline(); $("#text").value = "";
        sendText("/start " + answer.button.start_parameter); } }, answer.button.text));
  }
  if (!box.children.length) box.append(el("div", { class: "inline-empty" }, "no results"));
  box.hidden = false;
}

async function chooseInline(queryId, resultId) {
  try {
    await api(`/users/${state.user.id}/inline/${queryId}/choose`,
      { method: "POST", json: { result_id: resultId } });
    $("#text").value = "";
    hideInline();
  } catch (e) { toast(e.message); }
}

// ---- actions ---------------------------------------------------------------------------------
async function sendText(text) {
  if (!text.trim()) return;
  try { await api(`/users/${state.user.id}/messages`, { method: "POST", json: { text } }); }
  catch (e) { toast(e.message); }
}

async function press(message, button) {
  try {
    await api(`/users/${state.user.id}/callback`, {
      method: "POST", json: { message_id: message.message_id, data: button.callback_data } });
  } catch (e) { toast(e.message); }
}

async function sendFiles(input, field, path) {
  const files = Array.from(input.files || []);
  input.value = "";
  if (!files.length) return;
  if (field === "photo" && files.length > 10) { toast("An album holds at most 10 photos"); return; }
  const form = new FormData();
  for (const file of files) form.append(field, file, file.name);
  try { await api(`/users/${state.user.id}/${path}`, { method: "POST", body: form }); }
  catch (e) { toast(e.message); }
}

function openChat(user) {
  state.user = user;
  state.paid.clear();
  state.paying.clear();
  localStorage.setItem("aisha-user", String(user.id));
  $("#login").hidden = true;
  $("#chat").hidden = false;
  if (state.feed) state.feed.close();
  state.feed = new EventSource(`/_emu/chats/${user.id}/events`);
  state.feed.onmessage = (msg) => onEvent(JSON.parse(msg.data));
  refreshPayments();
  $("#text").focus();
}

async function showLogin() {
  if (state.feed) { state.feed.close(); state.feed = null; }
  $("#chat").hidden = true;
  $("#login").hidden = false;
  const users = await api("/users");
  const list = $("#users");
  list.replaceChildren();
  for (const user of users) {
    const label = `${user.first_name} (${user.language_code || "?"})`;
    list.append(el("li", {}, el("button", { type: "button", onclick: () => openChat(user) }, label)));
  }
  return users;
}

async function init() {
  const info = await api("/bot");
  if (info.bot) {
    $("#bot-name").textContent = info.bot.first_name;
    state.botUsername = info.bot.username;
  }
  $("#text").addEventListener("input", onComposerInput);
  $("#new-user").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    // A returning person typing the same name continues as the same Telegram user.
    const name = $("#name").value.trim();
    const known = (await api("/users")).find(
      (u) => u.first_name.toLocaleLowerCase() === name.toLocaleLowerCase());
    openChat(known || await api("/users", { method: "POST",
      json: { first_name: name, language_code: $("#lang").value } }));
  });
  $("#composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("#text").value;
    $("#text").value = "";
    hideInline();
    sendText(text);
  });
  $("#photos").addEventListener("change", (ev) => sendFiles(ev.target, "photo", "photos"));
  $("#document").addEventListener("change", (ev) => sendFiles(ev.target, "document", "documents"));
  $("#back").addEventListener("click", () => showLogin());
  $("#blocked").addEventListener("change", (ev) => api(`/users/${state.user.id}/block`,
    { method: "POST", json: { blocked: ev.target.checked } }).catch((e) => toast(e.message)));
  const users = await showLogin();
  const saved = Number(localStorage.getItem("aisha-user"));
  const known = users.find((u) => u.id === saved);
  if (known) openChat(known);
}

init().catch((e) => toast(e.message));
