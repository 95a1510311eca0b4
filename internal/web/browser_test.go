package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kern-agents/trace-gateway/internal/api"
	"github.com/kern-agents/trace-gateway/internal/api/apitest"
	"github.com/kern-agents/trace-gateway/internal/auth"
	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/semantics"
	"github.com/kern-agents/trace-gateway/internal/sim"
	"github.com/kern-agents/trace-gateway/internal/web"
)

// chromiumPath is Debian's Chromium, installed by scripts/install-chromium.sh.
const chromiumPath = "/usr/bin/chromium"

func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s missing: run scripts/install-chromium.sh", chromiumPath)
		}
		t.Skipf("%s missing: run scripts/install-chromium.sh to run the browser tests", chromiumPath)
	}
}

// browser starts a headless Chromium with a fresh profile and collects the
// page's uncaught exceptions and console errors (CSP violations among them).
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	requireChromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1440, 900),
	}
	// One deadline for the whole browser: chromedp stops the browser when
	// the context of its first Run ends.
	tctx, cancelTimeout := context.WithTimeout(context.Background(), 120*time.Second)
	actx, cancelAlloc := chromedp.NewExecAllocator(tctx, opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc(); cancelTimeout() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}

	var mu sync.Mutex
	var problems []string
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleError {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}
}

func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := filepath.Join(repoRoot(t), "test-artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// waitJS polls a JavaScript expression until it returns true.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		var last error
		for {
			ok, err := chromedp.Evaluate[bool](expr)(ctx, tg)
			if err == nil && ok {
				return nil
			}
			last = err
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s (last error %v): %w", expr, last, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

// evalInto runs expr and stores its value in dst.
func evalInto[T any](expr string, dst *T) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		v, err := chromedp.Evaluate[T](expr)(ctx, tg)
		*dst = v
		return err
	})
}

// scenario is the data the browser test walks through.
type scenario struct {
	user       string // the user to filter by
	userRuns   int    // runs of that user
	trace      string // a team run of the user in which a tool call failed
	teamRoot   string // its root span, a TEAM
	delegation string // its delegation span
	member     string // the member it delegates to
	memberRun  string // the member's sub-run under the delegation
	toolSpan   string // the failed tool span
	toolName   string
	errorType  string // its exception
	errorText  string
	llmSpan    string // an LLM span of the same trace
	llmModel   string
	llmTokens  string // its input tokens
}

type spanInfo struct {
	model.Span
	attrs map[string]any
	facts map[string]any // as the API computes them
}

func str(a map[string]any, k string) string { s, _ := a[k].(string); return s }

// pickScenario finds, in the simulated runs, a team run in which a tool
// call failed. What the page must show is computed from the stored rows
// with the semantics package, as the API computes it.
func pickScenario(t *testing.T, spans []model.Span) scenario {
	byTrace := map[string][]*spanInfo{}
	var order []string
	for _, s := range spans {
		si := &spanInfo{Span: s}
		if err := json.Unmarshal(s.Attributes, &si.attrs); err != nil {
			t.Fatal(err)
		}
		info := semantics.Info{Name: s.Name, Kind: s.SpanKind, StatusCode: s.StatusCode, StatusMessage: s.StatusMessage}
		evs, _ := si.attrs[model.KeyEvents].([]any)
		for _, e := range evs {
			if m, _ := e.(map[string]any); m["name"] == "exception" {
				ea, _ := m["attributes"].(map[string]any)
				info.Events = append(info.Events, semantics.Event{Name: "exception", Attributes: ea})
			}
		}
		si.facts = semantics.Normalize(info, si.attrs)
		if byTrace[s.TraceID] == nil {
			order = append(order, s.TraceID)
		}
		byTrace[s.TraceID] = append(byTrace[s.TraceID], si)
	}
	userOf := func(ss []*spanInfo) string {
		for _, s := range ss {
			if s.ParentSpanID == "" {
				return semantics.RootIDs(s.attrs).UserID
			}
		}
		return ""
	}
	for _, id := range order {
		ss := byTrace[id]
		var sc scenario
		for _, s := range ss {
			switch str(s.facts, semantics.KeySpanType) {
			case semantics.TypeRun:
				if s.ParentSpanID == "" && semantics.NodeType(s.attrs) == "TEAM" {
					sc.teamRoot = s.SpanID
				}
			case semantics.TypeDelegation:
				if sc.delegation == "" {
					sc.delegation, sc.member = s.SpanID, str(s.facts, semantics.KeyDelegationMember)
				}
			case semantics.TypeTool:
				if s.StatusCode == model.StatusError && sc.toolSpan == "" && str(s.facts, semantics.KeyExceptionMessage) != "" {
					sc.toolSpan = s.SpanID
					sc.toolName = str(s.facts, semantics.KeyToolName)
					sc.errorType = str(s.facts, semantics.KeyExceptionType)
					sc.errorText = str(s.facts, semantics.KeyExceptionMessage)
				}
			case semantics.TypeLLM:
				_, calls := s.facts[semantics.KeyToolCalls]
				if str(s.facts, semantics.KeyModel) != "" && s.facts[semantics.KeyInputTokens] != nil && (sc.llmSpan == "" || calls) {
					sc.llmSpan, sc.llmModel = s.SpanID, str(s.facts, semantics.KeyModel)
					sc.llmTokens = fmt.Sprint(s.facts[semantics.KeyInputTokens])
				}
			}
		}
		for _, s := range ss {
			if sc.delegation != "" && s.ParentSpanID == sc.delegation {
				sc.memberRun = s.SpanID
			}
		}
		if sc.teamRoot == "" || sc.memberRun == "" || sc.member == "" || sc.toolSpan == "" || sc.llmSpan == "" || userOf(ss) == "" {
			continue
		}
		sc.trace, sc.user = id, userOf(ss)
		for _, ss := range byTrace {
			if userOf(ss) == sc.user {
				sc.userRuns++
			}
		}
		return sc
	}
	t.Fatal("the simulated runs hold no team run with a failed tool call")
	return scenario{}
}

