// Package gwbuild builds a command of this module into a temporary
// directory for end-to-end tests that run the real binary, and lists a
// running gateway's plugin child processes (see gwproc for running one).
package gwbuild

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Build compiles the package at pkg, a path relative to the module root
// such as "./cmd/gateway", with CGO disabled, into a new temporary
// directory. It returns the binary's path and a cleanup that removes the
// directory. The module root is found by walking up from the working
// directory to go.mod, so it works from any package's tests.
func Build(pkg string) (bin string, cleanup func(), err error) {
	root, err := moduleRoot()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "gwbuild-")
	if err != nil {
		return "", nil, fmt.Errorf("build %s: temp dir: %w", pkg, err)
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	bin = filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("build %s: %w\n%s", pkg, err, out)
	}
	return bin, cleanup, nil
}

// moduleRoot is the nearest directory at or above the working directory
// holding a go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Main is a TestMain body for packages that run a built command: unless the
// run is -short (where such tests skip themselves and building would only
// cost time), it builds pkg, stores the binary's path in *bin, runs the
// tests and removes the binary. It returns the exit code for os.Exit.
func Main(m *testing.M, pkg string, bin *string) int {
	if !flag.Parsed() {
		flag.Parse()
	}
	if testing.Short() {
		return m.Run()
	}
	path, cleanup, err := Build(pkg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	*bin = path
	return m.Run()
}
