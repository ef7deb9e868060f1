// opsgate demo console: renders the Slack emulator's workspace and sends what a person does to the
// bot through the console API (which signs it as Slack would). Plain JS, no build step.
// Every piece of text from the workspace goes into the page through textContent or attributes
// set one by one: never innerHTML.
"use strict";

const state = {
  ws: null,
  user: null,
  view: { kind: "channel", id: null },
  thread: null,
  modal: null, // {id, hash} of the view rendered in the modal
  unread: new Set(),
  users: new Map(),
  channels: new Map(),
  groups: new Map(),
  refreshTimer: null,
  pending: { main: false, thread: false, modal: false },
};

// ---------------------------------------------------------------- DOM and HTTP plumbing

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (!response.ok) {
    const message = (data && data.error) || `HTTP ${response.status}`;
    throw new Error(message);
  }
  return data;
}

let toastTimer = null;
function toast(message, isError) {
  const node = $("toast");
  node.textContent = message;
  node.classList.toggle("error", Boolean(isError));
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.hidden = true; }, isError ? 7000 : 3500);
}

function safeUrl(url) {
  return /^(https?:|mailto:)/i.test(url) ? url : null;
}

// ---------------------------------------------------------------- mrkdwn

const EMOJI = {
  white_check_mark: "✅", heavy_check_mark: "✔️", x: "❌", warning: "⚠️", rotating_light: "🚨",
  no_bell: "🔕", bell: "🔔", repeat: "🔁", red_circle: "🔴", large_orange_circle: "🟠",
  large_yellow_circle: "🟡", large_green_circle: "🟢", large_blue_circle: "🔵", white_circle: "⚪",
  eyes: "👀", thumbsup: "👍", "+1": "👍", no_entry_sign: "🚫", no_entry: "⛔",
  hourglass_flowing_sand: "⏳", hourglass: "⌛", gear: "⚙️", boom: "💥", pencil2: "✏️",
  page_facing_up: "📄", new: "🆕", memo: "📝", mag: "🔍", information_source: "ℹ️",
  arrows_counterclockwise: "🔄", rocket: "🚀", lock: "🔒", key: "🔑", tada: "🎉", link: "🔗",
  leftwards_arrow_with_hook: "↩️", fire: "🔥", zap: "⚡", package: "📦", calendar: "📅",
  stopwatch: "⏱️", construction: "🚧", shield: "🛡️", robot_face: "🤖", sos: "🆘",
};

function decodeEntities(text) {
  return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function emojify(text) {
  return text.replace(/:([a-z0-9_+\-]+):/g, (whole, name) => EMOJI[name] || whole);
}

function textNode(raw) {
  return document.createTextNode(emojify(decodeEntities(raw)));
}

function userName(id) {
  const user = state.users.get(id);
  if (user) return user.real_name || user.name;
  if (state.ws && id === state.ws.bot.id) return state.ws.bot.name;
  return id;
}

function renderAngle(inner) {
  // Slack's <...> forms: user and channel mentions, special mentions, dates, links.
  const [target, label] = splitOnce(inner, "|");
  if (target.startsWith("@")) {
    return el("span", { className: "mention", text: "@" + (label || userName(target.slice(1))) });
  }
  if (target.startsWith("#")) {
    const channel = state.channels.get(target.slice(1));
    return el("span", { className: "mention", text: "#" + (label || (channel ? channel.name : target.slice(1))) });
  }
  if (target.startsWith("!subteam^")) {
    const group = state.groups.get(target.slice("!subteam^".length));
    return el("span", { className: "mention", text: label || (group ? "@" + group.handle : "@group") });
  }
  if (target.startsWith("!date^")) {
    return textNode(label || target);
  }
  if (target.startsWith("!")) {
    return el("span", { className: "mention", text: "@" + (label || target.slice(1)) });
  }
  const href = safeUrl(decodeEntities(target));
  // Anything else is not one of Slack's forms: show it as typed, brackets included.
  if (!href) return document.createTextNode(decodeEntities(`<${inner}>`));
  return el("a", { href, target: "_blank", rel: "noopener noreferrer", text: decodeEntities(label || target) });
}

function splitOnce(text, separator) {
  const at = text.indexOf(separator);
  return at < 0 ? [text, ""] : [text.slice(0, at), text.slice(at + 1)];
}

const INLINE = new RegExp(
  [
    "`([^`\\n]+)`",
    "<([^<>\\n]+)>",
    "(?<![\\p{L}\\p{N}_*])\\*(?!\\s)([^*\\n]+?)\\*(?![\\p{L}\\p{N}_*])",
    "(?<![\\p{L}\\p{N}_])_(?!\\s)([^_\\n]+?)_(?![\\p{L}\\p{N}_])",
    "(?<![\\p{L}\\p{N}_~])~(?!\\s)([^~\\n]+?)~(?![\\p{L}\\p{N}_~])",
  ].join("|"),
  "gu",
);

function renderInline(text) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    if (match.index > last) fragment.append(textNode(text.slice(last, match.index)));
    const [, code, angle, bold, italic, strike] = match;
    if (code !== undefined) fragment.append(el("code", { text: decodeEntities(code) }));
    else if (angle !== undefined) fragment.append(renderAngle(angle));
    else if (bold !== undefined) fragment.append(el("b", {}, renderInline(bold)));
    else if (italic !== undefined) fragment.append(el("i", {}, renderInline(italic)));
    else fragment.append(el("s", {}, renderInline(strike)));
    last = match.index + match[0].length;
  }
  if (last < text.length) fragment.append(textNode(text.slice(last)));
  return fragment;
}

