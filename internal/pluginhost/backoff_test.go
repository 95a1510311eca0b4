package pluginhost

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

func TestBackoff(t *testing.T) {
	d := &Destination{spec: Spec{RestartBackoff: time.Second, MaxRestartBackoff: 30 * time.Second}}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i, w := range want {
		if got := d.backoff(i + 1); got != w*time.Second {
			t.Errorf("backoff(%d) = %s, want %s", i+1, got, w*time.Second)
		}
	}
	if got := d.backoff(10_000); got != 30*time.Second {
		t.Errorf("backoff after many failures = %s (overflow?)", got)
	}
}

func TestSpecValidation(t *testing.T) {
	cases := []struct {
		name string
		spec Spec
		want string
	}{
		{"no name", Spec{Plugin: "otlp"}, "name is empty"},
		{"no plugin", Spec{Name: "x"}, "plugin is empty"},
		{"sha on built-in", Spec{Name: "x", Plugin: "otlp", SHA256: "00000000000000000000000000000000000000000000000000000000000000ff"}, "sha256 applies only to a plugin given by path"},
		{"short sha", Spec{Name: "x", Plugin: "./p", SHA256: "abcd"}, "not 64 hex digits"},
		{"message limit too large", Spec{Name: "x", Plugin: "./p", MaxMessageBytes: 8 << 20}, "outside 1..4194304"},
	}
	for _, tc := range cases {
		err := tc.spec.validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: validate() = %v, want %q", tc.name, err, tc.want)
		}
	}
	ok := Spec{Name: "x", Plugin: "./p", SHA256: "00000000000000000000000000000000000000000000000000000000000000FF"}
	if err := ok.validate(); err != nil {
		t.Errorf("valid spec rejected: %v", err)
	}
}

func TestIsPath(t *testing.T) {
	for in, want := range map[string]bool{"otlp": false, "langfuse": false, "./p": true, "/usr/bin/p": true, "bin/p": true, ".hidden": true, `c:\p.exe`: true} {
		if IsPath(in) != want {
			t.Errorf("IsPath(%q) = %v", in, !want)
		}
	}
}

func TestCallerEnded(t *testing.T) {
	bg := context.Background()
	short, c1 := context.WithTimeout(bg, time.Hour)
	defer c1()
	long, c2 := context.WithTimeout(bg, 2*time.Hour)
	defer c2()
	done, c3 := context.WithCancel(bg)
	c3()
	cases := []struct {
		name         string
		caller, call context.Context
		code         codes.Code
		want         error
	}{
		{"caller cancelled", done, done, codes.Canceled, context.Canceled},
		{"caller's deadline is the nearer", short, short, codes.DeadlineExceeded, context.DeadlineExceeded},
		{"call timeout is the nearer", long, short, codes.DeadlineExceeded, nil},
		{"no caller deadline", bg, short, codes.DeadlineExceeded, nil},
		{"other failure", short, short, codes.Unavailable, nil},
	}
	for _, tc := range cases {
		if got := callerEnded(tc.caller, tc.call, tc.code); got != tc.want {
			t.Errorf("%s: callerEnded = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPluginEnv(t *testing.T) {
	cases := []struct {
		name      string
		inherited []string
		want      string // the GOMAXPROCS entry the plugin gets
	}{
		{"one processor by default", []string{"PATH=/bin"}, "GOMAXPROCS=1"},
		{"the operator's setting wins", []string{"GOMAXPROCS=4"}, "GOMAXPROCS=4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := pluginEnv(slices.Clone(tc.inherited), "OURS=1")
			var got []string
			for _, kv := range env {
				if strings.HasPrefix(kv, "GOMAXPROCS=") {
					got = append(got, kv)
				}
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("GOMAXPROCS entries %v, want [%s]", got, tc.want)
			}
			if !slices.Contains(env, "OURS=1") {
				t.Errorf("env %v lost our variables", env)
			}
		})
	}
}
