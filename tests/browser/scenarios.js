'use strict';
// The web UI in a real browser: Debian's chromium driven by playwright-core (npm), against a
// real ci-master and real ci-workers that browser_ui.py started. Everything comes from the plan
// file named by $LIBCI_BROWSER_PLAN (JSON, 0600: it holds the password; never argv):
//   base, user, password, playwright (package dir), chromium, artifacts (screenshot dir),
//   release / xss_release (files the slow steps wait for), state_file (where the logged-in
//   session's cookies go, 0600, for the HTML checker), branches {slow, xss}, marker (unique
//   text for reasons), scenarios {name: {run: bool, reason}}.
// Prints `ok: ...`, `FAIL: ...`, `SKIP: ...` lines; exits 1 when a check failed.
// Selectors follow the shared contracts of the UI (docs: /login with user/password, forms
// posting to /builders/NAME/force and /builds/ID/stop with a hidden `csrf`, ids step-N on the
// build page), not the markup of one template.

const fs = require('fs');
const path = require('path');

const plan = JSON.parse(fs.readFileSync(process.env.LIBCI_BROWSER_PLAN, 'utf8'));
const { chromium } = require(plan.playwright);

const failures = [];
const pageErrors = [];
const dialogs = [];
function check(condition, message) {
  console.log((condition ? 'ok: ' : 'FAIL: ') + message);
  if (!condition) failures.push(message);
  return condition;
}
// A check the rest of the scenario depends on: it ends the scenario when it fails.
function need(condition, message) {
  if (!check(condition, message)) throw new Error(`cannot go on: ${message}`);
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what, predicate, timeoutMs = 30000, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

// The JSON API, outside the browser (Node's fetch), with basic auth for writes.
const basic = 'Basic ' + Buffer.from(`${plan.user}:${plan.password}`).toString('base64');
async function api(pathname, body) {
  const init = body === undefined ? {} : {
    method: 'POST', body: JSON.stringify(body),
    headers: { 'Content-Type': 'application/json', Authorization: basic },
  };
  // A deadline: a master that does not answer fails the scenario naming the request.
  const answer = await fetch(plan.base + pathname, { ...init, signal: AbortSignal.timeout(30000) });
  const text = await answer.text();
  if (!answer.ok) throw new Error(`${init.method || 'GET'} ${pathname}: ${answer.status} ${text}`);
  return JSON.parse(text);
}
async function build(id) { return api(`/api/v1/builds/${id}`); }
async function requestsWithReason(reason) {
  const found = [];
  for (const state of ['pending', 'claimed', 'completed', 'cancelled', 'collapsed']) {
    const { buildrequests } = await api(`/api/v1/buildrequests?state=${state}&limit=1000`);
    found.push(...buildrequests.filter((r) => r.reason.includes(reason)));
  }
  return found;
}
async function buildOfRequest(request) {
  return waitFor(`the build of request ${request}`, async () =>
    (await api(`/api/v1/builds?request=${request}`)).builds[0]);
}
async function stepLog(id, step) {
  const answer = await fetch(`${plan.base}/api/v1/builds/${id}/steps/${step}/log`,
    { signal: AbortSignal.timeout(30000) });
  return answer.ok ? answer.text() : '';
}
async function finished(id, timeoutMs = 60000) {
  return waitFor(`build ${id} to finish`, async () => {
    const b = await build(id);
    return b.result !== 'running' && b.result !== 'retry' ? b : null;
  }, timeoutMs);
}
// Forces BUILDER on BRANCH through the JSON API; returns the build once its step 1 printed
// `text` (the slow steps print "waiting" before they wait).
async function forceByApi(builder, branch, reason, text) {
  const { requests } = await api(`/api/v1/builders/${encodeURIComponent(builder)}/force`,
    { branch, reason });
  const b = await buildOfRequest(requests[0]);
  if (text) await waitFor(`'${text}' in build ${b.id}`, async () => (await stepLog(b.id, 1)).includes(text));
  return b;
}

let shots = 0;
async function shot(page, name) {
  const file = path.join(plan.artifacts, `${String(++shots).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
}

// A page whose dialogs (alert, confirm...), uncaught errors and main-frame navigations are
// recorded: no dialog may ever open, and live pages must update without navigating.
async function newPage(context, label) {
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.navigations = 0;
  page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) page.navigations++; });
  page.on('dialog', async (dialog) => {
    dialogs.push(`${label}: ${dialog.type()} '${dialog.message()}' on ${page.url()}`);
    await dialog.dismiss().catch(() => {});
  });
  page.on('pageerror', (error) => pageErrors.push(`${label}: ${page.url()}: ${error.message}`));
  return page;
}

async function text(page) { return page.evaluate(() => document.body ? document.body.innerText : ''); }
async function waitText(page, pattern, what, timeoutMs = 30000) {
  return waitFor(what, async () => pattern.test(await text(page)), timeoutMs, 200);
}
function pathOf(url) { return new URL(url).pathname; }

// Submits `form` (a locator) the way a person does: clicks its submit button (or, without one,
// presses Enter in its first field); returns the response to the POST.
async function submit(page, form) {
  const button = form.locator('button:not([type=button]):not([type=reset]), input[type=submit]').first();
  const click = (await button.count()) ? button.click() : form.evaluate((f) => f.requestSubmit());
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST', { timeout: 30000 }),
    page.waitForNavigation({ waitUntil: 'load', timeout: 30000 }).catch(() => null),
    click,
  ]);
  return response;
}

// Closes a page with a deadline. A page closed right after a form it posted had answered (a 303
// whose navigation was still under way) once never closed: page.close() has no timeout of its
// own, and the test hung until it was killed. The navigation is given 5 s to settle first.
async function closePage(page) {
  await page.waitForLoadState('load', { timeout: 5000 }).catch(() => null);
  const closed = await Promise.race([
    page.close().then(() => true),
    sleep(10000).then(() => false),
  ]);
  if (!closed) console.log(`note: a page (${page.url()}) did not close within 10 s; left open`);
}

const scenarios = {};
const context = {}; // what scenarios share: browser contexts, builds

scenarios.api = async () => {
  // The machinery itself: the browser reaches the master, JSON is what the API promises, and the
  // real workers are connected.
  const page = await newPage(context.anonymous, 'api');
  const health = await page.goto(plan.base + '/healthz');
  check(health.status() === 200, `GET /healthz in the browser: ${health.status()}`);
  const status = await page.evaluate(() => JSON.parse(document.body.innerText).status);
  check(status === 'ok', `/healthz says ok in the browser (${status})`);
  await page.goto(plan.base + '/api/v1/workers');
  const workers = await page.evaluate(() => JSON.parse(document.body.innerText).workers);
  const connected = workers.filter((w) => w.connected).map((w) => w.name).sort();
  check(connected.includes('remote/0') && connected.includes('remote/1'),
    `the browser sees the real workers connected in /api/v1/workers (${connected})`);
  await shot(page, 'api-workers');
  await closePage(page);
};

// Opens /login in `page` and submits its form with `password`; returns the POST's response.
async function logIn(page, password, screenshot) {
  await page.goto(plan.base + '/login');
  if (screenshot) await shot(page, screenshot);
  const form = page.locator('form[action$="/login"]');
  need(await form.count() === 1, 'the login page has one form posting to /login');
  await form.locator('[name=user]').fill(plan.user);
  await form.locator('[name=password]').fill(password);
  return submit(page, form);
}
const logoutForms = (page) => page.locator('form[action$="/logout"]');

scenarios.login = async () => {
  const page = await newPage(context.user, 'login');
  let response = await logIn(page, 'wrong-' + plan.marker, 'login');
  check(await logoutForms(page).count() === 0,
    `a wrong password does not log in (POST /login: ${response.status()})`);
  check(!(await text(page)).includes('wrong-' + plan.marker), 'the wrong password is not shown back');
  response = await logIn(page, plan.password);
  check(response.status() === 303, `POST /login with the right password: 303 (${response.status()})`);
  check(await logoutForms(page).count() >= 1, `logged in: the page offers to log out (${page.url()})`);
  const cookies = await context.user.cookies();
  const session = cookies.filter((c) => c.httpOnly && c.sameSite === 'Strict');
  check(session.length >= 1, `a session cookie HttpOnly and SameSite=Strict (${cookies.map((c) =>
    `${c.name} httpOnly=${c.httpOnly} sameSite=${c.sameSite}`).join('; ')})`);
  check(!cookies.some((c) => c.value.includes(plan.password)), 'no cookie holds the password');
  await shot(page, 'logged-in');
  context.loggedIn = true;
  await closePage(page);
};

// Logging out ends the session on the master: its cookie, kept and sent again, logs in no more.
scenarios.logout = async () => {
  const other = await context.browser.newContext();
  const page = await newPage(other, 'logout');
  await logIn(page, plan.password);
  need(await logoutForms(page).count() >= 1, 'a second session logged in');
  const cookies = await other.cookies();
  const response = await submit(page, logoutForms(page).first());
  check(response.status() === 303, `POST /logout: 303 (${response.status()})`);
  check(await logoutForms(page).count() === 0, 'logged out: no log-out form');
  await shot(page, 'logged-out');
  await other.clearCookies();
  await other.addCookies(cookies);
  await page.goto(plan.base + '/');
  check(await logoutForms(page).count() === 0, 'the old session cookie, sent again, is not logged in');
  await other.close();
  const still = await newPage(context.user, 'logout');
  await still.goto(plan.base + '/');
  check(await logoutForms(still).count() >= 1, 'the first session is still logged in');
  await closePage(still);
};

// A slow build of builder `tests` (it prints "waiting", then waits for plan.release): forced
// through the builder page's form when that scenario runs, else through the JSON API.
scenarios.force = async () => {
  const page = await newPage(context.user, 'force');
  await page.goto(plan.base + '/builders/tests');
  const form = page.locator('form[action$="/builders/tests/force"]');
  need(await form.count() === 1, 'a logged-in viewer of /builders/tests sees its force form');
  check(await form.locator('input[type=hidden][name=csrf]').count() === 1, 'the form has its csrf field');
  const reason = `browser force ${plan.marker}`;
  await form.locator('[name=branch]').fill(plan.branches.slow);
  await form.locator('[name=reason]').fill(reason);
  await shot(page, 'force-form');
  const response = await submit(page, form);
  check(response.status() === 303 && pathOf(page.url()) === '/builders/tests',
    `the force answers 303 back to the builder page (${response.status()}, ${page.url()})`);
  const requests = await requestsWithReason(reason);
  check(requests.length === 1, `the form queued one request (${requests.length})`);
  const b = await buildOfRequest(requests[0].id);
  check(b.branch === plan.branches.slow, `it builds ${plan.branches.slow} (${b.branch})`);
  context.slow = b;
  await closePage(page);
};

async function slowBuild() {
  if (!context.slow) {
    context.slow = await forceByApi('tests', plan.branches.slow, `api force ${plan.marker}`);
    console.log(`(build ${context.slow.id} forced through the JSON API: the force scenario did not run)`);
  }
  await waitFor(`'waiting' in build ${context.slow.id}`, async () =>
    (await stepLog(context.slow.id, 1)).includes('waiting'));
  return context.slow;
}

// The build page follows the running step's log to its end; the home page, open meanwhile,
// shows the result without a reload.
scenarios['live-log'] = async () => {
  const b = await slowBuild();
  const viewer = context.loggedIn ? context.user : context.anonymous;
  let home = null;
  if (plan.scenarios['home-live'].run) {
    home = await newPage(viewer, 'home-live');
    await home.goto(plan.base + '/');
  }
  let page = null;
  let linesBefore = 0;
  if (plan.scenarios['live-log'].run) {
    page = await newPage(viewer, 'live-log');
    await page.goto(`${plan.base}/builds/${b.id}`);
    need(await page.locator('#step-1').count() === 1, 'the build page has #step-1');
    await waitText(page, /waiting/, 'the running step\'s output on the build page');
    check(true, 'the build page shows the running step\'s output so far');
    check(await page.locator('[data-build-result]').textContent() === 'running',
          'the build page\'s header says running');
    linesBefore = Number(await page.locator('[data-step-lines="1"]').getAttribute('data-count'));
    await shot(page, 'build-running');
  }
  fs.writeFileSync(plan.release, '');
  if (page) {
    await waitText(page, /all tests passed/, 'the end of the live log on the build page', 60000);
    check(page.navigations === 1, `the live log arrived without a reload (${page.navigations} navigations)`);
    const done = await finished(b.id);
    check(done.result === 'success', `the build succeeded (${done.result})`);
    await waitText(page, /success/i, 'the result on the build page');
    check(true, 'the build page shows the result once the build ends');
    // The header's result (from the polled JSON) and the step's line count (from its live log).
    const header = await page.waitForFunction(
      () => document.querySelector('[data-build-result]').textContent === 'success',
      null, { timeout: 15000, polling: 200 }).then(() => true).catch(() => false);
    check(header, 'the build page\'s header result turns to success without a reload');
    const count = page.locator('[data-step-lines="1"]');
    const after = Number(await count.getAttribute('data-count'));
    check(after > linesBefore && (await count.textContent()) === `${after} lines`,
          `the step's line count follows its live log (${linesBefore} then ${after})`);
    check(page.navigations === 1, `... still without a reload (${page.navigations} navigations)`);
    await shot(page, 'build-finished');
    await closePage(page);
  }
  if (home) {
    await finished(b.id);
    const shown = await home.waitForFunction((id) => {
      const link = document.querySelector(`a[href$="/builds/${id}"]`);
      if (!link) return false;
      const cell = link.closest('td, li, tr') || link;
      return /success/i.test(`${link.className} ${link.title} ${link.textContent} ${cell.className} ${cell.textContent}`);
    }, b.id, { timeout: 30000, polling: 200 }).then(() => true).catch(() => false);
    check(shown, `the home page shows build ${b.id}'s success without a reload`);
    check(home.navigations === 1, `the home page did not reload (${home.navigations} navigations)`);
    await shot(home, 'home-live');
    await closePage(home);
  }
};
scenarios['home-live'] = null; // runs inside live-log (the same build)

scenarios.workers = async () => {
  const page = await newPage(context.loggedIn ? context.user : context.anonymous, 'workers');
  const answer = await page.goto(plan.base + '/workers');
  need(answer.status() === 200, `GET /workers: ${answer.status()}`);
  const body = await text(page);
  check(body.includes('remote/0') && body.includes('remote/1'), 'the workers page lists remote/0 and remote/1');
  check(/connected/i.test(body), 'it says they are connected');
  await shot(page, 'workers');
  await closePage(page);
};

scenarios.stop = async () => {
  const b = await forceByApi('stoppable', plan.branches.slow, `to stop ${plan.marker}`, 'waiting');
  const page = await newPage(context.user, 'stop');
  await page.goto(`${plan.base}/builds/${b.id}`);
  const form = page.locator(`form[action$="/builds/${b.id}/stop"]`);
  need(await form.count() === 1, 'a logged-in viewer of a running build sees its stop form');
  await shot(page, 'stop-form');
  const response = await submit(page, form);
  check(response.status() === 303, `the stop answers 303 (${response.status()}, ${page.url()})`);
  const done = await finished(b.id, 30000);
  check(done.result === 'cancelled', `the build ended cancelled (${done.result})`);
  await page.goto(`${plan.base}/builds/${b.id}`);
  check(/cancelled/i.test(await text(page)), 'the build page says cancelled');
  check(await page.locator(`form[action$="/builds/${b.id}/stop"]`).count() === 0,
    'a finished build offers no stop form');
  await shot(page, 'stopped');
  await closePage(page);
};

// POST a force form built in the page itself (as a hostile page would), from `viewer`.
async function postForm(page, action, fields) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST', { timeout: 30000 }),
    page.evaluate(({ action, fields }) => {
    const form = document.createElement('form');
    form.method = 'post';
    form.action = action;
    for (const [name, value] of Object.entries(fields)) {
      const input = document.createElement('input');
      input.type = 'hidden';
      input.name = name;
      input.value = value;
      form.appendChild(input);
    }
    document.body.appendChild(form);
    form.submit();
    }, { action, fields })]);
  return response;
}
function refused(response) {
  const status = response.status();
  const location = response.headers().location || '';
  return status === 401 || status === 403 || (status === 303 && location.includes('/login'));
}