function renderLines(text, into) {
  let quote = null;
  const lines = text.split("\n");
  lines.forEach((line, index) => {
    const quoted = /^(&gt;|>) ?/.exec(line);
    if (quoted) {
      if (!quote) {
        quote = el("blockquote");
        into.append(quote);
      } else {
        quote.append(el("br"));
      }
      quote.append(renderInline(line.slice(quoted[0].length)));
      return;
    }
    quote = null;
    into.append(renderInline(line));
    const nextQuoted = index + 1 < lines.length && /^(&gt;|>)/.test(lines[index + 1]);
    if (index < lines.length - 1 && !nextQuoted) into.append(el("br"));
  });
}

function renderMrkdwn(text) {
  const root = el("div", { className: "mrkdwn" });
  const parts = String(text || "").split("```");
  parts.forEach((part, index) => {
    if (index % 2 === 1 && index < parts.length - 1) {
      root.append(el("pre", { text: decodeEntities(part.replace(/^\n/, "")) }));
    } else {
      renderLines(index % 2 === 1 ? "```" + part : part, root);
    }
  });
  return root;
}

function renderTextObject(object) {
  if (!object) return el("span");
  if (object.type === "mrkdwn") return renderMrkdwn(object.text);
  // plain_text: no formatting, only emoji codes.
  return el("span", { text: object.emoji === false ? object.text : emojify(object.text || "") });
}

function plain(object) {
  return object ? emojify(object.text || "") : "";
}

// ---------------------------------------------------------------- Block Kit

// ctx: {surface: "message" | "home" | "modal", act(element, value, blockId)}
function renderBlocks(blocks, ctx) {
  const root = el("div", { className: "bk-blocks" });
  for (const block of blocks || []) {
    root.append(renderBlock(block, ctx));
  }
  return root;
}

function renderBlock(block, ctx) {
  const wrap = (className, ...children) =>
    el("div", { className: `bk-block ${className}`, dataset: { blockId: block.block_id || "", blockType: block.type } }, ...children);
  switch (block.type) {
    case "header":
      return wrap("bk-header", plain(block.text));
    case "section": {
      const main = el("div", { className: "bk-section-main" });
      if (block.text) main.append(renderTextObject(block.text));
      if (block.fields && block.fields.length) {
        main.append(el("div", { className: "bk-fields" }, block.fields.map((field) => el("div", {}, renderTextObject(field)))));
      }
      const section = wrap("bk-section", main);
      if (block.accessory) section.append(renderElement(block.accessory, block, ctx, true));
      return section;
    }
    case "context":
      return wrap(
        "bk-context",
        (block.elements || []).map((item) =>
          item.type === "image" ? renderImage(item.image_url, item.alt_text, "") : renderTextObject(item),
        ),
      );
    case "divider":
      return el("hr", { className: "bk-divider" });
    case "actions":
      return wrap("bk-actions", (block.elements || []).map((element) => renderElement(element, block, ctx, false)));
    case "image":
      return wrap(
        "bk-image-block",
        block.title ? el("div", { className: "bk-image-title", text: plain(block.title) }) : null,
        renderImage(block.image_url, block.alt_text, "bk-image"),
      );
    case "input":
      return ctx.surface === "modal" ? renderInput(block, ctx) : wrap("bk-unsupported", "(input block)");
    default:
      return wrap("bk-unsupported", `(${block.type} block not shown by the console)`);
  }
}

