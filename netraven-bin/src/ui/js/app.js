'use strict';
// NetRaven web page, root: login, the layout with role-aware navigation, the route table, mount.
(function () {
  const { createApp, computed, ref, onMounted, watch } = Vue;
  const { state, components: C, pages: P } = NR;

  P.Login = {
    setup() {
      const username = ref('');
      const password = ref('');
      const error = ref('');
      const busy = ref(false);
      const expired = computed(() => !!state.route.query.expired);
      async function submit() {
        busy.value = true;
        error.value = '';
        try {
          const t = await NR.api('POST', 'auth/token', { body: { username: username.value, password: password.value }, login: true });
          NR.setToken(t.access_token);
          const me = await NR.get('auth/me');
          state.user = me.user;
          await NR.loadFeatures();
          const next = state.route.query.next;
          NR.go(next && next.startsWith('/') && !next.startsWith('/login') ? next : '/');
        } catch (e) {
          error.value = e.message;
        } finally {
          busy.value = false;
        }
      }
      return { username, password, error, busy, submit, expired };
    },
    components: C,
    template: `<form class="panel login" data-testid="login-form" @submit.prevent="submit">
      <h1>NetRaven</h1>
      <p v-if="expired" class="muted" data-testid="login-expired">Your session has ended. Log in to return to the page you were on.</p>
      <ErrorBox :msg="error"/>
      <label>User name<input data-testid="login-username" v-model="username" autocomplete="username" required autofocus></label>
      <label>Password<input data-testid="login-password" type="password" v-model="password" autocomplete="current-password" required></label>
      <button class="primary" data-testid="login-submit" type="submit" :disabled="busy">Log in</button>
    </form>`,
  };

  // Routes: pattern segments starting with ':' are parameters. `role` is the least role the
  // page is useful for; lower roles see a notice instead of requests they may not make.
  const ROUTES = [
    ['/', 'Dashboard', 'viewer'],
    ['/devices', 'Devices', 'viewer'],
    ['/devices/:id', 'DeviceDetail', 'viewer'],
    ['/import', 'Import', 'operator'],
    ['/jobs', 'Jobs', 'viewer'],
    ['/jobs/new', 'JobEdit', 'operator'],
    ['/jobs/:id', 'JobEdit', 'viewer'],
    ['/runs', 'Runs', 'viewer'],
    ['/runs/:id', 'RunDetail', 'viewer'],
    ['/search', 'Search', 'viewer'],
    ['/snapshots/:id', 'Snapshot', 'viewer'],
    ['/diff', 'Diff', 'viewer'],
    ['/logs', 'Logs', 'viewer'],
    ['/tags', 'Tags', 'operator'],
    ['/credentials', 'Credentials', 'admin'],
    ['/users', 'Users', 'admin'],
  ];
  function match(path) {
    const segs = path.split('/').filter(Boolean);
    for (const [pat, page, role] of ROUTES) {
      const ps = pat.split('/').filter(Boolean);
      if (ps.length !== segs.length) continue;
      const params = {};
      if (ps.every((p, i) => (p.startsWith(':') ? ((params[p.slice(1)] = decodeURIComponent(segs[i])), true) : p === segs[i])))
        return { page, role, params };
    }
    return null;
  }

  const NAV = [
    ['dashboard', '/', 'Dashboard', 'viewer'],
    ['devices', '/devices', 'Devices', 'viewer'],
    ['jobs', '/jobs', 'Jobs', 'viewer'],
    ['runs', '/runs', 'Runs', 'viewer'],
    ['search', '/search', 'Search', 'viewer'],
    ['logs', '/logs', 'Logs', 'viewer'],
    ['credentials', '/credentials', 'Credentials', 'admin'],
    ['tags', '/tags', 'Tags', 'operator'],
    ['users', '/users', 'Users', 'admin'],
  ];

  const App = {
    components: Object.assign({}, C, P),
    setup() {
      const ready = ref(false);
      const matched = computed(() => match(state.route.path));
      const nav = computed(() => NAV.filter((n) => NR.can(n[3])));
      const active = (path) => (path === '/' ? state.route.path === '/' : state.route.path.startsWith(path));
      async function loadMe() {
        if (!state.token) {
          ready.value = true;
          if (state.route.path !== '/login') NR.go('/login', { next: state.route.full });
          return;
        }
        try {
          state.user = (await NR.get('auth/me')).user;
          await NR.loadFeatures();
        } catch (e) {
          if (e.status !== 401) state.notice = e.message;
        }
        ready.value = true;
      }
      onMounted(loadMe);
      // Someone opening a page without a session is sent to log in, then back.
      watch(
        () => state.route.path,
        (p) => {
          if (ready.value && !state.token && p !== '/login') NR.go('/login', { next: state.route.full });
        },
      );
      function logout() {
        NR.setToken(null);
        state.user = null;
        NR.go('/login');
      }
      function cycleTheme() {
        state.theme = { auto: 'dark', dark: 'light', light: 'auto' }[state.theme] || 'auto';
        NR.applyTheme();
      }
      let noticeTimer;
      watch(
        () => state.notice,
        (n) => {
          clearTimeout(noticeTimer);
          if (n) noticeTimer = setTimeout(() => (state.notice = ''), 4000);
        },
      );
      return { state, ready, matched, nav, active, logout, cycleTheme, NR };
    },
    template: `<div>
      <header class="topbar" v-if="state.user">
        <a class="brand" :href="NR.href('/')" data-testid="brand"><img src="assets/favicon.svg" alt="">NetRaven</a>
        <nav class="nav" data-testid="nav">
          <a v-for="n in nav" :key="n[0]" :href="NR.href(n[1])" :class="{ on: active(n[1]) }" :data-testid="'nav-' + n[0]">{{ n[2] }}</a>
        </nav>
        <div class="usermenu" data-testid="user-menu">
          <span data-testid="user-name">{{ state.user.username }}</span>
          <span class="badge" data-testid="user-role">{{ state.user.role }}</span>
          <button data-testid="theme-toggle" @click="cycleTheme" :title="'theme: ' + state.theme">{{ state.theme === 'dark' ? '☾' : state.theme === 'light' ? '☀' : '◐' }}</button>
          <button data-testid="logout" @click="logout">Log out</button>
        </div>
      </header>
      <main>
        <div v-if="state.notice" class="notice" data-testid="notice">{{ state.notice }}</div>
        <template v-if="!ready"><p class="muted">Loading…</p></template>
        <Login v-else-if="!state.user || state.route.path === '/login'"/>
        <template v-else-if="!matched"><h1>Not found</h1><p>No page at {{ state.route.path }}. <a :href="NR.href('/')" data-testid="home-link">Dashboard</a></p></template>
        <template v-else-if="!NR.can(matched.role)"><h1>Not allowed</h1><p data-testid="forbidden">This page needs the {{ matched.role }} role; you are {{ state.user.role }}.</p></template>
        <component v-else :is="matched.page" :key="state.route.path" :params="matched.params" :query="state.route.query"/>
      </main>
    </div>`,
  };

  createApp(App).mount('#app');
})();
