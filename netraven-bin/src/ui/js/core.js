'use strict';
// NetRaven web page, shared part: session state, the API client, the hash router, time and size
// formatting, and small components (pager, badges, sparkline, charts, modal). Pages live in the
// other scripts and register themselves on window.NR. Every text from the API is bound with
// {{ }} (text), never v-html, so a config line can never become markup.
(function () {
  const { reactive, ref } = Vue;
  const NR = (window.NR = { pages: {}, components: {} });

  // ---------------------------------------------------------------- URL fragment router
  // Routes live in the fragment (#/devices/7?tag=core), so reload and Back keep the view and the
  // page works under any sub-path: the document URL never changes.
  function parse(hash) {
    let h = (hash || '').replace(/^#/, '');
    if (!h.startsWith('/')) h = '/' + h;
    const i = h.indexOf('?');
    const path = i < 0 ? h : h.slice(0, i);
    const query = {};
    if (i >= 0) for (const [k, v] of new URLSearchParams(h.slice(i + 1))) query[k] = v;
    return { path, query, full: h };
  }
  function qs(query) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(query || {})) {
      if (v === undefined || v === null || v === '' || v === false) continue;
      if (Array.isArray(v)) v.forEach((x) => p.append(k, x));
      else p.append(k, String(v));
    }
    const s = p.toString();
    return s ? '?' + s : '';
  }
  NR.qs = qs;

  const ROLES = { viewer: 0, operator: 1, admin: 2 };
  const state = (NR.state = reactive({
    token: sessionStorage.getItem('nr.token') || null,
    user: null,
    route: parse(location.hash),
    theme: localStorage.getItem('nr.theme') || 'auto',
    notice: '',
  }));
  window.addEventListener('hashchange', () => {
    state.route = parse(location.hash);
  });
  NR.href = (path, query) => '#' + path + qs(query);
  NR.go = (path, query) => {
    location.hash = path + qs(query);
  };
  // Changes the current route's query (filters, page) in place, so the URL always holds them.
  NR.setQuery = (patch, push) => {
    const q = Object.assign({}, state.route.query, patch);
    const h = '#' + state.route.path + qs(q);
    if (push) location.hash = h.slice(1);
    else {
      history.replaceState(history.state, '', h);
      state.route = parse(h);
    }
  };
  NR.can = (role) => !!state.user && ROLES[state.user.role] >= ROLES[role];

  // ---------------------------------------------------------------- theme
  NR.applyTheme = () => {
    if (state.theme === 'auto') document.documentElement.removeAttribute('data-theme');
    else document.documentElement.setAttribute('data-theme', state.theme);
    localStorage.setItem('nr.theme', state.theme);
  };
  NR.applyTheme();

  // ---------------------------------------------------------------- API client
  class ApiError extends Error {
    constructor(status, code, detail) {
      super(detail || code || 'request failed');
      this.status = status;
      this.code = code;
    }
  }
  NR.ApiError = ApiError;
  NR.setToken = (t) => {
    state.token = t;
    if (t) sessionStorage.setItem('nr.token', t);
    else sessionStorage.removeItem('nr.token');
  };
  // A 401 on a logged-in call means the session ended: back to the login page, which returns
  // to the page the user was on.
  NR.sessionEnded = () => {
    NR.setToken(null);
    state.user = null;
    const r = state.route;
    if (r.path !== '/login') NR.go('/login', { next: r.full, expired: 1 });
  };
  NR.api = async function (method, path, opts) {
    opts = opts || {};
    const headers = {};
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    let body;
    if (opts.body !== undefined) {
      if (typeof opts.body === 'string') {
        body = opts.body;
        headers['Content-Type'] = opts.type || 'text/plain';
      } else {
        body = JSON.stringify(opts.body);
        headers['Content-Type'] = 'application/json';
      }
    }
    let res;
    try {
      res = await fetch('api/' + path + qs(opts.query), { method, headers, body, signal: opts.signal });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(0, 'network', 'the server did not answer (' + e.message + ')');
    }
    if (res.status === 401 && state.token && !opts.login) {
      NR.sessionEnded();
      throw new ApiError(401, 'unauthorized', 'your session has ended; please log in again');
    }
    if (res.status === 204) return null;
    const ct = res.headers.get('content-type') || '';
    const data = ct.includes('json') ? await res.json() : await res.text();
    if (!res.ok) {
      const d = typeof data === 'object' && data ? data : {};
      throw new ApiError(res.status, d.error || 'error', d.detail || res.statusText);
    }
    return data;
  };
  NR.get = (path, query, signal) => NR.api('GET', path, { query, signal });
  // Reads every page of a list (size 100) up to `max` items.
  NR.getAll = async (path, query, max) => {
    const out = [];
    for (let page = 1; ; page++) {
      const p = await NR.get(path, Object.assign({}, query, { page, size: 100 }));
      out.push(...p.items);
      if (page >= p.pages || out.length >= (max || 10000)) return out;
    }
  };

  // What this server offers beyond the base API, read from its OpenAPI document, so the page
  // shows a control only when its route exists (an older or newer server never gets a 404).
  const features = (NR.features = reactive({ adhocRun: null, importDryRun: false }));
  NR.loadFeatures = async () => {
    try {
      const doc = await NR.get('openapi.json');
      for (const [path, ops] of Object.entries(doc.paths || {})) {
        if (ops.post && !path.includes('{') && /ad[- ]hoc/i.test(ops.post.summary || '')) features.adhocRun = path.replace(/^\/api\//, '');
        if (path === '/api/devices/import' && ops.post && /dry[ _-]?run/i.test(ops.post.summary || '')) features.importDryRun = true;
      }
    } catch (e) {
      // Without the document the page still works; it only hides the optional controls.
    }
  };

  // A loader that ignores answers to superseded requests, so a list never shows the result of
  // an older filter that happened to arrive last.
  NR.useLoad = (fn) => {
    const data = ref(null);
    const error = ref('');
    const loading = ref(false);
    let seq = 0;
    async function reload(...args) {
      const my = ++seq;
      loading.value = true;
      try {
        const d = await fn(...args);
        if (my === seq) {
          data.value = d;
          error.value = '';
        }
      } catch (e) {
        if (my === seq && e.name !== 'AbortError') error.value = e.message;
      } finally {
        if (my === seq) loading.value = false;
      }
    }
    return { data, error, loading, reload };
  };

  // Hostnames by device id, fetched once per id (logs and results carry ids only).
  const names = (NR.deviceNames = reactive({}));
  const pendingNames = new Set();
  NR.learnDevices = (devices) => devices.forEach((d) => (names[d.id] = d.hostname));
  // Unknown ids are asked for 100 at a time (`GET /api/devices?id=…`), so a page naming a
  // thousand devices costs ten requests, not a thousand.
  NR.resolveDevices = async (ids) => {
    const want = [...new Set(ids.filter((id) => id != null && !(id in names) && !pendingNames.has(id)))];
    want.forEach((id) => pendingNames.add(id));
    const batches = [];
    for (let i = 0; i < want.length; i += 100) batches.push(want.slice(i, i + 100));
    await Promise.all(
      batches.map((batch) =>
        NR.get('devices', { id: batch, size: 100 })
          .then((p) => {
            p.items.forEach((d) => (names[d.id] = d.hostname));
            batch.forEach((id) => id in names || (names[id] = '#' + id + ' (deleted)'));
          })
          .catch(() => {})
          .finally(() => batch.forEach((id) => pendingNames.delete(id))),
      ),
    );
  };
  const jobNames = (NR.jobNames = reactive({}));
  NR.loadJobNames = async () => {
    const jobs = await NR.getAll('jobs', {}, 2000);
    jobs.forEach((j) => (jobNames[j.id] = j.name));
    return jobs;
  };

  // ---------------------------------------------------------------- formatting
  const p2 = (n) => String(n).padStart(2, '0');
  // Local time in the browser's zone with its offset; the API speaks UTC.
  NR.fmtTime = (iso) => {
    if (!iso) return '—';
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    const off = -d.getTimezoneOffset();
    const sign = off >= 0 ? '+' : '-';
    const a = Math.abs(off);
    return (
      d.getFullYear() + '-' + p2(d.getMonth() + 1) + '-' + p2(d.getDate()) + ' ' +
      p2(d.getHours()) + ':' + p2(d.getMinutes()) + ':' + p2(d.getSeconds()) + ' ' +
      sign + p2(Math.floor(a / 60)) + ':' + p2(a % 60)
    );
  };
  NR.ago = (iso) => {
    if (!iso) return '';
    const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 0) return 'in ' + NR.fmtSecs(-s);
    return NR.fmtSecs(s) + ' ago';
  };
  NR.fmtSecs = (s) => {
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + (Math.floor(s / 60) % 60) + ' min';
    return Math.floor(s / 86400) + ' d ' + (Math.floor(s / 3600) % 24) + ' h';
  };
  NR.fmtMs = (ms) => {
    if (ms == null) return '—';
    if (ms < 1000) return ms + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
    return Math.floor(ms / 60000) + ' min ' + Math.round((ms % 60000) / 1000) + ' s';
  };
  NR.fmtBytes = (n) => (n < 1024 ? n + ' B' : n < 1048576 ? (n / 1024).toFixed(1) + ' KiB' : (n / 1048576).toFixed(1) + ' MiB');
  NR.runClass = (s) =>
    ({
      COMPLETED_SUCCESS: 'ok', SUCCESS: 'ok', COMPLETED_PARTIAL_FAILURE: 'warn', RUNNING: 'info', QUEUED: '',
      COMPLETED_FAILURE: 'bad', FAILED: 'bad', FAILED_ERROR: 'bad', COMPLETED_NO_CREDENTIALS: 'bad',
      COMPLETED_NO_DEVICES: 'warn', SKIPPED: '',
    })[s] || '';
  NR.statusLabel = (s) => (s || '').toLowerCase().replace(/^completed_/, '').replace(/_/g, ' ');
  NR.isFinal = (s) => s && s !== 'QUEUED' && s !== 'RUNNING';
  NR.scheduleText = (s) => {
    if (!s) return '';
    if (s.type === 'manual') return 'manual';
    if (s.type === 'interval') return 'every ' + NR.fmtSecs(s.seconds);
    if (s.type === 'cron') return 'cron ' + s.expression + ' (' + s.timezone + ')';
    if (s.type === 'once') return 'once at ' + NR.fmtTime(s.at);
    return s.type;
  };
  // Downloads text as a file (raw config, samples).
  NR.download = (name, text, type) => {
    const url = URL.createObjectURL(new Blob([text], { type: type || 'text/plain' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };
  NR.copy = async (text) => {
    try {
      await navigator.clipboard.writeText(text);
      state.notice = 'copied to the clipboard';
    } catch (e) {
      state.notice = 'the browser refused the clipboard (' + e.message + ')';
    }
  };

  // ---------------------------------------------------------------- components
  const C = NR.components;
  C.ErrorBox = {
    props: ['msg'],
    template: `<div v-if="msg" class="error" data-testid="error" role="alert">{{ msg }}</div>`,
  };
  C.Time = {
    props: ['t'],
    setup: () => ({ NR }),
    template: `<span class="nowrap" :title="t ? NR.ago(t) + ' (UTC ' + t + ')' : ''">{{ NR.fmtTime(t) }}</span>`,
  };
  C.Status = {
    props: ['s'],
    setup: () => ({ NR }),
    template: `<span class="badge" :class="NR.runClass(s)">{{ NR.statusLabel(s) }}</span>`,
  };
  C.Pager = {
    props: ['p', 'testid'],
    emits: ['go'],
    template: `<div class="pager" v-if="p" :data-testid="(testid || 'list') + '-pager'">
      <span class="muted small" data-testid="pager-info">{{ p.total }} total · page {{ p.page }} of {{ Math.max(p.pages, 1) }}</span>
      <button data-testid="pager-prev" :disabled="p.page <= 1" @click="$emit('go', p.page - 1)">‹ Prev</button>
      <button data-testid="pager-next" :disabled="p.page >= p.pages" @click="$emit('go', p.page + 1)">Next ›</button>
    </div>`,
  };
  // Last results as small bars, oldest on the left.
  C.Spark = {
    props: ['items'],
    computed: {
      bars() {
        const it = (this.items || []).slice().reverse();
        return it.map((r, i) => ({
          x: i * 5,
          cls: r.status === 'SUCCESS' ? (r.changed ? 'var(--info)' : 'var(--ok)') : 'var(--bad)',
          title: r.status + (r.changed ? ' (changed)' : '') + ' · ' + NR.fmtTime(r.finished_at),
        }));
      },
    },
    template: `<svg class="spark" width="100" height="14" viewBox="0 0 100 14" data-testid="sparkline" role="img" aria-label="last results">
      <rect v-for="(b, i) in bars" :key="i" :x="b.x" y="2" width="4" height="10" :style="{ fill: b.cls }"><title>{{ b.title }}</title></rect>
    </svg>`,
  };
  C.Modal = {
    props: ['title', 'testid'],
    emits: ['close'],
    template: `<div class="modal-bg" @click.self="$emit('close')"><div class="modal" :data-testid="testid || 'modal'" role="dialog">
      <div class="bar"><h2 class="grow" style="margin:0">{{ title }}</h2><button data-testid="modal-close" @click="$emit('close')">✕</button></div>
      <slot></slot></div></div>`,
  };
  // Stacked bars of runs per day by status (inline SVG).
  const RUN_COLORS = {
    COMPLETED_SUCCESS: 'var(--ok)', COMPLETED_PARTIAL_FAILURE: 'var(--warn)', COMPLETED_FAILURE: 'var(--bad)',
    FAILED_ERROR: '#8e24aa', COMPLETED_NO_CREDENTIALS: '#d81b60', COMPLETED_NO_DEVICES: '#9e9e9e',
    SKIPPED: '#b0bec5', RUNNING: 'var(--info)', QUEUED: '#78909c',
  };
  NR.RUN_COLORS = RUN_COLORS;
  C.RunsChart = {
    props: ['days'],
    setup: () => ({ NR, RUN_COLORS }),
    computed: {
      max() {
        return Math.max(1, ...(this.days || []).map((d) => Object.values(d.counts).reduce((a, b) => a + b, 0)));
      },
      bars() {
        const n = (this.days || []).length || 1;
        const w = 600 / n;
        return (this.days || []).map((d, i) => {
          let y = 180;
          const parts = Object.keys(RUN_COLORS)
            .filter((s) => d.counts[s])
            .map((s) => {
              const h = (d.counts[s] / this.max) * 170;
              y -= h;
              return { s, y, h, n: d.counts[s] };
            });
          return { x: 30 + i * w, w: Math.max(2, w - 3), day: d.day, parts, label: n <= 10 || i % Math.ceil(n / 8) === 0 };
        });
      },
      used() {
        const u = new Set();
        (this.days || []).forEach((d) => Object.keys(d.counts).forEach((s) => u.add(s)));
        return Object.keys(RUN_COLORS).filter((s) => u.has(s));
      },
    },
    template: `<div><svg class="chart" viewBox="0 0 640 200" data-testid="chart-runs" role="img" aria-label="runs per day by status">
      <text x="0" y="12">{{ max }}</text><text x="0" y="182">0</text>
      <line x1="28" y1="180" x2="640" y2="180" stroke="var(--line)"/>
      <g v-for="b in bars" :key="b.day">
        <rect v-for="p in b.parts" :key="p.s" :x="b.x" :y="p.y" :width="b.w" :height="p.h" :style="{ fill: RUN_COLORS[p.s] }"><title>{{ b.day }}: {{ p.n }} {{ NR.statusLabel(p.s) }}</title></rect>
        <text v-if="b.label" :x="b.x" y="196">{{ b.day.slice(5) }}</text>
      </g></svg>
      <div class="legend"><span v-for="s in used" :key="s"><i :style="{ background: RUN_COLORS[s] }"></i>{{ NR.statusLabel(s) }}</span></div></div>`,
  };
  // p50 and p95 run duration per day (inline SVG lines).
  C.DurationChart = {
    props: ['days'],
    setup: () => ({ NR }),
    computed: {
      max() {
        return Math.max(1, ...(this.days || []).map((d) => d.p95_ms || 0));
      },
      lines() {
        const n = Math.max(1, (this.days || []).length - 1);
        const pt = (k) =>
          (this.days || [])
            .map((d, i) => (d[k] == null ? null : [30 + (i / n) * 600, 180 - (d[k] / this.max) * 170]))
            .filter(Boolean);
        return { p50: pt('p50_ms'), p95: pt('p95_ms') };
      },
    },
    template: `<div><svg class="chart" viewBox="0 0 640 200" data-testid="chart-durations" role="img" aria-label="run duration p50 and p95 per day">
      <text x="0" y="12">{{ NR.fmtMs(max) }}</text><text x="0" y="182">0</text>
      <line x1="28" y1="180" x2="640" y2="180" stroke="var(--line)"/>
      <polyline :points="lines.p95.map(p => p.join(',')).join(' ')" fill="none" stroke="var(--bad)" stroke-width="2"/>
      <polyline :points="lines.p50.map(p => p.join(',')).join(' ')" fill="none" stroke="var(--info)" stroke-width="2"/>
      <circle v-for="(p, i) in lines.p95" :key="'a' + i" :cx="p[0]" :cy="p[1]" r="3" style="fill: var(--bad)"/>
      <circle v-for="(p, i) in lines.p50" :key="'b' + i" :cx="p[0]" :cy="p[1]" r="3" style="fill: var(--info)"/>
      </svg><div class="legend"><span><i style="background: var(--info)"></i>p50</span><span><i style="background: var(--bad)"></i>p95</span></div></div>`,
  };
})();
