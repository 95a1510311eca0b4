package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kern-agents/trace-gateway/internal/gwbuild"
	"github.com/kern-agents/trace-gateway/internal/procfs"
)

// Where the CPU went during one measured window, from /proc: each role's
// processes' user+system time, the machine's busy and idle time, and what
// is left over (other processes, and processes that exited meanwhile).

// The roles, in the order they are printed.
const (
	roleGateway = iota
	rolePlugins
	roleCollector
	rolePGOurs // this side's PostgreSQL backends
	rolePGRest // the rest of the server: WAL writer, checkpointer, other clients
	roleSinks
	roleLoad // this process: senders, COPY client
	nRoles
)

var roleNames = [nRoles]string{"gateway", "plugins", "collector", "PostgreSQL", "PostgreSQL rest", "sinks", "load generator"}

// cpuSplit is CPU time by role plus the machine's busy and idle time.
type cpuSplit struct {
	role        [nRoles]time.Duration
	busy, idle  time.Duration
	unaccounted time.Duration
}

// cpuWho names the processes of one side: fixed pids, the gateway's plugin
// children, and the PostgreSQL backends whose application_name is appName.
type cpuWho struct {
	gateway, collector, sinks int
	appName                   string
	pg                        *pgx.Conn // to find the backends; nil when no database is involved
}

// cpuMeter samples CPU times at the start and the end of a window.
type cpuMeter struct {
	who   cpuWho
	start map[int]time.Duration
	busy  time.Duration
	idle  time.Duration
}

func startCPU(ctx context.Context, who cpuWho) *cpuMeter {
	m := &cpuMeter{who: who}
	m.busy, m.idle, _ = procfs.MachineCPU()
	m.start = map[int]time.Duration{}
	for _, pids := range m.roles(ctx) {
		for _, pid := range pids {
			m.start[pid], _ = procfs.CPUTime(pid)
		}
	}
	return m
}

// stop returns the CPU time used since startCPU. A process that started
// meanwhile counts from zero; one that ended is lost to "unaccounted".
func (m *cpuMeter) stop(ctx context.Context) cpuSplit {
	var s cpuSplit
	busy, idle, _ := procfs.MachineCPU()
	s.busy, s.idle = busy-m.busy, idle-m.idle
	var sum time.Duration
	for r, pids := range m.roles(ctx) {
		for _, pid := range pids {
			c, err := procfs.CPUTime(pid)
			if err != nil {
				continue
			}
			s.role[r] += max(c-m.start[pid], 0)
		}
		sum += s.role[r]
	}
	s.unaccounted = s.busy - sum
	return s
}

// roles lists the pids of each role now.
func (m *cpuMeter) roles(ctx context.Context) [nRoles][]int {
	var out [nRoles][]int
	one := func(r, pid int) {
		if pid > 0 {
			out[r] = append(out[r], pid)
		}
	}
	one(roleGateway, m.who.gateway)
	one(roleCollector, m.who.collector)
	one(roleSinks, m.who.sinks)
	one(roleLoad, os.Getpid())
	procs := gwbuild.Procs()
	if m.who.gateway > 0 {
		for _, p := range procs {
			if p.PPid == m.who.gateway {
				out[rolePlugins] = append(out[rolePlugins], p.Pid)
			}
		}
	}
	ours := map[int]bool{}
	if m.who.pg != nil && m.who.appName != "" {
		rows, err := m.who.pg.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, m.who.appName)
		if err == nil {
			pids, _ := pgx.CollectRows(rows, pgx.RowTo[int32])
			for _, pid := range pids {
				ours[int(pid)] = true
				out[rolePGOurs] = append(out[rolePGOurs], int(pid))
			}
		}
	}
	for _, pid := range postgresProcs(procs) {
		if !ours[pid] {
			out[rolePGRest] = append(out[rolePGRest], pid)
		}
	}
	return out
}

// postgresProcs lists the local PostgreSQL servers' processes: every
// postmaster (the parent of processes titled "postgres: ...") and its
// children.
func postgresProcs(procs []gwbuild.Proc) []int {
	masters := map[int]bool{}
	for _, p := range procs {
		if len(p.Args) > 0 && strings.HasPrefix(p.Args[0], "postgres: ") {
			masters[p.PPid] = true
		}
	}
	var out []int
	for _, p := range procs {
		if masters[p.Pid] || masters[p.PPid] {
			out = append(out, p.Pid)
		}
	}
	return out
}

// own is the CPU time of the side's own processes: every role but the
// rest of the PostgreSQL server, which other clients share.
func (s cpuSplit) own() time.Duration {
	var d time.Duration
	for r, x := range s.role {
		if r != rolePGRest {
			d += x
		}
	}
	return d
}

// perSpan divides every figure by n spans.
func (s cpuSplit) perSpan(n int) cpuSplit {
	d := time.Duration(max(n, 1))
	for r := range s.role {
		s.role[r] /= d
	}
	s.busy, s.idle, s.unaccounted = s.busy/d, s.idle/d, s.unaccounted/d
	return s
}

// String lists the roles that used any CPU, in µs (per span when perSpan
// was applied).
func (s cpuSplit) String() string {
	var parts []string
	for r, d := range s.role {
		if d > 0 {
			parts = append(parts, fmt.Sprintf("%s %.1f", roleNames[r], us(d)))
		}
	}
	parts = append(parts, fmt.Sprintf("other %.1f", us(s.unaccounted)))
	return fmt.Sprintf("%s; machine busy %.1f, idle %.1f", strings.Join(parts, ", "), us(s.busy), us(s.idle))
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// medianSplit is the role-by-role median of splits.
func medianSplit(splits []cpuSplit) cpuSplit {
	var m cpuSplit
	pick := func(f func(cpuSplit) time.Duration) time.Duration {
		xs := make([]float64, len(splits))
		for i, s := range splits {
			xs[i] = float64(f(s))
		}
		return time.Duration(median(xs))
	}
	for r := range m.role {
		m.role[r] = pick(func(s cpuSplit) time.Duration { return s.role[r] })
	}
	m.busy = pick(func(s cpuSplit) time.Duration { return s.busy })
	m.idle = pick(func(s cpuSplit) time.Duration { return s.idle })
	m.unaccounted = pick(func(s cpuSplit) time.Duration { return s.unaccounted })
	return m
}
