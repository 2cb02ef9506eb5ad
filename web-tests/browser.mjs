// A headless Debian Chromium driven by playwright-core, for tests written in Python (compat/web_browser.py).
// One JSON object a line on stdin is one request, {"id": 1, "cmd": "goto", "url": "...", "timeout_ms": 30000};
// each gets one line on stdout, {"id": 1, "ok": true, "result": ...} or {"id": 1, "ok": false, "error": "..."}.
// Requests run one at a time, in order. Logs (the browser's, the pages' console) go to stderr.
// The first line out says the browser is up (id 0). Closing stdin closes the browser and ends the process.
//
//     node browser.mjs '{"executable": "/usr/bin/chromium", "viewport": [1280, 800], "device_scale_factor": 1, "zoom": 1}'
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const options = JSON.parse(process.argv[2] || "{}");
const zoom = options.zoom ?? 1;
const [width, height] = options.viewport ?? [1280, 800];
// Browser zoom at 200% is what WCAG 1.4.4 / 1.4.10 testing means: the window keeps its size and each CSS
// pixel takes 2 device pixels, so the layout sees a viewport half as wide (media queries, vw, reflow apply).
// Emulated exactly by a viewport divided by the zoom and a device scale factor multiplied by it; CSS `zoom`
// would not reach media queries.
const contextOptions = {
  viewport: { width: Math.round(width / zoom), height: Math.round(height / zoom) },
  deviceScaleFactor: (options.device_scale_factor ?? 1) * zoom,
};
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const log = (line) => process.stderr.write(`[browser.mjs] ${line}\n`);
// Playwright colours its call logs for a terminal; messages go into a test's report
const message = (err) => String(err?.message ?? err).replace(/\x1b\[[0-9;]*m/g, "");
const send = (answer) => process.stdout.write(JSON.stringify(answer) + "\n");

// Chromium will not start as root with its sandbox on ("Running as root without --no-sandbox is not
// supported"), so as root, as CI runs, it goes without one (--no-sandbox); as anyone else it keeps it.
const browser = await chromium
  .launch({
    executablePath: options.executable ?? "/usr/bin/chromium",
    headless: true,
    chromiumSandbox: process.getuid() !== 0,
    timeout: options.launch_timeout_ms ?? 60000,
  })
  .catch((err) => {
    send({ id: 0, ok: false, error: `chromium did not start: ${message(err)}` });
    process.exit(1);
  });
browser.on("disconnected", () => log("chromium disconnected"));

let context = null;
let page = null;
let consoleLines = [];
let timeout = 30000; // each request may set it (timeout_ms); it stays for the next ones

function applyTimeout() {
  page?.setDefaultTimeout(timeout);
  page?.setDefaultNavigationTimeout(timeout);
}

function current() {
  if (page === null) throw new Error("no page: send 'open' first");
  return page;
}

// A status tells a test what the server answered, which the page alone may not show.
const navigation = (response) => ({ url: page.url(), status: response ? response.status() : null });

async function closeContext() {
  const old = context;
  context = page = null;
  if (old !== null) await old.close();
}

const commands = {
  async open({ url }) {
    await closeContext();
    context = await browser.newContext(contextOptions);
    page = await context.newPage();
    applyTimeout();
    consoleLines = [];
    page.on("console", (m) => {
      consoleLines.push({ type: m.type(), text: m.text(), url: m.location().url });
      log(`console.${m.type()}: ${m.text()} (${m.location().url})`);
    });
    page.on("pageerror", (err) => {
      consoleLines.push({ type: "pageerror", text: err.message, url: page?.url() ?? "" });
      log(`pageerror: ${err.message}`);
    });
    return navigation(await page.goto(url));
  },
  async goto({ url }) {
    return navigation(await current().goto(url));
  },
  async click({ selector }) {
    await current().locator(selector).click();
    // a click that submits a form or follows a link: the next request sees the page it led to
    await page.waitForLoadState("load");
    return navigation(null);
  },
  async fill({ selector, value }) {
    await current().locator(selector).fill(value);
  },
  async press({ selector, key }) {
    await current().locator(selector).press(key);
    await page.waitForLoadState("load");
  },
  async text({ selector }) {
    return await current().locator(selector).innerText();
  },
  async html() {
    return await current().content();
  },
  async url() {
    return current().url();
  },
  async screenshot({ path }) {
    const png = await current().screenshot({ path, fullPage: true });
    return { path, bytes: png.length };
  },
  async axe({ tags }) {
    const p = current();
    // evaluate, not a <script> tag: DevTools evaluation is outside the page's CSP (Ferry's forbids scripts)
    if (!(await p.evaluate("typeof window.axe === 'object'"))) await p.evaluate(axeSource);
    // By default axe's rules as axe enables them, plus target-size (WCAG 2.2 AA 2.5.8, targets of 24 px),
    // which it leaves off and the web app must meet; given tags, exactly the rules with those.
    const runOptions = tags
      ? { runOnly: { type: "tag", values: tags } }
      : { rules: { "target-size": { enabled: true } } };
    const results = await p.evaluate((o) => window.axe.run(document, o), runOptions);
    return {
      url: results.url,
      passes: results.passes.length,
      incomplete: results.incomplete.map((r) => r.id),
      violations: results.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        description: v.description,
        help: v.help,
        helpUrl: v.helpUrl,
        tags: v.tags,
        nodes: v.nodes.map((n) => ({ target: n.target, html: n.html, summary: n.failureSummary })),
      })),
    };
  },
  async set_input_files({ selector, paths }) {
    await current().locator(selector).setInputFiles(paths);
  },
  async wait_for({ selector, state }) {
    await current().locator(selector).waitFor({ state: state ?? "visible" });
  },
  async wait_for_url({ url }) {
    await current().waitForURL(url);
    return current().url();
  },
  async evaluate({ expression }) {
    return await current().evaluate(expression);
  },
  async visible({ selector }) {
    // Can a person see and click it? Scrolled to vertically as a person would, it lies within the
    // viewport's width (no sideways scrolling: WCAG reflow) and nothing covers its middle.
    const el = current().locator(selector);
    if (!(await el.isVisible())) return false;
    await el.scrollIntoViewIfNeeded();
    return await el.evaluate((node) => {
      const r = node.getBoundingClientRect();
      const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
      const inside = r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= window.innerWidth;
      return inside && hit !== null && (hit === node || node.contains(hit));
    });
  },
  async throttle({ upload }) {
    // Chromium's own network emulation (DevTools protocol): bytes per second up, or none for no limit
    const cdp = await current().context().newCDPSession(current());
    await cdp.send("Network.enable");
    await cdp.send("Network.emulateNetworkConditions", {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: upload ?? -1,
    });
  },
  async cookies() {
    if (context === null) throw new Error("no page: send 'open' first");
    return await context.cookies();
  },
  async console() {
    return consoleLines;
  },
  async close() {
    await closeContext();
  },
};

