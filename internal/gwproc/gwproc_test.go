package gwproc

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kern-agents/trace-gateway/internal/gwbuild"
)

// fakeGateway builds testdata/fakegw, which behaves like the gateway as far
// as this package cares.
func fakeGateway(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("compiles a command")
	}
	bin, cleanup, err := gwbuild.Build("./internal/gwproc/testdata/fakegw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return bin
}

// childPid is the fake gateway's child, from its ready line.
func childPid(t *testing.T, g *Gateway) int {
	t.Helper()
	m := regexp.MustCompile(`gateway ready.* child=(\d+)`).FindStringSubmatch(g.LogText())
	if m == nil {
		t.Fatalf("no child in the ready line:\n%s", g.LogText())
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestStartTermRestart(t *testing.T) {
	g := Start(t, Options{Bin: fakeGateway(t), Config: []byte("fake: true\n"), Name: "fake"})
	a := g.Addrs()
	if a.HTTP == "" || a.OTLPHTTP != "127.0.0.1:9" || a.OTLPGRPC != "" {
		t.Fatalf("addresses from the ready line: %+v", a)
	}
	if !g.Running() {
		t.Fatal("not running after Start")
	}
	m, err := g.Metric("x_total")
	if err != nil {
		t.Fatal(err)
	}
	if m["a"] != 2 || m["b"] != 3 || len(m) != 2 || m.Sum() != 5 {
		t.Errorf("x_total = %v, want a: 2, b: 3 (and not x_total_other)", m)
	}
	kid := childPid(t, g)

	// SIGTERM to the gateway alone: it exits 0, its child is not signalled.
	if err := g.Term(time.Minute); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if !g.LogsContain("[fake#1] level=INFO msg=\"gateway stopped cleanly\"") {
		t.Errorf("logs lack the clean stop of start #1:\n%s", g.LogText())
	}
	if _, err := os.Stat(g.ConfigPath() + ".child-term"); err == nil {
		t.Error("the child got SIGTERM though only the gateway was signalled")
	}
	if !alive(kid) {
		t.Error("the child is gone though only the gateway was signalled")
	}
	_ = syscall.Kill(kid, syscall.SIGKILL)

	g.Restart()
	if !g.Running() || g.Addrs().HTTP == "" || g.Addrs() == a {
		t.Fatalf("after Restart: running %v, addresses %+v (before %+v)", g.Running(), g.Addrs(), a)
	}
	if !g.LogsContain("[fake#2] level=INFO msg=\"gateway ready\"") {
		t.Errorf("logs lack the ready line of start #2:\n%s", g.LogText())
	}
}

func TestTermGroupReachesChildren(t *testing.T) {
	g := Start(t, Options{Bin: fakeGateway(t), Config: []byte("fake: true\n")})
	kid := childPid(t, g)
	if got := g.Children(); len(got) != 1 || got[0] != kid {
		t.Errorf("Children() = %v, want [%d]", got, kid)
	}
	if err := g.TermGroup(time.Minute); err != nil {
		t.Fatalf("exit after SIGTERM to the group: %v", err)
	}
	if !g.GroupGone(time.Minute) {
		t.Fatal("the group is still there after SIGTERM to it")
	}
	if b, err := os.ReadFile(g.ConfigPath() + ".child-term"); err != nil || strings.TrimSpace(string(b)) != "SIGTERM" {
		t.Errorf("the child did not record SIGTERM: %q, %v", b, err)
	}
}

func TestKillTakesTheGroup(t *testing.T) {
	g := Start(t, Options{Bin: fakeGateway(t), Config: []byte("fake: true\n")})
	g.Kill()
	if g.Running() {
		t.Fatal("running after Kill")
	}
	if !isSignalled(g.ExitErr(), syscall.SIGKILL) {
		t.Errorf("exit after Kill: %v, want killed by SIGKILL", g.ExitErr())
	}
	if !g.GroupGone(time.Minute) {
		t.Error("the child outlived Kill")
	}
}

func TestReadyAddrs(t *testing.T) {
	cases := []struct {
		line string
		want Addrs
		ok   bool
	}{
		{`time=x level=INFO msg="gateway ready" otlp_grpc=127.0.0.1:1 otlp_http=127.0.0.1:2 http=127.0.0.1:3 storage=sqlite`,
			Addrs{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}, true},
		{`time=x level=INFO msg="gateway ready" otlp_grpc="" otlp_http=127.0.0.1:2 http="" storage=sqlite`,
			Addrs{OTLPHTTP: "127.0.0.1:2"}, true},
		{`time=x level=INFO msg="starting kern trace gateway"`, Addrs{}, false},
	}
	for _, c := range cases {
		got, ok := ReadyAddrs(c.line)
		if got != c.want || ok != c.ok {
			t.Errorf("ReadyAddrs(%q) = %+v, %v; want %+v, %v", c.line, got, ok, c.want, c.ok)
		}
	}
}

func TestParseMetric(t *testing.T) {
	text := `# HELP kern_x_total x
# TYPE kern_x_total counter
kern_x_total{destination="a",result="ok"} 4
kern_x_total{destination="a",result="failed"} 1
kern_x_total{destination="b"} 2.5
kern_x_total_seconds 9
kern_y 7
`
	cases := []struct {
		name string
		want Samples
	}{
		{"kern_x_total", Samples{"a": 5, "b": 2.5}},
		{"kern_y", Samples{"": 7}},
		{"kern_z", Samples{}},
	}
	for _, c := range cases {
		got, err := parseMetric(text, c.name)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
			continue
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s: %v, want %v", c.name, got, c.want)
			}
		}
	}
	if _, err := parseMetric("kern_x_total nan-ish\n", "kern_x_total"); err == nil {
		t.Error("a sample that is no number: want an error")
	}
}
