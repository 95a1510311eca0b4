// kern trace explorer: a trace list with filters and a span waterfall with
// a detail panel, over the gateway's JSON API. No dependencies. Data from
// the API only ever reaches the page through textContent / dataset /
// CSSOM, never as markup.
(function () {
  'use strict';

  var API = document.body.dataset.api || 'api';
  var POLL_MS = parseInt(document.body.dataset.pollMs, 10) || 5000;
  var PAGE = 50;
  var RANGES = { '15m': 15 * 60e3, '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3 };
  // AgentOS's node types (the API's span "type") and their badges.
  var TYPE_LABEL = {
    AGENT: 'AGENT', TEAM: 'TEAM', WORKFLOW: 'FLOW', LLM: 'LLM', EMBEDDING: 'EMB', TOOL: 'TOOL',
    RETRIEVER: 'RAG', RERANKER: 'RANK', GUARDRAIL: 'GUARD', EVALUATOR: 'EVAL', PROMPT: 'PROMPT', UNKNOWN: 'SPAN'
  };

  function $(id) { return document.getElementById(id); }

  // el builds an element; props are set as properties (className, title,
  // tabIndex...) except "dataset" and "style" objects; children are nodes or
  // strings (always text nodes).
  function el(tag, props) {
    var e = document.createElement(tag);
    if (props) {
      for (var k in props) {
        if (k === 'dataset') Object.assign(e.dataset, props.dataset);
        else if (k === 'style') Object.assign(e.style, props.style);
        else e[k] = props[k];
      }
    }
    for (var i = 2; i < arguments.length; i++) append(e, arguments[i]);
    return e;
  }

  // append adds a node, a string (as text) or an array of them; null,
  // undefined and false add nothing.
  function append(parent, c) {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) {
      for (var i = 0; i < c.length; i++) append(parent, c[i]);
      return;
    }
    parent.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }

  // ---- formatting ---------------------------------------------------------

  // parseMicros reads the stored ISO 8601 times with their microseconds.
  function parseMicros(s) {
    var m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(s || '');
    if (!m) return Date.parse(s) * 1000;
    var frac = ((m[2] || '') + '000000').slice(0, 6);
    return Date.parse(m[1] + m[3]) * 1000 + parseInt(frac, 10);
  }

  function pad(n, w) { n = String(n); while (n.length < (w || 2)) n = '0' + n; return n; }

  function fmtTime(s) {
    var us = parseMicros(s);
    if (isNaN(us)) return s || '';
    var d = new Date(us / 1000);
    var today = new Date();
    var time = pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) + '.' + pad(d.getMilliseconds(), 3);
    if (d.toDateString() === today.toDateString()) return time;
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + time;
  }

  function fmtDur(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return '';
    if (ms < 1) return (Math.round(ms * 1000) / 1000) + ' ms';
    if (ms < 1000) return Math.round(ms) + ' ms';
    if (ms < 60e3) return (ms / 1000).toFixed(ms < 10e3 ? 2 : 1) + ' s';
    var m = Math.floor(ms / 60e3);
    return m + 'm ' + Math.round((ms - m * 60e3) / 1000) + 's';
  }

  function fmtInt(n) { return Number(n || 0).toLocaleString('en-US'); }

  // ---- API ----------------------------------------------------------------

  var token = '';
  try { token = sessionStorage.getItem('kern.token') || ''; } catch (e) { /* storage disabled */ }

  function ApiError(msg, status) { this.message = msg; this.status = status; }

  function api(path, params, signal) {
    var qs = params ? params.toString() : '';
    var headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    return fetch(API + path + (qs ? '?' + qs : ''), { headers: headers, signal: signal, credentials: 'same-origin' })
      .then(function (res) {
        return res.json().catch(function () { return null; }).then(function (data) {
          if (res.status === 401) {
            $('token-panel').hidden = false;
            throw new ApiError('This gateway requires an API token.', 401);
          }
          if (!res.ok) {
            var msg = data && data.error ? data.error : 'HTTP ' + res.status;
            if (data && data.param) msg += ' (parameter ' + data.param + ')';
            throw new ApiError(msg, res.status);
          }
          return data;
        });
      });
  }

  function isAbort(err) { return err && err.name === 'AbortError'; }

  function setStatus(id, text, isError) {
    var s = $(id);
    s.textContent = text || '';
    s.classList.toggle('error', !!isError);
  }

  // ---- routing ------------------------------------------------------------

  function route() {
    var h = location.hash || '#/';
    var m = /^#\/trace\/([0-9a-fA-F]{32})(?:\/([0-9a-fA-F]{16}))?$/.exec(h);
    if (m) {
      showTrace(m[1].toLowerCase(), m[2] ? m[2].toLowerCase() : '');
      return;
    }
    var q = h.indexOf('?') >= 0 ? h.slice(h.indexOf('?') + 1) : '';
    showList(new URLSearchParams(q));
  }

  // ---- trace list -----------------------------------------------------------

  var FILTERS = [['f-user', 'user_id'], ['f-session', 'session_id'], ['f-agent', 'agent_id'],
    ['f-team', 'team_id'], ['f-status', 'status'], ['f-q', 'q'], ['f-sort', 'sort']];
  var list = { cursor: '', pages: 0, ctrl: null, gen: 0, hashQuery: null, hash: '#/' };

  function showList(q) {
    $('view-trace').hidden = true;
    $('view-list').hidden = false;
    document.title = 'Traces';
    FILTERS.forEach(function (f) { $(f[0]).value = q.get(f[1]) || ''; });
    if (!$('f-sort').value) $('f-sort').value = 'start_time';
    var range = q.get('range') || '24h';
    $('f-range').value = RANGES[range] || range === 'all' || range === 'custom' ? range : '24h';
    $('f-from').value = q.get('from') || '';
    $('f-to').value = q.get('to') || '';
    $('custom-range').hidden = $('f-range').value !== 'custom';
    list.hash = location.hash || '#/';
    var key = q.toString();
    // Coming back from a trace keeps the list as it was.
    if (list.hashQuery === key && list.pages > 0) return;
    list.hashQuery = key;
    loadList(true, false);
    loadSummary();
  }

  // formQuery is the list's state as the hash query.
  function formQuery() {
    var q = new URLSearchParams();
    FILTERS.forEach(function (f) {
      var v = $(f[0]).value.trim();
      if (v && !(f[1] === 'sort' && v === 'start_time')) q.set(f[1], v);
    });
    var range = $('f-range').value;
    if (range !== '24h') q.set('range', range);
    if (range === 'custom') {
      if ($('f-from').value) q.set('from', $('f-from').value);
      if ($('f-to').value) q.set('to', $('f-to').value);
    }
    return q;
  }

  // timeRange turns the picker into RFC 3339 start/end.
  function timeRange() {
    var range = $('f-range').value;
    if (RANGES[range]) return { start: new Date(Date.now() - RANGES[range]).toISOString(), end: '' };
    if (range === 'custom') {
      var from = $('f-from').value ? new Date($('f-from').value) : null;
      var to = $('f-to').value ? new Date($('f-to').value) : null;
      return {
        start: from && !isNaN(from) ? from.toISOString() : '',
        end: to && !isNaN(to) ? to.toISOString() : ''
      };
    }
    return { start: '', end: '' };
  }

  function listParams() {
    var p = new URLSearchParams();
    FILTERS.forEach(function (f) {
      var v = $(f[0]).value.trim();
      if (v) p.set(f[1], v);
    });
    var r = timeRange();
    if (r.start) p.set('start', r.start);
    if (r.end) p.set('end', r.end);
    p.set('limit', String(PAGE));
    return p;
  }

  function loadList(reset, quiet) {
    if (list.ctrl) list.ctrl.abort();
    var ctrl = new AbortController();
    list.ctrl = ctrl;
    var gen = ++list.gen;
    var p = listParams();
    if (!reset && list.cursor) p.set('cursor', list.cursor);
    if (!quiet) setStatus('list-status', 'Loading…');
    api('/traces', p, ctrl.signal).then(function (data) {
      if (gen !== list.gen) return;
      var body = $('trace-rows');
      var frag = document.createDocumentFragment();
      data.traces.forEach(function (t) { frag.appendChild(traceRow(t)); });
      if (reset) {
        body.replaceChildren(frag);
        list.pages = 1;
      } else {
        body.appendChild(frag);
        list.pages++;
      }
      list.cursor = data.next_cursor || '';
      $('load-more').hidden = !list.cursor;
      var n = body.children.length;
      setStatus('list-status', n === 0 ? 'No traces match.' :
        n + (n === 1 ? ' trace' : ' traces') + (list.cursor ? ' shown; more below' : '') +
        ($('f-live').checked && list.pages === 1 ? ' · live' : ''));
    }).catch(function (err) {
      if (isAbort(err) || gen !== list.gen) return;
      setStatus('list-status', 'Could not load traces: ' + err.message, true);
    });
  }

  function traceRow(t) {
    var who = t.team_id ? 'team ' + t.team_id : (t.agent_id || t.workflow_id || '');
    var tr = el('tr', { className: 'trace-row' + (t.status === 'ERROR' ? ' error' : ''), tabIndex: 0,
      dataset: { traceId: t.trace_id, testid: 'trace-row', status: t.status } },
    el('td', { title: t.start_time }, fmtTime(t.start_time)),
    el('td', { className: 'name' }, t.name),
    el('td', null, el('span', { className: 'pill ' + t.status }, t.status)),
    el('td', { className: 'num' }, fmtDur(t.duration_ms)),
    el('td', null, t.user_id || ''),
    el('td', null, t.session_id || ''),
    el('td', null, who),
    el('td', { className: 'mono', title: t.trace_id }, t.trace_id.slice(0, 12) + '…'));
    return tr;
  }

  var summaryCtrl = null;
  function loadSummary() {
    if (summaryCtrl) summaryCtrl.abort();
    summaryCtrl = new AbortController();
    var r = timeRange();
    var label = { '15m': 'last 15 min', '1h': 'last hour', '24h': 'last 24 h', '7d': 'last 7 days', custom: 'selected range' }[$('f-range').value];
    if (!label) { // all time: the summary stays bounded to a week
      r = { start: new Date(Date.now() - RANGES['7d']).toISOString(), end: '' };
      label = 'last 7 days';
    }
    var p = new URLSearchParams();
    if (r.start) p.set('start', r.start);
    if (r.end) p.set('end', r.end);
    api('/summary', p, summaryCtrl.signal).then(function (s) {
      var box = $('summary');
      var parts = [
        el('span', null, label + ': ', el('b', null, fmtInt(s.trace_count)), ' traces'),
        el('span', { className: s.error_count ? 'err' : '' }, el('b', null, fmtInt(s.error_count)),
          ' errors (' + (s.error_rate * 100).toFixed(1) + '%)'),
        el('span', null, 'p50 ', el('b', null, s.duration_p50_ms === null ? '–' : fmtDur(s.duration_p50_ms))),
        el('span', null, 'p95 ', el('b', null, s.duration_p95_ms === null ? '–' : fmtDur(s.duration_p95_ms)))
      ];
      s.tokens_by_model.forEach(function (m) {
        parts.push(el('span', { title: fmtInt(m.input_tokens) + ' in / ' + fmtInt(m.output_tokens) + ' out, ' + fmtInt(m.calls) + ' calls' },
          (m.model || 'unknown model') + ' ', el('b', null, fmtInt(m.total_tokens)), ' tokens'));
      });
      box.replaceChildren.apply(box, parts);
    }).catch(function (err) {
      if (!isAbort(err)) $('summary').replaceChildren(el('span', null, 'summary unavailable: ' + err.message));
    });
  }

  // ---- trace view -----------------------------------------------------------

  var view = { id: '', data: null, nodes: {}, selected: '', ctrl: null };

  function showTrace(id, spanId) {
    // "All traces" goes back to the list as it was filtered.
    $('back-link').href = list.hash || '#/';
    $('view-list').hidden = true;
    $('view-trace').hidden = false;
    if (view.id === id && view.data) {
      if (spanId) select(spanId, false);
      return;
    }
    view.id = id;
    view.data = null;
    view.nodes = {};
    view.selected = '';
    $('trace-title').textContent = id;
    $('trace-meta').replaceChildren();
    $('wf-rows').replaceChildren();
    $('wf-axis').replaceChildren();
    $('detail').replaceChildren(el('p', { className: 'muted' }, 'Select a span to see its details.'));
    loadTrace(spanId);
  }

  function loadTrace(spanId) {
    if (view.ctrl) view.ctrl.abort();
    var ctrl = new AbortController();
    view.ctrl = ctrl;
    var id = view.id;
    setStatus('trace-status', 'Loading…');
    api('/traces/' + id, null, ctrl.signal).then(function (d) {
      if (id !== view.id) return;
      view.data = d;
      renderTrace(d);
      setStatus('trace-status', d.truncated ? 'Showing the first ' + d.span_count + ' spans of a larger trace.' : '');
      var first = spanId || view.selected || (d.spans[0] && d.spans[0].span_id);
      if (first) select(first, false);
    }).catch(function (err) {
      if (isAbort(err)) return;
      setStatus('trace-status', err.status === 404 ? 'Trace ' + id + ' was not found.' : 'Could not load the trace: ' + err.message, true);
    });
  }

  function idLink(label, key, value) {
    if (!value) return null;
    var q = new URLSearchParams();
    q.set(key, value);
    q.set('range', 'all');
    return el('span', null, label + ' ', el('a', { href: '#/?' + q.toString(), dataset: { testid: 'meta-' + key } }, value));
  }

  function renderTrace(d) {
    var t = d.trace;
    document.title = t.name + ' · trace';
    $('trace-title').textContent = t.name;
    var meta = $('trace-meta');
    meta.replaceChildren();
    append(meta, [
      el('span', { className: 'pill ' + t.status, dataset: { testid: 'trace-status' } }, t.status),
      el('span', null, fmtDur(t.duration_ms)),
      el('span', { title: t.start_time }, fmtTime(t.start_time)),
      el('span', null, d.span_count + ' spans'),
      idLink('user', 'user_id', t.user_id), idLink('session', 'session_id', t.session_id),
      idLink('agent', 'agent_id', t.agent_id), idLink('team', 'team_id', t.team_id),
      idLink('workflow', 'workflow_id', t.workflow_id),
      t.run_id ? el('span', null, 'run ' + t.run_id) : null,
      el('span', { className: 'mono' }, t.trace_id)]);

    // The timeline spans the trace row and every span (orphans may lie
    // outside the trace row's range while it is still being assembled).
    var t0 = parseMicros(t.start_time), t1 = parseMicros(t.end_time);
    walk(d.spans, function (s) {
      var a = parseMicros(s.start_time), b = parseMicros(s.end_time);
      if (a < t0) t0 = a;
      if (b > t1) t1 = b;
    });
    var total = Math.max(t1 - t0, 1);

    var axis = $('wf-axis');
    axis.replaceChildren();
    for (var i = 0; i <= 4; i++) {
      axis.appendChild(el('span', { style: { left: (i * 25) + '%' } }, fmtDur(total / 1000 * i / 4)));
    }

    // Errors below each node, so a collapsed node can say it hides one.
    var errBelow = {};
    (function count(nodes) {
      var sum = 0;
      for (var j = 0; j < nodes.length; j++) {
        var n = nodes[j];
        var c = n.children ? count(n.children) : 0;
        errBelow[n.span_id] = c;
        sum += c + (n.status_code === 'ERROR' ? 1 : 0);
      }
      return sum;
    })(d.spans);

    // Build the whole tree into one fragment: one layout for any size.
    var frag = document.createDocumentFragment();
    var stack = [];
    for (var r = d.spans.length - 1; r >= 0; r--) stack.push({ n: d.spans[r], depth: 0, into: frag, parent: '' });
    view.nodes = {};
    while (stack.length) {
      var it = stack.pop();
      var built = spanNode(it.n, it.depth, t0, total, errBelow[it.n.span_id]);
      built.parent = it.parent;
      view.nodes[it.n.span_id] = built;
      it.into.appendChild(built.wrap);
      var kids = it.n.children || [];
      for (var k = kids.length - 1; k >= 0; k--) {
        stack.push({ n: kids[k], depth: it.depth + 1, into: built.kids, parent: it.n.span_id });
      }
    }
    $('wf-rows').replaceChildren(frag);
  }

  function walk(nodes, fn) {
    var stack = nodes.slice();
    while (stack.length) {
      var n = stack.pop();
      fn(n);
      if (n.children) for (var i = 0; i < n.children.length; i++) stack.push(n.children[i]);
    }
  }

  // spanType is the node type the waterfall draws ("UNKNOWN" for one a
  // sender invented).
  function spanType(s) { return TYPE_LABEL[s.type] ? s.type : 'UNKNOWN'; }

  // factType is the gateway's finer type from the span's facts: run, llm,
  // tool, pre_hook, post_hook, retrieval, delegation, embedding, other.
  function factType(s) { return (s.facts && s.facts.type) || 'other'; }

  function spanNode(s, depth, t0, total, errs) {
    var type = spanType(s);
    var hasKids = !!(s.children && s.children.length);
    // A team delegation's sub-run starts folded: the leader's flow reads first.
    var collapsed = hasKids && factType(s) === 'delegation';
    var isErr = s.status_code === 'ERROR';

    var toggle = el('button', { type: 'button', className: 'toggle' + (hasKids ? '' : ' leaf'), tabIndex: -1,
      dataset: { testid: 'toggle' }, title: collapsed ? 'Expand' : 'Collapse' }, hasKids ? (collapsed ? '▸' : '▾') : '');
    var inner = el('span', { className: 'inner-error', dataset: { testid: 'inner-error' },
      title: 'Errors inside this collapsed span' }, '⚠ ' + errs);
    inner.hidden = !(collapsed && errs > 0);
    var label = el('div', { className: 'span-label', style: { paddingLeft: (4 + depth * 16) + 'px' } },
      toggle,
      el('span', { className: 'badge t-' + type.toLowerCase(), title: (s.type || 'UNKNOWN') + ' · ' + factType(s) }, TYPE_LABEL[type]),
      el('span', { className: 'name', title: s.name }, s.name),
      s.orphan ? el('span', { className: 'orphan', title: 'Its parent span has not arrived (yet)' }, 'orphan') : null,
      inner);

    var left = (parseMicros(s.start_time) - t0) / total * 100;
    var width = Math.max(s.duration_ms * 1000 / total * 100, 0.15);
    if (left + width > 100) width = Math.max(100 - left, 0.15);
    var bar = el('div', { className: 'bar t-' + type.toLowerCase(), style: { left: left + '%', width: width + '%' } });
    var tag = el('span', { className: 'bar-label' }, fmtDur(s.duration_ms));
    // The duration goes after the bar, else before it, else inside its end.
    if (left + width < 80) tag.style.left = 'calc(' + (left + width) + '% + 4px)';
    else if (left > 15) tag.style.right = 'calc(' + (100 - left) + '% + 4px)';
    else {
      tag.classList.add('inside');
      tag.style.right = 'calc(' + Math.max(100 - left - width, 0) + '% + 4px)';
    }
    var row = el('div', {
      className: 'span-row' + (isErr ? ' error' : ''), tabIndex: 0,
      dataset: { spanId: s.span_id, type: s.type || '', factType: factType(s), status: s.status_code, testid: 'span-row' }
    }, label, el('div', { className: 'bar-track' }, bar, tag));
    row.setAttribute('role', 'treeitem');
    row.setAttribute('aria-level', String(depth + 1));
    if (hasKids) row.setAttribute('aria-expanded', String(!collapsed));
    var kids = el('div', { className: 'children' + (collapsed ? ' collapsed' : ''), role: 'group' });
    var wrap = el('div', { className: 'node' }, row, kids);
    return { span: s, row: row, kids: kids, toggle: toggle, inner: inner, errs: errs, wrap: wrap, hasKids: hasKids };
  }

  function setCollapsed(node, collapsed) {
    if (!node.hasKids) return;
    node.kids.classList.toggle('collapsed', collapsed);
    node.toggle.textContent = collapsed ? '▸' : '▾';
    node.toggle.title = collapsed ? 'Expand' : 'Collapse';
    node.row.setAttribute('aria-expanded', String(!collapsed));
    node.inner.hidden = !(collapsed && node.errs > 0);
  }

  function select(spanId, updateHash) {
    var node = view.nodes[spanId];
    if (!node) return;
    // Unfold the ancestors of a span chosen by link.
    for (var p = view.nodes[node.parent]; p; p = view.nodes[p.parent]) setCollapsed(p, false);
    if (view.selected && view.nodes[view.selected]) view.nodes[view.selected].row.classList.remove('selected');
    node.row.classList.add('selected');
    view.selected = spanId;
    renderDetail(node.span);
    if (updateHash) history.replaceState(null, '', '#/trace/' + view.id + '/' + spanId);
  }

  // ---- detail panel -----------------------------------------------------------

  function attr(a, k) { return a && Object.prototype.hasOwnProperty.call(a, k) ? a[k] : undefined; }

  // parseMaybeJSON returns structured data for JSON text, else the value.
  function parseMaybeJSON(v) {
    if (typeof v !== 'string') return v;
    var t = v.trim();
    if (t[0] !== '{' && t[0] !== '[') return v;
    try { return JSON.parse(t); } catch (e) { return v; }
  }

  function pre(v, testid) {
    var text = typeof v === 'string' ? v : JSON.stringify(v, null, 2);
    return el('pre', { dataset: testid ? { testid: testid } : {} }, text);
  }

  function isMessages(v) {
    return Array.isArray(v) && v.length > 0 && v.every(function (m) { return m && typeof m === 'object' && typeof m.role === 'string'; });
  }

  function messageText(m) {
    if (typeof m.content === 'string') return m.content;
    if (Array.isArray(m.parts) || Array.isArray(m.content)) {
      var parts = m.parts || m.content;
      return parts.map(function (p) {
        if (typeof p === 'string') return p;
        if (p && typeof p.content === 'string') return p.content;
        if (p && typeof p.text === 'string') return p.text;
        return JSON.stringify(p, null, 2);
      }).join('\n');
    }
    var rest = Object.assign({}, m);
    delete rest.role;
    return JSON.stringify(rest, null, 2);
  }

  // value renders an input/output: chat messages as a conversation, JSON
  // pretty-printed, plain text as it is.
  function value(v, testid) {
    var p = parseMaybeJSON(v);
    if (isMessages(p)) {
      return el('div', { dataset: testid ? { testid: testid } : {} }, p.map(function (m) {
        return el('div', { className: 'msg' }, el('div', { className: 'role' }, m.role), pre(messageText(m)));
      }));
    }
    return pre(p, testid);
  }

  function section(title) {
    var s = el('section', null, el('h3', null, title));
    for (var i = 1; i < arguments.length; i++) append(s, arguments[i]);
    return s;
  }

  // kv renders a definition list of the pairs whose value is present.
  function kv(pairs) {
    var dl = el('dl');
    pairs.forEach(function (p) {
      if (p[1] === undefined || p[1] === null || p[1] === '') return;
      dl.appendChild(el('dt', null, p[0]));
      dl.appendChild(el('dd', { dataset: p[2] ? { testid: p[2] } : {} },
        typeof p[1] === 'object' && !(p[1] instanceof Node) ? JSON.stringify(p[1]) : p[1]));
    });
    return dl.children.length ? dl : null;
  }

  // ioSections shows a span's input and output facts (or the given ones).
  function ioSections(f, inTitle, outTitle, input, output) {
    var i = input !== undefined ? input : f.input, o = output !== undefined ? output : f.output;
    return [
      i !== undefined ? section(inTitle, value(i, 'detail-input')) : null,
      o !== undefined ? section(outTitle, value(o, 'detail-output')) : null
    ];
  }

  // typeSections shows what the span's facts say for its kind of work. The
  // facts are the same whatever convention (GenAI, OpenInference, agno.*)
  // the sender used.
  function typeSections(s, f) {
    var type = factType(s);
    switch (type) {
      case 'llm':
      case 'embedding': {
        var calls = f['llm.tool_calls'];
        var callList = Array.isArray(calls) && calls.length ? section('Tool calls', el('div', null, calls.map(function (c) {
          var args = parseMaybeJSON(c && c.arguments);
          return el('div', { className: 'msg', dataset: { testid: 'tool-call' } },
            el('div', { className: 'role' }, (c && c.name) || 'tool', c && c.id ? ' · ' + c.id : ''),
            args !== undefined && args !== '' ? pre(args) : null);
        }))) : null;
        return [section('Model', kv([
          ['model', f.model, 'detail-model'],
          ['temperature', f['llm.temperature']],
          ['input tokens', f['usage.input_tokens'], 'detail-input-tokens'],
          ['output tokens', f['usage.output_tokens'], 'detail-output-tokens'],
          ['total tokens', f['usage.total_tokens'], 'detail-total-tokens']
        ]))].concat(ioSections(f, type === 'llm' ? 'Prompt' : 'Input', 'Completion'), [callList]);
      }
      case 'tool':
        return [section('Tool', kv([['name', f['tool.name'], 'detail-tool-name']]))].concat(
          ioSections(f, 'Arguments', 'Result', f['tool.arguments'], f['tool.result']));
      case 'pre_hook':
      case 'post_hook':
        return [section('Hook', kv([['name', f['hook.name'], 'detail-hook-name'], ['stage', type === 'pre_hook' ? 'before the run' : 'after the run']]))]
          .concat(ioSections(f, 'Input', 'Output'));
      case 'retrieval': {
        var docs = f['retrieval.documents'];
        var scores = f['retrieval.scores'];
        var docTable = null;
        if (Array.isArray(docs) && docs.length) {
          docTable = el('table', { className: 'docs', dataset: { testid: 'retrieval-documents' } },
            el('thead', null, el('tr', null, el('th', null, 'id'), el('th', null, 'score'), el('th', null, 'content'))),
            el('tbody', null, docs.map(function (d) {
              d = d || {};
              return el('tr', null, el('td', { className: 'mono' }, d.id === undefined ? '' : String(d.id)),
                el('td', null, d.score === undefined ? '' : String(d.score)),
                el('td', null, typeof d.content === 'string' ? d.content : JSON.stringify(d.content === undefined ? '' : d.content)));
            })));
        }
        return [section('Retrieval', kv([
          ['query', f['retrieval.query'], 'detail-query'],
          ['vector store', f['retrieval.vector_store'], 'detail-vector-store'],
          ['k', f['retrieval.k']],
          ['scores', !docTable && Array.isArray(scores) ? scores.join(', ') : undefined]
        ])), docTable ? section('Documents', docTable) : null];
      }
      case 'delegation':
        return [section('Delegation', kv([
          ['member', f['delegation.member'], 'detail-member'],
          ['mode', f['delegation.mode'], 'detail-mode']
        ]))].concat(ioSections(f, 'Task', 'Result'));
      case 'run':
        return [section('Run', kv([
          ['kind', f['run.kind'], 'detail-run-kind'], ['model', f.model, 'detail-model'],
          ['agent', f.agent_id], ['team', f.team_id], ['workflow', f.workflow_id],
          ['user', f.user_id], ['session', f.session_id], ['run', f.run_id]
        ]))].concat(ioSections(f, 'Input', 'Output'));
      default:
        return ioSections(f, 'Input', 'Output');
    }
  }

  function renderDetail(s) {
    var a = s.attributes && typeof s.attributes === 'object' ? s.attributes : {};
    var f = s.facts && typeof s.facts === 'object' ? s.facts : {};
    var box = $('detail');
    var out = [
      el('h2', { dataset: { testid: 'detail-name' } }, s.name),
      kv([
        ['type', s.type || 'UNKNOWN', 'detail-type'],
        // The gateway's finer reading, where it says more than the type.
        ['role', factType(s) === 'other' || factType(s) === String(s.type).toLowerCase() ? '' : factType(s).replace('_', ' '), 'detail-fact-type'],
        ['status', el('span', { className: 'pill ' + s.status_code }, s.status_code), 'detail-status'],
        ['duration', fmtDur(s.duration_ms)],
        ['start', fmtTime(s.start_time)],
        ['kind', s.span_kind],
        ['span id', s.span_id],
        ['parent', s.parent_span_id || (s.orphan ? 'missing' : '')]
      ])
    ];
    var etype = f['exception.type'], emsg = f['exception.message'];
    if (etype !== undefined || emsg !== undefined || (s.status_code === 'ERROR' && s.status_message)) {
      out.push(section('Exception', el('div', { className: 'exception', dataset: { testid: 'exception' } },
        el('div', { className: 'etype', dataset: { testid: 'exception-type' } }, etype === undefined ? 'Error' : String(etype)),
        el('div', { dataset: { testid: 'exception-message' } }, String(emsg !== undefined ? emsg : s.status_message || '')))));
    } else if (s.status_message) {
      out.push(section('Status message', pre(s.status_message)));
    }
    out = out.concat(typeSections(s, f));
    var events = parseMaybeJSON(attr(a, 'kern.events'));
    if (Array.isArray(events) && events.length) {
      out.push(section('Events', el('div', { dataset: { testid: 'events' } }, events.map(function (ev) {
        ev = ev || {};
        return el('div', { className: 'msg' }, el('div', { className: 'role' }, String(ev.name || 'event'), ev.time ? ' · ' + fmtTime(ev.time) : ''),
          ev.attributes && Object.keys(ev.attributes).length ? pre(ev.attributes) : null);
      }))));
    }
    if (s.resource && typeof s.resource === 'object') out.push(section('Resource', pre(s.resource, 'resource')));
    if (s.scope && typeof s.scope === 'object') {
      out.push(section('Instrumentation scope', kv([
        ['name', s.scope.name, 'scope-name'], ['version', s.scope.version],
        ['attributes', s.scope.attributes && Object.keys(s.scope.attributes).length ? s.scope.attributes : undefined]
      ])));
    }
    out.push(section('All attributes', pre(a, 'raw-attributes')));
    box.replaceChildren.apply(box, out.filter(Boolean));
    box.scrollTop = 0;
  }

  // ---- events -------------------------------------------------------------------

  function init() {
    $('filters').addEventListener('submit', function (e) {
      e.preventDefault();
      var q = formQuery().toString();
      list.hashQuery = null; // always reload on Apply
      if (location.hash === '#/?' + q || (q === '' && (location.hash === '#/' || location.hash === ''))) route();
      else location.hash = '#/' + (q ? '?' + q : '');
    });
    $('clear-filters').addEventListener('click', function () {
      FILTERS.forEach(function (f) { $(f[0]).value = ''; });
      $('f-sort').value = 'start_time';
      $('f-range').value = '24h';
      list.hashQuery = null;
      location.hash = '#/';
      route();
    });
    $('f-range').addEventListener('change', function () {
      $('custom-range').hidden = $('f-range').value !== 'custom';
    });
    $('load-more').addEventListener('click', function () { loadList(false, false); });

    var rows = $('trace-rows');
    function openRow(e) {
      var tr = e.target.closest('tr.trace-row');
      if (tr) location.hash = '#/trace/' + tr.dataset.traceId;
    }
    rows.addEventListener('click', openRow);
    rows.addEventListener('keydown', function (e) { if (e.key === 'Enter') openRow(e); });

    // One listener for the whole waterfall, however many spans.
    var wf = $('wf-rows');
    wf.addEventListener('click', function (e) {
      var row = e.target.closest('.span-row');
      if (!row) return;
      var node = view.nodes[row.dataset.spanId];
      if (e.target.closest('.toggle')) {
        setCollapsed(node, !node.kids.classList.contains('collapsed'));
        return;
      }
      select(row.dataset.spanId, true);
    });
    wf.addEventListener('keydown', function (e) {
      var row = e.target.closest('.span-row');
      if (!row) return;
      var node = view.nodes[row.dataset.spanId];
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); select(row.dataset.spanId, true); }
      else if (e.key === 'ArrowRight') setCollapsed(node, false);
      else if (e.key === 'ArrowLeft') setCollapsed(node, true);
    });
    $('expand-all').addEventListener('click', function () {
      Object.keys(view.nodes).forEach(function (k) { setCollapsed(view.nodes[k], false); });
    });
    $('collapse-all').addEventListener('click', function () {
      Object.keys(view.nodes).forEach(function (k) { if (view.nodes[k].parent) setCollapsed(view.nodes[k], true); });
    });
    $('reload-trace').addEventListener('click', function () { if (view.id) loadTrace(view.selected); });

    $('token-form').addEventListener('submit', function (e) {
      e.preventDefault();
      token = $('token-input').value.trim();
      try { sessionStorage.setItem('kern.token', token); } catch (err) { /* storage disabled */ }
      $('token-panel').hidden = true;
      list.hashQuery = null;
      view.data = null;
      route();
    });

    // Live refresh: re-read the first page and the summary while the list is
    // in view, unless the user paged further (that would lose their place).
    // The summary aggregates a whole range, so it refreshes every sixth tick.
    var ticks = 0;
    setInterval(function () {
      if (!$('f-live').checked || $('view-list').hidden || document.hidden || list.pages > 1) return;
      loadList(true, true);
      if (++ticks % 6 === 0) loadSummary();
    }, POLL_MS);
    $('f-live').addEventListener('change', function () {
      if ($('f-live').checked) { loadList(true, true); loadSummary(); }
    });

    window.addEventListener('hashchange', route);
    route();
  }

  init();
}());
