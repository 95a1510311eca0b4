// Package e2etest runs the real gateway binary with every built-in vendor
// destination at once (Langfuse, LangSmith, Arize AX, Phoenix, Logfire,
// MLflow and the generic OTLP adapter over HTTP and gRPC), each pointed at a
// loopback fake of that vendor's documented endpoint, sends it a simulated
// AgentOS workload and checks what every vendor received against what the
// gateway stored: every span, the vendor's auth headers and encoding, and
// the vendor-specific attributes on the right spans.
//
// It lives under exporters/ to share the fakes of exporters/internal/otlptest.
// `go test -short` skips it.
package e2etest
