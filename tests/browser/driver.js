// A headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core, one JSON command
// per line on stdin, one JSON answer per line on stdout. tests/browser.rs starts the real
// processes (gateway, identity provider, Panel) and steers this driver step by step.
//
//   node driver.js --artifacts DIR
//
// Commands ({"cmd": ..., ...}); every answer has "ok" and, when false, "error" and "shot":
//   new_session                      forget cookies, close pages, open a fresh page
//   goto {url, timeout_ms}           navigate; answers with the page (below)
//   submit {fields, timeout_ms}      fill inputs by name, click the form's button, wait for the
//                                    navigation's final (non-redirect) response; the page
//   wait_text {text, timeout_ms}     wait until the page shows text (shadow DOM included)
//   click {text}                     click the button with this text
//   click_through {text, role, timeout_ms}   click the link (or button) with this text and wait
//                                    for the navigation's final response; the page
//   set_headers {headers}            extra request headers for this page's requests
//   screenshot {name, settle_ms}     save DIR/name.png (after settle_ms)
//   websockets                       the page's WebSockets: url, open, close code and reason
//   wait_ws_close {url_contains, timeout_ms}   wait until such a socket closes; its code
//   quit
// A page answer: {status, url, title, text, chain: [urls of the navigation's redirects]}.
// Close codes come from the page itself: an init script wraps window.WebSocket and records
// each CloseEvent's code and reason, so they are what the app's JavaScript saw.
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const artifactsAt = process.argv.indexOf('--artifacts');
const artifacts = artifactsAt > 0 ? process.argv[artifactsAt + 1] : path.join(tmpdir(), 'browser-artifacts');
mkdirSync(artifacts, { recursive: true });

// Runs in every document before the page's own scripts.
function recordWebSockets() {
  const log = [];
  Object.defineProperty(window, '__portcullisSockets', { value: log });
  const Native = window.WebSocket;
  class Recorded extends Native {
    constructor(...args) {
      super(...args);
      const entry = { url: this.url, opened: false, closed: false, code: null, reason: null };
      log.push(entry);
      this.addEventListener('open', () => { entry.opened = true; });
      this.addEventListener('close', (event) => {
        entry.closed = true;
        entry.code = event.code;
        entry.reason = event.reason;
        entry.clean = event.wasClean;
      });
    }
  }
  window.WebSocket = Recorded;
}

// The text a person sees, through open shadow roots (Bokeh and Panel render into them).
function deepText() {
  const skip = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE']);
  const block = /^(DIV|P|H[1-6]|TR|LI|PRE|TABLE|FORM|MAIN|SECTION|BR)$/;
  let out = '';
  const walk = (node) => {
    if (node.nodeType === Node.TEXT_NODE) {
      out += node.textContent;
      return;
    }
    if (node.nodeType === Node.ELEMENT_NODE && skip.has(node.tagName)) return;
    if (node.nodeType === Node.ELEMENT_NODE && node.tagName === 'TD') out += ' ';
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) walk(child);
    if (node.nodeType === Node.ELEMENT_NODE && block.test(node.tagName)) out += '\n';
  };
  walk(document.documentElement);
  return out.replace(/[ \t\u00a0]+/g, ' ').replace(/\s*\n\s*/g, '\n').trim();
}

const profile = mkdtempSync(path.join(tmpdir(), 'portcullis-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: ARGS,
  viewport: { width: 1100, height: 760 },
});
await context.addInitScript(recordWebSockets);
let page = context.pages()[0] || (await context.newPage());
let shots = 0;

async function describe(response, extra = {}) {
  const chain = [];
  for (let request = response?.request(); request; request = request.redirectedFrom()) {
    chain.unshift(request.url());
  }
  let text = '';
  try {
    text = await page.evaluate(deepText);
  } catch (err) {
    text = `(no text: ${err.message})`;
  }
  return {
    status: response ? response.status() : null,
    url: page.url(),
    title: await page.title().catch(() => ''),
    text: text.slice(0, 4000),
    chain,
    ...extra,
  };
}

function finalNavigation(timeout) {
  return page.waitForResponse(
    (response) => response.request().isNavigationRequest()
      && response.frame() === page.mainFrame()
      && !(response.status() >= 300 && response.status() < 400),
    { timeout },
  );
}