scenarios.refused = async () => {
  // Without a login: no form is shown, and a form posted anyway queues nothing.
  const page = await newPage(context.anonymous, 'refused');
  await page.goto(plan.base + '/builders/tests');
  check(await page.locator('form[action$="/force"]').count() === 0, 'an anonymous viewer sees no force form');
  let reason = `anonymous ${plan.marker}`;
  let response = await postForm(page, '/builders/tests/force', { branch: 'master', reason, csrf: 'x' });
  check(refused(response), `a force without a login is refused (${response.status()} ${response.headers().location || ''})`);
  check((await requestsWithReason(reason)).length === 0, 'it queued nothing');
  await closePage(page);
  if (!context.loggedIn) {
    console.log('SKIP: the forged CSRF token part of scenario refused: no login (scenario login did not run)');
    return;
  }
  // Logged in, with a forged token, and with none.
  for (const [how, csrf] of [['a forged CSRF token', 'forged-' + plan.marker], ['no CSRF token', null]]) {
    const logged = await newPage(context.user, 'refused-csrf');
    await logged.goto(plan.base + '/builders/tests');
    const form = logged.locator('form[action$="/builders/tests/force"]');
    reason = `${how} ${plan.marker}`;
    await form.locator('[name=branch]').fill('master');
    await form.locator('[name=reason]').fill(reason);
    await form.locator('input[name=csrf]').evaluate((input, value) => {
      if (value === null) input.remove(); else input.value = value;
    }, csrf);
    response = await submit(logged, form);
    check(response.status() === 403, `a logged-in force with ${how} is refused: 403 (${response.status()})`);
    check((await requestsWithReason(reason)).length === 0, `... and queued nothing`);
    await closePage(logged);
  }
};