function renderImage(url, alt, className) {
  const src = safeUrl(url || "");
  if (!src) return el("span", { className: "bk-unsupported", text: alt || "(image)" });
  return el("img", { src, alt: alt || "", className, loading: "lazy", referrerpolicy: "no-referrer" });
}

function renderElement(element, block, ctx, isAccessory) {
  const blockId = block.block_id || "";
  switch (element.type) {
    case "button": {
      const style = element.style === "primary" ? " bk-primary" : element.style === "danger" ? " bk-danger" : "";
      const button = el("button", {
        type: "button",
        className: "bk-button" + style,
        text: plain(element.text),
        dataset: { actionId: element.action_id || "", value: element.value || "" },
      });
      button.addEventListener("click", async () => {
        const href = element.url ? safeUrl(element.url) : null;
        if (href) window.open(href, "_blank", "noopener");
        if (element.confirm && !(await confirmDialog(element.confirm))) return;
        button.disabled = true;
        try {
          await ctx.act(element, element.value || "", blockId);
        } finally {
          button.disabled = false;
        }
      });
      return button;
    }
    case "overflow":
      return renderOverflow(element, blockId, ctx);
    case "static_select":
      if (ctx.surface === "modal") return el("span", { className: "bk-unsupported", text: "(select)" });
      return renderMessageSelect(element, blockId, ctx);
    case "image":
      return renderImage(element.image_url, element.alt_text, isAccessory ? "bk-accessory-image" : "");
    default:
      return el("span", { className: "bk-unsupported", text: `(${element.type})` });
  }
}

function optionsOf(element) {
  if (element.options) return element.options;
  return (element.option_groups || []).flatMap((group) => group.options || []);
}

function renderOverflow(element, blockId, ctx) {
  const holder = el("span", { className: "bk-overflow" });
  const menu = el("div", { className: "bk-overflow-menu", hidden: true });
  const toggle = el("button", {
    type: "button",
    className: "bk-button",
    text: "⋯",
    "aria-label": "More actions",
    dataset: { actionId: element.action_id || "" },
  });
  toggle.addEventListener("click", () => { menu.hidden = !menu.hidden; });
  for (const option of optionsOf(element)) {
    const item = el("button", { type: "button", text: plain(option.text), dataset: { value: option.value } });
    item.addEventListener("click", async () => {
      menu.hidden = true;
      if (element.confirm && !(await confirmDialog(element.confirm))) return;
      await ctx.act(element, option.value, blockId);
    });
    menu.append(item);
  }
  holder.append(toggle, menu);
  return holder;
}

function renderMessageSelect(element, blockId, ctx) {
  const select = el("select", { className: "bk-select", dataset: { actionId: element.action_id || "" } });
  select.append(el("option", { value: "", text: plain(element.placeholder) || "Select…" }));
  for (const option of optionsOf(element)) {
    select.append(el("option", { value: option.value, text: plain(option.text) }));
  }
  if (element.initial_option) select.value = element.initial_option.value;
  select.addEventListener("change", async () => {
    if (!select.value) return;
    if (element.confirm && !(await confirmDialog(element.confirm))) return;
    await ctx.act(element, select.value, blockId);
  });
  return select;
}

