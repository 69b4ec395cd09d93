'use strict';
// NetRaven web page: tags, credentials (write-only secrets, success rate, last use), users and
// API tokens (a new token is shown once).
(function () {
  const { ref, reactive, computed, watch, onMounted } = Vue;
  const { state, components: C, pages: P } = NR;

  // A paged list whose page number lives in the URL.
  function pagedList(props, path) {
    const page = computed(() => Number(props.query.page) || 1);
    const list = NR.useLoad(() => NR.get(path, { page: page.value, size: 50 }));
    onMounted(list.reload);
    watch(() => props.query, list.reload);
    return { list, go: (p) => NR.setQuery({ page: p }) };
  }

  // ---------------------------------------------------------------- tags
  P.Tags = {
    components: C,
    props: ['query'],
    setup(props) {
      const { list, go } = pagedList(props, 'tags');
      const form = ref(null);
      const error = ref('');
      async function save() {
        error.value = '';
        // PUT replaces the tag: its zone is sent back (only an admin may change it).
        const body = { name: form.value.name.trim(), description: form.value.description || null, zone: (String(form.value.zone || '')).trim() || null };
        try {
          if (form.value.id) await NR.api('PUT', 'tags/' + form.value.id, { body });
          else await NR.api('POST', 'tags', { body });
          state.notice = 'tag ' + body.name + ' saved';
          form.value = null;
          list.reload();
        } catch (e) {
          error.value = e.message;
        }
      }
      async function remove(t) {
        if (!confirm('Delete tag ' + t.name + '?')) return;
        try {
          await NR.api('DELETE', 'tags/' + t.id);
          list.reload();
        } catch (e) {
          error.value = e.message;
        }
      }
      return { list, go, form, error, save, remove, NR };
    },
    template: `<div data-testid="page-tags">
      <div class="bar"><h1 class="grow" style="margin:0">Tags</h1><button v-if="NR.can('operator')" class="primary" data-testid="tag-add" @click="form = { name: '', description: '', zone: '' }">New tag</button></div>
      <ErrorBox :msg="list.error.value || (!form && error)"/>
      <div class="panel" v-if="list.data.value">
        <table class="resp" data-testid="tag-table"><thead><tr><th>Name</th><th>Description</th><th>Zone</th><th>Devices</th><th v-if="NR.can('operator')"></th></tr></thead><tbody>
          <tr v-for="t in list.data.value.items" :key="t.id" data-testid="tag-row">
            <td data-label="Name"><span class="tag">{{ t.name }}</span></td>
            <td data-label="Description">{{ t.description }}</td>
            <td data-label="Zone" data-testid="tag-zone-shown">{{ t.zone || '' }}</td>
            <td data-label="Devices"><a :href="NR.href('/devices', { tag: t.name })" data-testid="tag-devices">devices</a></td>
            <td v-if="NR.can('operator')"><button data-testid="tag-edit" @click="form = { id: t.id, name: t.name, description: t.description, zone: t.zone || '' }">Edit</button> <button class="danger" data-testid="tag-delete" @click="remove(t)">Delete</button></td>
          </tr></tbody></table>
        <Pager :p="list.data.value" testid="tags" @go="go"/>
      </div>
      <Modal v-if="form" :title="form.id ? 'Edit tag' : 'New tag'" testid="tag-form" @close="form = null">
        <ErrorBox :msg="error"/>
        <form class="form" @submit.prevent="save">
          <label>Name<input data-testid="tag-name" v-model="form.name" required></label>
          <label class="wide">Description<input data-testid="tag-description" v-model="form.description"></label>
          <label v-if="NR.can('admin')">Zone (its devices' site; empty: default)<input data-testid="tag-zone" v-model="form.zone" pattern="([a-z0-9_]|-){1,63}" placeholder="default"></label>
          <div class="wide"><button class="primary" type="submit" data-testid="tag-save">Save</button></div></form></Modal>
    </div>`,
  };

  // ---------------------------------------------------------------- credentials
  P.Credentials = {
    components: C,
    props: ['query'],
    setup(props) {
      const { list, go } = pagedList(props, 'credentials');
      const form = ref(null);
      const error = ref('');
      const edit = (c) =>
        (form.value = c
          ? { id: c.id, name: c.name, username: c.username, password: '', enable_secret: '', clear_enable: false, has_enable: c.has_enable_secret, priority: c.priority, tags: c.tags.join(', '), description: c.description || '' }
          : { name: '', username: '', password: '', enable_secret: '', priority: 100, tags: '', description: '' });
      async function save() {
        error.value = '';
        const f = form.value;
        const body = {
          name: f.name.trim(), username: f.username.trim(), priority: Number(f.priority) || 100,
          tags: f.tags.split(/[,;]/).map((t) => t.trim()).filter(Boolean), description: f.description || null,
          create_missing_tags: true,
        };
        // Secrets are write-only: sent only when typed; an edit with empty fields keeps them.
        if (f.password) body.password = f.password;
        if (f.enable_secret) body.enable_secret = f.enable_secret;
        if (f.id && f.clear_enable) body.clear_enable_secret = true;
        try {
          if (f.id) await NR.api('PUT', 'credentials/' + f.id, { body });
          else await NR.api('POST', 'credentials', { body });
          state.notice = 'credential ' + body.name + ' saved';
          form.value = null;
          list.reload();
        } catch (e) {
          error.value = e.message;
        }
      }
      async function remove(c) {
        if (!confirm('Delete credential ' + c.name + '?')) return;
        try {
          await NR.api('DELETE', 'credentials/' + c.id);
          list.reload();
        } catch (e) {
          error.value = e.message;
        }
      }
      return { list, go, form, error, edit, save, remove, NR };
    },
    template: `<div data-testid="page-credentials">
      <div class="bar"><h1 class="grow" style="margin:0">Credentials</h1><button v-if="NR.can('admin')" class="primary" data-testid="credential-add" @click="edit(null)">New credential</button></div>
      <p class="small muted">Secrets are write-only: nobody can read them back through NetRaven. Devices use the credential pinned on them first, then those sharing a tag, lowest priority first.</p>
      <ErrorBox :msg="list.error.value || (!form && error)"/>
      <div class="panel" v-if="list.data.value">
        <table class="resp" data-testid="credential-table"><thead><tr><th>Name</th><th>User</th><th>Priority</th><th>Tags</th><th>Success rate</th><th>Last used</th><th v-if="NR.can('admin')"></th></tr></thead><tbody>
          <tr v-for="c in list.data.value.items" :key="c.id" data-testid="credential-row">
            <td data-label="Name">{{ c.name }} <span v-if="c.has_enable_secret" class="badge">enable</span></td>
            <td data-label="User" class="mono">{{ c.username }}</td>
            <td data-label="Priority">{{ c.priority }}</td>
            <td data-label="Tags"><span class="tag" v-for="t in c.tags" :key="t">{{ t }}</span></td>
            <td data-label="Success rate" data-testid="credential-rate">{{ c.success_count + c.failure_count ? Math.round(c.success_rate * 100) + '% of ' + (c.success_count + c.failure_count) : 'never tried' }}</td>
            <td data-label="Last used"><Time :t="c.last_used"/></td>
            <td v-if="NR.can('admin')"><button data-testid="credential-edit" @click="edit(c)">Edit</button> <button class="danger" data-testid="credential-delete" @click="remove(c)">Delete</button></td>
          </tr></tbody></table>
        <Pager :p="list.data.value" testid="credentials" @go="go"/>
      </div>
      <Modal v-if="form" :title="form.id ? 'Edit credential' : 'New credential'" testid="credential-form" @close="form = null">
        <ErrorBox :msg="error"/>
        <form class="form" @submit.prevent="save" autocomplete="off">
          <label>Name<input data-testid="credential-name" v-model="form.name" required></label>
          <label>User name<input data-testid="credential-username" v-model="form.username" required autocomplete="off"></label>
          <label>Password<input type="password" data-testid="credential-password" v-model="form.password" :required="!form.id" autocomplete="new-password" :placeholder="form.id ? 'unchanged' : ''"></label>
          <label>Enable secret<input type="password" data-testid="credential-enable" v-model="form.enable_secret" autocomplete="new-password" :placeholder="form.has_enable ? 'unchanged' : 'none'"></label>
          <label class="check" v-if="form.id && form.has_enable"><input type="checkbox" data-testid="credential-clear-enable" v-model="form.clear_enable"> remove the enable secret</label>
          <label>Priority (lower first)<input type="number" data-testid="credential-priority" v-model="form.priority"></label>
          <label class="wide">Tags (comma-separated)<input data-testid="credential-tags" v-model="form.tags"></label>
          <label class="wide">Description<input data-testid="credential-description" v-model="form.description"></label>
          <div class="wide"><button class="primary" type="submit" data-testid="credential-save">Save</button></div></form></Modal>
    </div>`,
  };

  // ---------------------------------------------------------------- users and tokens
  P.Users = {
    components: C,
    props: ['query'],
    setup(props) {
      const { list, go } = pagedList(props, 'users');
      const form = ref(null);
      const error = ref('');
      const tokUser = ref(null);
      const tokens = ref([]);
      const tokName = ref('');
      const tokDays = ref('');
      const newToken = ref(null);
      async function save() {
        error.value = '';
        const f = form.value;
        try {
          if (f.id) {
            const body = { username: f.username, role: f.role, active: f.active };
            if (f.password) body.password = f.password;
            await NR.api('PUT', 'users/' + f.id, { body });
          } else await NR.api('POST', 'users', { body: { username: f.username.trim(), password: f.password, role: f.role, active: f.active } });
          state.notice = 'user ' + f.username + ' saved';
          form.value = null;
          list.reload();
        } catch (e) {
          error.value = e.message;
        }
      }
      async function remove(u) {
        if (!confirm('Delete user ' + u.username + ' and their tokens?')) return;
        try {
          await NR.api('DELETE', 'users/' + u.id);
          list.reload();
        } catch (e) {
          error.value = e.message;
        }
      }
      async function showTokens(u) {
        tokUser.value = u;
        newToken.value = null;
        try {
          tokens.value = (await NR.get('tokens', { user_id: u.id })).items;
        } catch (e) {
          error.value = e.message;
        }
      }
      async function createToken() {
        try {
          const body = { name: tokName.value.trim(), user_id: tokUser.value.id };
          if (Number(tokDays.value)) body.expires_in_days = Number(tokDays.value);
          newToken.value = await NR.api('POST', 'tokens', { body });
          tokName.value = '';
          tokens.value = (await NR.get('tokens', { user_id: tokUser.value.id })).items;
        } catch (e) {
          error.value = e.message;
        }
      }
      async function revoke(t) {
        if (!confirm('Revoke token ' + t.name + '?')) return;
        try {
          await NR.api('DELETE', 'tokens/' + t.id);
          tokens.value = tokens.value.filter((x) => x.id !== t.id);
        } catch (e) {
          error.value = e.message;
        }
      }
      return { list, go, form, error, save, remove, tokUser, tokens, tokName, tokDays, newToken, showTokens, createToken, revoke, NR, state };
    },
    template: `<div data-testid="page-users">
      <div class="bar"><h1 class="grow" style="margin:0">Users and API tokens</h1><button class="primary" data-testid="user-add" @click="form = { username: '', password: '', role: 'viewer', active: true }">New user</button></div>
      <ErrorBox :msg="list.error.value || (!form && error)"/>
      <div class="panel" v-if="list.data.value">
        <table class="resp" data-testid="user-table"><thead><tr><th>User</th><th>Role</th><th>Active</th><th>Created</th><th></th></tr></thead><tbody>
          <tr v-for="u in list.data.value.items" :key="u.id" data-testid="user-row">
            <td data-label="User">{{ u.username }} <span v-if="u.id === state.user.id" class="badge">you</span></td>
            <td data-label="Role"><span class="badge">{{ u.role }}</span></td>
            <td data-label="Active">{{ u.active ? 'yes' : 'no' }}</td>
            <td data-label="Created"><Time :t="u.created_at"/></td>
            <td><button data-testid="user-edit" @click="form = { id: u.id, username: u.username, password: '', role: u.role, active: u.active }">Edit</button>
              <button data-testid="user-tokens" @click="showTokens(u)">Tokens</button>
              <button class="danger" data-testid="user-delete" @click="remove(u)">Delete</button></td>
          </tr></tbody></table>
        <Pager :p="list.data.value" testid="users" @go="go"/>
      </div>
      <div class="panel" v-if="tokUser" data-testid="token-panel">
        <h2>API tokens of {{ tokUser.username }}</h2>
        <div v-if="newToken" class="notice" data-testid="token-once">Copy this token now; it is not shown again:
          <div class="secret-once" data-testid="token-value">{{ newToken.token }}</div>
          <button data-testid="token-copy" @click="NR.copy(newToken.token)">Copy</button></div>
        <table class="resp" data-testid="token-table"><thead><tr><th>Name</th><th>Created</th><th>Last used</th><th>Expires</th><th></th></tr></thead><tbody>
          <tr v-for="t in tokens" :key="t.id" data-testid="token-row">
            <td data-label="Name">{{ t.name }}</td><td data-label="Created"><Time :t="t.created_at"/></td><td data-label="Last used"><Time :t="t.last_used"/></td><td data-label="Expires"><Time :t="t.expires_at"/></td>
            <td><button class="danger" data-testid="token-revoke" @click="revoke(t)">Revoke</button></td></tr></tbody></table>
        <p class="empty" v-if="!tokens.length">No tokens.</p>
        <form class="bar" @submit.prevent="createToken"><label>Name<input data-testid="token-name" v-model="tokName" required></label>
          <label>Expires in days (empty: never)<input type="number" min="1" max="3650" data-testid="token-days" v-model="tokDays"></label>
          <button class="primary" type="submit" data-testid="token-create">Create token</button></form>
      </div>
      <Modal v-if="form" :title="form.id ? 'Edit ' + form.username : 'New user'" testid="user-form" @close="form = null">
        <ErrorBox :msg="error"/>
        <form class="form" @submit.prevent="save" autocomplete="off">
          <label>User name<input data-testid="user-username" v-model="form.username" :disabled="!!form.id" required></label>
          <label>Password (at least 8)<input type="password" data-testid="user-password" v-model="form.password" :required="!form.id" autocomplete="new-password" :placeholder="form.id ? 'unchanged' : ''"></label>
          <label>Role<select data-testid="user-role-select" v-model="form.role"><option value="viewer">viewer</option><option value="operator">operator</option><option value="admin">admin</option></select></label>
          <label class="check"><input type="checkbox" data-testid="user-active" v-model="form.active"> active</label>
          <div class="wide"><button class="primary" type="submit" data-testid="user-save">Save</button></div></form></Modal>
    </div>`,
  };
})();
