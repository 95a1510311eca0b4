package main

import (
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/kern-agents/trace-gateway/internal/otlpsink"
)

// The fake vendors (otlpsink) run in a child process of the bench, the
// same one for every side, so that their CPU time can be told apart from
// the load generator's and their memory does not slow the senders. The
// bench drives it with gob messages over the child's stdin and stdout.

// sinkModeArg as the first argument makes gatewaybench a sink process.
const sinkModeArg = "sink-process"

type sinkOp int

const (
	opStart    sinkOp = iota + 1 // close the current sinks, start N new ones
	opWait                       // wait until every sink holds Want spans, or Timeout
	opArrivals                   // every sink's first arrivals
)

type sinkCmd struct {
	Op      sinkOp
	N       int
	Want    int
	Timeout time.Duration
}

// sinkArrival is when one span first reached a sink, in Unix nanoseconds
// (the same clock in both processes).
type sinkArrival struct {
	ID [8]byte
	At int64
}

type sinkReply struct {
	Err      string
	URLs     []string
	Counts   []int // distinct spans per sink
	Dups     []int // repeated deliveries per sink
	Arrivals [][]sinkArrival
}

// serveSinks is the child's side: it answers commands until stdin closes.
func serveSinks(in io.Reader, out io.Writer) error {
	dec, enc := gob.NewDecoder(in), gob.NewEncoder(out)
	var sinks []*otlpsink.Sink
	defer func() {
		for _, s := range sinks {
			s.Close()
		}
	}()
	for {
		var c sinkCmd
		if err := dec.Decode(&c); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("sink process: read command: %w", err)
		}
		var r sinkReply
		switch c.Op {
		case opStart:
			for _, s := range sinks {
				s.Close()
			}
			sinks = sinks[:0]
			for range c.N {
				s, err := otlpsink.New()
				if err != nil {
					r.Err = err.Error()
					break
				}
				sinks = append(sinks, s)
				r.URLs = append(r.URLs, s.URL())
			}
		case opWait:
			deadline := time.Now().Add(c.Timeout)
			for !allHold(sinks, c.Want) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			for _, s := range sinks {
				r.Counts = append(r.Counts, s.Count())
				r.Dups = append(r.Dups, s.Duplicates())
			}
		case opArrivals:
			for _, s := range sinks {
				arr := s.Arrivals()
				out := make([]sinkArrival, len(arr))
				for i, a := range arr {
					out[i] = sinkArrival{ID: a.ID, At: a.First.UnixNano()}
				}
				r.Arrivals = append(r.Arrivals, out)
			}
		default:
			r.Err = fmt.Sprintf("unknown command %d", c.Op)
		}
		if err := enc.Encode(&r); err != nil {
			return fmt.Errorf("sink process: write reply: %w", err)
		}
	}
}

func allHold(sinks []*otlpsink.Sink, want int) bool {
	for _, s := range sinks {
		if s.Count() < want {
			return false
		}
	}
	return true
}

// sinkProc is the bench's handle on the child.
type sinkProc struct {
	cmd *exec.Cmd // nil when serveSinks runs in this process (tests)
	in  io.WriteCloser
	enc *gob.Encoder
	dec *gob.Decoder
}

func newSinkClient(in io.WriteCloser, out io.Reader) *sinkProc {
	return &sinkProc{in: in, enc: gob.NewEncoder(in), dec: gob.NewDecoder(out)}
}

// startSinkProc starts this binary again as a sink process.
func startSinkProc() (*sinkProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("sink process: %w", err)
	}
	cmd := exec.Command(self, sinkModeArg)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("sink process: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("sink process: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("sink process: %w", err)
	}
	p := newSinkClient(in, out)
	p.cmd = cmd
	return p, nil
}

// pid is the sink process's id, 0 when there is none of its own.
func (p *sinkProc) pid() int {
	if p == nil || p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *sinkProc) call(c sinkCmd) (sinkReply, error) {
	var r sinkReply
	if err := p.enc.Encode(&c); err != nil {
		return r, fmt.Errorf("sink process: send command: %w", err)
	}
	if err := p.dec.Decode(&r); err != nil {
		return r, fmt.Errorf("sink process: read reply: %w", err)
	}
	if r.Err != "" {
		return r, fmt.Errorf("sink process: %s", r.Err)
	}
	return r, nil
}

// start replaces the child's sinks with n fresh ones and returns their URLs.
func (p *sinkProc) start(n int) ([]string, error) {
	r, err := p.call(sinkCmd{Op: opStart, N: n})
	return r.URLs, err
}

// wait returns once every sink holds want distinct spans, or after
// timeout, with each sink's distinct and repeated deliveries.
func (p *sinkProc) wait(want int, timeout time.Duration) (counts, dups []int, err error) {
	r, err := p.call(sinkCmd{Op: opWait, Want: want, Timeout: timeout})
	return r.Counts, r.Dups, err
}

func (p *sinkProc) arrivals() ([][]sinkArrival, error) {
	r, err := p.call(sinkCmd{Op: opArrivals})
	return r.Arrivals, err
}

func (p *sinkProc) close() {
	_ = p.in.Close() // the child returns at EOF
	if p.cmd != nil {
		_ = p.cmd.Wait()
	}
}
