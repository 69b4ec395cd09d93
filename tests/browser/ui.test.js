// Browser tests of the web page (run by .ci/ui-tests): Debian's chromium driven by
// puppeteer-core against a running `netraven demo`. Walks the operator's workflow: login with
// return-to, every page (no console errors, screenshots), add a credential and a device, create
// a cron job with its next fires, run it from the page and watch every device and every log line
// exactly once, diff two snapshots, search a config line, set zones in the device and tag
// forms (editing keeps every field), a viewer's pages without write
// controls, 390 px without sideways scrolling, dark mode and an expired session.
//
// Env: UI_URL (page address, ending in /), ADMIN_PASSWORD, SHOTS (screenshot directory),
// TIMINGS (optional file for the per-page timings), CHROMIUM (default /usr/bin/chromium).
'use strict';
const puppeteer = require('puppeteer-core');
const fs = require('fs');

const URL0 = process.env.UI_URL;
const SHOTS = process.env.SHOTS;
const PW = process.env.ADMIN_PASSWORD;
const failures = [];
const timings = [];
const t = (id) => `[data-testid="${id}"]`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function check(cond, msg) {
  if (!cond) failures.push(msg);
  return cond;
}

async function api(method, path, token, body) {
  const headers = {};
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body) headers['Content-Type'] = 'application/json';
  const r = await fetch(URL0 + 'api/' + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  let data = text;
  try {
    data = JSON.parse(text);
  } catch (e) {}
  return { status: r.status, data };
}

function watchConsole(page, label, sink) {
  page.on('console', (m) => {
    if (m.type() === 'error') sink.push(`${label}: ${m.text().slice(0, 200)}`);
  });
  page.on('pageerror', (e) => sink.push(`${label}: ${String(e).slice(0, 200)}`));
}

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: false });
}

// Opens a route and waits for its page element; records the time to first render.
async function open(page, route, testid, name) {
  const t0 = Date.now();
  await page.evaluate((h) => {
    location.hash = h;
  }, route);
  await page.waitForSelector(t(testid), { timeout: 15000 });
  // Let the page's data requests finish.
  await page.waitForNetworkIdle({ idleTime: 250, timeout: 15000 }).catch(() => {});
  const ms = Date.now() - t0;
  timings.push([name || route, ms]);
  return ms;
}

async function login(page, user, pw) {
  await page.waitForSelector(t('login-username'), { timeout: 15000 });
  await page.type(t('login-username'), user);
  await page.type(t('login-password'), pw);
  await page.click(t('login-submit'));
  await page.waitForSelector(t('user-menu'), { timeout: 15000 });
}

async function setField(page, testid, value) {
  await page.$eval(t(testid), (el) => {
    el.value = '';
  });
  await page.type(t(testid), String(value));
}

async function noSidewaysScroll(page, label) {
  const w = await page.evaluate(() => document.documentElement.scrollWidth);
  check(w <= 390, `${label} at 390 px scrolls sideways (${w} px)`);
}

