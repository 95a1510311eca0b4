package agentostest

import (
	"context"
	"fmt"
	"math/rand"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/model"
	"github.com/kern-agents/trace-gateway/internal/store"
	"github.com/kern-agents/trace-gateway/internal/store/postgres"
	"github.com/kern-agents/trace-gateway/internal/store/sqlite"
	"github.com/kern-agents/trace-gateway/internal/store/storetest"
	"github.com/kern-agents/trace-gateway/internal/testdb"
)

func str(s string) *string { return &s }

// want is how AgentOS shows one trace: its GET /traces item and its
// GET /traces/{id} detail, written out by hand from what AgentOS's own
// database exporter would have stored for the same run.
type want struct {
	trace      string
	name       string
	status     string
	duration   string
	start, end time.Time
	spans      int64
	errors     int64
	ids        [6]string // run, session, user, agent, team, workflow; "" is NULL
	listInput  *string
	input      *string
	output     *string
	err        *string
	tree       string
}

var wants = []want{
	{
		// AgentOS takes the ids from the team's root span: the member's
		// agno.agent.id never becomes the trace's agent_id. A failed tool
		// makes the trace ERROR, and AgentOS then shows no output.
		trace: teamTrace, name: "Research_Team.run", status: "ERROR", duration: "5.00s",
		start: ms(0), end: ms(5000), spans: 6, errors: 1,
		ids:       [6]string{"run-team-1", "sess-1", "ada", "", "research-team", ""},
		listInput: str("What changed in RAG for code?"), input: str("What changed in RAG for code?"),
		tree: `TEAM Research_Team.run OK total_input_tokens=420 total_output_tokens=100
  AGENT Researcher.run OK in="Find recent RAG-for-code papers." out="RepoCoder (2023) and RepoFormer (2024)." run_id="run-member-1" session_id="sess-1" user_id="ada"
    LLM OpenAIChat.invoke OK in="{\"messages\": [{\"role\": \"user\", \"content\": \"Find recent RAG-for-code papers.\"}]}" out="{\"role\": \"assistant\", \"content\": \"RepoCoder (2023) and RepoFormer (2024).\"}" input_tokens=120 model="gpt-4o-mini" output_tokens=40 session_id="sess-1" user_id="ada"
    TOOL web_search OK in="{\"query\": \"RAG for code\"}" out="RepoCoder: repository-level code completion ..." parameters="{\"query\": \"RAG for code\"}" session_id="sess-1" tool_name="web_search" user_id="ada"
    TOOL read_url ERROR in="{\"url\": \"https://example.com/x\"}" err="HTTP 404" parameters="{\"url\": \"https://example.com/x\"}" session_id="sess-1" tool_name="read_url" user_id="ada"
  LLM OpenAIChat.invoke OK in="{\"messages\": [{\"role\": \"user\", \"content\": \"Summarise the findings.\"}]}" out="{\"role\": \"assistant\", \"content\": \"RepoCoder-style iterative retrieval helps most.\"}" input_tokens=300 model="gpt-4o" output_tokens=60 session_id="sess-1" user_id="ada"
`,
	},
	{
		// GenAI keys only: the same tree as an agno agent with a model
		// call, a tool call, a model call and an embedding. The run's input
		// and output are its GenAI messages as sent, an LLM hop's the text
		// of its messages (a reply of tool calls only keeps the JSON); the tool's arguments are
		// its input (no second copy as tool.parameters); embedding tokens
		// are not LLM tokens in AgentOS's totals.
		trace: genAITrace, name: "invoke_agent Weather Agent", status: "OK", duration: "4.00s",
		start: ms(10000), end: ms(14000), spans: 5,
		ids:       [6]string{"", "conv-42", "u-7", "asst_weather", "", ""},
		listInput: str(weatherQuestion), input: str(weatherQuestion), output: str(weatherAnswer),
		tree: `AGENT invoke_agent Weather Agent OK total_input_tokens=130 total_output_tokens=21
  LLM chat gpt-4o OK in="Weather in Paris?" out="[{\"role\":\"assistant\",\"parts\":[{\"type\":\"tool_call\",\"id\":\"call_1\",\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}],\"finish_reason\":\"tool_call\"}]" input_tokens=50 model="gpt-4o" output_tokens=12
  TOOL execute_tool get_weather OK in="{\"city\":\"Paris\"}" out="{\"temp_c\":18,\"sky\":\"sunny\"}" tool_name="get_weather"
  LLM chat gpt-4o OK in="Weather in Paris?" out="18°C and sunny." input_tokens=80 model="gpt-4o" output_tokens=9
  EMBEDDING embeddings text-embedding-3-small OK
`,
	},
	{
		// A workflow: WORKFLOW root with its steps typed by index, the
		// output of the last step as the trace's (the root has none), and
		// the GenAI model calls counted in the root's token totals.
		trace: workflowTrace, name: "Content_Workflow.run", status: "OK", duration: "10.00s",
		start: ms(20000), end: ms(30000), spans: 6,
		ids:       [6]string{"run-wf-1", "sess-wf", "bob", "", "", "content-wf"},
		listInput: str("Write a post about Go generics."), input: str("Write a post about Go generics."),
		output: str("Go generics, explained."),
		tree: `WORKFLOW Content_Workflow.run OK description="Research, then write." step_types=["Step","Step"] steps_count=2 total_input_tokens=305 total_output_tokens=436
  AGENT Researcher.run OK in="Write a post about Go generics." out="Notes: type parameters, constraints." step="Step" run_id="run-wf-step-1"
    LLM chat gpt-4o-mini OK in="Research Go generics." out="Notes: type parameters, constraints." input_tokens=100 model="gpt-4o-mini" output_tokens=30
  AGENT Writer.run OK in="Notes: type parameters, constraints." out="Go generics, explained." step="Step" run_id="run-wf-step-2"
    LLM chat claude-3-5-sonnet OK input_tokens=200 model="claude-3-5-sonnet" output_tokens=400
    LLM Claude.invoke OK in="Polish the title." input_tokens=5 model="claude-3-5-sonnet-latest" output_tokens=6
`,
	},
	{
		// A hostile client: integer ids become their decimal text, a
		// document id is skipped, NUL and invalid UTF-8 read back as
		// U+FFFD, a span kind that is not a string is replaced (the span
		// carries no other convention: UNKNOWN), inputs/outputs/errors
		// that are not strings become their JSON text, token counts
		// integers. Nothing makes AgentOS's reads fail.
		trace: hostileTrace, name: "Agent.run\uFFFD", status: "ERROR", duration: "1.00s",
		start: ms(40000), end: ms(41000), spans: 3, errors: 1,
		ids:       [6]string{"42", "conv-h", "99", "agent-\uFFFD-x", "", ""},
		listInput: str(`{"q":"x"}`), input: str(`{"q":"x"}`),
		tree: `UNKNOWN Agent.run` + "\uFFFD" + ` OK total_input_tokens=12 total_output_tokens=3
  LLM llm call OK in="` + "\uFFFD\uFFFD" + `" input_tokens=12 model=["a"] output_tokens=3
  UNKNOWN tool ERROR err="[\"boom\",1]"
`,
	},
	{
		// A workflow whose ids are a zero (skipped, as agno's `or` skips
		// it) and a whole double; a step list that is not a list (dropped)
		// and an output "None", which AgentOS replaces by the last step's.
		trace: hostileChain, name: "Flow.run", status: "OK", duration: "1.00s",
		start: ms(50000), end: ms(51000), spans: 2,
		ids:    [6]string{"", "", "", "", "", "3"},
		output: str(`["step","out"]`),
		tree: `WORKFLOW Flow.run OK steps_count="two"
  TEAM Step.run OK out="[\"step\",\"out\"]"
`,
	},
}

