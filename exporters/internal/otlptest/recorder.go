package otlptest

import "sync"

// recorder keeps what a fake received and how it answers.
type recorder[Req, Resp any] struct {
	mu      sync.Mutex
	reqs    []Req
	respond func(Req) Resp
}

// SetResponder replaces how the fake answers.
func (r *recorder[Req, Resp]) SetResponder(f func(Req) Resp) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.respond = f
}

// Requests returns every request received so far.
func (r *recorder[Req, Resp]) Requests() []Req {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Req(nil), r.reqs...)
}

// record keeps req and returns the responder to answer it with.
func (r *recorder[Req, Resp]) record(req Req) func(Req) Resp {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	return r.respond
}