func TestBrowserTraceExplorer(t *testing.T) {
	ctx, problems := browser(t)

	st := apitest.SQLite(t)
	const runs = 40
	spans := apitest.Sim(t, sim.Options{Count: runs, ErrorRatio: 0.5, Seed: 11, Users: 8})
	// A hostile name must show as text, not become markup.
	hostile := `<img src=x data-testid=pwned onerror="document.title='pwned'">`
	for i := len(spans) - 1; i >= 0; i-- {
		if spans[i].ParentSpanID == "" {
			spans[i].Name = hostile
			break
		}
	}
	apitest.Load(t, st, spans)
	// Written while the page is open, to see live refresh pick it up.
	fresh := apitest.Sim(t, sim.Options{Count: 1, Seed: 12345, Users: 1})
	sc := pickScenario(t, append(append([]model.Span(nil), spans...), fresh...))
	t.Logf("scenario: %+v", sc)

	h, err := web.New(api.New(st, api.Options{}), web.Options{PollInterval: 700 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	var rows []string
	steps := []struct {
		name string
		act  chromedp.Action[chromedp.Void]
		shot string // screenshot to take after the step
	}{
		{"open the list", chromedp.Steps(
			chromedp.Navigate(srv.URL+"/"),
			chromedp.WaitVisible(css(`tr[data-testid=trace-row]`)),
			waitJS(fmt.Sprintf(`document.querySelectorAll('tr[data-testid=trace-row]').length === %d`, runs)),
			waitJS(fmt.Sprintf(`document.getElementById('summary').textContent.includes('%d traces')`, runs)),
		), ""},
		{"live refresh shows a new run", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if err := st.Write(ctx, fresh); err != nil {
				return err
			}
			_, err := waitJS(`!!document.querySelector('tr[data-trace-id="`+fresh[0].TraceID+`"]')`)(ctx, tg)
			return err
		}), ""},
		{"turn live off", chromedp.Click(css(`#f-live`)), ""},
		{"hostile name is text", waitJS(`document.querySelector('[data-testid=pwned]') === null &&
			[...document.querySelectorAll('td.name')].some(td => td.textContent.includes('<img src=x'))`), ""},
		{"filter by user", chromedp.Steps(
			chromedp.SendKeys(css(`#f-user`), sc.user),
			chromedp.Click(css(`#apply-filters`)),
			waitJS(fmt.Sprintf(`(() => { const r = [...document.querySelectorAll('tr[data-testid=trace-row]')];
				return r.length === %d && r.every(x => x.children[4].textContent === %q); })()`, sc.userRuns, sc.user)),
			evalInto(`[...document.querySelectorAll('tr[data-testid=trace-row]')].map(r => r.dataset.traceId)`, &rows),
			waitJS(`location.hash.includes('user_id=`+sc.user+`')`),
		), "trace-list.png"},
		{"open the trace", chromedp.Steps(
			chromedp.Click(css(`tr[data-trace-id="`+sc.trace+`"]`)),
			chromedp.WaitVisible(css(`.span-row[data-span-id="`+sc.delegation+`"]`)),
			// The member's sub-run starts folded.
			chromedp.WaitNotVisible(css(`.span-row[data-span-id="`+sc.memberRun+`"]`)),
			// Spans show AgentOS's node types.
			waitJS(`document.querySelector('.span-row[data-span-id="`+sc.teamRoot+`"] .badge').textContent === 'TEAM'`),
			waitJS(`document.querySelector('.span-row[data-span-id="`+sc.delegation+`"]').dataset.type === 'TOOL'`),
		), ""},
		{"a team run shows its kind and resource", chromedp.Steps(
			chromedp.Click(css(`.span-row[data-span-id="`+sc.teamRoot+`"]`)),
			waitJS(`(document.querySelector('[data-testid=detail-type]') || {}).textContent === 'TEAM'`),
			waitJS(`(document.querySelector('[data-testid=detail-run-kind]') || {}).textContent === 'team'`),
			waitJS(`(document.querySelector('[data-testid=resource]') || {textContent: ''}).textContent.includes('"service.name": "agentos"')`),
		), ""},
		{"the delegation names its member", chromedp.Steps(
			chromedp.Click(css(`.span-row[data-span-id="`+sc.delegation+`"] .name`)),
			waitJS(`(document.querySelector('[data-testid=detail-member]') || {}).textContent === `+jsString(sc.member)),
			waitJS(`document.querySelector('[data-testid=detail-fact-type]').textContent === 'delegation'`),
		), ""},
		{"expand the team delegation", chromedp.Steps(
			chromedp.Click(css(`.span-row[data-span-id="`+sc.delegation+`"] [data-testid=toggle]`)),
			chromedp.WaitVisible(css(`.span-row[data-span-id="`+sc.memberRun+`"]`)),
			chromedp.WaitVisible(css(`.span-row[data-span-id="`+sc.toolSpan+`"]`)),
			waitJS(`document.querySelector('.span-row[data-span-id="`+sc.delegation+`"]').getAttribute('aria-expanded') === 'true'`),
		), ""},
		{"an LLM span shows model and tokens", chromedp.Steps(
			chromedp.Click(css(`.span-row[data-span-id="`+sc.llmSpan+`"]`)),
			waitJS(`(document.querySelector('[data-testid=detail-model]') || {}).textContent === `+jsString(sc.llmModel)),
			waitJS(`(document.querySelector('[data-testid=detail-input-tokens]') || {}).textContent === `+jsString(sc.llmTokens)),
			waitJS(`!!document.querySelector('[data-testid=detail-input]')`),
		), ""},
		{"select the failing tool", chromedp.Steps(
			chromedp.Click(css(`.span-row[data-span-id="`+sc.toolSpan+`"]`)),
			waitJS(`(document.querySelector('[data-testid=exception-message]') || {}).textContent === `+jsString(sc.errorText)),
			waitJS(`document.querySelector('[data-testid=exception-type]').textContent === `+jsString(sc.errorType)),
			waitJS(`document.querySelector('[data-testid=detail-tool-name]').textContent === `+jsString(sc.toolName)),
			waitJS(`document.querySelector('[data-testid=raw-attributes]').textContent.includes(`+jsString(sc.toolName)+`)`),
			// Errors stand out: the failed span's name is red.
			waitJS(`getComputedStyle(document.querySelector('.span-row[data-span-id="`+sc.toolSpan+`"] .name')).color === 'rgb(217, 45, 32)'`),
			waitJS(`location.hash === '#/trace/`+sc.trace+`/`+sc.toolSpan+`'`),
		), "trace-explorer.png"},
		{"back to the list keeps its filter", chromedp.Steps(
			chromedp.Click(css(`#back-link`)),
			chromedp.WaitVisible(css(`tr[data-trace-id="`+sc.trace+`"]`)),
			waitJS(fmt.Sprintf(`document.querySelectorAll('tr[data-testid=trace-row]').length === %d`, sc.userRuns)),
			waitJS(`document.getElementById('f-user').value === `+jsString(sc.user)),
		), ""},
		{"errors only", chromedp.Steps(
			chromedp.SetValue(css(`#f-status`), "ERROR"),
			chromedp.Click(css(`#apply-filters`)),
			waitJS(`(() => { const r = [...document.querySelectorAll('tr[data-testid=trace-row]')];
				return r.length > 0 && r.every(x => x.dataset.status === 'ERROR') && r.some(x => x.dataset.traceId === '`+sc.trace+`'); })()`),
		), ""},
		{"a custom range before the runs is empty", chromedp.Steps(
			evalInto(`(() => { const r = document.getElementById('f-range'); r.value = 'custom';
				r.dispatchEvent(new Event('change'));
				document.getElementById('f-from').value = '2001-01-01T00:00:00';
				document.getElementById('f-to').value = '2001-01-02T00:00:00'; return true; })()`, new(bool)),
			chromedp.WaitVisible(css(`#f-from`)),
			chromedp.Click(css(`#apply-filters`)),
			waitJS(`document.querySelectorAll('tr[data-testid=trace-row]').length === 0 &&
				document.getElementById('list-status').textContent === 'No traces match.'`),
			waitJS(`location.hash.includes('range=custom') && location.hash.includes('from=2001-01-01T00')`),
		), ""},
	}
	for _, s := range steps {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := chromedp.Do(sctx, s.act)
		cancel()
		if err != nil {
			if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
				_ = os.WriteFile(filepath.Join(repoRoot(t), "test-artifacts", "trace-explorer-failed.png"), png, 0o644)
			}
			t.Fatalf("%s: %v\nbrowser problems: %v", s.name, err, problems())
		}
		if s.shot != "" {
			screenshot(t, ctx, s.shot)
		}
	}
	if len(rows) != sc.userRuns {
		t.Errorf("filtered list has %d rows, want %d", len(rows), sc.userRuns)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil || title == "pwned" {
		t.Errorf("title %q (%v): injected markup ran", title, err)
	}
	if p := problems(); len(p) > 0 {
		t.Errorf("browser reported problems:\n%s", strings.Join(p, "\n"))
	}
}