// senders are every scenario's OTLP data, in sending order.
func senders() []storetest.Sent {
	var all []storetest.Sent
	for _, f := range []func() []storetest.Sent{agnoTeam, genAIAgent, mixedWorkflow, hostile} {
		all = append(all, f()...)
	}
	return all
}

// orders are ways the spans reach the gateway: each returns the OTLP
// requests, one Write each.
var orders = map[string]func(r *rand.Rand, all []storetest.Sent) [][]storetest.Sent{
	"InOrder": func(_ *rand.Rand, all []storetest.Sent) [][]storetest.Sent { return [][]storetest.Sent{all} },
	// Every span alone, last first: children arrive before their roots.
	"OneByOneReversed": func(_ *rand.Rand, all []storetest.Sent) [][]storetest.Sent {
		var out [][]storetest.Sent
		for i := len(all) - 1; i >= 0; i-- {
			for j := len(all[i].Spans) - 1; j >= 0; j-- {
				s := all[i]
				s.Spans = []storetest.SentSpan{all[i].Spans[j]}
				out = append(out, []storetest.Sent{s})
			}
		}
		return out
	},
	// Shuffled into random requests of 1-4 spans, a fifth of the spans
	// sent twice (an SDK retrying).
	"ShuffledSplitResent": func(r *rand.Rand, all []storetest.Sent) [][]storetest.Sent {
		type one struct {
			group int
			span  storetest.SentSpan
		}
		var spans []one
		for g, s := range all {
			for _, sp := range s.Spans {
				spans = append(spans, one{g, sp})
				if r.Intn(5) == 0 {
					spans = append(spans, one{g, sp})
				}
			}
		}
		r.Shuffle(len(spans), func(i, j int) { spans[i], spans[j] = spans[j], spans[i] })
		var out [][]storetest.Sent
		for len(spans) > 0 {
			n := min(len(spans), 1+r.Intn(4))
			var req []storetest.Sent
			for _, o := range spans[:n] {
				s := all[o.group]
				s.Spans = []storetest.SentSpan{o.span}
				req = append(req, s)
			}
			out = append(out, req)
			spans = spans[n:]
		}
		return out
	},
}

