package procfs

import (
	"os"
	"testing"
	"time"
)

func TestSelf(t *testing.T) {
	pid := os.Getpid()
	// Burn a little CPU so the time is not zero.
	for deadline := time.Now().Add(30 * time.Millisecond); time.Now().Before(deadline); {
	}
	ppid, err := PPid(pid)
	if err != nil || ppid != os.Getppid() {
		t.Errorf("PPid = %d, %v; want %d", ppid, err, os.Getppid())
	}
	cpu, err := CPUTime(pid)
	if err != nil || cpu <= 0 {
		t.Errorf("CPUTime = %v, %v; want > 0", cpu, err)
	}
	args, err := Cmdline(pid)
	if err != nil || len(args) == 0 || args[0] != os.Args[0] {
		t.Errorf("Cmdline = %q, %v; want to start with %q", args, err, os.Args[0])
	}
	for _, key := range []string{"VmRSS", "VmHWM"} {
		n, err := StatusBytes(pid, key)
		if err != nil || n < 1<<20 {
			t.Errorf("StatusBytes(%s) = %d, %v; want at least a MiB", key, n, err)
		}
	}
	if _, err := StatusBytes(pid, "NoSuchKey"); err == nil {
		t.Error("StatusBytes of a missing key: no error")
	}
	if _, err := CPUTime(-1); err == nil {
		t.Error("CPUTime of no process: no error")
	}
}

func TestMachineCPU(t *testing.T) {
	busy0, idle0, err := MachineCPU()
	if err != nil || busy0 <= 0 || idle0 < 0 {
		t.Fatalf("MachineCPU = %v, %v, %v", busy0, idle0, err)
	}
	// This process's own work shows up as machine busy time.
	self0, _ := CPUTime(os.Getpid())
	for deadline := time.Now().Add(100 * time.Millisecond); time.Now().Before(deadline); {
	}
	self1, _ := CPUTime(os.Getpid())
	busy1, idle1, err := MachineCPU()
	if err != nil {
		t.Fatal(err)
	}
	if busy1-busy0 < self1-self0-2*clockTick || idle1 < idle0 {
		t.Fatalf("machine busy grew %v, idle %v → %v, while this process used %v", busy1-busy0, idle0, idle1, self1-self0)
	}
}
