// Package builtin is the registry of exporters compiled into the gateway
// binary. Adapters register a factory from an init function; the gateway
// serves one as a plugin process with `gateway plugin NAME`, so built-ins
// get the same isolation as custom plugins.
package builtin

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/kern-agents/trace-gateway/plugins"
)

// Factory makes a fresh, unconfigured exporter.
type Factory func() plugins.Exporter

var (
	mu       sync.RWMutex
	registry = map[string]Factory{}
)

// Register adds a built-in exporter. It panics on an empty or malformed name,
// a nil factory, or a name registered twice: all are programming errors
// caught at start-up.
func Register(name string, factory func() plugins.Exporter) {
	if !ValidName(name) {
		panic(fmt.Sprintf("builtin: invalid exporter name %q (want lower-case letters, digits, '-' or '_')", name))
	}
	if factory == nil {
		panic(fmt.Sprintf("builtin: nil factory for exporter %q", name))
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("builtin: exporter %q registered twice", name))
	}
	registry[name] = factory
}

// Lookup returns the factory registered under name.
func Lookup(name string) (func() plugins.Exporter, bool) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := registry[name]
	return f, ok
}

// Names lists the registered exporters, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Serve runs the named built-in as a plugin process (the body of `gateway
// plugin NAME`). It returns when the host stops the plugin, or at once with
// an error when name is unknown.
func Serve(name string) error {
	f, ok := Lookup(name)
	if !ok {
		return UnknownError(name)
	}
	plugins.Serve(f())
	return nil
}

// UnknownError is the error for a name no built-in is registered under.
func UnknownError(name string) error {
	names := Names()
	if len(names) == 0 {
		return fmt.Errorf("unknown built-in exporter %q (none are compiled in)", name)
	}
	return fmt.Errorf("unknown built-in exporter %q (built-ins: %s)", name, strings.Join(names, ", "))
}

// ValidName reports whether name can name a built-in: non-empty lower-case
// letters, digits, '-' and '_', so it can never be mistaken for a path.
func ValidName(name string) bool {
	if name == "" {
		return false
	}
	return !slices.ContainsFunc([]rune(name), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	})
}