type backend struct {
	dialect string
	fresh   func(t *testing.T) store.Options
	open    func(t *testing.T, opts store.Options) store.Store
}

// opener opens a store with open and closes it when the test ends.
func opener[S store.Store](open func(context.Context, store.Options) (S, error)) func(*testing.T, store.Options) store.Store {
	return func(t *testing.T, opts store.Options) store.Store {
		t.Helper()
		s, err := open(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

var backends = []backend{
	{
		dialect: "postgres",
		fresh: func(t *testing.T) store.Options {
			dsn, schema := testdb.Postgres(t)
			return store.Options{DSN: dsn, Schema: schema}
		},
		open: opener(postgres.Open),
	},
	{
		dialect: "sqlite",
		fresh: func(t *testing.T) store.Options {
			return store.Options{DSN: "file:" + filepath.Join(t.TempDir(), "traces.db")}
		},
		open: opener(sqlite.Open),
	},
}

// TestAgentOSReadsWhatTheGatewayWrites sends each scenario over OTLP
// through the gateway's converter into a store, with AgentOS's own tables
// created first or by the gateway alone, in several orders, and reads every
// trace back along AgentOS's read path.
func TestAgentOSReadsWhatTheGatewayWrites(t *testing.T) {
	for _, b := range backends {
		for _, setup := range []string{"AgentOSTablesFirst", "GatewayAlone"} {
			for _, order := range sortedKeys(orders) {
				t.Run(b.dialect+"/"+setup+"/"+order, func(t *testing.T) {
					opts := b.fresh(t).WithDefaults()
					if setup == "AgentOSTablesFirst" {
						storetest.Exec(t, storetest.OpenRaw(t, b.dialect, opts),
							storetest.AgentOSDDL(b.dialect, opts.Schema, opts.TracesTable, opts.SpansTable)...)
					}
					s := b.open(t, opts)
					r := rand.New(rand.NewSource(int64(len(order))))
					now := time.Date(2025, 6, 1, 11, 0, 0, 0, time.UTC)
					for _, req := range orders[order](r, senders()) {
						if err := s.Write(context.Background(), storetest.Stored(now, req...)); err != nil {
							t.Fatalf("Write: %v", err)
						}
					}
					checkAgentOSView(t, NewReader(s))
				})
			}
		}
	}
}

func checkAgentOSView(t *testing.T, r *Reader) {
	t.Helper()
	ctx := context.Background()
	list, total, err := r.ListTraces(ctx, 1, 20)
	if err != nil {
		t.Fatalf("GET /traces: %v", err)
	}
	if total != int64(len(wants)) || len(list) != len(wants) {
		t.Fatalf("GET /traces: %d of %d traces, want %d", len(list), total, len(wants))
	}
	// Newest first.
	byStart := slices.Clone(wants)
	slices.SortFunc(byStart, func(a, b want) int { return b.start.Compare(a.start) })
	for i, w := range byStart {
		got := list[i]
		if got.TraceID != w.trace {
			t.Errorf("GET /traces item %d is trace %s, want %s", i, got.TraceID, w.trace)
			continue
		}
		checkTrace(t, "GET /traces", got.Trace, got.Duration, w)
		if !sameStr(got.Input, w.listInput) {
			t.Errorf("trace %s: list input = %s, want %s", w.trace, show(got.Input), show(w.listInput))
		}
	}
	page, total, err := r.ListTraces(ctx, 2, 2)
	if err != nil || total != int64(len(wants)) || len(page) != 2 || page[0].TraceID != byStart[2].trace || page[1].TraceID != byStart[3].trace {
		t.Errorf("GET /traces?page=2&limit=2 = %d items of %d (%v), want traces %s, %s", len(page), total, err, byStart[2].trace, byStart[3].trace)
	}

	for _, w := range wants {
		d, err := r.Detail(ctx, w.trace)
		if err != nil {
			t.Errorf("GET /traces/%s: %v", w.trace, err)
			continue
		}
		checkTrace(t, "GET /traces/{id}", d.Trace, d.Duration, w)
		for _, f := range []struct {
			name      string
			got, want *string
		}{{"input", d.Input, w.input}, {"output", d.Output, w.output}, {"error", d.Error, w.err}} {
			if !sameStr(f.got, f.want) {
				t.Errorf("trace %s: %s = %s, want %s", w.trace, f.name, show(f.got), show(f.want))
			}
		}
		if got := Render(d.Tree); got != w.tree {
			t.Errorf("trace %s: tree\n%s\nwant\n%s", w.trace, got, w.tree)
		}
		if len(d.Tree) == 1 && (!d.Tree[0].StartTime.Equal(w.start) || !d.Tree[0].EndTime.Equal(w.end)) {
			t.Errorf("trace %s: root node from %v to %v, want %v to %v", w.trace, d.Tree[0].StartTime, d.Tree[0].EndTime, w.start, w.end)
		}
		spans, err := r.GetSpans(ctx, w.trace)
		if err != nil {
			t.Fatal(err)
		}
		for _, sp := range spans {
			if _, err := r.SpanNode(ctx, w.trace, sp.SpanID); err != nil {
				t.Errorf("GET /traces/%s?span_id=%s: %v", w.trace, sp.SpanID, err)
			}
			switch sp.SpanKind {
			case model.KindInternal, model.KindServer, model.KindClient, model.KindProducer, model.KindConsumer:
			default:
				t.Errorf("span %s: span_kind %q, which AgentOS never writes", sp.SpanID, sp.SpanKind)
			}
		}
	}
}

func checkTrace(t *testing.T, route string, got Trace, duration string, w want) {
	t.Helper()
	var ids [6]string
	for i, id := range got.IDs {
		if id != nil {
			ids[i] = *id
			if *id == "" {
				t.Errorf("%s %s: id column %d is an empty string, want NULL", route, w.trace, i)
			}
		}
	}
	g := fmt.Sprintf("%s|%s|%s|%d spans|%d errors|%q|%v|%v", got.Name, got.Status, duration, got.TotalSpans, got.ErrorCount, ids, got.StartTime.UTC(), got.EndTime.UTC())
	x := fmt.Sprintf("%s|%s|%s|%d spans|%d errors|%q|%v|%v", w.name, w.status, w.duration, w.spans, w.errors, w.ids, w.start, w.end)
	if g != x {
		t.Errorf("%s %s:\n got  %s\n want %s", route, w.trace, g, x)
	}
}

func sameStr(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func show(s *string) string {
	if s == nil {
		return "None"
	}
	return fmt.Sprintf("%q", *s)
}

// TestOldSQLiteFileReadsInAgentOS: AgentOS cannot read a SQLite file an
// earlier gateway wrote (attributes declared TEXT reflect as str); once the
// gateway has opened it, the rows stored before read back.
func TestOldSQLiteFileReadsInAgentOS(t *testing.T) {
	b := backends[1]
	opts := b.fresh(t).WithDefaults()
	raw := storetest.OpenRaw(t, b.dialect, opts)
	storetest.Exec(t, raw, storetest.OldGatewayDDL(b.dialect, "", opts.TracesTable, opts.SpansTable)...)
	old := storetest.OldGatewayRows(t, raw, b.dialect, opts)
	before := &Reader{db: raw, dialect: "sqlite", traces: `"agno_traces"`, spans: `"agno_spans"`, spansName: "agno_spans"}
	if _, err := before.Detail(context.Background(), old[0].TraceID); err == nil {
		t.Fatal("AgentOS read a TEXT attributes column as a dict; the test no longer shows the problem")
	}
	r := NewReader(b.open(t, opts))
	d, err := r.Detail(context.Background(), old[0].TraceID)
	if err != nil {
		t.Fatalf("GET /traces/%s after the gateway opened the file: %v", old[0].TraceID, err)
	}
	if got, want := Render(d.Tree), "AGENT Agent.run UNSET\n  UNKNOWN chat gpt-4o OK\n"; got != want {
		t.Errorf("tree of the old trace:\n%s\nwant\n%s", got, want)
	}
}
