// Package e2e holds the gateway's end-to-end fault tests: real gateway
// processes (built from cmd/gateway), a real trace database, continuous
// simulated load, and a fake OTLP vendor, with crashes, restarts and outages
// injected while spans flow. Each test counts what senders had acknowledged,
// what the database holds and what destinations received.
//
// The tests take minutes, not seconds; `go test -short` skips them.
package e2e
