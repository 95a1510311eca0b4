//go:build !windows

package pluginhost

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestSweepSocketDirs: the directories of gateways that exited go; those of
// running ones, and names of another form, stay.
func TestSweepSocketDirs(t *testing.T) {
	// A process that has exited and been reaped: its id names no process
	// (unless the system reused it at once, which would only keep a dir).
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	if processRunning(dead) {
		t.Skipf("process id %d was reused at once", dead)
	}
	tmp := t.TempDir()
	cases := []struct {
		name string
		gone bool
	}{
		{sockDirPrefix + strconv.Itoa(dead) + "-123", true},
		{sockDirPrefix + strconv.Itoa(os.Getpid()) + "-456", false},  // this process
		{sockDirPrefix + strconv.Itoa(os.Getppid()) + "-789", false}, // a running one
		{sockDirPrefix + "4211", false},                              // an earlier version's name: no process id
		{sockDirPrefix + "x-1", false},
		{"other-" + strconv.Itoa(dead) + "-1", false},
	}
	for _, c := range cases {
		dir := filepath.Join(tmp, c.name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "plugin.sock"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sweepSocketDirs(tmp)
	for _, c := range cases {
		_, err := os.Stat(filepath.Join(tmp, c.name))
		if gone := os.IsNotExist(err); gone != c.gone {
			t.Errorf("%s: removed %v, want %v", c.name, gone, c.gone)
		}
	}
}
