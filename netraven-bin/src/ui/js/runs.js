'use strict';
// NetRaven web page: jobs (list, create/edit with a preview of the next fires, run), runs (list,
// live detail with per-device phases and a log pane fed by an authenticated stream) and logs.
(function () {
  const { ref, reactive, computed, watch, onMounted, onBeforeUnmount, nextTick, markRaw } = Vue;
  const { state, components: C, pages: P } = NR;

  // ---------------------------------------------------------------- jobs
  P.Jobs = {
    components: C,
    props: ['query'],
    setup(props) {
      const name = ref(props.query.name || '');
      const page = computed(() => Number(props.query.page) || 1);
      const list = NR.useLoad(() => NR.get('jobs', { name: props.query.name || '', page: page.value, size: 50 }));
      const error = ref('');
      onMounted(list.reload);
      watch(() => props.query, list.reload);
      let timer;
      const onFilter = () => {
        clearTimeout(timer);
        timer = setTimeout(() => NR.setQuery({ name: name.value, page: '' }), 250);
      };
      async function run(j) {
        error.value = '';
        try {
          const r = await NR.api('POST', 'jobs/' + j.id + '/run', {});
          NR.go('/runs/' + r.run_id);
        } catch (e) {
          error.value = e.message;
        }
      }
      async function remove(j) {
        if (!confirm('Delete job ' + j.name + '?')) return;
        try {
          await NR.api('DELETE', 'jobs/' + j.id);
          state.notice = 'job ' + j.name + ' deleted';
          list.reload();
        } catch (e) {
          error.value = e.message;
        }
      }
      return { name, onFilter, list, run, remove, error, NR, go: (p) => NR.setQuery({ page: p }) };
    },
    template: `<div data-testid="page-jobs">
      <div class="bar"><h1 class="grow" style="margin:0">Jobs</h1><a v-if="NR.can('operator')" :href="NR.href('/jobs/new')" data-testid="job-new"><button class="primary" data-testid="job-new-button">New job</button></a></div>
      <ErrorBox :msg="list.error.value || error"/>
      <div class="bar panel"><label>Name<input data-testid="filter-job-name" v-model="name" @input="onFilter" placeholder="contains"></label></div>
      <div class="panel" v-if="list.data.value">
        <table class="resp" data-testid="job-table"><thead><tr><th>Name</th><th>Kind</th><th>Schedule</th><th>Targets</th><th>Enabled</th><th></th></tr></thead><tbody>
          <tr v-for="j in list.data.value.items" :key="j.id" data-testid="job-row">
            <td data-label="Name"><a :href="NR.href('/jobs/' + j.id)" data-testid="job-link">{{ j.name }}</a> <span v-if="j.system" class="badge" data-testid="job-system">system</span></td>
            <td data-label="Kind">{{ j.kind.type }}</td>
            <td data-label="Schedule">{{ NR.scheduleText(j.schedule) }}</td>
            <td data-label="Targets"><span class="tag" v-for="t in j.targets.tags" :key="t">{{ t }}</span><span v-if="j.targets.device_ids.length" class="small">{{ j.targets.device_ids.length }} devices</span></td>
            <td data-label="Enabled">{{ j.enabled ? 'yes' : 'no' }}</td>
            <td><a :href="NR.href('/runs', { job_id: j.id })" data-testid="job-runs">runs</a>
              <template v-if="NR.can('operator')"> · <button class="primary" data-testid="job-run" @click="run(j)">Run</button>
              <button v-if="!j.system" class="danger" data-testid="job-delete" @click="remove(j)">Delete</button></template></td>
          </tr></tbody></table>
        <p class="empty" v-if="!list.data.value.items.length">No jobs.</p>
        <Pager :p="list.data.value" testid="jobs" @go="go"/>
      </div></div>`,
  };

  const zones = (() => {
    try {
      return Intl.supportedValuesOf('timeZone');
    } catch (e) {
      return ['UTC'];
    }
  })();
  const localZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  // datetime-local values are in the browser's zone; the API wants UTC.
  const toLocalInput = (iso) => {
    const d = iso ? new Date(iso) : new Date(Date.now() + 3600e3);
    const p = (n) => String(n).padStart(2, '0');
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes());
  };

  P.JobEdit = {
    components: C,
    props: ['params'],
    setup(props) {
      const isNew = !props.params.id;
      const readonly = !NR.can('operator');
      const j = reactive({
        name: '', description: '', kind: 'backup', commands: '', tags: [], device_ids: [], stype: 'cron',
        seconds: 3600, expression: '0 2 * * *', timezone: localZone, at: toLocalInput(null), enabled: true, overlap: 'forbid', missed: 'run_once', system: false,
      });
      const loaded = ref(isNew);
      const error = ref('');
      const tags = ref([]);
      const preview = ref(null);
      const devQuery = ref('');
      const devFound = ref([]);
      onMounted(async () => {
        NR.getAll('tags', {}, 1000).then((t) => (tags.value = t)).catch(() => {});
        if (isNew) return;
        try {
          const job = await NR.get('jobs/' + props.params.id);
          Object.assign(j, {
            id: job.id, name: job.name, description: job.description || '', kind: job.kind.type,
            commands: (job.kind.commands || []).join('\n'), tags: job.targets.tags.slice(), device_ids: job.targets.device_ids.slice(),
            stype: job.schedule.type, enabled: job.enabled, overlap: job.overlap, missed: job.missed, system: job.system,
          });
          if (job.schedule.type === 'interval') j.seconds = job.schedule.seconds;
          if (job.schedule.type === 'cron') Object.assign(j, { expression: job.schedule.expression, timezone: job.schedule.timezone });
          if (job.schedule.type === 'once') j.at = toLocalInput(job.schedule.at);
          NR.resolveDevices(j.device_ids);
          loaded.value = true;
        } catch (e) {
          error.value = e.message;
        }
      });
      const schedule = computed(() => {
        if (j.stype === 'interval') return { type: 'interval', seconds: Math.max(0, Math.floor(Number(j.seconds) || 0)) };
        if (j.stype === 'cron') return { type: 'cron', expression: j.expression, timezone: j.timezone || 'UTC' };
        if (j.stype === 'once') return { type: 'once', at: new Date(j.at || Date.now()).toISOString() };
        return { type: 'manual' };
      });
      let pseq = 0;
      let ptimer;
      // The next five fire times, asked of the server (which validates like a save would).
      watch(
        schedule,
        (s) => {
          clearTimeout(ptimer);
          ptimer = setTimeout(async () => {
            const my = ++pseq;
            try {
              const r = await NR.api('POST', 'jobs/preview', { body: { schedule: s, count: 5 } });
              if (my === pseq) preview.value = r;
            } catch (e) {
              if (my === pseq) preview.value = { valid: false, detail: e.message, fires: [] };
            }
          }, 300);
        },
        { immediate: true, deep: true },
      );
      let dseq = 0;
      watch(devQuery, async (q) => {
        const my = ++dseq;
        if (!q.trim()) return (devFound.value = []);
        try {
          const p = await NR.get('devices', { hostname: q.trim(), size: 10 });
          NR.learnDevices(p.items);
          if (my === dseq) devFound.value = p.items;
        } catch (e) {
          error.value = e.message;
        }
      });
      const toggleTag = (t) => {
        const i = j.tags.indexOf(t);
        if (i >= 0) j.tags.splice(i, 1);
        else j.tags.push(t);
      };
      const addDevice = (d) => {
        if (!j.device_ids.includes(d.id)) j.device_ids.push(d.id);
        devQuery.value = '';
      };
      async function save(andRun) {
        error.value = '';
        const kind = j.kind === 'command' ? { type: 'command', commands: j.commands.split('\n').map((c) => c.trim()).filter(Boolean) } : { type: j.kind };
        const body = {
          name: j.name.trim(), description: j.description || null, kind, targets: { device_ids: j.device_ids, tags: j.tags },
          schedule: schedule.value, enabled: j.enabled, overlap: j.overlap, missed: j.missed,
          create_missing_tags: true,
        };
        try {
          const saved = j.id ? await NR.api('PUT', 'jobs/' + j.id, { body }) : await NR.api('POST', 'jobs', { body });
          if (andRun) {
            const r = await NR.api('POST', 'jobs/' + saved.id + '/run', {});
            NR.go('/runs/' + r.run_id);
          } else {
            state.notice = 'job ' + saved.name + ' saved';
            NR.go('/jobs/' + saved.id);
          }
        } catch (e) {
          error.value = e.message;
        }
      }
      return { j, isNew, readonly, loaded, error, tags, preview, devQuery, devFound, toggleTag, addDevice, save, zones, NR };
    },
    template: `<div data-testid="page-job-edit">
      <h1>{{ isNew ? 'New job' : (readonly ? 'Job ' : 'Edit job ') + j.name }} <span v-if="j.system" class="badge" data-testid="job-system">system job: it cannot be deleted</span></h1>
      <ErrorBox :msg="error"/>
      <form class="panel" v-if="loaded" @submit.prevent="save(false)"><fieldset :disabled="readonly" style="border:0;padding:0;margin:0;min-width:0">
        <div class="form">
          <label>Name<input data-testid="job-name" v-model="j.name" required></label>
          <label>Kind<select data-testid="job-kind" v-model="j.kind"><option value="backup">backup</option><option value="reachability">reachability</option><option value="command">command</option></select></label>
          <label class="wide">Description<input data-testid="job-description" v-model="j.description"></label>
          <label class="wide" v-if="j.kind === 'command'">Commands (one per line)<textarea data-testid="job-commands" rows="3" v-model="j.commands"></textarea></label>
        </div>
        <h2>Targets</h2>
        <div class="bar"><span class="small muted">Tags:</span>
          <label class="check" v-for="t in tags" :key="t.id"><input type="checkbox" :data-testid="'job-tag-' + t.name" :checked="j.tags.includes(t.name)" @change="toggleTag(t.name)">{{ t.name }}</label></div>
        <div class="bar"><span class="small muted">Devices:</span>
          <span class="tag" v-for="id in j.device_ids" :key="id">{{ NR.deviceNames[id] || ('#' + id) }} <a href="" v-if="!readonly" data-testid="job-device-remove" @click.prevent="j.device_ids.splice(j.device_ids.indexOf(id), 1)">✕</a></span>
          <input v-if="!readonly" data-testid="job-device-search" v-model="devQuery" placeholder="add by hostname"></div>
        <div class="bar" v-if="devFound.length"><button type="button" v-for="d in devFound" :key="d.id" data-testid="job-device-add" @click="addDevice(d)">+ {{ d.hostname }}</button></div>
        <h2>Schedule</h2>
        <div class="form">
          <label>Type<select data-testid="job-schedule-type" v-model="j.stype"><option value="manual">manual</option><option value="interval">interval</option><option value="cron">cron</option><option value="once">once</option></select></label>
          <label v-if="j.stype === 'interval'">Every (seconds, ≥ 60)<input type="number" min="60" data-testid="job-interval" v-model="j.seconds"></label>
          <label v-if="j.stype === 'cron'">Cron (min hour day month weekday)<input class="mono" data-testid="job-cron" v-model="j.expression"></label>
          <label v-if="j.stype === 'cron'">Time zone<input data-testid="job-timezone" v-model="j.timezone" list="nr-zones"><datalist id="nr-zones"><option v-for="z in zones" :key="z" :value="z"></option></datalist></label>
          <label v-if="j.stype === 'once'">At (your time)<input type="datetime-local" data-testid="job-once-at" v-model="j.at"></label>
          <label class="check"><input type="checkbox" data-testid="job-enabled" v-model="j.enabled"> enabled</label>
          <label>If still running<select data-testid="job-overlap" v-model="j.overlap"><option value="forbid">skip the fire</option><option value="allow">run anyway</option><option value="queue">wait for it</option></select></label>
          <label>Missed fires<select data-testid="job-missed" v-model="j.missed"><option value="run_once">run once</option><option value="skip">skip</option></select></label>
        </div>
        <div data-testid="job-next-fires" class="small">
          <template v-if="preview && preview.valid === false"><span class="bad" data-testid="job-schedule-error">{{ preview.detail }}</span></template>
          <template v-else-if="preview && preview.fires.length">Next fires: <ol style="margin:4px 0"><li v-for="f in preview.fires" :key="f" data-testid="job-next-fire"><Time :t="f"/></li></ol></template>
          <span v-else class="muted">{{ j.stype === 'manual' ? 'Runs only when started by hand.' : 'No future fire.' }}</span>
        </div>
        <div class="bar" style="margin-top:10px" v-if="!readonly">
          <button class="primary" type="submit" data-testid="job-save">Save</button>
          <button type="button" data-testid="job-save-run" @click="save(true)">Save and run</button>
          <a v-if="j.id" :href="NR.href('/runs', { job_id: j.id })" data-testid="job-runs">Runs of this job</a></div>
      </fieldset></form></div>`,
  };

  // ---------------------------------------------------------------- runs
  const RUN_STATUSES = ['QUEUED', 'RUNNING', 'COMPLETED_SUCCESS', 'COMPLETED_PARTIAL_FAILURE', 'COMPLETED_FAILURE', 'COMPLETED_NO_DEVICES', 'COMPLETED_NO_CREDENTIALS', 'FAILED_ERROR', 'SKIPPED'];
  P.Runs = {
    components: C,
    props: ['query'],
    setup(props) {
      const jobs = ref([]);
      const page = computed(() => Number(props.query.page) || 1);
      const list = NR.useLoad(() =>
        NR.get('runs', { job_id: props.query.job_id || '', status: props.query.status || '', page: page.value, size: 50 }),
      );
      onMounted(() => {
        list.reload();
        NR.loadJobNames().then((j) => (jobs.value = j)).catch(() => {});
      });
      watch(() => props.query, list.reload);
      NR.every(5000, () => {
        if (list.data.value && list.data.value.items.some((r) => !NR.isFinal(r.status))) list.reload();
      });
      return { list, jobs, RUN_STATUSES, NR, set: (k, v) => NR.setQuery({ [k]: v, page: '' }), go: (p) => NR.setQuery({ page: p }) };
    },
    template: `<div data-testid="page-runs"><h1>Runs</h1>
      <ErrorBox :msg="list.error.value"/>
      <div class="bar panel">
        <label>Job<select data-testid="filter-run-job" :value="query.job_id || ''" @change="set('job_id', $event.target.value)"><option value="">any</option><option v-for="j in jobs" :key="j.id" :value="String(j.id)">{{ j.name }}</option></select></label>
        <label>Status<select data-testid="filter-run-status" :value="query.status || ''" @change="set('status', $event.target.value)"><option value="">any</option><option v-for="s in RUN_STATUSES" :key="s" :value="s">{{ NR.statusLabel(s) }}</option></select></label>
      </div>
      <div class="panel" v-if="list.data.value">
        <table class="resp" data-testid="run-table"><thead><tr><th>Run</th><th>Job</th><th>Trigger</th><th>Status</th><th>Queued</th><th>Duration</th><th>Devices</th></tr></thead><tbody>
          <tr v-for="r in list.data.value.items" :key="r.id" data-testid="run-row">
            <td data-label="Run"><a :href="NR.href('/runs/' + r.id)" data-testid="run-link">#{{ r.id }}</a></td>
            <td data-label="Job"><a :href="NR.href('/jobs/' + r.job_id)" data-testid="run-job-link">{{ NR.jobNames[r.job_id] || ('job ' + r.job_id) }}</a></td>
            <td data-label="Trigger">{{ r.trigger }}</td>
            <td data-label="Status"><Status :s="r.status"/></td>
            <td data-label="Queued"><Time :t="r.queued_at"/></td>
            <td data-label="Duration">{{ r.started_at && r.finished_at ? NR.fmtMs(new Date(r.finished_at) - new Date(r.started_at)) : '—' }}</td>
            <td data-label="Devices">{{ r.counts.succeeded }}/{{ r.counts.total }} ok<span v-if="r.counts.failed" class="bad"> · {{ r.counts.failed }} failed</span><span v-if="r.counts.changed"> · {{ r.counts.changed }} changed</span></td>
          </tr></tbody></table>
        <p class="empty" v-if="!list.data.value.items.length">No runs match.</p>
        <Pager :p="list.data.value" testid="runs" @go="go"/>
      </div></div>`,
  };

  // Follows a run's log stream with fetch (so the Authorization header goes along; EventSource
  // cannot send it). Each entry is passed to onLog once: ids already seen are dropped, and a
  // reconnect resumes after the highest id seen (the server sends ids above it), so nothing is
  // lost or repeated. Within a batch the server orders by time, so ids need not ascend.
  NR.followLogs = (runId, onLog, onEnd, onState) => {
    let lastId = 0;
    const seen = new Set();
    let stopped = false;
    let ctrl = null;
    function handle(block) {
      let ev = 'message';
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith(':')) continue;
        const i = line.indexOf(':');
        const k = i < 0 ? line : line.slice(0, i);
        const v = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
        if (k === 'event') ev = v;
        else if (k === 'data') data.push(v);
      }
      if (!data.length) return;
      const payload = JSON.parse(data.join('\n'));
      if (ev === 'log') {
        if (!seen.has(payload.id)) {
          seen.add(payload.id);
          lastId = Math.max(lastId, payload.id);
          onLog(payload);
        }
      } else if (ev === 'end') {
        stopped = true;
        onEnd(payload);
      }
    }
    (async () => {
      let attempt = 0;
      while (!stopped) {
        ctrl = new AbortController();
        try {
          const res = await fetch('api/logs/stream' + NR.qs({ run_id: runId, after_id: lastId || '' }), {
            headers: { Authorization: 'Bearer ' + state.token, Accept: 'text/event-stream' },
            signal: ctrl.signal,
          });
          if (res.status === 401) return NR.sessionEnded();
          if (!res.ok) throw new Error('the log stream answered ' + res.status);
          onState('live');
          attempt = 0;
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value;
            let m;
            while ((m = /\r?\n\r?\n/.exec(buf))) {
              const block = buf.slice(0, m.index);
              buf = buf.slice(m.index + m[0].length);
              handle(block);
            }
          }
        } catch (e) {
          if (e.name === 'AbortError' || stopped) return;
          onState('reconnecting (' + e.message + ')');
        }
        if (stopped) return;
        onState('reconnecting');
        await new Promise((r) => setTimeout(r, Math.min(5000, 500 * ++attempt)));
      }
    })();
    return () => {
      stopped = true;
      if (ctrl) ctrl.abort();
    };
  };

  const PHASES = ['connect', 'auth', 'fetch', 'commit'];
  // Which phase a log line shows a device has reached.
  function phaseOf(l) {
    if (l.kind === 'connection') return /^logged in/.test(l.message) ? 'auth' : /^connecting/.test(l.message) ? 'connect' : null;
    if (l.kind === 'session') return 'fetch';
    if (l.kind === 'snapshot') return 'commit';
    return null;
  }

  // Whether a log line is a device's final word in its run (the engine's result line).
  const isFinalLine = (l) => l.kind === 'job' && l.device_id != null && l.fields && typeof l.fields.status === 'string';

  P.RunDetail = {
    components: C,
    props: ['params', 'query'],
    setup(props) {
      const id = Number(props.params.id);
      const run = ref(null);
      const job = ref(null);
      // One page (100) of the run's results, filtered by `?result=` and paged by `?page=` on
      // the server: a run of 10,000 devices costs one small request, not a hundred.
      const results = ref(null);
      // Devices whose final result line has been seen: running = seen in the logs, not here.
      const doneIds = markRaw(new Set());
      const error = ref('');
      const streamState = ref('connecting');
      // Log lines are kept outside Vue's reactivity (thousands of rows); `version` signals change.
      const lines = markRaw([]);
      const pending = markRaw([]);
      const version = ref(0);
      const paused = ref(false);
      const level = ref('');
      const follow = ref(true);
      const pane = ref(null);
      const scrollTop = ref(0);
      const devPhase = reactive({});
      const ROW = 18;
      const HEIGHT = 360;
      const LEVELS = { debug: 0, info: 1, warning: 2, error: 3 };

      // Requests still in flight are cancelled when the page is left, so they never hold the
      // browser's connections the next page needs.
      const ctrl = new AbortController();
      let loadSeq = 0;
      async function loadRun() {
        const my = ++loadSeq;
        try {
          const q = props.query || {};
          const [r, rs] = await Promise.all([
            NR.get('runs/' + id, null, ctrl.signal),
            NR.get('job-results', { run_id: id, status: q.result || '', page: Number(q.page) || 1, size: 100 }, ctrl.signal),
          ]);
          if (my !== loadSeq) return;
          run.value = r;
          if (!job.value) NR.get('jobs/' + r.job_id, null, ctrl.signal).then((j) => (job.value = j)).catch(() => {});
          rs.items.forEach((x) => doneIds.add(x.device_id));
          results.value = rs;
          NR.resolveDevices(rs.items.map((x) => x.device_id));
        } catch (e) {
          if (e.name !== 'AbortError' && my === loadSeq) error.value = e.message;
        }
      }
      let idSum = 0;
      function take(l) {
        lines.push(Object.freeze(l));
        idSum += l.id;
        const ph = phaseOf(l);
        if (l.device_id != null) {
          const d = devPhase[l.device_id] || (devPhase[l.device_id] = { reached: [], last: '' });
          if (ph && !d.reached.includes(ph)) d.reached.push(ph);
          d.last = l.message;
          if (isFinalLine(l)) doneIds.add(l.device_id);
        }
      }
      function onLog(l) {
        if (paused.value) pending.push(l);
        else take(l);
        version.value++;
      }
      let refreshTimer = null;
      const refreshSoon = () => {
        if (!refreshTimer) refreshTimer = setTimeout(() => ((refreshTimer = null), loadRun()), 700);
      };
      watch(version, () => {
        refreshSoon();
        const ids = lines.slice(-50).map((l) => l.device_id);
        NR.resolveDevices(ids);
        if (follow.value && !paused.value) nextTick(() => pane.value && (pane.value.scrollTop = pane.value.scrollHeight));
      });
      let stop = null;
      let poll = null;
      onMounted(() => {
        loadRun();
        stop = NR.followLogs(id, onLog, () => {
          streamState.value = 'ended';
          loadRun();
        }, (s) => (streamState.value = s));
        // Status and results also move without log lines (queued → running).
        poll = setInterval(() => run.value && !NR.isFinal(run.value.status) && loadRun(), 2000);
      });
      onBeforeUnmount(() => {
        stop && stop();
        clearInterval(poll);
        clearTimeout(refreshTimer);
        ctrl.abort();
      });
      watch(() => props.query, loadRun);
      const resume = () => {
        paused.value = false;
        pending.splice(0).forEach(take);
        version.value++;
      };
      const filtered = computed(() => {
        version.value;
        const min = level.value ? LEVELS[level.value] : -1;
        return min < 0 ? lines.slice() : lines.filter((l) => LEVELS[l.level] >= min);
      });
      const visible = computed(() => {
        const all = filtered.value;
        const start = Math.max(0, Math.floor(scrollTop.value / ROW) - 10);
        const end = Math.min(all.length, start + Math.ceil(HEIGHT / ROW) + 20);
        return all.slice(start, end).map((l, k) => ({ l, top: (start + k) * ROW }));
      });
      const onScroll = (e) => {
        scrollTop.value = e.target.scrollTop;
        follow.value = e.target.scrollTop + e.target.clientHeight >= e.target.scrollHeight - ROW;
      };
      const MAX_RUNNING_ROWS = 100;
      // Devices at work now: seen in the logs, no final line or result yet (none once the run is over).
      const runningIds = computed(() => {
        version.value;
        results.value;
        if (!run.value || NR.isFinal(run.value.status)) return [];
        return Object.keys(devPhase).map(Number).filter((did) => !doneIds.has(did)).sort((a, b) => a - b);
      });
      // The running devices first (at most 100, on the first page of the unfiltered list), then
      // this page of results; each device once.
      const rows = computed(() => {
        const q = props.query || {};
        const first = !q.result && (Number(q.page) || 1) === 1;
        const running = first ? runningIds.value.slice(0, MAX_RUNNING_ROWS).map((did) => [did, null]) : [];
        const done = results.value ? results.value.items.map((r) => [r.device_id, r]) : [];
        const seen = new Set();
        return running.concat(done).filter(([did]) => !seen.has(did) && seen.add(did)).map(([did, r]) => {
          const reached = (devPhase[did] && devPhase[did].reached) || [];
          const phases = PHASES.map((p, i) => {
            const done = reached.includes(p) || (r && r.status === 'SUCCESS');
            const firstUndone = PHASES.findIndex((q) => !reached.includes(q));
            return { p, cls: done ? 'done' : r && r.status === 'FAILED' && i === firstUndone ? 'fail' : !r && i === firstUndone ? 'now' : '' };
          });
          return { did, r, phases, last: devPhase[did] && devPhase[did].last };
        });
      });
      const counts = computed(() => {
        const c = run.value ? run.value.counts : { total: 0, succeeded: 0, failed: 0, changed: 0 };
        const done = c.succeeded + c.failed;
        const running = Math.min(runningIds.value.length, Math.max(0, c.total - done));
        return { total: c.total, ok: c.succeeded, failed: c.failed, changed: c.changed, running, queued: Math.max(0, c.total - done - running), done };
      });
      const eta = computed(() => {
        const r = run.value;
        if (!r || NR.isFinal(r.status) || !r.started_at || !counts.value.done) return null;
        const elapsed = Date.now() - new Date(r.started_at).getTime();
        return Math.round(((elapsed / counts.value.done) * (counts.value.total - counts.value.done)) / 1000);
      });
      const canRetry = computed(() => NR.can('operator') && NR.features.adhocRun && run.value && NR.isFinal(run.value.status) && counts.value.failed > 0);
      async function retryFailed() {
        try {
          const failed = (await NR.getAll('job-results', { run_id: id, status: 'FAILED' }, 100000)).map((r) => r.device_id);
          const r = await NR.api('POST', NR.features.adhocRun, { body: { device_ids: failed } });
          NR.go('/runs/' + r.run_id);
        } catch (e) {
          error.value = e.message;
        }
      }
      return {
        id, run, job, results, error, streamState, lines, pending, version, paused, level, follow, pane, visible, filtered, onScroll,
        rows, counts, eta, resume, canRetry, retryFailed, ROW, NR, idSum: () => idSum, runningIds, MAX_RUNNING_ROWS,
        setResult: (v) => NR.setQuery({ result: v, page: '' }),
        go: (p) => NR.setQuery({ page: p }),
      };
    },
    template: `<div data-testid="page-run">
      <ErrorBox :msg="error"/>
      <template v-if="run">
      <div class="bar"><h1 class="grow" style="margin:0">Run #{{ id }} <span class="muted" v-if="job">· <a :href="NR.href('/jobs/' + job.id)" data-testid="run-job">{{ job.name }}</a></span></h1>
        <span class="badge" :class="NR.runClass(run.status)" data-testid="run-status" :data-status="run.status">{{ NR.statusLabel(run.status) }}</span>
        <button v-if="canRetry" data-testid="run-retry-failed" @click="retryFailed">Retry failed devices</button></div>
      <div class="grid" data-testid="run-counts">
        <div class="tile"><div class="l">Queued</div><div class="n" data-testid="count-queued">{{ counts.queued }}</div></div>
        <div class="tile"><div class="l">Running</div><div class="n" data-testid="count-running">{{ counts.running }}</div></div>
        <div class="tile"><div class="l">Ok</div><div class="n ok" data-testid="count-ok">{{ counts.ok }}</div></div>
        <div class="tile"><div class="l">Failed</div><div class="n" :class="{ bad: counts.failed }" data-testid="count-failed">{{ counts.failed }}</div></div>
        <div class="tile"><div class="l">Changed</div><div class="n" data-testid="count-changed">{{ counts.changed }}</div></div>
      </div>
      <div class="panel">
        <div class="progress" data-testid="run-progress"><span class="p-ok" :style="{ width: (counts.total ? counts.ok / counts.total * 100 : 0) + '%' }"></span><span class="p-bad" :style="{ width: (counts.total ? counts.failed / counts.total * 100 : 0) + '%' }"></span></div>
        <p class="small muted" data-testid="run-times">{{ counts.done }} of {{ counts.total }} devices done · queued <Time :t="run.queued_at"/><template v-if="run.started_at"> · started <Time :t="run.started_at"/></template><template v-if="run.finished_at"> · finished <Time :t="run.finished_at"/> ({{ NR.fmtMs(new Date(run.finished_at) - new Date(run.started_at || run.queued_at)) }})</template><template v-if="eta != null"> · about {{ NR.fmtSecs(eta) }} left</template></p>
        <p v-if="run.message" class="warn" data-testid="run-message">{{ run.message }}</p>
      </div>
      <div class="panel"><div class="bar"><h2 class="grow" style="margin:0">Devices</h2>
        <label>Result<select data-testid="run-result-filter" :value="(query && query.result) || ''" @change="setResult($event.target.value)"><option value="">all</option><option value="SUCCESS">ok</option><option value="FAILED">failed</option></select></label></div>
        <table class="resp" data-testid="run-devices"><thead><tr><th>Device</th><th>connect · auth · fetch · commit</th><th>Result</th><th>Duration</th><th>Detail</th></tr></thead><tbody>
          <tr v-for="x in rows" :key="x.did" data-testid="run-device-row" :data-device="x.did" :data-status="x.r ? x.r.status : 'RUNNING'">
            <td data-label="Device"><a :href="NR.href('/devices/' + x.did)" data-testid="run-device-link">{{ NR.deviceNames[x.did] || ('#' + x.did) }}</a></td>
            <td data-label="Phases"><span class="phases" data-testid="run-device-phases"><i v-for="p in x.phases" :key="p.p" :class="p.cls" :title="p.p"></i></span></td>
            <td data-label="Result"><span v-if="x.r" class="badge" :class="NR.runClass(x.r.status)">{{ x.r.status === 'SUCCESS' ? (x.r.changed ? 'changed' : 'ok') : (x.r.error_kind || 'failed') }}</span><span v-else class="badge info">running</span></td>
            <td data-label="Duration">{{ x.r ? NR.fmtMs(x.r.duration_ms) : '' }}</td>
            <td data-label="Detail" class="small">{{ x.r ? x.r.message : x.last }}
              <a v-if="x.r && x.r.snapshot_id" :href="NR.href('/snapshots/' + x.r.snapshot_id)" data-testid="run-device-snapshot">config</a></td>
          </tr></tbody></table>
        <p class="muted small" v-if="runningIds.length > MAX_RUNNING_ROWS" data-testid="run-running-more">and {{ runningIds.length - MAX_RUNNING_ROWS }} more devices at work</p>
        <Pager :p="results" testid="run-results" @go="go"/>
        <p class="muted small" v-if="counts.queued">{{ counts.queued }} more devices waiting for a worker.</p>
      </div>
      <div class="panel"><div class="bar"><h2 class="grow" style="margin:0">Log</h2>
        <span class="small muted" data-testid="log-stream-state">{{ streamState }}</span>
        <label>Level<select data-testid="log-level" v-model="level"><option value="">all</option><option value="info">info+</option><option value="warning">warning+</option><option value="error">error</option></select></label>
        <button v-if="!paused" data-testid="log-pause" @click="paused = true">Pause</button>
        <button v-else class="primary" data-testid="log-resume" @click="resume">Resume ({{ pending.length }} new)</button>
        <a :href="NR.href('/logs', { run_id: id })" data-testid="run-logs-link">open in Logs</a></div>
        <div class="logpane" ref="pane" @scroll="onScroll" data-testid="log-pane" :data-lines="(version, lines.length)" :data-id-sum="(version, idSum())">
          <div :style="{ height: filtered.length * ROW + 'px', position: 'relative' }">
            <div v-for="v in visible" :key="v.l.id" class="row" :class="'lv-' + v.l.level" :style="{ top: v.top + 'px' }" data-testid="log-line" :title="v.l.message">
              {{ NR.fmtTime(v.l.time).slice(11, 19) }} {{ v.l.level.padEnd(7) }} {{ v.l.device_id != null ? (NR.deviceNames[v.l.device_id] || '#' + v.l.device_id) + ': ' : '' }}{{ v.l.message }}</div>
          </div></div>
        <p class="small muted">{{ lines.length }} lines<template v-if="level"> ({{ filtered.length }} shown)</template></p>
      </div>
      </template>
    </div>`,
  };

  // ---------------------------------------------------------------- logs
  const LOG_FILTERS = ['run_id', 'device_id', 'level', 'kind', 'since', 'until', 'search'];
  P.Logs = {
    components: C,
    props: ['query'],
    setup(props) {
      const f = reactive({});
      const sync = () => LOG_FILTERS.forEach((k) => (f[k] = props.query[k] || ''));
      sync();
      const page = computed(() => Number(props.query.page) || 1);
      const tail = ref(false);
      // since/until inputs are local times; the API takes UTC.
      const toUtc = (v) => (v ? new Date(v).toISOString() : '');
      const list = NR.useLoad(async () => {
        const q = { page: page.value, size: 50 };
        LOG_FILTERS.forEach((k) => props.query[k] && (q[k] = k === 'since' || k === 'until' ? toUtc(props.query[k]) : props.query[k]));
        const p = await NR.get('logs', q);
        NR.resolveDevices(p.items.map((l) => l.device_id));
        return p;
      });
      onMounted(list.reload);
      watch(() => props.query, () => {
        sync();
        list.reload();
      });
      NR.every(3000, () => tail.value && page.value === 1 && list.reload());
      let timer;
      const onFilter = () => {
        clearTimeout(timer);
        timer = setTimeout(() => NR.setQuery(Object.assign({}, f, { page: '' })), 300);
      };
      return { f, onFilter, list, tail, NR, go: (p) => NR.setQuery({ page: p }) };
    },
    template: `<div data-testid="page-logs"><h1>Logs</h1>
      <ErrorBox :msg="list.error.value"/>
      <div class="bar panel">
        <label>Run<input data-testid="filter-log-run" v-model="f.run_id" @input="onFilter" size="6"></label>
        <label>Device id<input data-testid="filter-log-device" v-model="f.device_id" @input="onFilter" size="6"></label>
        <label>Level<select data-testid="filter-log-level" v-model="f.level" @change="onFilter"><option value="">any</option><option value="debug">debug+</option><option value="info">info+</option><option value="warning">warning+</option><option value="error">error</option></select></label>
        <label>Kind<select data-testid="filter-log-kind" v-model="f.kind" @change="onFilter"><option value="">any</option><option v-for="k in ['job','connection','session','snapshot','scheduler','system']" :key="k" :value="k">{{ k }}</option></select></label>
        <label>Since<input type="datetime-local" data-testid="filter-log-since" v-model="f.since" @change="onFilter"></label>
        <label>Until<input type="datetime-local" data-testid="filter-log-until" v-model="f.until" @change="onFilter"></label>
        <label>Text<input data-testid="filter-log-search" v-model="f.search" @input="onFilter" placeholder="contains"></label>
        <label class="check"><input type="checkbox" data-testid="log-tail" v-model="tail"> live tail</label>
      </div>
      <div class="panel" v-if="list.data.value">
        <table class="resp" data-testid="log-table"><thead><tr><th>Time</th><th>Level</th><th>Kind</th><th>Device</th><th>Run</th><th>Message</th></tr></thead><tbody>
          <tr v-for="l in list.data.value.items" :key="l.id" data-testid="log-row">
            <td data-label="Time"><Time :t="l.time"/></td>
            <td data-label="Level" :class="'lv-' + l.level">{{ l.level }}</td>
            <td data-label="Kind">{{ l.kind }}</td>
            <td data-label="Device"><a v-if="l.device_id != null" :href="NR.href('/devices/' + l.device_id)" data-testid="log-device-link">{{ NR.deviceNames[l.device_id] || ('#' + l.device_id) }}</a></td>
            <td data-label="Run"><a v-if="l.run_id != null" :href="NR.href('/runs/' + l.run_id)" data-testid="log-run-link">#{{ l.run_id }}</a></td>
            <td data-label="Message">{{ l.message }}</td>
          </tr></tbody></table>
        <p class="empty" v-if="!list.data.value.items.length">No log entries match.</p>
        <Pager :p="list.data.value" testid="logs" @go="go"/>
      </div></div>`,
  };
})();