// Modal inputs: each remembers how to read its Slack state value.
function renderInput(block, ctx) {
  const element = block.element || {};
  const inputId = `input-${block.block_id}`;
  const holder = el("div", {
    className: "bk-block bk-input",
    dataset: { blockId: block.block_id || "", actionId: element.action_id || "", elementType: element.type || "" },
  });
  holder.append(
    el("label", { for: inputId }, plain(block.label), block.optional ? el("span", { className: "optional", text: " (optional)" }) : null),
  );
  let read = () => null;
  if (element.type === "plain_text_input") {
    const attrs = {
      id: inputId,
      name: block.block_id,
      placeholder: plain(element.placeholder),
      maxlength: element.max_length || null,
    };
    const field = element.multiline ? el("textarea", attrs) : el("input", Object.assign({ type: "text" }, attrs));
    field.value = element.initial_value || "";
    holder.append(field);
    read = () => ({ type: "plain_text_input", value: field.value });
  } else if (element.type === "static_select") {
    const options = optionsOf(element);
    const select = el("select", { id: inputId, name: block.block_id });
    select.append(el("option", { value: "", text: plain(element.placeholder) || "Select…" }));
    options.forEach((option, index) => {
      const label = plain(option.text) + (option.description ? ` — ${plain(option.description)}` : "");
      select.append(el("option", { value: String(index), text: label }));
    });
    if (element.initial_option) {
      const index = options.findIndex((option) => option.value === element.initial_option.value);
      if (index >= 0) select.value = String(index);
    }
    holder.append(select);
    read = () => ({ type: "static_select", selected_option: select.value === "" ? null : options[Number(select.value)] });
  } else if (element.type === "external_select") {
    const box = el("div", { className: "bk-external" });
    const search = el("input", { type: "text", id: inputId, placeholder: plain(element.placeholder) || "Type to search" });
    const select = el("select", { name: block.block_id, "aria-label": plain(block.label) });
    let options = [];
    const load = debounce(async () => {
      try {
        const answer = await api("POST", "/console/api/views/options", {
          user: state.user, view_id: ctx.viewId, block_id: block.block_id, action_id: element.action_id, value: search.value,
        });
        options = answer.options || [];
      } catch (error) {
        options = [];
        toast(`Options: ${error.message}`, true);
      }
      select.replaceChildren(el("option", { value: "", text: options.length ? "Choose…" : "No matches" }));
      options.forEach((option, index) => select.append(el("option", { value: String(index), text: plain(option.text) })));
      if (options.length === 1) select.value = "0";
    }, 200);
    search.addEventListener("input", load);
    search.addEventListener("focus", load, { once: true });
    box.append(search, select);
    holder.append(box);
    read = () => ({ type: "external_select", selected_option: select.value === "" ? null : options[Number(select.value)] });
  } else {
    holder.append(el("div", { className: "bk-unsupported", text: `(${element.type} input not supported by the console)` }));
  }
  if (block.hint) holder.append(el("div", { className: "bk-hint", text: plain(block.hint) }));
  holder.append(el("div", { className: "bk-error", hidden: true }));
  holder.readValue = read;
  return holder;
}

function debounce(fn, wait) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
}

function confirmDialog(confirm) {
  return new Promise((resolve) => {
    $("confirm-title").textContent = plain(confirm.title) || "Are you sure?";
    $("confirm-text").replaceChildren(renderTextObject(confirm.text));
    $("confirm-ok").textContent = plain(confirm.confirm) || "Yes";
    $("confirm-deny").textContent = plain(confirm.deny) || "Cancel";
    $("confirm-backdrop").hidden = false;
    const done = (answer) => {
      $("confirm-backdrop").hidden = true;
      $("confirm-ok").onclick = null;
      $("confirm-deny").onclick = null;
      resolve(answer);
    };
    $("confirm-ok").onclick = () => done(true);
    $("confirm-deny").onclick = () => done(false);
  });
}

// ---------------------------------------------------------------- messages

