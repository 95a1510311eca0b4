package plugins

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestErrorHelpers(t *testing.T) {
	base := errors.New("boom")
	cases := []struct {
		name      string
		err       error
		permanent bool
		after     time.Duration
		hasAfter  bool
	}{
		{"plain", base, false, 0, false},
		{"retryable", Retryable(base, 3*time.Second), false, 3 * time.Second, true},
		{"retryable no delay", Retryable(base, 0), false, 0, false},
		{"wrapped retryable", fmt.Errorf("ctx: %w", Retryable(base, time.Second)), false, time.Second, true},
		{"permanent", Permanent(base), true, 0, false},
		{"wrapped permanent", fmt.Errorf("ctx: %w", Permanent(base)), true, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if IsPermanent(tc.err) != tc.permanent {
				t.Errorf("IsPermanent = %v", !tc.permanent)
			}
			after, ok := RetryAfter(tc.err)
			if after != tc.after || ok != tc.hasAfter {
				t.Errorf("RetryAfter = %s, %v; want %s, %v", after, ok, tc.after, tc.hasAfter)
			}
			if !errors.Is(tc.err, base) {
				t.Error("wrapping lost the cause")
			}
		})
	}
}

func TestConfigError(t *testing.T) {
	var ce ConfigError
	if ce.Err() != nil {
		t.Fatal("empty ConfigError is an error")
	}
	ce.Add("endpoint", "is required")
	ce.Add("tls.ca_file", "file %s does not exist", "/ca.pem")
	err := ce.Err()
	if err == nil || err.Error() != "invalid config: endpoint: is required; tls.ca_file: file /ca.pem does not exist" {
		t.Fatalf("Err() = %v", err)
	}
	var nilCE *ConfigError
	if nilCE.Err() != nil {
		t.Fatal("nil ConfigError is an error")
	}
}