(async () => {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      '--disable-extensions', '--disable-sync', '--no-first-run', '--mute-audio', '--disable-default-apps'],
  });
  const consoleErrors = [];
  try {
    // ---- an anonymous stream and API call are refused
    const anon = await api('GET', 'logs/stream?run_id=1', null);
    check(anon.status === 401, `anonymous log stream answered ${anon.status}, expected 401`);
    const badTok = await fetch(URL0 + 'api/logs/stream?run_id=1', { headers: { Authorization: 'Bearer nope' } });
    check(badTok.status === 401, `log stream with a bad token answered ${badTok.status}, expected 401`);
    const admin = (await api('POST', 'auth/token', null, { username: 'admin', password: PW })).data.access_token;
    check(!!admin, 'admin login through the API failed');

    // ---- login returns to the page asked for
    const ctx = await browser.createBrowserContext();
    const page = await ctx.newPage();
    watchConsole(page, 'admin', consoleErrors);
    await page.setViewport({ width: 1280, height: 900 });
    await page.goto(URL0 + '#/runs?status=COMPLETED_PARTIAL_FAILURE', { waitUntil: 'networkidle0' });
    await page.waitForSelector(t('login-username'));
    check(await page.evaluate(() => !!document.querySelector('[data-v-app]')), 'no Vue 3 app mounted ([data-v-app])');
    await shot(page, 'login');
    await login(page, 'admin', PW);
    await page.waitForSelector(t('page-runs'));
    check((await page.evaluate(() => location.hash)) === '#/runs?status=COMPLETED_PARTIAL_FAILURE', 'login did not return to the page asked for');
    const menu = await page.$eval(t('user-menu'), (e) => e.textContent);
    check(/admin/.test(menu), 'user menu does not show the user and role');

    // ---- every page renders
    const navs = ['dashboard', 'devices', 'jobs', 'runs', 'search', 'logs', 'credentials', 'tags', 'users'];
    for (const n of navs) {
      const el = await page.$(t('nav-' + n));
      if (!check(el, 'no nav-' + n)) continue;
      await el.click();
      await page.waitForSelector(t('page-' + n), { timeout: 15000 });
      await page.waitForNetworkIdle({ idleTime: 250, timeout: 15000 }).catch(() => {});
      await shot(page, n);
    }
    await open(page, '/', 'device-tiles', 'dashboard');
    check((await page.$$(t('chart-runs'))).length === 1 && (await page.$$(t('chart-durations'))).length === 1, 'dashboard has no SVG charts');
    await shot(page, 'dashboard');
    await open(page, '/devices', 'device-table', 'devices');
    const rows = (await page.$$(t('device-row'))).length;
    check(rows >= 20, `devices page shows ${rows} rows, expected the 20 demo devices`);
    check((await page.$$(t('sparkline'))).length >= 20, 'devices page shows no sparklines');
    await open(page, '/import', 'page-import', 'import');
    await shot(page, 'import');

    // ---- add a credential
    await open(page, '/credentials', 'credential-table', 'credentials');
    await page.click(t('credential-add'));
    await page.waitForSelector(t('credential-form'));
    await page.type(t('credential-name'), 'ui-test-cred');
    await page.type(t('credential-username'), 'netops');
    await page.type(t('credential-password'), 'ui-test-secret-1');
    await page.type(t('credential-tags'), 'ui-test');
    await shot(page, 'credential-form');
    await page.click(t('credential-save'));
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="credential-row"]')].some((r) => r.textContent.includes('ui-test-cred')), { timeout: 10000 });
    const credHtml = await page.content();
    check(!credHtml.includes('ui-test-secret-1'), 'the credential secret appears in the page after saving');
    const credList = await api('GET', 'credentials?size=100', admin);
    check(!JSON.stringify(credList.data).includes('ui-test-secret-1'), 'the credential secret is returned by the API');

    // ---- add a device
    await open(page, '/devices', 'device-table', 'devices');
    await page.click(t('device-add'));
    await page.waitForSelector(t('device-form'));
    await page.type(t('device-hostname'), 'ui-test-device');
    await page.type(t('device-address'), '127.0.0.1');
    await setField(page, 'device-port', 9);
    await setField(page, 'device-platform', 'cisco_ios');
    await page.type(t('device-tags'), 'ui-test');
    await shot(page, 'device-form');
    await page.click(t('device-save'));
    await page.waitForSelector(t('device-form'), { hidden: true, timeout: 10000 });
    await setField(page, 'filter-hostname', 'ui-test');
    await page.waitForFunction(() => {
      const r = document.querySelectorAll('[data-testid="device-row"]');
      return r.length === 1 && r[0].textContent.includes('ui-test-device');
    }, { timeout: 10000 });
    check((await page.evaluate(() => location.hash)).includes('hostname=ui-test'), 'device filter is not kept in the URL');
    const dev = (await api('GET', 'devices?hostname=ui-test-device', admin)).data.items[0];
    check(dev && dev.tags.includes('ui-test'), 'the added device was not stored with its tag');
    // Bulk: tag the filtered device through the selection bar (one POST devices/bulk).
    await page.click(t('device-select'));
    await page.waitForSelector(t('bulk-bar'));
    await page.type(t('bulk-tag-name'), 'ui-bulk');
    await page.click(t('bulk-tag'));
    await page.waitForSelector(t('bulk-bar'), { hidden: true, timeout: 10000 });
    const tagged = (await api('GET', 'devices?tag=ui-bulk', admin)).data;
    check(tagged && tagged.total === 1 && tagged.items[0].hostname === 'ui-test-device', 'bulk tag did not tag the selected device');

    // ---- create a cron job with a preview of its next fires, run it from the page
    await open(page, '/jobs/new', 'page-job-edit', 'job-new');
    await page.type(t('job-name'), 'ui-test-job');
    await page.click(t('job-tag-sim'));
    await page.type(t('job-device-search'), 'ui-test-dev');
    await page.waitForSelector(t('job-device-add'), { timeout: 10000 });
    await page.click(t('job-device-add'));
    await page.select(t('job-schedule-type'), 'cron');
    await setField(page, 'job-cron', '30 2 * * 1-5');
    await setField(page, 'job-timezone', 'Europe/Berlin');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="job-next-fire"]').length === 5, { timeout: 10000 });
    await shot(page, 'job-edit');
    await page.click(t('job-save-run'));
    await page.waitForSelector(t('page-run'), { timeout: 15000 });
    const job = (await api('GET', 'jobs?name=ui-test-job', admin)).data.items[0];
    check(job && job.schedule.type === 'cron' && job.schedule.expression === '30 2 * * 1-5' && job.schedule.timezone === 'Europe/Berlin', 'the job was not stored with its cron schedule');
    const runId = Number((await page.evaluate(() => location.hash)).split('/').pop());
    await page.waitForSelector(t('run-status'));
    await shot(page, 'run-live');
    await page.waitForFunction(() => {
      const s = document.querySelector('[data-testid="run-status"]');
      return s && !['QUEUED', 'RUNNING'].includes(s.dataset.status);
    }, { timeout: 120000 });
    // Final status shown; give the stream's last lines and the results a moment to arrive.
    await page.waitForFunction(() => document.querySelector('[data-testid="log-stream-state"]').textContent === 'ended', { timeout: 15000 });
    await sleep(1500);
    const run = (await api('GET', 'runs/' + runId, admin)).data;
    const devRows = await page.$$eval(t('run-device-row'), (rs) => rs.map((r) => [r.dataset.device, r.dataset.status]));
    check(devRows.length === run.counts.total, `run page shows ${devRows.length} device rows for ${run.counts.total} devices`);
    check(new Set(devRows.map((r) => r[0])).size === devRows.length, 'a device appears twice on the run page');
    check(devRows.every((r) => r[1] === 'SUCCESS' || r[1] === 'FAILED'), 'not every device row on the run page finished');
    // Every log line exactly once: as many lines as the run has, and the same ids (their sum).
    const runLogs = [];
    for (let p = 1; ; p++) {
      const l = (await api('GET', `logs?run_id=${runId}&size=100&page=${p}`, admin)).data;
      runLogs.push(...l.items);
      if (p >= l.pages) break;
    }
    const pane = await page.$eval(t('log-pane'), (e) => ({ lines: Number(e.dataset.lines), sum: Number(e.dataset.idSum) }));
    check(pane.lines === runLogs.length, `log pane holds ${pane.lines} lines, the run has ${runLogs.length}`);
    check(pane.sum === runLogs.reduce((a, l) => a + l.id, 0), 'the log pane does not hold exactly the run\'s lines');
    const status = await page.$eval(t('run-status'), (e) => e.dataset.status);
    check(status === run.status, `run page shows ${status}, the API ${run.status}`);
    await shot(page, 'run');
    // The device table filters on the server: failed devices only, kept in the URL.
    await page.select(t('run-result-filter'), 'FAILED');
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="run-device-row"]').length === n
      && [...document.querySelectorAll('[data-testid="run-device-row"]')].every((r) => r.dataset.status === 'FAILED'), { timeout: 10000 }, run.counts.failed);
    check((await page.evaluate(() => location.hash)).includes('result=FAILED'), 'the run page result filter is not in the URL');
    await page.select(t('run-result-filter'), '');
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="run-device-row"]').length === n, { timeout: 10000 }, run.counts.total);
    // Pause buffers, level filter narrows.
    await page.select(t('log-level'), 'warning');
    await shot(page, 'run-warnings');
    await page.select(t('log-level'), '');

    // ---- a device's diff between two snapshots shows the changed line
    let changedDev = null;
    for (const d of (await api('GET', 'devices?size=100', admin)).data.items) {
      const h = (await api('GET', `configs/${d.id}/history`, admin)).data;
      if (h.total >= 2) {
        changedDev = { d, h };
        break;
      }
    }
    if (check(changedDev, 'no demo device has two snapshots after the run (the changing device did not change)')) {
      await open(page, '/devices/' + changedDev.d.id, 'timeline', 'device');
      await shot(page, 'device');
      const picks = await page.$$(t('timeline-pick'));
      await picks[0].click();
      await picks[1].click();
      await page.click(t('timeline-diff-button'));
      await page.waitForSelector(t('diff-content'), { timeout: 15000 });
      await page.waitForNetworkIdle({ idleTime: 250, timeout: 15000 }).catch(() => {});
      const [newer, older] = changedDev.h.items;
      const diff = (await api('GET', `configs/diff?from=${older.id}&to=${newer.id}`, admin)).data;
      const added = diff.diff.split('\n').find((l) => l.startsWith('+') && !l.startsWith('+++'));
      const text = await page.$eval(t('diff-content'), (e) => e.textContent);
      check(added && text.includes(added.slice(1).trim()), `diff page does not show the changed line ${added}`);
      check((await page.$$('[data-testid="diff-content"] ins')).length > 0, 'diff page marks no change within a line');
      await shot(page, 'diff');
      await page.click(t('diff-view-unified'));
      await page.waitForFunction(() => location.hash.includes('view=unified'));
      await page.click(t('diff-next'));
      await shot(page, 'diff-unified');
      // ---- snapshot view with a line permalink
      await open(page, `/snapshots/${newer.id}?line=3`, 'snapshot-content', 'snapshot');
      check((await page.$$('[data-testid="snapshot-line"].hl')).length === 1, 'snapshot line permalink does not highlight the line');
      await shot(page, 'snapshot');
      // ---- config search finds a line of that config
      const content = (await api('GET', `configs/snapshots/${newer.id}`, admin)).data.content;
      const needle = content.split('\n').map((l) => l.trim()).find((l) => l.length > 8 && !/[?*]/.test(l));
      await open(page, '/search', 'page-search', 'search');
      await page.type(t('search-input'), needle);
      await page.click(t('search-submit'));
      await page.waitForSelector(t('search-group'), { timeout: 15000 });
      const found = await page.$$eval(t('search-match'), (ms) => ms.map((m) => m.textContent.toLowerCase()));
      check(found.some((m) => m === needle.toLowerCase()), `search for "${needle}" highlights no match`);
      await shot(page, 'search');
    }
    await open(page, '/logs?run_id=' + runId, 'log-table', 'logs');
    check(await page.$eval(t('log-table'), (e) => e.textContent.includes('demo-')), 'logs page shows no hostnames');
    await shot(page, 'logs');
    await open(page, '/users', 'user-table', 'users');
    await page.click(t('user-tokens'));
    await page.waitForSelector(t('token-panel'));
    await page.type(t('token-name'), 'ui-test-token');
    await page.click(t('token-create'));
    await page.waitForSelector(t('token-value'), { timeout: 10000 });
    const tok = await page.$eval(t('token-value'), (e) => e.textContent.trim());
    check((await api('GET', 'auth/me', tok)).status === 200, 'the token shown once does not work');
    await shot(page, 'users-token');
    // ---- zones: an admin sets a device's zone in its form; editing keeps the fields the form
    // does not show (timeout_multiplier) and the zone; a tag gets a zone in the tag form.
    check((await api('PATCH', 'devices/' + dev.id, admin, { timeout_multiplier: 2 })).status === 200, 'could not set a timeout multiplier');
    await open(page, '/devices/' + dev.id, 'device-facts', 'device-zone');
    await page.click(t('device-edit'));
    await page.waitForSelector(t('device-zone'));
    await setField(page, 'device-zone', 'ui-site');
    await page.click(t('device-save'));
    await page.waitForSelector(t('device-form'), { hidden: true, timeout: 10000 });
    let zoned = (await api('GET', 'devices/' + dev.id, admin)).data;
    check(zoned.zone === 'ui-site', `the device form did not save the zone: ${JSON.stringify(zoned.zone)}`);
    check(zoned.timeout_multiplier === 2, `editing a device dropped its timeout_multiplier: ${zoned.timeout_multiplier}`);
    await page.waitForFunction(() => (document.querySelector('[data-testid="device-zone-shown"]') || {}).textContent === 'ui-site', { timeout: 10000 });
    await page.click(t('device-edit'));
    await page.waitForSelector(t('device-description'));
    await setField(page, 'device-description', 'zoned');
    await page.click(t('device-save'));
    await page.waitForSelector(t('device-form'), { hidden: true, timeout: 10000 });
    zoned = (await api('GET', 'devices/' + dev.id, admin)).data;
    check(zoned.zone === 'ui-site' && zoned.description === 'zoned' && zoned.timeout_multiplier === 2 && zoned.tags.includes('ui-test'),
      `editing a device dropped a field: ${JSON.stringify(zoned)}`);
    // Back to the default zone, so later runs over the device are not left to a zone watch.
    await page.click(t('device-edit'));
    await page.waitForSelector(t('device-zone'));
    await page.click(t('device-zone'), { clickCount: 3 });
    await page.keyboard.press('Backspace');
    await page.click(t('device-save'));
    await page.waitForSelector(t('device-form'), { hidden: true, timeout: 10000 });
    check((await api('GET', 'devices/' + dev.id, admin)).data.zone == null, 'clearing the zone in the form did not clear it');
    await open(page, '/tags', 'tag-table', 'tags-zone');
    await page.click(t('tag-add'));
    await page.waitForSelector(t('tag-zone'));
    await page.type(t('tag-name'), 'ui-zone-tag');
    await page.type(t('tag-zone'), 'ui-site');
    await page.click(t('tag-save'));
    await page.waitForSelector(t('tag-form'), { hidden: true, timeout: 10000 });
    const ztag = (await api('GET', 'tags?name=ui-zone-tag', admin)).data.items[0];
    check(ztag && ztag.zone === 'ui-site', `the tag form did not save the zone: ${JSON.stringify(ztag)}`);
    await shot(page, 'tags-zone');
    // ---- dark mode
    await open(page, '/', 'device-tiles', 'dashboard');
    await page.click(t('theme-toggle'));
    check((await page.evaluate(() => document.documentElement.dataset.theme)) === 'dark', 'theme toggle does not switch to dark');
    await shot(page, 'dashboard-dark');
    await page.click(t('theme-toggle'));
    await page.click(t('theme-toggle'));

    // ---- 390 px
    await page.setViewport({ width: 390, height: 844 });
    const narrow = [['/', 'device-tiles'], ['/devices', 'device-table'], ['/devices/' + dev.id, 'device-facts'], ['/jobs', 'job-table'],
      ['/jobs/' + job.id, 'page-job-edit'], ['/runs', 'run-table'], ['/runs/' + runId, 'run-devices'], ['/search', 'page-search'],
      ['/logs', 'log-table'], ['/credentials', 'credential-table'], ['/tags', 'tag-table'], ['/users', 'user-table'], ['/import', 'page-import']];
    if (changedDev) {
      const [newer, older] = changedDev.h.items;
      narrow.push([`/diff?from=${older.id}&to=${newer.id}`, 'diff-content'], [`/snapshots/${newer.id}`, 'snapshot-content']);
    }
    for (const [route, id] of narrow) {
      await open(page, route, id, route + ' @390');
      await noSidewaysScroll(page, route);
    }
    await open(page, '/runs/' + runId, 'run-devices', 'run @390');
    await shot(page, 'run-390');
    await open(page, '/devices', 'device-table', 'devices @390');
    await shot(page, 'devices-390');
    await page.setViewport({ width: 1280, height: 900 });

    // ---- a viewer sees no write control
    const vname = 'ui-viewer-' + Date.now();
    const cu = await api('POST', 'users', admin, { username: vname, password: 'viewer-pw-123', role: 'viewer' });
    check(cu.status === 201, 'could not create the viewer');
    const vctx = await browser.createBrowserContext();
    const vpage = await vctx.newPage();
    watchConsole(vpage, 'viewer', consoleErrors);
    await vpage.setViewport({ width: 1280, height: 900 });
    await vpage.goto(URL0, { waitUntil: 'networkidle0' });
    await login(vpage, vname, 'viewer-pw-123');
    for (const n of ['credentials', 'tags', 'users']) check(!(await vpage.$(t('nav-' + n))), `viewer sees nav-${n}`);
    const write = /^(device-add|device-edit|device-delete|device-run-now|device-select|device-select-all|device-import-link|bulk-|job-new|job-run$|job-delete|job-save|job-save-run|job-device|tag-add|tag-edit|tag-delete|credential-add|credential-edit|credential-delete|user-add|user-edit|user-delete|user-tokens|token-|run-retry-failed|import-)/;
    const vroutes = [['/', 'device-tiles'], ['/devices', 'device-table'], ['/devices/' + dev.id, 'device-facts'], ['/jobs', 'job-table'],
      ['/jobs/' + job.id, 'page-job-edit'], ['/runs', 'run-table'], ['/runs/' + runId, 'run-devices'], ['/search', 'page-search'], ['/logs', 'log-table']];
    if (changedDev) vroutes.push([`/snapshots/${changedDev.h.items[0].id}`, 'snapshot-content'], [`/diff?from=${changedDev.h.items[1].id}&to=${changedDev.h.items[0].id}`, 'diff-content']);
    for (const [route, id] of vroutes) {
      await open(vpage, route, id, 'viewer ' + route);
      const ids = await vpage.$$eval('[data-testid]', (es) => es.map((e) => e.dataset.testid));
      const bad = ids.filter((i) => write.test(i));
      check(!bad.length, `viewer sees write controls on ${route}: ${[...new Set(bad)].join(', ')}`);
      const enabled = await vpage.$$eval('[data-testid="page-job-edit"] input:not(:disabled), [data-testid="page-job-edit"] select:not(:disabled)', (e) => e.length);
      check(!enabled, `viewer can edit job fields on ${route}`);
    }
    await open(vpage, '/jobs/' + job.id, 'page-job-edit', 'viewer job');
    await shot(vpage, 'viewer-job');
    await open(vpage, '/devices', 'device-table', 'viewer devices');
    await shot(vpage, 'viewer-devices');
    await vctx.close();

    // ---- every control carries a data-testid (on the pages visited last)
    for (const [route, id] of [['/devices', 'device-table'], ['/jobs/' + job.id, 'page-job-edit'], ['/runs/' + runId, 'run-devices'], ['/logs', 'log-table']]) {
      await open(page, route, id, route);
      const missing = await page.$$eval('button, input, select, textarea, a[href]', (es) => es.filter((e) => !e.dataset.testid).map((e) => e.outerHTML.slice(0, 80)));
      check(!missing.length, `controls without data-testid on ${route}: ${missing.slice(0, 3).join(' | ')}`);
    }

    // ---- an expired session comes back to the same page after logging in again
    const before = consoleErrors.length;
    await open(page, '/jobs', 'job-table', 'jobs');
    await page.evaluate((id) => {
      NR.setToken('expired-' + Date.now());
      location.hash = '/runs/' + id;
    }, runId);
    await page.waitForSelector(t('login-expired'), { timeout: 15000 });
    await login(page, 'admin', PW);
    await page.waitForSelector(t('page-run'));
    check((await page.evaluate(() => location.hash)) === '#/runs/' + runId, 'after an expired session the login did not return to the run page');
    // The expired token's 401 is expected here (the browser logs it as a failed request).
    consoleErrors.splice(before).filter((e) => !/401/.test(e)).forEach((e) => consoleErrors.push(e));
    await ctx.close();
  } catch (e) {
    failures.push('test crashed: ' + (e.stack || e).toString().slice(0, 400));
  } finally {
    await browser.close();
  }
  check(!consoleErrors.length, `${consoleErrors.length} console errors: ${consoleErrors.slice(0, 5).join(' | ')}`);
  if (process.env.TIMINGS) fs.writeFileSync(process.env.TIMINGS, timings.map(([n, ms]) => `${n}\t${ms}`).join('\n') + '\n');
  const slow = timings.slice().sort((a, b) => b[1] - a[1])[0];
  if (failures.length) {
    console.log('UI tests FAILED:\n- ' + failures.join('\n- '));
    process.exit(1);
  }
  console.log(`UI tests passed: ${timings.length} page loads (slowest ${slow ? slow[0] + ' ' + slow[1] + ' ms' : '-'}), screenshots in ${SHOTS}`);
})();