function timeOf(ts) {
  return new Date(parseFloat(ts) * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function initials(name) {
  return (name || "?").split(/[\s.]+/).filter(Boolean).slice(0, 2).map((part) => part[0].toUpperCase()).join("");
}

function renderMessage(message, { inThread }) {
  const ctx = {
    surface: "message",
    act: (element, value, blockId) => clickMessage(message, element, value, blockId),
  };
  const body = el(
    "div",
    { className: "message-body" },
    el(
      "div",
      { className: "message-meta" },
      el("span", { className: "author", text: message.author }),
      message.is_bot ? el("span", { className: "app-badge", text: "APP" }) : null,
      el("span", { className: "time", text: timeOf(message.ts), title: message.ts }),
      message.edited ? el("span", { className: "edited", text: "(edited)" }) : null,
      message.ephemeral ? el("span", { className: "only-you", text: "Only visible to you" }) : null,
    ),
    message.blocks && message.blocks.length ? renderBlocks(message.blocks, ctx) : renderMrkdwn(message.text),
  );
  if (!inThread && message.reply_count > 0) {
    const label = `${message.reply_count} ${message.reply_count === 1 ? "reply" : "replies"}`;
    body.append(el("button", { type: "button", className: "replies-link", text: label, onclick: () => openThread(message.channel, message.ts) }));
  }
  return el(
    "div",
    { className: "message" + (message.ephemeral ? " ephemeral" : ""), dataset: { ts: message.ts, channel: message.channel } },
    el("div", { className: "avatar", text: message.is_bot ? "og" : initials(message.author), "aria-hidden": "true" }),
    body,
  );
}

async function clickMessage(message, element, value, blockId) {
  try {
    const outcome = await api("POST", "/console/api/click", {
      user: state.user,
      channel: message.channel,
      ts: message.ts,
      action_id: element.action_id,
      value,
      block_id: blockId || null,
      ephemeral: message.ephemeral,
    });
    if (!outcome.ok) toast(`The bot answered HTTP ${outcome.status}`, true);
  } catch (error) {
    toast(error.message, true);
  }
}

function nearBottom(node) {
  return node.scrollHeight - node.scrollTop - node.clientHeight < 80;
}

async function refreshMain() {
  if (state.view.kind === "home") return refreshHome();
  const channel = state.view.id;
  const data = await api("GET", `/console/api/messages?channel=${encodeURIComponent(channel)}&user=${encodeURIComponent(state.user)}`);
  if (state.view.kind !== "channel" || state.view.id !== channel) return;
  const list = $("messages");
  const stick = nearBottom(list);
  if (!data.messages.length) {
    list.replaceChildren(el("div", { className: "empty", text: "No messages yet. Type a slash command below." }));
  } else {
    list.replaceChildren(...data.messages.map((message) => renderMessage(message, { inThread: false })));
  }
  if (stick) list.scrollTop = list.scrollHeight;
}

async function openThread(channel, ts) {
  state.thread = { channel, ts, fresh: true };
  $("thread").hidden = false;
  await refreshThread();
}

async function refreshThread() {
  if (!state.thread) return;
  const { channel, ts } = state.thread;
  let data;
  try {
    data = await api("GET", `/console/api/thread?channel=${encodeURIComponent(channel)}&ts=${encodeURIComponent(ts)}`);
  } catch (error) {
    closeThread();
    return;
  }
  const replies = data.replies.map((message) => renderMessage(message, { inThread: true }));
  const count = data.replies.length;
  const box = $("thread-messages");
  const stick = state.thread.fresh || nearBottom(box);
  state.thread.fresh = false;
  box.replaceChildren(
    renderMessage(data.parent, { inThread: true }),
    el("div", { className: "thread-divider", text: `${count} ${count === 1 ? "reply" : "replies"}` }),
    ...replies,
  );
  if (stick) box.scrollTop = box.scrollHeight;
}

function closeThread() {
  state.thread = null;
  $("thread").hidden = true;
}

// ---------------------------------------------------------------- App Home

async function refreshHome() {
  const data = await api("GET", `/console/api/home?user=${encodeURIComponent(state.user)}`);
  if (state.view.kind !== "home") return;
  const ctx = { surface: "home", act: clickHome };
  const home = $("home");
  if (!data.view) {
    home.replaceChildren(el("div", { className: "empty", text: "opsgate has not published a Home tab for you yet…" }));
  } else {
    home.replaceChildren(renderBlocks(data.view.blocks, ctx));
  }
}

async function clickHome(element, value, blockId) {
  try {
    const outcome = await api("POST", "/console/api/home/click", {
      user: state.user, action_id: element.action_id, value, block_id: blockId || null,
    });
    if (!outcome.ok) toast(`The bot answered HTTP ${outcome.status}`, true);
  } catch (error) {
    toast(error.message, true);
  }
}

// ---------------------------------------------------------------- modals

async function refreshModal() {
  const data = await api("GET", `/console/api/views?user=${encodeURIComponent(state.user)}`);
  const view = data.views[data.views.length - 1];
  if (!view) {
    state.modal = null;
    $("modal-backdrop").hidden = true;
    return;
  }
  if (!state.modal || state.modal.id !== view.id || state.modal.hash !== view.hash) {
    renderModal(view);
  }
  showModalErrors((data.errors || {})[view.id] || {});
}

function renderModal(view) {
  state.modal = { id: view.id, hash: view.hash, view };
  $("modal-title").textContent = plain(view.title) || "opsgate";
  $("modal-submit").textContent = plain(view.submit) || "Submit";
  $("modal-submit").hidden = !view.submit;
  $("modal-close").textContent = plain(view.close) || "Cancel";
  const ctx = { surface: "modal", viewId: view.id, act: async () => toast("Buttons inside modals are not supported by the console", true) };
  $("modal-body").replaceChildren(renderBlocks(view.blocks, ctx));
  $("modal-backdrop").hidden = false;
  const first = $("modal-body").querySelector("input, textarea, select");
  if (first) first.focus();
}

function showModalErrors(errors) {
  for (const holder of $("modal-body").querySelectorAll(".bk-input")) {
    const message = errors[holder.dataset.blockId];
    const node = holder.querySelector(".bk-error");
    holder.classList.toggle("has-error", Boolean(message));
    node.hidden = !message;
    node.textContent = message || "";
  }
}

function modalValues() {
  const values = {};
  for (const holder of $("modal-body").querySelectorAll(".bk-input")) {
    const value = holder.readValue ? holder.readValue() : null;
    if (value === null) continue;
    values[holder.dataset.blockId] = { [holder.dataset.actionId]: value };
  }
  return values;
}

async function submitModal(event) {
  event.preventDefault();
  if (!state.modal) return;
  const submit = $("modal-submit");
  submit.disabled = true;
  try {
    const outcome = await api("POST", "/console/api/views/submit", {
      user: state.user, view_id: state.modal.id, values: modalValues(),
    });
    if (outcome.response_action === "errors") showModalErrors(outcome.errors || {});
    else if (!outcome.ok) toast(`The bot answered HTTP ${outcome.status}`, true);
  } catch (error) {
    toast(error.message, true);
  } finally {
    submit.disabled = false;
    scheduleRefresh({ modal: true, main: true });
  }
}

async function closeModal() {
  if (!state.modal) return;
  try {
    await api("POST", "/console/api/views/close", { user: state.user, view_id: state.modal.id });
  } catch (error) {
    toast(error.message, true);
  }
  scheduleRefresh({ modal: true });
}

// ---------------------------------------------------------------- composer and faults

async function sendCommand(event) {
  event.preventDefault();
  const input = $("composer-input");
  const text = input.value.trim();
  if (!text) return;
  if (!text.startsWith("/")) {
    toast("The console sends slash commands: start with / (try /ops help).", true);
    return;
  }
  if (state.view.kind !== "channel") {
    toast("Open a channel or DM to run a command.", true);
    return;
  }
  $("composer-send").disabled = true;
  try {
    const outcome = await api("POST", "/console/api/command", { user: state.user, channel: state.view.id, text });
    input.value = "";
    if (!outcome.ok) toast(`The bot answered HTTP ${outcome.status}`, true);
  } catch (error) {
    toast(error.message, true);
  } finally {
    $("composer-send").disabled = false;
    scheduleRefresh({ main: true, modal: true });
  }
}

async function injectFault(preset, button) {
  button.disabled = true;
  try {
    const report = await api("POST", "/console/api/faults", { preset });
    renderArmed(report.armed);
    const results = Object.entries(report.results).map(([name, result]) => `${name}: ${result}`).join(", ");
    toast(`${preset === "clear" ? "Faults cleared" : "Fault armed"} (${results})`, !report.ok);
  } catch (error) {
    toast(error.message, true);
  } finally {
    button.disabled = false;
  }
}

function renderArmed(armed) {
  const set = new Set(armed || []);
  for (const button of $("fault-buttons").querySelectorAll("button")) {
    button.classList.toggle("armed", set.has(button.dataset.preset));
  }
  $("fault-status").textContent = set.size ? `Injected since last clear: ${[...set].join(", ")}` : "No faults injected";
}

// ---------------------------------------------------------------- navigation

function currentUser() {
  return state.users.get(state.user);
}

function renderSidebar() {
  const link = (label, active, unread, onclick, dataset) =>
    el("li", {}, el("a", { className: (active ? "active" : "") + (unread ? " unread" : ""), onclick, dataset, href: "#" }, label));
  $("channel-list").replaceChildren(
    ...state.ws.channels.map((channel) =>
      link(
        `# ${channel.name}`,
        state.view.kind === "channel" && state.view.id === channel.id,
        state.unread.has(channel.id),
        (event) => { event.preventDefault(); selectChannel(channel.id); },
        { channel: channel.id },
      ),
    ),
  );
  const dm = currentUser().dm;
  $("dm-list").replaceChildren(
    link(
      `${state.ws.bot.name} (DM)`,
      state.view.kind === "channel" && state.view.id === dm,
      state.unread.has(dm),
      (event) => { event.preventDefault(); selectChannel(dm); },
      { channel: dm },
    ),
  );
  $("app-list").replaceChildren(
    link(`${state.ws.bot.name} · Home`, state.view.kind === "home", false, (event) => { event.preventDefault(); selectHome(); }, { home: "1" }),
  );
}

function selectChannel(id) {
  state.view = { kind: "channel", id };
  state.unread.delete(id);
  const channel = state.channels.get(id);
  $("conversation-title").textContent = channel ? `# ${channel.name}` : `${state.ws.bot.name} (direct message)`;
  $("conversation-topic").textContent = channel ? channel.topic : `Your DM with ${state.ws.bot.name}`;
  $("messages").hidden = false;
  $("home").hidden = true;
  $("composer").hidden = false;
  closeThread();
  renderSidebar();
  refreshMain().catch((error) => toast(error.message, true));
}

async function selectHome() {
  state.view = { kind: "home" };
  $("conversation-title").textContent = `${state.ws.bot.name} · Home`;
  $("conversation-topic").textContent = "The App Home tab, as the selected user sees it";
  $("messages").hidden = true;
  $("home").hidden = false;
  $("composer").hidden = true;
  closeThread();
  renderSidebar();
  $("home").replaceChildren(el("div", { className: "empty", text: "Opening Home…" }));
  try {
    await api("POST", "/console/api/home/open", { user: state.user });
  } catch (error) {
    toast(error.message, true);
  }
  await refreshHome();
}

function switchUser(userId) {
  state.user = userId;
  try { localStorage.setItem("opsgate-console-user", userId); } catch (_) { /* private mode */ }
  state.modal = null;
  $("modal-backdrop").hidden = true;
  if (state.view.kind === "channel" && state.view.id && state.view.id.startsWith("D")) {
    selectChannel(currentUser().dm);
  } else if (state.view.kind === "home") {
    selectHome();
  } else {
    renderSidebar();
    scheduleRefresh({ main: true, thread: true });
  }
  scheduleRefresh({ modal: true });
}

// ---------------------------------------------------------------- live updates

function scheduleRefresh(what) {
  for (const key of Object.keys(what)) if (what[key]) state.pending[key] = true;
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(runRefresh, 60);
}

async function runRefresh() {
  const pending = state.pending;
  state.pending = { main: false, thread: false, modal: false };
  const jobs = [];
  if (pending.main) jobs.push(refreshMain());
  if (pending.thread) jobs.push(refreshThread());
  if (pending.modal) jobs.push(refreshModal());
  const results = await Promise.allSettled(jobs);
  for (const result of results) if (result.status === "rejected") console.warn(result.reason);
  document.body.dataset.refreshed = String(Date.now());
}

const CHANGE_KINDS = [
  "message_posted", "message_updated", "message_deleted", "ephemeral_posted", "ephemeral_updated",
  "ephemeral_deleted", "view_opened", "view_pushed", "view_updated", "view_errors", "view_closed",
  "home_published", "response_recorded", "reset",
];

function onChange(kind, data) {
  if (kind.startsWith("message_")) {
    const channel = data.channel;
    const showing = state.view.kind === "channel" && state.view.id === channel;
    if (kind === "message_posted" && !showing && channel) {
      const isMyDm = channel === currentUser().dm;
      if (state.channels.has(channel) || isMyDm) {
        state.unread.add(channel);
        renderSidebar();
      }
    }
    scheduleRefresh({ main: showing, thread: Boolean(state.thread && state.thread.channel === channel) });
  } else if (kind.startsWith("ephemeral_")) {
    scheduleRefresh({ main: true });
  } else if (kind.startsWith("view_")) {
    if (!data.user || data.user === state.user) scheduleRefresh({ modal: true });
  } else if (kind === "home_published") {
    if (data.user === state.user && state.view.kind === "home") scheduleRefresh({ main: true });
  } else if (kind === "reset") {
    scheduleRefresh({ main: true, thread: true, modal: true });
  }
}

function connectEvents() {
  const source = new EventSource("/console/events");
  source.onopen = () => {
    $("live-status").textContent = "live";
    document.body.dataset.live = "1";
    // Anything that changed while disconnected.
    scheduleRefresh({ main: true, thread: true, modal: true });
  };
  source.onerror = () => {
    $("live-status").textContent = "reconnecting…";
    document.body.dataset.live = "0";
  };
  for (const kind of CHANGE_KINDS) {
    source.addEventListener(kind, (event) => {
      let data = {};
      try { data = JSON.parse(event.data); } catch (_) { data = {}; }
      onChange(kind, data);
    });
  }
}

// ---------------------------------------------------------------- start

async function start() {
  state.ws = await api("GET", "/console/api/workspace");
  for (const user of state.ws.users) state.users.set(user.id, user);
  for (const channel of state.ws.channels) state.channels.set(channel.id, channel);
  for (const group of state.ws.usergroups) state.groups.set(group.id, group);
  $("team-name").textContent = state.ws.team.name;
  document.title = `${state.ws.team.name} · opsgate console`;

  const switcher = $("user-switcher");
  for (const user of state.ws.users) {
    const label = user.label ? `${user.real_name} — ${user.label}` : user.real_name;
    switcher.append(el("option", { value: user.id, text: label }));
  }
  let saved = null;
  try { saved = localStorage.getItem("opsgate-console-user"); } catch (_) { saved = null; }
  state.user = state.users.has(saved) ? saved : state.ws.users[0].id;
  switcher.value = state.user;
  switcher.addEventListener("change", () => switchUser(switcher.value));

  for (const preset of state.ws.fault_presets) {
    const button = el("button", { type: "button", text: preset.label, title: preset.description, dataset: { preset: preset.name } });
    button.addEventListener("click", () => injectFault(preset.name, button));
    $("fault-buttons").append(button);
  }
  api("GET", "/console/api/faults").then((faults) => renderArmed(faults.armed)).catch(() => {});

  for (const tip of state.ws.tips || []) {
    $("composer-tips").append(
      el("button", { type: "button", text: tip, onclick: () => { $("composer-input").value = tip; $("composer-input").focus(); } }),
    );
  }

  $("composer").addEventListener("submit", sendCommand);
  $("thread-close").addEventListener("click", closeThread);
  $("modal-form").addEventListener("submit", submitModal);
  $("modal-close").addEventListener("click", closeModal);
  $("modal-x").addEventListener("click", closeModal);
  document.addEventListener("click", (event) => {
    for (const menu of document.querySelectorAll(".bk-overflow-menu")) {
      if (!menu.parentElement.contains(event.target)) menu.hidden = true;
    }
  });

  const first = state.ws.channels[0];
  selectChannel(first ? first.id : currentUser().dm);
  connectEvents();
  document.body.dataset.ready = "1";
}

start().catch((error) => toast(`Console failed to start: ${error.message}`, true));
