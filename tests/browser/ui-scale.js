// The web page at scale (run by `cargo bench --bench ui_scale`, which seeds 10,000 devices with
// 100 snapshots each and starts `netraven serve`): times each page's first render with its data
// and each list/diff/search interaction in Debian's chromium, and prints one row each. A
// measurement, not a test: it fails only when a page does not render at all.
//
// Env: UI_URL (ending in /), ADMIN_PASSWORD, NODE_PATH (puppeteer-core), SHOTS (optional).
'use strict';
const puppeteer = require('puppeteer-core');
const fs = require('fs');

const URL0 = process.env.UI_URL;
const PW = process.env.ADMIN_PASSWORD;
const SHOTS = process.env.SHOTS;
const t = (id) => `[data-testid="${id}"]`;
const rows = [];

async function api(path, token) {
  const r = await fetch(URL0 + 'api/' + path, { headers: { Authorization: 'Bearer ' + token } });
  return r.json();
}

// Runs `act`, then waits for `ready` (a function evaluated in the page) and for the page's
// requests to settle; records both times.
async function measure(page, name, act, ready) {
  const t0 = performance.now();
  await act();
  await page.waitForFunction(ready, { timeout: 60000, polling: 'raf' });
  const shown = performance.now() - t0;
  await page.waitForNetworkIdle({ idleTime: 100, timeout: 60000 }).catch(() => {});
  const settled = Math.max(shown, performance.now() - t0 - 100);
  rows.push([name, shown, settled]);
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/${name.replace(/[^a-z0-9]+/gi, '-')}.png` });
}

const route = (page, h) => () => page.evaluate((x) => { location.hash = x; }, h);
const has = (id) => new Function(`return !!document.querySelector('[data-testid="${id}"]')`);

(async () => {
  if (SHOTS) fs.mkdirSync(SHOTS, { recursive: true });
  const token = (await (await fetch(URL0 + 'api/auth/token', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: PW }),
  })).json()).access_token;
  const devs = await api('devices?size=1', token);
  const dev = devs.items[0];
  // A hostname prefix that matches at most ten devices at any fleet size (scale-0000 → 00000-00009).
  const prefix = dev.hostname.slice(0, -1);
  const hist = await api(`configs/${dev.id}/history?size=100`, token);
  const runs = await api('runs?size=1', token);
  // The line the bench's newest snapshot changed (benches/ui_scale.rs `config`): in every device's
  // latest config, so the search matches the whole fleet.
  const rev = (hist.total ?? hist.items.length) - 1;
  const needle = `description uplink ${rev % 12} rev ${rev}`;
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    await page.goto(URL0, { waitUntil: 'networkidle0' });
    await page.waitForSelector(t('login-username'));
    await page.type(t('login-username'), 'admin');
    await page.type(t('login-password'), PW);
    await page.click(t('login-submit'));
    await page.waitForSelector(t('user-menu'));
    await page.waitForNetworkIdle({ idleTime: 200 }).catch(() => {});

    await measure(page, 'dashboard', route(page, '/devices'), has('device-row'));
    await measure(page, 'dashboard', route(page, '/'), has('device-tiles'));
    rows.shift(); // the first visit above only warmed the page up
    await measure(page, 'devices (page 1 of 100)', route(page, '/devices'), has('device-row'));
    await measure(page, 'devices: next page', () => page.click(t('pager-next')),
      () => /page=2/.test(location.hash) && !!document.querySelector('[data-testid="device-row"]'));
    // Timed from the last keystroke (the list follows the field after a 150 ms pause).
    await page.evaluate(() => { location.hash = '/devices'; });
    await page.waitForSelector(t('filter-hostname'));
    await page.type(t('filter-hostname'), prefix.slice(0, -1));
    await measure(page, 'devices: hostname filter (incl. 150 ms typing pause)', async () => {
      await page.type(t('filter-hostname'), prefix.slice(-1));
    }, new Function(`const r = document.querySelectorAll('[data-testid="device-row"]');
      return r.length > 0 && r.length <= 10 && r[0].textContent.includes(${JSON.stringify(prefix)});`));
    await measure(page, 'device detail (100 snapshots)', route(page, '/devices/' + dev.id), has('timeline'));
    await measure(page, 'diff: pick two, show', async () => {
      const picks = await page.$$(t('timeline-pick'));
      await picks[0].click();
      await picks[picks.length - 1].click();
      await page.click(t('timeline-diff-button'));
    }, has('diff-content'));
    const [newest, oldest] = [hist.items[0], hist.items[hist.items.length - 1]];
    await measure(page, 'diff (permalink)', route(page, `/diff?from=${oldest.id}&to=${newest.id}`), has('diff-content'));
    await measure(page, 'snapshot', route(page, '/snapshots/' + newest.id), has('snapshot-content'));
    await measure(page, 'search: every latest config', async () => {
      await page.evaluate(() => { location.hash = '/search'; });
      await page.waitForSelector(t('search-input'));
      await page.type(t('search-input'), needle);
      await page.click(t('search-submit'));
    }, has('search-group'));
    await measure(page, 'runs', route(page, '/runs'), has('run-row'));
    await measure(page, 'run detail (10,000 devices)', route(page, '/runs/' + runs.items[0].id), has('run-status'));
    await measure(page, 'jobs', route(page, '/jobs'), has('job-row'));
    await measure(page, 'logs', route(page, '/logs'), has('log-table'));
  } finally {
    await browser.close();
  }
  console.log('page or interaction'.padEnd(34) + 'shown ms  settled ms');
  for (const [n, a, b] of rows) console.log(n.padEnd(34) + String(Math.round(a)).padStart(8) + String(Math.round(b)).padStart(11));
  const worst = rows.reduce((m, r) => Math.max(m, r[2]), 0);
  console.log(`${rows.length} measurements; slowest settled ${Math.round(worst)} ms`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