// TestBrowserLargeTrace renders a 2,000-span trace and checks it is quick.
func TestBrowserLargeTrace(t *testing.T) {
	ctx, problems := browser(t)
	st := apitest.SQLite(t)
	spans := apitest.BigTrace(2000, time.Now().Add(-time.Minute))
	apitest.Load(t, st, spans)
	h, err := web.New(api.New(st, api.Options{}), web.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	var ms float64
	var ok bool
	err = chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-testid=trace-row]`)),
		evalInto(`window.__t0 = performance.now(); location.hash = '#/trace/`+spans[0].TraceID+`'; true`, &ok),
		waitJS(`document.querySelectorAll('#wf-rows .span-row').length === 2000 && !!document.querySelector('.span-row.selected')`),
		evalInto(`performance.now() - window.__t0`, &ms),
		chromedp.Click(chromedp.CSS(`#expand-all`)),
		waitJS(`document.querySelectorAll('#wf-rows .children.collapsed').length === 0`),
	)
	if err != nil {
		t.Fatalf("%v\nbrowser problems: %v", err, problems())
	}
	t.Logf("2000-span trace fetched and rendered in %.0f ms", ms)
	if ms > 5000 {
		t.Errorf("rendering 2000 spans took %.0f ms", ms)
	}
	screenshot(t, ctx, "large-trace.png")
	if p := problems(); len(p) > 0 {
		t.Errorf("browser reported problems:\n%s", strings.Join(p, "\n"))
	}
}

