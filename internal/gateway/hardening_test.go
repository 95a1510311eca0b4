package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kern-agents/trace-gateway/internal/auth"
	"github.com/kern-agents/trace-gateway/internal/config"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gateway"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

const tokenA, tokenB = "token-team-a-0123456789", "token-team-b-0123456789"

func spansBody(t *testing.T, n int, traceByte byte) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr(auth.TenantAttribute, "spoofed")
	ss := rs.ScopeSpans().AppendEmpty()
	for i := range n {
		sp := ss.Spans().AppendEmpty()
		sp.SetName("s")
		sp.SetTraceID(pcommon.TraceID{traceByte, 1})
		sp.SetSpanID(pcommon.SpanID{traceByte, byte(i + 1)})
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(time.Now()))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHardenedGateway runs the gateway with auth, TLS on every listener,
// limits and pprof, over both transports, and reloads the tokens.
func TestHardenedGateway(t *testing.T) {
	cfg := testConfig(t, "sqlite")
	cfg.Server.Pprof = "127.0.0.1:0"
	cfg.Server.MaxConnections = 64
	cfg.Server.Auth.Tokens = []config.AuthToken{{Token: tokenA, Tenant: "team-a"}}
	var pool *x509.CertPool
	cfg.Server.TLS.CertFile, cfg.Server.TLS.KeyFile, pool = selfSigned(t, t.TempDir())
	cfg.Ingest.MaxSpansPerRequest = 5
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	reload := make(chan struct{})
	next := *cfg
	next.Server.Auth.Tokens = []config.AuthToken{{Token: tokenB, Tenant: "team-b"}}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	var g *Gateway
	started := make(chan struct{})
	go func() {
		var err error
		g, err = Start(ctx, cfg, Options{Logger: slog.New(slog.DiscardHandler)})
		close(started)
		if err != nil {
			runErr <- err
			return
		}
		// The Run loop's reload branch, as cmd/gateway drives it.
		for {
			select {
			case <-ctx.Done():
				runErr <- g.Shutdown(context.Background())
				return
			case <-reload:
				_, _ = g.Reload(context.Background(), &next)
			}
		}
	}()
	<-started
	if g == nil {
		t.Fatal(<-runErr)
	}
	defer func() { cancel(); <-runErr }()

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	post := func(token string, n int, traceByte byte) int {
		t.Helper()
		code, _ := request(t, client, http.MethodPost, "https://"+g.Addrs().OTLPHTTP+"/v1/traces", token, spansBody(t, n, traceByte))
		return code
	}
	if code := post("", 1, 1); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code := post(tokenA, 6, 2); code != 413 {
		t.Fatalf("too many spans: %d", code)
	}
	if code := post(tokenA, 2, 3); code != 200 {
		t.Fatalf("team-a: %d", code)
	}

	conn, err := grpc.NewClient(g.Addrs().OTLPGRPC, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	export := func(token string, traceByte byte) error {
		ctx := context.Background()
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(spansBody(t, 1, traceByte)); err != nil {
			t.Fatal(err)
		}
		_, err := ptraceotlp.NewGRPCClient(conn).Export(ctx, req)
		return err
	}
	if err := export("", 4); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("gRPC without token: %v", err)
	}
	if err := export(tokenA, 5); err != nil {
		t.Fatalf("gRPC team-a: %v", err)
	}

	reload <- struct{}{}
	// The reload is applied in the background: until it is, team-b's token
	// is refused as invalid, and each refusal counts in the metrics below.
	refusedB := 0
	deadline := time.Now().Add(30 * time.Second)
	for {
		code := post(tokenB, 1, 6)
		if code == 200 {
			break
		}
		if code == 401 {
			refusedB++
		}
		if time.Now().After(deadline) {
			t.Fatalf("reloaded token not accepted: %d", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := post(tokenA, 1, 7); code != 401 {
		t.Fatalf("removed token after reload: %d", code)
	}

	tenants := map[string]int{}
	// The tenant lives on the span's resource, stored once in gateway_resources.
	rows, err := g.Store().DB().Query(`SELECT r.tenant FROM agno_spans s
		LEFT JOIN gateway_trace_resources u ON u.trace_id = s.trace_id
		JOIN gateway_resources r ON r.id = coalesce(json_extract(s.attributes, '$."kern.resource"'), u.resource_id)`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var tenant string
		if err := rows.Scan(&tenant); err != nil {
			t.Fatal(err)
		}
		tenants[tenant]++
	}
	rows.Close()
	if tenants["team-a"] != 3 || tenants["team-b"] != 1 || len(tenants) != 2 {
		t.Fatalf("stored tenants %v", tenants)
	}

	// The admin listener serves TLS too; metrics show the refusals.
	resp, err := client.Get("https://" + g.Addrs().HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`kern_gateway_auth_failures_total{reason="missing",transport="http"} 1`,
		`kern_gateway_auth_failures_total{reason="missing",transport="grpc"} 1`,
		fmt.Sprintf(`kern_gateway_auth_failures_total{reason="invalid",transport="http"} %d`, 1+refusedB),
		`kern_gateway_spans_rejected_total{reason="too_many_spans"} 6`,
		`kern_gateway_tls_certificate_expiry_timestamp_seconds`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	resp, err = http.Get("http://" + g.Addrs().Pprof + "/debug/pprof/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pprof: %v %v", resp, err)
	}
	resp.Body.Close()
}
