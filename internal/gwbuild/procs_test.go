package gwbuild

import (
	"os"
	"os/exec"
	"slices"
	"testing"
)

func TestProcsAndPluginChildren(t *testing.T) {
	// A child whose command line ends in "plugin NAME", like a built-in
	// adapter started by the gateway.
	// ("; :" keeps sh from exec-ing sleep, which would drop these arguments.)
	cmd := exec.Command("sh", "-c", "sleep 30; :", "plugin", "otlp")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	self := os.Getpid()
	var found bool
	for _, p := range Procs() {
		if p.Pid == cmd.Process.Pid {
			found = p.PPid == self
		}
	}
	if !found {
		t.Fatalf("Procs does not show child %d with parent %d", cmd.Process.Pid, self)
	}
	kids := PluginChildren(self)
	if !slices.Equal(kids["otlp"], []int{cmd.Process.Pid}) || len(kids) != 1 {
		t.Fatalf("PluginChildren = %v, want otlp: [%d]", kids, cmd.Process.Pid)
	}
	if got := PluginChildren(cmd.Process.Pid); len(got) != 0 {
		t.Fatalf("PluginChildren of a process without children = %v", got)
	}
}
