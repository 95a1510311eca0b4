package sim

import (
	"fmt"
	"strings"
)

// world is the fixed cast a simulation draws from: users, their sessions,
// agents (each with its own model) and the teams they lead.
type world struct {
	users    []string
	sessions []session
	agents   []agent
}

type session struct{ id, user string }

type agent struct {
	id, name       string
	model          string
	provider       string
	teamID, team   string // the team this agent leads in team runs
	modelClassName string // agno model class, used in OpenInference span names
}

var agentNames = []string{
	"Research Agent", "Finance Agent", "Support Agent", "Web Agent", "Writer Agent",
	"Data Analyst", "Travel Agent", "Code Reviewer", "Sales Assistant", "Ops Agent",
}

var models = []struct{ model, provider, class string }{
	{"gpt-4o-mini", "openai", "OpenAIChat"},
	{"claude-sonnet-4", "anthropic", "Claude"},
	{"gpt-4o", "openai", "OpenAIChat"},
	{"gemini-2.0-flash", "gcp.gemini", "Gemini"},
}

func newWorld(users, sessions, agents int) *world {
	w := &world{}
	for i := 0; i < users; i++ {
		w.users = append(w.users, fmt.Sprintf("user-%03d", i+1))
	}
	// Each session belongs to one user, round-robin, as AgentOS sessions do.
	for i := 0; i < sessions; i++ {
		w.sessions = append(w.sessions, session{
			id:   fmt.Sprintf("sess-%04d", i+1),
			user: w.users[i%users],
		})
	}
	for i := 0; i < agents; i++ {
		name := agentNames[i%len(agentNames)]
		if i >= len(agentNames) {
			name = fmt.Sprintf("%s %d", name, i/len(agentNames)+1)
		}
		m := models[i%len(models)]
		id := slug(name)
		w.agents = append(w.agents, agent{
			id: id, name: name, model: m.model, provider: m.provider, modelClassName: m.class,
			teamID: id + "-team", team: name + " Team",
		})
	}
	return w
}

func slug(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, " ", "-"))
}

// spanName is how agno's OpenInference instrumentation names run spans:
// "Finance Agent" runs as "Finance_Agent.run".
func spanName(name string) string {
	return strings.NewReplacer(" ", "_", "-", "_").Replace(name)
}

// toolSpec is a tool agents call, with plausible arguments, results and
// failures.
type toolSpec struct {
	name, description string
	args              func(r randSource) map[string]any
	result            func(r randSource) string
	failures          []failure
}

type failure struct{ typ, message string }

// randSource is the part of *rand.Rand the vocabulary needs.
type randSource interface {
	IntN(n int) int
	Float64() float64
}

func pick[T any](r randSource, xs []T) T { return xs[r.IntN(len(xs))] }

var cities = []string{"Paris", "Berlin", "Lisbon", "Tokyo", "Austin", "Nairobi"}
var symbols = []string{"NVDA", "AAPL", "MSFT", "TSLA", "AMZN"}
var topics = []string{
	"refund policy for annual plans", "how to rotate API keys", "latest GPU benchmarks",
	"quarterly revenue drivers", "visa requirements for Japan", "OpenTelemetry sampling",
}

var tools = []toolSpec{
	{
		name: "get_weather", description: "Get the current weather for a city",
		args: func(r randSource) map[string]any { return map[string]any{"location": pick(r, cities)} },
		result: func(r randSource) string {
			return fmt.Sprintf("%d°C, %s", 5+r.IntN(25), pick(r, []string{"sunny", "rainy", "cloudy"}))
		},
		failures: []failure{
			{"httpx.ReadTimeout", "weather API timed out after 10s"},
			{"KeyError", "'location' not found in provider response"},
		},
	},
	{
		name: "search_web", description: "Search the web with DuckDuckGo",
		args: func(r randSource) map[string]any {
			return map[string]any{"query": pick(r, topics), "max_results": 5}
		},
		result: func(r randSource) string {
			return fmt.Sprintf(`[{"title":"Result %d","href":"https://example.com/%d"}]`, r.IntN(100), r.IntN(1000))
		},
		failures: []failure{
			{"duckduckgo_search.exceptions.RatelimitException", "202 Ratelimit"},
			{"ConnectionError", "connection reset by peer"},
		},
	},
	{
		name: "get_stock_price", description: "Get the latest price of a stock",
		args:   func(r randSource) map[string]any { return map[string]any{"symbol": pick(r, symbols)} },
		result: func(r randSource) string { return fmt.Sprintf("%.2f USD", 50+r.Float64()*900) },
		failures: []failure{
			{"ValueError", "unknown symbol"},
			{"httpx.HTTPStatusError", "Server error '503 Service Unavailable'"},
		},
	},
	{
		name: "query_database", description: "Run a read-only SQL query",
		args: func(r randSource) map[string]any {
			return map[string]any{"sql": fmt.Sprintf("SELECT * FROM orders WHERE customer_id = %d LIMIT 10", r.IntN(5000))}
		},
		result: func(r randSource) string { return fmt.Sprintf("%d rows", r.IntN(11)) },
		failures: []failure{
			{"psycopg.errors.QueryCanceled", "canceling statement due to statement timeout"},
		},
	},
	{
		name: "send_email", description: "Send an email to a customer",
		args: func(r randSource) map[string]any {
			return map[string]any{"to": fmt.Sprintf("customer%d@example.com", r.IntN(900)), "subject": "Your request"}
		},
		result: func(randSource) string { return "queued" },
		failures: []failure{
			{"smtplib.SMTPRecipientsRefused", "recipient address rejected"},
		},
	},
}

var hooks = struct{ pre, post []string }{
	pre:  []string{"validate_input", "pii_guardrail", "prompt_injection_guardrail"},
	post: []string{"redact_output", "check_output_quality"},
}

var vectorStores = []string{"pgvector:knowledge", "lancedb:docs", "qdrant:support-kb"}
var embedders = []string{"text-embedding-3-small", "text-embedding-3-large"}