// A <script> in a branch name and in log lines (static and live) shows as text; no dialog opens.
scenarios.xss = async () => {
  const reason = `xss <script>alert("reason")</script> ${plan.marker}`;
  const b = await forceByApi('xss', plan.branches.xss, reason, 'onerror');
  const viewer = context.loggedIn ? context.user : context.anonymous;
  const pages = plan.scenarios.xss.pages; // the pages that exist
  need(pages.length > 0, 'a page that shows branches or logs exists (/, /builders/NAME, /builds/ID)');
  if (pages.includes('build')) {
    const page = await newPage(viewer, 'xss-live');
    await page.goto(`${plan.base}/builds/${b.id}`);
    await waitText(page, /alert\("log"\)/, 'the static log lines on the build page');
    fs.writeFileSync(plan.xss_release, '');
    await waitText(page, /alert\("live"\)/, 'the live log line on the build page', 60000);
    const body = await text(page);
    check(body.includes('<script>alert("log")</script>') && body.includes('<img src=x onerror=alert("img")>'),
      'log lines with <script> and <img onerror> show as text on the build page');
    check(body.includes('<script>alert("live")</script>'), 'a live log line with <script> shows as text');
    check(body.includes(plan.branches.xss), 'the branch name with <svg/onload> shows as text');
    await shot(page, 'xss-build');
    await closePage(page);
  } else {
    fs.writeFileSync(plan.xss_release, '');
  }
  await finished(b.id);
  const urls = { home: '/', builder: '/builders/xss', build: `/builds/${b.id}` };
  for (const name of pages) {
    const page = await newPage(viewer, 'xss-' + name);
    await page.goto(plan.base + urls[name]);
    await sleep(300); // scripts that would run on load have run
    const body = await text(page);
    check(body.includes(plan.branches.xss), `${urls[name]} shows the branch name as text`);
    // Markup from the branch or the log that became elements: handlers or scripts that alert.
    const injected = await page.evaluate(() => [...document.querySelectorAll('*')].filter((e) =>
      [...e.attributes].some((a) => a.name.startsWith('on') && a.value.includes('alert')) ||
      (e.tagName === 'SCRIPT' && e.textContent.includes('alert('))).length);
    check(injected === 0, `${urls[name]} holds no injected element (${injected})`);
    await shot(page, 'xss-' + name);
    await closePage(page);
  }
};

