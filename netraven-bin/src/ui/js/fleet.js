'use strict';
// NetRaven web page: dashboard, devices (list, filters, bulk actions, add/edit), device detail
// (facts, last failure, config timeline with diff picking) and import with a dry-run preview.
(function () {
  const { ref, reactive, computed, watch, onMounted, onBeforeUnmount } = Vue;
  const { state, components: C, pages: P } = NR;

  // Runs `fn` every `ms` while the page is shown.
  NR.every = (ms, fn) => {
    let t = null;
    onMounted(() => (t = setInterval(fn, ms)));
    onBeforeUnmount(() => clearInterval(t));
  };

  // ---------------------------------------------------------------- dashboard
  P.Dashboard = {
    components: C,
    props: ['query'],
    setup(props) {
      const days = computed(() => (props.query.days === '30' ? 30 : 7));
      const status = NR.useLoad(() => NR.get('system/status'));
      const dash = NR.useLoad(() => NR.get('dashboard', { days: days.value }));
      const load = () => {
        status.reload();
        dash.reload();
      };
      onMounted(() => {
        load();
        NR.loadJobNames().catch(() => {});
      });
      watch(days, () => dash.reload());
      NR.every(15000, load);
      const tiles = computed(() => {
        const d = dash.data.value && dash.data.value.devices;
        if (!d) return [];
        return [
          ['devices', 'Devices', d.total, '', NR.href('/devices')],
          ['ok', 'Last backup ok', d.ok, 'ok', NR.href('/runs', { status: 'COMPLETED_SUCCESS' })],
          ['failing', 'Failing now', d.failing, d.failing ? 'bad' : '', '#failing'],
          ['stale', 'No good backup for ' + dash.data.value.stale_hours + ' h', d.stale, d.stale ? 'warn' : '', NR.href('/devices')],
          ['changed', 'Changed in 24 h', d.changed_24h, '', NR.href('/logs', { kind: 'snapshot', search: 'changed' })],
        ];
      });
      return { status, dash, days, tiles, NR, setDays: (d) => NR.setQuery({ days: d === 30 ? 30 : '' }) };
    },
    template: `<div data-testid="page-dashboard">
      <h1>Dashboard</h1>
      <ErrorBox :msg="status.error.value || dash.error.value"/>
      <div class="grid" v-if="status.data.value" data-testid="health">
        <div class="tile" data-testid="health-store"><div class="l">Store</div><div class="n" :class="status.data.value.store.ok ? 'ok' : 'bad'">{{ status.data.value.store.ok ? 'ok' : 'down' }}</div><div class="l">{{ status.data.value.store.active_runs }} active runs</div></div>
        <div class="tile" data-testid="health-queue"><div class="l">Queue</div><div class="n" :class="status.data.value.queue.ok ? 'ok' : 'bad'">{{ status.data.value.queue.ok ? 'ok' : 'down' }}</div>
          <div class="l" v-if="status.data.value.queue.stats">{{ status.data.value.queue.stats.ready }} ready · {{ status.data.value.queue.stats.leased }} leased · {{ status.data.value.queue.stats.dead }} dead</div></div>
        <div class="tile" data-testid="health-workers"><div class="l">Workers</div><div class="n">{{ status.data.value.workers.active_devices }} / {{ status.data.value.workers.concurrency }}</div><div class="l">busy / slots ({{ status.data.value.workers.worker_id }})</div></div>
        <div class="tile" data-testid="health-scheduler"><div class="l">Scheduler</div>
          <template v-if="status.data.value.scheduler"><div class="n" :class="status.data.value.scheduler.ok === false ? 'bad' : 'ok'">{{ status.data.value.scheduler.ok === false ? 'down' : 'ok' }}</div></template>
          <template v-else><div class="n muted">—</div><div class="l">not reported by this server</div></template></div>
        <div class="tile" data-testid="health-version"><div class="l">Server</div><div class="n">{{ status.data.value.version }}</div><div class="l">up {{ NR.fmtSecs(status.data.value.uptime_seconds) }}</div></div>
      </div>
      <div class="grid" v-if="dash.data.value" data-testid="device-tiles">
        <a v-for="t in tiles" :key="t[0]" class="tile" :href="t[4]" :data-testid="'tile-' + t[0]"><div class="l">{{ t[1] }}</div><div class="n" :class="t[3]">{{ t[2] }}</div></a>
      </div>
      <div class="panel" v-if="dash.data.value">
        <div class="bar"><h2 class="grow" style="margin:0">Runs by status per day</h2>
          <button data-testid="dash-days-7" :class="{ primary: days === 7 }" @click="setDays(7)">7 days</button>
          <button data-testid="dash-days-30" :class="{ primary: days === 30 }" @click="setDays(30)">30 days</button></div>
        <div class="cols">
          <div><RunsChart :days="dash.data.value.runs_by_day"/></div>
          <div><div class="small muted">Run duration p50 {{ NR.fmtMs(dash.data.value.duration.p50_ms) }} · p95 {{ NR.fmtMs(dash.data.value.duration.p95_ms) }} over {{ dash.data.value.duration.runs }} runs</div>
            <DurationChart :days="dash.data.value.runs_by_day"/></div>
        </div>
      </div>
      <div class="cols" v-if="dash.data.value">
        <div class="panel"><h2>Latest runs <a class="small" :href="NR.href('/runs')" data-testid="dash-all-runs">all</a></h2>
          <table class="resp" data-testid="dash-runs"><thead><tr><th>Run</th><th>Job</th><th>Status</th><th>Queued</th><th>Devices</th></tr></thead><tbody>
            <tr v-for="r in dash.data.value.latest_runs" :key="r.id" data-testid="dash-run-row">
              <td data-label="Run"><a :href="NR.href('/runs/' + r.id)" data-testid="dash-run-link">#{{ r.id }}</a></td>
              <td data-label="Job">{{ NR.jobNames[r.job_id] || ('job ' + r.job_id) }}</td>
              <td data-label="Status"><Status :s="r.status"/></td>
              <td data-label="Queued"><Time :t="r.queued_at"/></td>
              <td data-label="Devices">{{ r.counts.succeeded }}/{{ r.counts.total }} ok<span v-if="r.counts.failed" class="bad"> · {{ r.counts.failed }} failed</span></td>
            </tr></tbody></table>
          <p class="empty" v-if="!dash.data.value.latest_runs.length">No runs yet.</p>
        </div>
        <div class="panel" id="failing"><h2>Failing now</h2>
          <table class="resp" data-testid="dash-failing"><thead><tr><th>Device</th><th>Reason</th><th>When</th></tr></thead><tbody>
            <tr v-for="f in dash.data.value.failing" :key="f.device_id" data-testid="failing-row">
              <td data-label="Device"><a :href="NR.href('/devices/' + f.device_id)" data-testid="failing-device-link">{{ f.hostname || ('#' + f.device_id) }}</a></td>
              <td data-label="Reason"><span class="badge bad">{{ f.error_kind }}</span> {{ f.message }}</td>
              <td data-label="When"><a :href="NR.href('/runs/' + f.run_id)" data-testid="failing-run-link"><Time :t="f.finished_at"/></a></td>
            </tr></tbody></table>
          <p class="empty" v-if="!dash.data.value.failing.length">Nothing is failing.</p>
        </div>
      </div>
    </div>`,
  };

  // ---------------------------------------------------------------- device form
  const blankDevice = () => ({
    hostname: '', address: '', port: 22, platform: 'cisco_ios', tags: [], description: '', serial: '', model: '',
    credential_id: null, host_key_policy: 'tofu', legacy_ssh: false, enabled: true, transport: 'ssh', jump_host: null,
    timeout_multiplier: null, zone: null,
  });
  const PLATFORMS = ['cisco_ios', 'cisco_xe', 'cisco_nxos', 'cisco_xr', 'cisco_asa', 'arista_eos', 'juniper_junos', 'linux'];
  C.DeviceForm = {
    components: C,
    props: ['device'],
    emits: ['saved', 'close'],
    setup(props, { emit }) {
      const d = reactive(Object.assign(blankDevice(), props.device ? JSON.parse(JSON.stringify(props.device)) : {}));
      const tagText = ref((d.tags || []).join(', '));
      const error = ref('');
      const creds = ref([]);
      if (NR.can('viewer')) NR.getAll('credentials', {}, 1000).then((c) => (creds.value = c)).catch(() => {});
      async function save() {
        error.value = '';
        const body = {
          hostname: d.hostname.trim(), address: d.address.trim(), port: Number(d.port) || 22, platform: d.platform.trim(),
          tags: tagText.value.split(/[,;]/).map((t) => t.trim()).filter(Boolean),
          description: d.description || null, serial: d.serial || null, model: d.model || null,
          credential_id: d.credential_id || null, host_key_policy: d.host_key_policy, legacy_ssh: !!d.legacy_ssh, enabled: !!d.enabled,
          transport: d.transport || 'ssh', jump_host: (d.jump_host || '').trim() || null,
          // PUT replaces every field: fields the form does not edit are sent back as they were.
          timeout_multiplier: d.timeout_multiplier == null || d.timeout_multiplier === '' ? null : Number(d.timeout_multiplier),
          // The zone is an admin's to change; everyone else sends it back unchanged.
          zone: (String(d.zone || '')).trim() || null,
          // Tags typed into the form are meant: create the ones that do not exist yet.
          create_missing_tags: true,
        };
        try {
          const saved = d.id ? await NR.api('PUT', 'devices/' + d.id, { body }) : await NR.api('POST', 'devices', { body });
          emit('saved', saved);
        } catch (e) {
          error.value = e.message;
        }
      }
      return { d, tagText, error, save, creds, PLATFORMS, NR };
    },
    template: `<Modal :title="d.id ? 'Edit ' + d.hostname : 'Add a device'" testid="device-form" @close="$emit('close')">
      <ErrorBox :msg="error"/>
      <form class="form" @submit.prevent="save">
        <label>Hostname<input data-testid="device-hostname" v-model="d.hostname" required></label>
        <label>Address<input data-testid="device-address" v-model="d.address" required></label>
        <label>Port<input data-testid="device-port" type="number" min="1" max="65535" v-model="d.port"></label>
        <label>Platform<input data-testid="device-platform" v-model="d.platform" list="nr-platforms" required><datalist id="nr-platforms"><option v-for="p in PLATFORMS" :key="p" :value="p"></option></datalist></label>
        <label class="wide">Tags (comma-separated)<input data-testid="device-tags" v-model="tagText"></label>
        <label>Credential tried first<select data-testid="device-credential" v-model="d.credential_id"><option :value="null">by tags only</option><option v-for="c in creds" :key="c.id" :value="c.id">{{ c.name }}</option></select></label>
        <label>Host key policy<select data-testid="device-hostkey" v-model="d.host_key_policy"><option value="tofu">trust on first use</option><option value="strict">strict</option><option value="off">off</option></select></label>
        <label>Transport<select data-testid="device-transport" v-model="d.transport"><option value="ssh">SSH</option><option value="telnet">telnet (clear text, legacy devices only)</option></select></label>
        <label>Jump host<input data-testid="device-jump-host" v-model="d.jump_host" placeholder="none (direct)"></label>
        <label v-if="NR.can('admin')">Zone (empty: its tags' zone, else the default)<input data-testid="device-zone" v-model="d.zone" pattern="([a-z0-9_]|-){1,63}" placeholder="default"></label>
        <label>Model<input data-testid="device-model" v-model="d.model"></label>
        <label>Serial<input data-testid="device-serial" v-model="d.serial"></label>
        <label class="wide">Description<input data-testid="device-description" v-model="d.description"></label>
        <label class="check"><input type="checkbox" data-testid="device-enabled" v-model="d.enabled"> enabled</label>
        <label class="check"><input type="checkbox" data-testid="device-legacy" v-model="d.legacy_ssh"> legacy SSH algorithms</label>
        <div class="wide"><button class="primary" type="submit" data-testid="device-save">Save</button> <button type="button" data-testid="device-cancel" @click="$emit('close')">Cancel</button></div>
      </form></Modal>`,
  };

  // ---------------------------------------------------------------- devices
  const FILTERS = ['hostname', 'address', 'platform', 'tag'];
  P.Devices = {
    components: C,
    props: ['query'],
    setup(props) {
      const f = reactive({});
      const syncFilters = () => FILTERS.forEach((k) => (f[k] = props.query[k] || ''));
      syncFilters();
      const page = computed(() => Number(props.query.page) || 1);
      const list = NR.useLoad(async () => {
        const q = { page: page.value, size: 50 };
        FILTERS.forEach((k) => props.query[k] && (q[k] = props.query[k]));
        const p = await NR.get('devices', q);
        NR.learnDevices(p.items);
        const ids = p.items.map((d) => d.id);
        p.recent = ids.length ? await NR.get('devices/recent', { ids: ids.join(','), n: 20 }) : {};
        return p;
      });
      const tags = ref([]);
      onMounted(() => {
        list.reload();
        NR.getAll('tags', {}, 1000).then((t) => (tags.value = t)).catch(() => {});
      });
      watch(() => props.query, () => {
        syncFilters();
        list.reload();
      });
      let timer;
      // Typing updates the URL (and so the list) after a short pause.
      const onFilter = () => {
        clearTimeout(timer);
        timer = setTimeout(() => NR.setQuery(Object.assign({}, f, { page: '' })), 150);
      };
      const selected = reactive(new Set());
      const allOn = computed(() => list.data.value && list.data.value.items.length > 0 && list.data.value.items.every((d) => selected.has(d.id)));
      const toggleAll = () => {
        const on = !allOn.value;
        list.data.value.items.forEach((d) => (on ? selected.add(d.id) : selected.delete(d.id)));
      };
      const editing = ref(null);
      const bulkTag = ref('');
      const busy = ref(false);
      const error = ref('');
      async function bulk(action) {
        const ids = [...selected];
        if (!ids.length) return;
        if (action === 'delete' && !confirm('Delete ' + ids.length + ' devices?')) return;
        busy.value = true;
        error.value = '';
        try {
          if (action === 'run') {
            const r = await NR.api('POST', NR.features.adhocRun, { body: { device_ids: ids } });
            NR.go('/runs/' + r.run_id);
            return;
          }
          // One request for the whole selection (the server checks every id first).
          if (action === 'delete') await NR.api('POST', 'devices/bulk', { body: { ids, action: 'delete' } });
          else if (action === 'tag' && bulkTag.value.trim()) {
            const body = { ids, action: 'add_tags', tags: [bulkTag.value.trim()], create_missing_tags: true };
            await NR.api('POST', 'devices/bulk', { body });
          }
          state.notice = action === 'delete' ? ids.length + ' devices deleted' : 'tag ' + bulkTag.value + ' added to ' + ids.length + ' devices';
          selected.clear();
          list.reload();
        } catch (e) {
          error.value = e.message;
          list.reload();
        } finally {
          busy.value = false;
        }
      }
      const saved = (d) => {
        editing.value = null;
        state.notice = 'device ' + d.hostname + ' saved';
        list.reload();
      };
      const last = (id) => {
        const r = list.data.value && list.data.value.recent[id];
        return r && r.recent[0];
      };
      return { f, onFilter, list, tags, selected, allOn, toggleAll, editing, bulk, bulkTag, busy, error, saved, last, NR, go: (p) => NR.setQuery({ page: p }), blankDevice };
    },
    template: `<div data-testid="page-devices">
      <div class="bar"><h1 class="grow" style="margin:0">Devices</h1>
        <a v-if="NR.can('operator')" :href="NR.href('/import')" data-testid="device-import-link">Import…</a>
        <button v-if="NR.can('operator')" class="primary" data-testid="device-add" @click="editing = blankDevice()">Add device</button></div>
      <ErrorBox :msg="list.error.value || error"/>
      <div class="bar panel" data-testid="device-filters">
        <label>Hostname<input data-testid="filter-hostname" v-model="f.hostname" @input="onFilter" placeholder="contains"></label>
        <label>Address<input data-testid="filter-address" v-model="f.address" @input="onFilter" placeholder="contains"></label>
        <label>Platform<input data-testid="filter-platform" v-model="f.platform" @input="onFilter" placeholder="equals"></label>
        <label>Tag<select data-testid="filter-tag" v-model="f.tag" @change="onFilter"><option value="">any</option><option v-for="t in tags" :key="t.id" :value="t.name">{{ t.name }}</option></select></label>
      </div>
      <div class="bar" v-if="NR.can('operator') && selected.size" data-testid="bulk-bar">
        <span>{{ selected.size }} selected</span>
        <button v-if="NR.features.adhocRun" data-testid="bulk-run" :disabled="busy" @click="bulk('run')">Back up now</button>
        <input data-testid="bulk-tag-name" v-model="bulkTag" placeholder="tag" style="width:120px">
        <button data-testid="bulk-tag" :disabled="busy || !bulkTag.trim()" @click="bulk('tag')">Add tag</button>
        <button class="danger" data-testid="bulk-delete" :disabled="busy" @click="bulk('delete')">Delete</button>
      </div>
      <div class="panel" v-if="list.data.value">
        <table class="resp" data-testid="device-table"><thead><tr>
          <th v-if="NR.can('operator')"><input type="checkbox" data-testid="device-select-all" :checked="allOn" @change="toggleAll" aria-label="select all"></th>
          <th>Hostname</th><th>Address</th><th>Platform</th><th>Tags</th><th>Last result</th><th>Last 20</th><th v-if="NR.can('operator')"></th></tr></thead>
          <tbody><tr v-for="d in list.data.value.items" :key="d.id" data-testid="device-row" :class="{ sel: selected.has(d.id) }">
            <td v-if="NR.can('operator')"><input type="checkbox" data-testid="device-select" :checked="selected.has(d.id)" @change="selected.has(d.id) ? selected.delete(d.id) : selected.add(d.id)" :aria-label="'select ' + d.hostname"></td>
            <td data-label="Hostname"><a :href="NR.href('/devices/' + d.id)" data-testid="device-link">{{ d.hostname }}</a> <span v-if="!d.enabled" class="badge">disabled</span> <span v-if="d.transport === 'telnet'" class="badge warn" data-testid="device-telnet" title="reached over telnet: the login travels in clear text">telnet</span> <span v-if="d.jump_host" class="badge" data-testid="device-jump" :title="'through jump host ' + d.jump_host">via {{ d.jump_host }}</span></td>
            <td data-label="Address" class="mono">{{ d.address }}:{{ d.port }}</td>
            <td data-label="Platform">{{ d.platform }}</td>
            <td data-label="Tags"><span class="tag" v-for="t in d.tags" :key="t">{{ t }}</span></td>
            <td data-label="Last result"><template v-if="last(d.id)"><span class="badge" :class="NR.runClass(last(d.id).status)" data-testid="device-last-status">{{ last(d.id).status === 'SUCCESS' ? (last(d.id).changed ? 'changed' : 'ok') : last(d.id).error_kind || 'failed' }}</span> <span class="small muted">{{ NR.ago(last(d.id).finished_at) }}</span></template><span v-else class="muted small">never backed up</span></td>
            <td data-label="Last 20"><Spark :items="list.data.value.recent[d.id] && list.data.value.recent[d.id].recent"/></td>
            <td v-if="NR.can('operator')"><button data-testid="device-edit" @click="editing = d">Edit</button></td>
          </tr></tbody></table>
        <p class="empty" v-if="!list.data.value.items.length" data-testid="devices-empty">No device matches these filters.</p>
        <Pager :p="list.data.value" testid="devices" @go="go"/>
      </div>
      <DeviceForm v-if="editing" :device="editing" @close="editing = null" @saved="saved"/>
    </div>`,
  };

  // ---------------------------------------------------------------- device detail
  P.DeviceDetail = {
    components: C,
    props: ['params'],
    setup(props) {
      const id = Number(props.params.id);
      const dev = NR.useLoad(() => NR.get('devices/' + id));
      const recent = NR.useLoad(async () => (await NR.get('devices/recent', { ids: String(id), n: 20 }))[id]);
      const hist = NR.useLoad(() => NR.get('configs/' + id + '/history', { page: 1, size: 100 }));
      const pick = reactive([]);
      const editing = ref(false);
      const error = ref('');
      const running = ref(null);
      onMounted(() => {
        dev.reload();
        recent.reload();
        hist.reload();
      });
      // Unique configs with their validity: each snapshot is valid from its time until the next.
      const timeline = computed(() => {
        const items = (hist.data.value && hist.data.value.items) || [];
        return items.map((s, i) => ({ s, until: i === 0 ? null : items[i - 1].created_at }));
      });
      const togglePick = (sid) => {
        const i = pick.indexOf(sid);
        if (i >= 0) pick.splice(i, 1);
        else {
          pick.push(sid);
          if (pick.length > 2) pick.shift();
        }
      };
      const diffHref = computed(() => {
        if (pick.length !== 2) return null;
        const [a, b] = pick.slice().sort((x, y) => x - y);
        return NR.href('/diff', { from: a, to: b });
      });
      async function runNow() {
        error.value = '';
        try {
          const r = await NR.api('POST', NR.features.adhocRun, { body: { device_ids: [id] } });
          NR.go('/runs/' + r.run_id);
        } catch (e) {
          error.value = e.message;
        }
      }
      async function remove() {
        if (!confirm('Delete ' + dev.data.value.hostname + '?')) return;
        try {
          await NR.api('DELETE', 'devices/' + id);
          state.notice = 'device deleted';
          NR.go('/devices');
        } catch (e) {
          error.value = e.message;
        }
      }
      const saved = () => {
        editing.value = false;
        dev.reload();
      };
      return { id, dev, recent, hist, timeline, pick, togglePick, diffHref, runNow, remove, editing, saved, error, running, NR };
    },
    template: `<div data-testid="page-device">
      <ErrorBox :msg="dev.error.value || recent.error.value || hist.error.value || error"/>
      <template v-if="dev.data.value">
      <div class="bar"><h1 class="grow" style="margin:0" data-testid="device-title">{{ dev.data.value.hostname }}</h1>
        <button v-if="NR.can('operator') && NR.features.adhocRun" class="primary" data-testid="device-run-now" @click="runNow">Back up now</button>
        <button v-if="NR.can('operator')" data-testid="device-edit" @click="editing = true">Edit</button>
        <button v-if="NR.can('operator')" class="danger" data-testid="device-delete" @click="remove">Delete</button></div>
      <div class="cols">
        <div class="panel"><h2>Facts</h2><table data-testid="device-facts"><tbody>
          <tr><th>Address</th><td class="mono">{{ dev.data.value.address }}:{{ dev.data.value.port }}</td></tr>
          <tr><th>Platform</th><td>{{ dev.data.value.platform }}</td></tr>
          <tr><th>Model / serial</th><td>{{ dev.data.value.model || '—' }} / {{ dev.data.value.serial || '—' }}</td></tr>
          <tr><th>Tags</th><td><a v-for="t in dev.data.value.tags" :key="t" class="tag" :href="NR.href('/devices', { tag: t })" data-testid="device-tag-link">{{ t }}</a></td></tr>
          <tr><th>Enabled</th><td>{{ dev.data.value.enabled ? 'yes' : 'no' }}</td></tr>
          <tr><th>Host keys</th><td>{{ dev.data.value.host_key_policy }}{{ dev.data.value.legacy_ssh ? ' · legacy SSH' : '' }}</td></tr>
          <tr><th>Reached</th><td data-testid="device-reach"><span v-if="dev.data.value.transport === 'telnet'" class="badge warn">telnet (clear text)</span><span v-else>SSH</span>{{ dev.data.value.jump_host ? ' through jump host ' + dev.data.value.jump_host : '' }}</td></tr>
          <tr><th>Zone</th><td data-testid="device-zone-shown">{{ dev.data.value.zone || 'by its tags, else default' }}</td></tr>
          <tr><th>Credential that worked</th><td data-testid="device-credential-used">{{ recent.data.value && recent.data.value.credential || '—' }}</td></tr>
          <tr><th>Description</th><td>{{ dev.data.value.description || '—' }}</td></tr>
        </tbody></table></div>
        <div class="panel"><h2>Last results</h2>
          <template v-if="recent.data.value">
            <p><Spark :items="recent.data.value.recent"/></p>
            <p v-if="recent.data.value.last_success">Last good backup: <Time :t="recent.data.value.last_success.finished_at"/> (<a :href="NR.href('/runs/' + recent.data.value.last_success.run_id)" data-testid="device-last-success-run">run {{ recent.data.value.last_success.run_id }}</a>)</p>
            <p v-else class="warn" data-testid="device-never">No successful backup yet{{ recent.data.value.recent.length ? '' : ': this device has not been in any run' }}.</p>
            <div v-if="recent.data.value.last_failure" data-testid="device-last-failure">
              <p>Last failure <Time :t="recent.data.value.last_failure.finished_at"/> in <a :href="NR.href('/runs/' + recent.data.value.last_failure.run_id)" data-testid="device-last-failure-run">run {{ recent.data.value.last_failure.run_id }}</a>: <span class="badge bad">{{ recent.data.value.last_failure.error_kind }}</span></p>
              <pre class="code" style="padding:8px" data-testid="device-failure-reason">{{ recent.data.value.last_failure.message }}</pre></div>
            <p><a :href="NR.href('/logs', { device_id: id })" data-testid="device-logs-link">Logs of this device</a></p>
          </template>
        </div>
      </div>
      <div class="panel"><div class="bar"><h2 class="grow" style="margin:0">Configuration timeline</h2>
        <span class="small muted">pick two to compare</span>
        <a v-if="diffHref" :href="diffHref" data-testid="timeline-diff"><button class="primary" data-testid="timeline-diff-button">Diff selected</button></a></div>
        <p class="empty" v-if="hist.data.value && !hist.data.value.items.length" data-testid="timeline-empty">No configuration stored yet{{ recent.data.value && recent.data.value.last_failure ? ' — the backups failed, see the reason above' : ' — the device has not been backed up' }}.</p>
        <table class="resp" data-testid="timeline" v-if="timeline.length"><thead><tr><th></th><th>Snapshot</th><th>Valid since</th><th>Valid until</th><th>Size</th><th>Hash</th><th></th></tr></thead><tbody>
          <tr v-for="t in timeline" :key="t.s.id" data-testid="timeline-row" :class="{ sel: pick.includes(t.s.id) }">
            <td><input type="checkbox" data-testid="timeline-pick" :checked="pick.includes(t.s.id)" @change="togglePick(t.s.id)" :aria-label="'pick snapshot ' + t.s.id"></td>
            <td data-label="Snapshot"><a :href="NR.href('/snapshots/' + t.s.id)" data-testid="timeline-view">#{{ t.s.id }}</a></td>
            <td data-label="Valid since"><Time :t="t.s.created_at"/></td>
            <td data-label="Valid until"><Time v-if="t.until" :t="t.until"/><span v-else class="badge ok">current</span></td>
            <td data-label="Size">{{ NR.fmtBytes(t.s.size) }}</td>
            <td data-label="Hash" class="mono small">{{ t.s.hash.slice(0, 12) }}</td>
            <td><a v-if="timeline.indexOf(t) < timeline.length - 1" :href="NR.href('/diff', { from: timeline[timeline.indexOf(t) + 1].s.id, to: t.s.id })" data-testid="timeline-diff-prev">diff to previous</a></td>
          </tr></tbody></table>
      </div>
      <DeviceForm v-if="editing" :device="dev.data.value" @close="editing = false" @saved="saved"/>
      </template>
    </div>`,
  };

  // ---------------------------------------------------------------- import
  P.Import = {
    components: C,
    setup() {
      const text = ref('');
      const format = ref('csv');
      const preview = ref(null);
      const result = ref(null);
      const error = ref('');
      const busy = ref(false);
      function onFile(ev) {
        const file = ev.target.files[0];
        if (!file) return;
        format.value = /\.json$/i.test(file.name) ? 'json' : 'csv';
        file.text().then((t) => {
          text.value = t;
          preview.value = null;
          result.value = null;
        });
      }
      async function send(dry) {
        error.value = '';
        busy.value = true;
        try {
          const r = await NR.api('POST', 'devices/import', {
            body: text.value, type: format.value === 'json' ? 'application/json' : 'text/csv', query: { dry_run: dry ? 'true' : '' },
          });
          if (dry) preview.value = r;
          else {
            result.value = r;
            preview.value = null;
          }
        } catch (e) {
          error.value = e.message;
        } finally {
          busy.value = false;
        }
      }
      const sample = async (kind) => {
        const res = await fetch('assets/samples/devices.' + kind);
        NR.download('netraven-devices.' + kind, await res.text(), kind === 'csv' ? 'text/csv' : 'application/json');
      };
      return { text, format, preview, result, error, busy, onFile, send, sample, NR };
    },
    template: `<div data-testid="page-import"><h1>Import devices</h1>
      <ErrorBox :msg="error"/>
      <div class="panel">
        <p class="small muted">CSV with the header <code>hostname,address,port,platform,tags,description,serial,model,enabled</code> (tags separated by ; or |), or a JSON array of devices. Nothing is saved until you confirm the preview.
          Samples: <a href="assets/samples/devices.csv" download="netraven-devices.csv" data-testid="sample-csv">CSV</a> · <a href="assets/samples/devices.json" download="netraven-devices.json" data-testid="sample-json">JSON</a></p>
        <div class="bar"><label>Format<select data-testid="import-format" v-model="format"><option value="csv">CSV</option><option value="json">JSON</option></select></label>
          <label>File<input type="file" accept=".csv,.json,text/csv,application/json" data-testid="import-file" @change="onFile"></label></div>
        <textarea rows="10" class="mono" data-testid="import-text" v-model="text" placeholder="paste CSV or JSON here" @input="preview = null; result = null"></textarea>
        <div class="bar" style="margin-top:8px"><template v-if="NR.features.importDryRun"><button data-testid="import-preview" :disabled="busy || !text.trim()" @click="send(true)">Preview (dry run)</button>
          <button class="primary" data-testid="import-confirm" :disabled="busy || !preview" @click="send(false)">Import {{ preview ? preview.created : '' }} devices</button></template>
          <template v-else><span class="small warn">This server cannot preview an import; rows are saved at once.</span>
          <button class="primary" data-testid="import-confirm" :disabled="busy || !text.trim()" @click="send(false)">Import</button></template></div>
      </div>
      <div class="panel" v-if="preview || result" data-testid="import-report">
        <h2>{{ result ? 'Imported' : 'Preview: nothing saved yet' }}</h2>
        <p data-testid="import-summary">{{ (result || preview).created }} {{ result ? 'created' : 'would be created' }} · {{ (result || preview).duplicates.length }} duplicates · {{ (result || preview).errors.length }} errors</p>
        <table class="resp" v-if="(result || preview).errors.length || (result || preview).duplicates.length"><thead><tr><th>Row</th><th>Hostname</th><th>Problem</th></tr></thead><tbody>
          <tr v-for="e in (result || preview).errors" :key="'e' + e.row" data-testid="import-error-row"><td data-label="Row">{{ e.row }}</td><td data-label="Hostname">{{ e.hostname }}</td><td data-label="Problem" class="bad">{{ e.detail }}</td></tr>
          <tr v-for="e in (result || preview).duplicates" :key="'d' + e.row" data-testid="import-duplicate-row"><td data-label="Row">{{ e.row }}</td><td data-label="Hostname">{{ e.hostname }}</td><td data-label="Problem" class="warn">duplicate: {{ e.detail }}</td></tr>
        </tbody></table>
      </div></div>`,
  };
})();