async function sockets() {
  return page.evaluate(() => (window.__portcullisSockets || []).map((s) => ({ ...s })));
}

const commands = {
  async new_session() {
    for (const open of context.pages()) await open.close();
    await context.clearCookies();
    page = await context.newPage();
    return {};
  },
  async goto({ url, timeout_ms = 30000 }) {
    const response = await page.goto(url, { timeout: timeout_ms, waitUntil: 'load' });
    return describe(response);
  },
  async submit({ fields, timeout_ms = 30000 }) {
    let form = null;
    for (const [name, value] of Object.entries(fields)) {
      const input = page.locator(`input[name="${name}"]`).first();
      await input.fill(String(value), { timeout: timeout_ms });
      form = input.locator('xpath=ancestor::form[1]');
    }
    const navigation = finalNavigation(timeout_ms);
    await form.locator('button, input[type="submit"]').first().click({ timeout: timeout_ms });
    const response = await navigation;
    await page.waitForLoadState('load', { timeout: timeout_ms });
    return describe(response);
  },
  async wait_text({ text, timeout_ms = 30000 }) {
    const deadline = Date.now() + timeout_ms;
    for (;;) {
      const seen = await page.evaluate(deepText).catch(() => '');
      if (seen.includes(text)) return { text: seen.slice(0, 4000) };
      if (Date.now() > deadline) {
        throw new Error(`"${text}" did not appear within ${timeout_ms} ms; the page shows:\n${seen.slice(0, 2000)}`);
      }
      await page.waitForTimeout(100);
    }
  },
  async click({ text, timeout_ms = 10000 }) {
    await page.getByRole('button', { name: text }).first().click({ timeout: timeout_ms });
    return {};
  },
  async click_through({ text, role = 'link', timeout_ms = 30000 }) {
    const navigation = finalNavigation(timeout_ms);
    await page.getByRole(role, { name: text }).first().click({ timeout: timeout_ms });
    const response = await navigation;
    await page.waitForLoadState('load', { timeout: timeout_ms });
    return describe(response);
  },
  async set_headers({ headers }) {
    await page.setExtraHTTPHeaders(headers);
    return {};
  },
  async screenshot({ name, settle_ms = 0 }) {
    if (settle_ms) await page.waitForTimeout(settle_ms); // let a notification finish sliding in
    const file = path.join(artifacts, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return { path: file };
  },
  async websockets() {
    return { sockets: await sockets() };
  },
  async wait_ws_close({ url_contains, timeout_ms = 20000 }) {
    const deadline = Date.now() + timeout_ms;
    for (;;) {
      const all = await sockets();
      const closed = all.find((s) => s.url.includes(url_contains) && s.closed);
      if (closed) return { socket: closed, sockets: all };
      if (Date.now() > deadline) {
        throw new Error(`no WebSocket with "${url_contains}" closed within ${timeout_ms} ms: ${JSON.stringify(all)}`);
      }
      await page.waitForTimeout(100);
    }
  },
};

async function shutdown(code) {
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  process.exit(code);
}

function answer(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

const lines = readline.createInterface({ input: process.stdin });
answer({ ok: true, ready: true, browser: context.browser()?.version() ?? 'chromium', artifacts });
for await (const line of lines) {
  if (!line.trim()) continue;
  let request;
  try {
    request = JSON.parse(line);
  } catch (err) {
    answer({ ok: false, error: `not JSON: ${err.message}` });
    continue;
  }
  if (request.cmd === 'quit') break;
  const run = commands[request.cmd];
  if (!run) {
    answer({ ok: false, error: `unknown command ${request.cmd}` });
    continue;
  }
  try {
    answer({ ok: true, ...(await run(request)) });
  } catch (err) {
    shots += 1;
    const shot = path.join(artifacts, `failure-${shots}-${request.cmd}.png`);
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    let text = '';
    try {
      text = (await page.evaluate(deepText)).slice(0, 2000);
    } catch {
      text = '';
    }
    answer({ ok: false, error: err.message, shot, url: page.url(), text });
  }
}
await shutdown(0);
