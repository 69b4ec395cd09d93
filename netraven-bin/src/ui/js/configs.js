'use strict';
// NetRaven web page: config search, snapshot view (line numbers, permalinks, copy, raw download)
// and the diff of any two snapshots (computed on the server; split or unified, changes marked
// within lines, collapsed context, next/previous change). Config text is bound as text only.
(function () {
  const { ref, reactive, computed, watch, onMounted, nextTick } = Vue;
  const { state, components: C, pages: P } = NR;

  // Splits `text` into [{t, m}] parts, m = whether the part matches (for <mark>).
  NR.highlight = (text, q, regex) => {
    if (!q) return [{ t: text, m: false }];
    let re;
    try {
      re = regex ? new RegExp(q, 'gi') : new RegExp(q.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gi');
    } catch (e) {
      return [{ t: text, m: false }];
    }
    const out = [];
    let last = 0;
    let m;
    while ((m = re.exec(text)) && m[0].length) {
      if (m.index > last) out.push({ t: text.slice(last, m.index), m: false });
      out.push({ t: m[0], m: true });
      last = m.index + m[0].length;
    }
    if (last < text.length) out.push({ t: text.slice(last), m: false });
    return out.length ? out : [{ t: text, m: false }];
  };

  // ---------------------------------------------------------------- search
  P.Search = {
    components: C,
    props: ['query'],
    setup(props) {
      const q = ref(props.query.q || '');
      const ctx = 2;
      const page = computed(() => Number(props.query.page) || 1);
      // The server finds the devices whose latest config contains the text; the matching lines
      // with their context are then read from those snapshots.
      const res = NR.useLoad(async () => {
        const text = props.query.q || '';
        if (!text.trim()) return null;
        const p = await NR.get('configs/search', { q: text, page: page.value, size: 20 });
        const needle = text.toLowerCase();
        p.groups = await Promise.all(
          p.items.map(async (meta) => {
            const s = await NR.get('configs/snapshots/' + meta.id);
            const lines = s.content.split('\n');
            const hits = [];
            lines.forEach((l, i) => l.toLowerCase().includes(needle) && hits.push(i));
            // Merge each hit's context window into blocks.
            const blocks = [];
            hits.forEach((h) => {
              const from = Math.max(0, h - ctx);
              const to = Math.min(lines.length - 1, h + ctx);
              const b = blocks[blocks.length - 1];
              if (b && from <= b.to + 1) b.to = to;
              else blocks.push({ from, to });
            });
            return {
              meta,
              count: hits.length,
              blocks: blocks.map((b) => lines.slice(b.from, b.to + 1).map((t, k) => ({ n: b.from + k + 1, t, hit: hits.includes(b.from + k) }))),
            };
          }),
        );
        return p;
      });
      onMounted(res.reload);
      watch(() => props.query, res.reload);
      const submit = () => NR.setQuery({ q: q.value, page: '' }, true);
      return { q, res, submit, NR, go: (p) => NR.setQuery({ page: p }) };
    },
    template: `<div data-testid="page-search"><h1>Search configurations</h1>
      <form class="bar panel" @submit.prevent="submit">
        <label class="grow">Text in the latest configuration of each device (case-insensitive)<input data-testid="search-input" v-model="q" placeholder="e.g. ntp server"></label>
        <button class="primary" data-testid="search-submit" type="submit">Search</button></form>
      <ErrorBox :msg="res.error.value"/>
      <template v-if="res.data.value">
        <p class="muted" data-testid="search-summary">{{ res.data.value.total }} devices match.</p>
        <div class="panel" v-for="g in res.data.value.groups" :key="g.meta.id" data-testid="search-group">
          <div class="bar"><h2 class="grow" style="margin:0"><a :href="NR.href('/devices/' + g.meta.device_id)" data-testid="search-device-link">{{ g.meta.hostname }}</a></h2>
            <span class="small muted">{{ g.count }} lines · snapshot <a :href="NR.href('/snapshots/' + g.meta.id)" data-testid="search-snapshot-link">#{{ g.meta.id }}</a> · <Time :t="g.meta.created_at"/></span></div>
          <div class="code" v-for="(b, bi) in g.blocks" :key="bi" style="margin-bottom:6px"><table><tbody>
            <tr v-for="l in b" :key="l.n" :class="{ hl: false }" data-testid="search-line">
              <td class="ln"><a :href="NR.href('/snapshots/' + g.meta.id, { line: l.n })" data-testid="search-line-link">{{ l.n }}</a></td>
              <td class="tx"><template v-if="l.hit"><template v-for="(part, pi) in NR.highlight(l.t, query.q)" :key="pi"><mark v-if="part.m" data-testid="search-match">{{ part.t }}</mark><template v-else>{{ part.t }}</template></template></template><template v-else>{{ l.t }}</template></td>
            </tr></tbody></table></div>
        </div>
        <Pager :p="res.data.value" testid="search" @go="go"/>
      </template></div>`,
  };

  // ---------------------------------------------------------------- snapshot
  P.Snapshot = {
    components: C,
    props: ['params', 'query'],
    setup(props) {
      const id = Number(props.params.id);
      const snap = NR.useLoad(() => NR.get('configs/snapshots/' + id));
      const lines = computed(() => (snap.data.value ? snap.data.value.content.split('\n') : []));
      const sel = computed(() => Number(props.query.line) || 0);
      const scrollToLine = () =>
        nextTick(() => {
          const el = sel.value && document.getElementById('L' + sel.value);
          if (el) el.scrollIntoView({ block: 'center' });
        });
      onMounted(async () => {
        await snap.reload();
        scrollToLine();
      });
      watch(sel, scrollToLine);
      const download = () => {
        const s = snap.data.value;
        NR.download(s.hostname + '-' + s.id + '.cfg', s.content);
      };
      return { id, snap, lines, sel, download, NR, copy: () => NR.copy(snap.data.value.content) };
    },
    template: `<div data-testid="page-snapshot">
      <ErrorBox :msg="snap.error.value"/>
      <template v-if="snap.data.value">
        <div class="bar"><h1 class="grow" style="margin:0">{{ snap.data.value.hostname }} · snapshot #{{ id }}</h1>
          <button data-testid="snapshot-copy" @click="copy">Copy</button>
          <button data-testid="snapshot-download" @click="download">Download raw</button></div>
        <div class="panel small" data-testid="snapshot-meta">
          Device <a :href="NR.href('/devices/' + snap.data.value.device_id)" data-testid="snapshot-device">{{ snap.data.value.hostname }}</a>
          · <template v-if="snap.data.value.run_id">run <a :href="NR.href('/runs/' + snap.data.value.run_id)" data-testid="snapshot-run">#{{ snap.data.value.run_id }}</a> · </template>
          taken <Time :t="snap.data.value.created_at"/> · {{ NR.fmtBytes(snap.data.value.size) }} ·
          sha256 <span class="mono" data-testid="snapshot-hash">{{ snap.data.value.hash }}</span>
          <template v-if="snap.data.value.commit_id"> · git <span class="mono">{{ snap.data.value.commit_id.slice(0, 10) }}</span></template>
        </div>
        <div class="code" data-testid="snapshot-content"><table><tbody>
          <tr v-for="(l, i) in lines" :key="i" :id="'L' + (i + 1)" :class="{ hl: sel === i + 1 }" data-testid="snapshot-line">
            <td class="ln"><a :href="NR.href('/snapshots/' + id, { line: i + 1 })" data-testid="snapshot-line-link">{{ i + 1 }}</a></td><td class="tx">{{ l }}</td></tr>
        </tbody></table></div>
      </template></div>`,
  };

  // ---------------------------------------------------------------- diff
  // Parses a unified diff into hunks of {type: ' '|'-'|'+', a, b, t} lines.
  function parseUnified(text) {
    const hunks = [];
    let h = null;
    let a = 0;
    let b = 0;
    for (const line of text.split('\n')) {
      const m = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)$/.exec(line);
      if (m) {
        a = Number(m[1]);
        b = Number(m[2]);
        h = { header: line, lines: [] };
        hunks.push(h);
        continue;
      }
      if (!h || line.startsWith('---') || line.startsWith('+++') || line.startsWith('\\')) continue;
      const t = line.slice(1);
      if (line[0] === '+') h.lines.push({ type: '+', b: b++, t });
      else if (line[0] === '-') h.lines.push({ type: '-', a: a++, t });
      else if (line[0] === ' ') h.lines.push({ type: ' ', a: a++, b: b++, t });
    }
    return hunks;
  }
  // Marks the changed middle of a removed/added line pair (common prefix and suffix kept plain).
  function intraline(x, y) {
    let p = 0;
    while (p < x.length && p < y.length && x[p] === y[p]) p++;
    let s = 0;
    while (s < x.length - p && s < y.length - p && x[x.length - 1 - s] === y[y.length - 1 - s]) s++;
    const parts = (t) => [
      { t: t.slice(0, p), m: false },
      { t: t.slice(p, t.length - s), m: true },
      { t: t.slice(t.length - s), m: false },
    ].filter((q) => q.t.length);
    return [parts(x), parts(y)];
  }
  // Rows for both views: pairs of removed and added lines get intraline marks; each run of
  // changes is one "change" for next/previous.
  function buildRows(hunks) {
    const unified = [];
    const split = [];
    let change = -1;
    hunks.forEach((h, hi) => {
      unified.push({ kind: 'hunk', t: h.header, key: 'h' + hi });
      split.push({ kind: 'hunk', t: h.header, key: 'h' + hi });
      let i = 0;
      const L = h.lines;
      while (i < L.length) {
        if (L[i].type === ' ') {
          unified.push({ kind: 'ctx', l: L[i], parts: null, key: 'u' + hi + '-' + i });
          split.push({ kind: 'ctx', left: L[i], right: L[i], key: 's' + hi + '-' + i });
          i++;
          continue;
        }
        change++;
        const dels = [];
        const adds = [];
        while (i < L.length && L[i].type === '-') dels.push(L[i++]);
        while (i < L.length && L[i].type === '+') adds.push(L[i++]);
        const marks = dels.map((d, k) => (adds[k] ? intraline(d.t, adds[k].t) : null));
        dels.forEach((d, k) => unified.push({ kind: 'del', l: d, parts: marks[k] && marks[k][0], change: k === 0 ? change : null, key: 'd' + hi + '-' + d.a }));
        adds.forEach((a, k) => unified.push({ kind: 'add', l: a, parts: marks[k] && marks[k][1], change: !dels.length && k === 0 ? change : null, key: 'a' + hi + '-' + a.b }));
        for (let k = 0; k < Math.max(dels.length, adds.length); k++)
          split.push({
            kind: 'chg', left: dels[k] || null, right: adds[k] || null, lp: marks[k] && marks[k][0], rp: marks[k] && marks[k][1],
            change: k === 0 ? change : null, key: 'c' + hi + '-' + k + '-' + (dels[k] ? dels[k].a : '') + '-' + (adds[k] ? adds[k].b : ''),
          });
      }
    });
    return { unified, split, changes: change + 1 };
  }

  C.Parts = {
    props: ['parts', 'tag', 'text'],
    template: `<template v-if="parts"><template v-for="(p, i) in parts" :key="i"><component v-if="p.m" :is="tag">{{ p.t }}</component><template v-else>{{ p.t }}</template></template></template><template v-else>{{ text }}</template>`,
  };

  P.Diff = {
    components: C,
    props: ['query'],
    setup(props) {
      const from = ref(props.query.from || '');
      const to = ref(props.query.to || '');
      const view = computed(() => (props.query.view === 'unified' ? 'unified' : 'split'));
      const context = computed(() => Number(props.query.context) || 3);
      const cur = ref(-1);
      const res = NR.useLoad(async () => {
        if (!props.query.from || !props.query.to) return null;
        const d = await NR.get('configs/diff', { from: props.query.from, to: props.query.to, context: context.value });
        d.rows = buildRows(parseUnified(d.diff));
        d.adds = (d.diff.match(/^\+(?!\+\+)/gm) || []).length;
        d.dels = (d.diff.match(/^-(?!--)/gm) || []).length;
        return d;
      });
      onMounted(res.reload);
      watch(() => [props.query.from, props.query.to, props.query.context], () => {
        cur.value = -1;
        res.reload();
      });
      const go = () => NR.setQuery({ from: from.value, to: to.value }, true);
      const swap = () => NR.setQuery({ from: props.query.to, to: props.query.from }, true);
      function jump(dir) {
        const n = res.data.value ? res.data.value.rows.changes : 0;
        if (!n) return;
        cur.value = (cur.value + dir + n) % n;
        nextTick(() => {
          const el = document.querySelector('[data-change="' + cur.value + '"]');
          if (el) el.scrollIntoView({ block: 'center' });
        });
      }
      return {
        from, to, view, context, res, go, swap, jump, cur, NR,
        setView: (v) => NR.setQuery({ view: v === 'unified' ? 'unified' : '' }),
        more: () => NR.setQuery({ context: Math.min(100, context.value * 3) }),
        permalink: () => NR.copy(location.href),
      };
    },
    template: `<div data-testid="page-diff"><h1>Diff</h1>
      <form class="bar panel" @submit.prevent="go">
        <label>From snapshot<input data-testid="diff-from" v-model="from" size="8"></label>
        <label>To snapshot<input data-testid="diff-to" v-model="to" size="8"></label>
        <button class="primary" type="submit" data-testid="diff-submit">Compare</button>
        <button type="button" data-testid="diff-swap" @click="swap">Swap</button></form>
      <ErrorBox :msg="res.error.value"/>
      <p v-if="!res.data.value && !res.error.value" class="muted">Pick two snapshots on a device's page, or enter their ids.</p>
      <template v-if="res.data.value">
        <div class="panel small" data-testid="diff-meta">
          <a :href="NR.href('/snapshots/' + res.data.value.from.id)" data-testid="diff-from-link">{{ res.data.value.from.hostname }} #{{ res.data.value.from.id }}</a> (<Time :t="res.data.value.from.created_at"/>)
          → <a :href="NR.href('/snapshots/' + res.data.value.to.id)" data-testid="diff-to-link">{{ res.data.value.to.hostname }} #{{ res.data.value.to.id }}</a> (<Time :t="res.data.value.to.created_at"/>)
          · <span class="ok">+{{ res.data.value.adds }}</span> <span class="bad">−{{ res.data.value.dels }}</span> · {{ res.data.value.rows.changes }} {{ res.data.value.rows.changes === 1 ? 'change' : 'changes' }}
        </div>
        <div class="bar">
          <button data-testid="diff-view-split" :class="{ primary: view === 'split' }" @click="setView('split')">Side by side</button>
          <button data-testid="diff-view-unified" :class="{ primary: view === 'unified' }" @click="setView('unified')">Unified</button>
          <button data-testid="diff-prev" :disabled="!res.data.value.rows.changes" @click="jump(-1)">↑ Previous change</button>
          <button data-testid="diff-next" :disabled="!res.data.value.rows.changes" @click="jump(1)">↓ Next change</button>
          <button data-testid="diff-more-context" @click="more" :disabled="context >= 100">More context</button>
          <button data-testid="diff-permalink" @click="permalink">Copy link</button></div>
        <p v-if="!res.data.value.changed" class="notice" data-testid="diff-same">The two snapshots are identical.</p>
        <div class="code" data-testid="diff-content" v-else-if="view === 'unified'"><table><tbody>
          <tr v-for="r in res.data.value.rows.unified" :key="r.key" :class="[r.kind === 'hunk' ? 'hunk' : r.kind, { cur: r.change != null && r.change === cur }]" :data-change="r.change" data-testid="diff-line" :data-kind="r.kind">
            <template v-if="r.kind === 'hunk'"><td class="ln"></td><td class="ln"></td><td class="tx">{{ r.t }}</td></template>
            <template v-else><td class="ln">{{ r.l.a || '' }}</td><td class="ln">{{ r.l.b || '' }}</td>
              <td class="tx">{{ r.kind === 'add' ? '+' : r.kind === 'del' ? '-' : ' ' }}<Parts :parts="r.parts" :tag="r.kind === 'add' ? 'ins' : 'del'" :text="r.l.t"/></td></template>
          </tr></tbody></table></div>
        <div class="code" data-testid="diff-content" v-else><table><tbody>
          <tr v-for="r in res.data.value.rows.split" :key="r.key" :class="[r.kind === 'hunk' ? 'hunk' : '', { cur: r.change != null && r.change === cur }]" :data-change="r.change" data-testid="diff-line" :data-kind="r.kind">
            <template v-if="r.kind === 'hunk'"><td class="ln"></td><td class="tx" colspan="3">{{ r.t }}</td></template>
            <template v-else>
              <td class="ln">{{ r.left ? r.left.a : '' }}</td>
              <td class="tx" :class="r.kind === 'chg' ? (r.left ? 'del' : 'empty') : ''"><Parts v-if="r.left" :parts="r.lp" tag="del" :text="r.left.t"/></td>
              <td class="ln">{{ r.right ? r.right.b : '' }}</td>
              <td class="tx" :class="r.kind === 'chg' ? (r.right ? 'add' : 'empty') : ''"><Parts v-if="r.right" :parts="r.rp" tag="ins" :text="r.right.t"/></td>
            </template>
          </tr></tbody></table></div>
      </template></div>`,
  };
})();