// Each page as a desktop shows it (a screenshot), and on a phone's width (375 px), where it fits:
// nothing makes the document scroll sideways (a long log line may scroll inside its own box).
scenarios.phone = async () => {
  for (const url of plan.scenarios.phone.pages) {
    const page = await newPage(context.anonymous, 'desktop');
    await page.goto(plan.base + url);
    await shot(page, 'desktop' + url.replace(/\//g, '-').replace(/-$/, '-home'));
    await closePage(page);
  }
  const phone = await context.browser.newContext({ viewport: { width: 375, height: 740 }, isMobile: true });
  for (const url of plan.scenarios.phone.pages) {
    const page = await newPage(phone, 'phone');
    await page.goto(plan.base + url);
    const widths = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    // A phone lays a page out 980 px wide and shrinks it without <meta name="viewport"
    // content="width=device-width">, and widens the layout to fit content that neither wraps nor
    // scrolls in its own box (a <pre> of long lines, a wide table).
    check(widths[0] <= 375 && widths[1] === 375, `${url} fits a phone's width: laid out ${widths[1]} px ` +
      `wide (document ${widths[0]} px) for a 375 px screen`);
    await shot(page, 'phone' + url.replace(/\//g, '-').replace(/-$/, '-home'));
    await closePage(page);
  }
  await phone.close();
};

// Chromium, launched with a deadline: once, a launch on a busy machine hung until the test's
// own timeout, which then killed the test without a word. A launch that does not answer within
// 60 s is tried again (three times in all), each failure printed.
async function launchBrowser() {
  for (let attempt = 1; ; attempt += 1) {
    const began = Date.now();
    try {
      const browser = await chromium.launch({
        executablePath: plan.chromium,
        timeout: 60000,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
          '--disable-background-networking', '--disable-component-update', '--disable-sync',
          '--disable-dev-shm-usage'],
      });
      console.log(`chromium launched in ${Date.now() - began} ms (attempt ${attempt})`);
      return browser;
    } catch (error) {
      console.log(`chromium launch ${attempt} failed after ${Date.now() - began} ms: ${error}`);
      if (attempt === 3) throw error;
    }
  }
}

(async () => {
  fs.mkdirSync(plan.artifacts, { recursive: true });
  const browser = await launchBrowser();
  console.log(`chromium ${browser.version()}`);
  context.browser = browser;
  context.anonymous = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.user = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  for (const [name, scenario] of Object.entries(scenarios)) {
    let gate = plan.scenarios[name];
    if (name === 'live-log' && !gate.run && plan.scenarios['home-live'].run) {
      console.log(`SKIP: scenario live-log: ${gate.reason}`);
      gate = plan.scenarios['home-live']; // its build runs for the home page all the same
    } else if (name === 'home-live') {
      if (!gate.run) console.log(`SKIP: scenario home-live: ${gate.reason}`);
      continue; // ran inside live-log
    }
    if (!gate.run) {
      console.log(`SKIP: scenario ${name}: ${gate.reason}`);
      continue;
    }
    console.log(`-- scenario ${name}`);
    try {
      await scenario();
    } catch (error) {
      check(false, `scenario ${name}: ${error.stack || error}`);
    }
  }
  if (!fs.existsSync(plan.release)) fs.writeFileSync(plan.release, '');
  if (!fs.existsSync(plan.xss_release)) fs.writeFileSync(plan.xss_release, '');
  check(dialogs.length === 0, `no dialog opened (${dialogs.join('; ')})`);
  check(pageErrors.length === 0, `no uncaught error in a page (${pageErrors.join('; ')})`);
  const state = await context.user.storageState();
  fs.writeFileSync(plan.state_file, JSON.stringify(state), { mode: 0o600 });
  // A deadline here too (see closePage): the process exits after it whatever the browser does.
  await Promise.race([browser.close(), sleep(15000)]);
  console.log(`browser scenarios: ${failures.length} failure(s)`);
  process.exit(failures.length ? 1 : 0);
})().catch((error) => {
  console.log(`FAIL: ${error.stack || error}`);
  process.exit(1);
});
