package gwbuild

import (
	"os"
	"strconv"

	"github.com/kern-agents/trace-gateway/internal/procfs"
)

// Proc is one process as /proc shows it.
type Proc struct {
	Pid, PPid int
	Args      []string
}

// Procs lists every process with its parent and command line, from /proc
// (Linux only; processes that vanish while being read are skipped).
func Procs() []Proc {
	ents, _ := os.ReadDir("/proc")
	var out []Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, err := procfs.PPid(pid)
		if err != nil {
			continue
		}
		args, _ := procfs.Cmdline(pid)
		out = append(out, Proc{Pid: pid, PPid: ppid, Args: args})
	}
	return out
}

// PluginChildren returns, per built-in adapter name, the pids of parent's
// children serving it (`gateway plugin NAME`).
func PluginChildren(parent int) map[string][]int {
	out := map[string][]int{}
	for _, p := range Procs() {
		if n := len(p.Args); p.PPid == parent && n >= 3 && p.Args[n-2] == "plugin" {
			out[p.Args[n-1]] = append(out[p.Args[n-1]], p.Pid)
		}
	}
	return out
}
