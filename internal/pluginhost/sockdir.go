package pluginhost

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// sockDirPrefix starts the name of a plugin's socket directory; the
// gateway's process id follows, so that a later gateway can tell the
// directories a killed one left behind.
const sockDirPrefix = "kern-plugin-"

var sweepOnce sync.Once

// newSocketDir makes a plugin's socket directory (mode 0700). The first
// call in a process also removes the directories of gateways that are no
// longer running: one stopped by SIGKILL could not remove its own.
func newSocketDir() (string, error) {
	sweepOnce.Do(func() { sweepSocketDirs(os.TempDir()) })
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", sockDirPrefix, os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("creating the plugin's socket directory: %w", err)
	}
	return dir, nil
}

// sweepSocketDirs removes the socket directories in tmp whose gateway
// process has exited. Directories of running processes, of other users
// (which cannot be removed) and of unknown form are left alone.
func sweepSocketDirs(tmp string) {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), sockDirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pid == os.Getpid() || processRunning(pid) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(tmp, e.Name()))
	}
}