func jsString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(errors.New("unreachable"))
	}
	return string(b)
}

// TestBrowserToken: with API tokens configured the page asks for one, then
// works with it.
func TestBrowserToken(t *testing.T) {
	ctx, problems := browser(t)
	st := apitest.SQLite(t)
	apitest.Load(t, st, apitest.Sim(t, sim.Options{Count: 3, Seed: 4}))
	h, err := web.New(api.New(st, api.Options{Auth: auth.New([]auth.Token{{Token: "s3cret-token", Tenant: "default", Admin: true}})}), web.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = chromedp.Do(sctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#token-panel`)),
		waitJS(`document.querySelectorAll('tr[data-testid=trace-row]').length === 0`),
		chromedp.SendKeys(chromedp.CSS(`#token-input`), "wrong"),
		chromedp.Click(chromedp.CSS(`#token-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#token-panel`)),
		chromedp.SetValue(chromedp.CSS(`#token-input`), "s3cret-token"),
		chromedp.Click(chromedp.CSS(`#token-form button[type=submit]`)),
		waitJS(`document.querySelectorAll('tr[data-testid=trace-row]').length === 3`),
		chromedp.WaitNotVisible(chromedp.CSS(`#token-panel`)),
		// The token lasts for the tab's session.
		chromedp.Reload(),
		waitJS(`document.querySelectorAll('tr[data-testid=trace-row]').length === 3`),
		chromedp.WaitNotVisible(chromedp.CSS(`#token-panel`)),
	)
	if err != nil {
		t.Fatalf("%v\nbrowser problems: %v", err, problems())
	}
	// The refused requests show as console errors (401); nothing else may.
	for _, p := range problems() {
		if !strings.Contains(p, "401") {
			t.Errorf("browser problem: %s", p)
		}
	}
}