async function handle(line) {
  let request;
  try {
    request = JSON.parse(line);
  } catch (err) {
    return { id: null, ok: false, error: `not JSON: ${err.message}` };
  }
  const { id = null, cmd } = request;
  const command = Object.hasOwn(commands, cmd) ? commands[cmd] : null;
  if (command === null) return { id, ok: false, error: `unknown command ${JSON.stringify(cmd)}` };
  // what was asked, in the log a failing test shows (never a filled value: it may be a password)
  log(`${cmd} ${request.url ?? request.selector ?? ""}`);
  try {
    if (request.timeout_ms) {
      timeout = request.timeout_ms;
      applyTimeout();
    }
    // Playwright's own timeouts cover actions and navigations, not evaluate (nor axe, which is one): a
    // page's promise that never settles must not stall the requests behind it.
    let timer;
    const guard = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no result in ${timeout} ms`)), timeout + 1000);
    });
    const result = await Promise.race([command(request), guard]).finally(() => clearTimeout(timer));
    return { id, ok: true, result: result ?? null };
  } catch (err) {
    return { id, ok: false, error: message(err) };
  }
}

// a stray rejection (a page event handler's, say) is logged, never the end of the driver
process.on("unhandledRejection", (err) => log(`unhandled: ${err?.stack ?? err}`));

send({ id: 0, ok: true, result: { version: browser.version(), ...contextOptions } });
let queue = Promise.resolve();
const input = createInterface({ input: process.stdin });
input.on("line", (line) => {
  if (line.trim() === "") return;
  queue = queue.then(() => handle(line)).then(send);
});
input.on("close", () => {
  queue.finally(() => browser.close()).finally(() => process.exit(0));
});
