package tlsreload

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// pki is a test CA that issues server and client certificates.
type pki struct {
	t      *testing.T
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	pem    []byte
	serial int64
}

func newCA(t *testing.T, name string) *pki {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &pki{t: t, cert: cert, key: key, pem: pemBlock("CERTIFICATE", der), serial: 1}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// issue returns a certificate and key (PEM) for cn; server certificates are
// valid for 127.0.0.1.
func (ca *pki) issue(cn string, server bool) (certPEM, keyPEM []byte) {
	ca.t.Helper()
	ca.serial++
	key := newKey(ca.t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	return pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", kder)
}

func (ca *pki) clientCert(cn string) tls.Certificate {
	ca.t.Helper()
	c, k := ca.issue(cn, false)
	cert, err := tls.X509KeyPair(c, k)
	if err != nil {
		ca.t.Fatal(err)
	}
	return cert
}

// writeAtomic replaces path the way careful tools do (write, rename).
func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type files struct{ cert, key, ca string }

func writeFiles(t *testing.T, dir string, certPEM, keyPEM, caPEM []byte) files {
	t.Helper()
	f := files{filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "ca.crt")}
	writeAtomic(t, f.cert, certPEM)
	writeAtomic(t, f.key, keyPEM)
	if caPEM != nil {
		writeAtomic(t, f.ca, caPEM)
	}
	return f
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveHTTPS serves a trivial handler over the reloader's config, the way
// the gateway wires an http.Server, and returns its https URL.
func serveHTTPS(t *testing.T, r *Reloader) string {
	t.Helper()
	return serveHTTPSWith(t, r.TLSConfig())
}

func serveHTTPSWith(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			_, _ = io.WriteString(w, "ok")
		}),
		ErrorLog:          log.New(io.Discard, "", 0), // expected handshake failures
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = srv.Serve(tls.NewListener(ln, cfg)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "https://" + ln.Addr().String() + "/"
}

// get makes one request on a fresh connection and returns the server
// certificate's common name and the protocol.
func get(url string, roots *x509.CertPool, client *tls.Certificate) (cn, proto string, err error) {
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if client != nil {
		// Send the certificate even when the server's CA list does not
		// name its issuer (Go's default would then send none), so that
		// the server's verification is what gets tested.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return client, nil }
	}
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err != nil {
		return "", "", err
	}
	return resp.TLS.PeerCertificates[0].Subject.CommonName, resp.Proto, nil
}

func pool(cas ...*pki) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.cert)
	}
	return p
}

func TestHandshake(t *testing.T) {
	serverCA := newCA(t, "server-ca")
	clientCA := newCA(t, "client-ca")
	otherCA := newCA(t, "other-ca")
	certPEM, keyPEM := serverCA.issue("server-1", true)
	good := clientCA.clientCert("client")
	untrusted := otherCA.clientCert("intruder")

	tests := []struct {
		name     string
		clientCA bool
		require  bool
		client   *tls.Certificate
		wantErr  bool
	}{
		{"plain TLS", false, false, nil, false},
		{"plain TLS ignores a client cert", false, false, &good, false},
		{"mTLS required, no client cert", true, true, nil, true},
		{"mTLS required, trusted client cert", true, true, &good, false},
		{"mTLS required, untrusted client cert", true, true, &untrusted, true},
		{"mTLS optional, no client cert", true, false, nil, false},
		{"mTLS optional, trusted client cert", true, false, &good, false},
		{"mTLS optional, untrusted client cert", true, false, &untrusted, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var caPEM []byte
			if tt.clientCA {
				caPEM = clientCA.pem
			}
			f := writeFiles(t, t.TempDir(), certPEM, keyPEM, caPEM)
			opts := Options{CertFile: f.cert, KeyFile: f.key, RequireClientCert: tt.require, Interval: -1}
			if tt.clientCA {
				opts.ClientCAFile = f.ca
			}
			r, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			cn, proto, err := get(serveHTTPS(t, r), pool(serverCA), tt.client)
			if tt.wantErr {
				if err == nil {
					t.Fatal("request succeeded, want a TLS failure")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cn != "server-1" {
				t.Errorf("served certificate %q", cn)
			}
			if proto != "HTTP/2.0" {
				t.Errorf("protocol %s, want HTTP/2.0 negotiated through ALPN", proto)
			}
		})
	}
}

// TestRotationByPolling replaces the files on disk and expects new
// connections to see the new certificate without any call.
func TestRotationByPolling(t *testing.T) {
	ca := newCA(t, "ca")
	c1, k1 := ca.issue("server-1", true)
	f := writeFiles(t, t.TempDir(), c1, k1, nil)
	r, err := New(Options{CertFile: f.cert, KeyFile: f.key, Interval: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	url := serveHTTPS(t, r)
	if cn, _, err := get(url, pool(ca), nil); err != nil || cn != "server-1" {
		t.Fatalf("before rotation: %q, %v", cn, err)
	}

	c2, k2 := ca.issue("server-2", true)
	writeAtomic(t, f.key, k2)
	writeAtomic(t, f.cert, c2)
	deadline := time.Now().Add(5 * time.Second)
	for {
		cn, _, err := get(url, pool(ca), nil)
		if err == nil && cn == "server-2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new certificate not served after 5s: last %q, %v", cn, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := r.Certificate().Subject.CommonName; got != "server-2" {
		t.Errorf("Certificate() = %q", got)
	}
}

// TestBrokenReplacementKeepsOldCert: a bad rotation is logged once and the
// old certificate keeps being served; fixing the files recovers.
func TestBrokenReplacementKeepsOldCert(t *testing.T) {
	ca := newCA(t, "ca")
	c1, k1 := ca.issue("server-1", true)
	c2, k2 := ca.issue("server-2", true)
	f := writeFiles(t, t.TempDir(), c1, k1, nil)
	logs := &syncBuffer{}
	r, err := New(Options{CertFile: f.cert, KeyFile: f.key, Interval: -1,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	url := serveHTTPS(t, r)

	breakages := []struct {
		name       string
		cert, key  []byte
		wantErrMsg string
	}{
		{"garbage cert", []byte("not a certificate"), k1, "load TLS key pair"},
		{"key does not match", c2, k1, "private key does not match"},
		{"truncated cert", c2[:len(c2)/2], k2, "load TLS key pair"},
		{"empty key", c2, []byte{}, "load TLS key pair"},
	}
	for _, b := range breakages {
		t.Run(b.name, func(t *testing.T) {
			before := strings.Count(logs.String(), "not reloaded")
			writeAtomic(t, f.cert, b.cert)
			writeAtomic(t, f.key, b.key)
			for i := 0; i < 3; i++ {
				err := r.Reload()
				if err == nil || !strings.Contains(err.Error(), b.wantErrMsg) {
					t.Fatalf("Reload = %v, want an error containing %q", err, b.wantErrMsg)
				}
			}
			if n := strings.Count(logs.String(), "not reloaded") - before; n != 1 {
				t.Errorf("logged the failure %d times, want once", n)
			}
			if cn, _, err := get(url, pool(ca), nil); err != nil || cn != "server-1" {
				t.Fatalf("after a broken rotation: served %q, %v; want the old certificate", cn, err)
			}
		})
	}

	// A missing file is a failure too.
	if err := os.Remove(f.key); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil || !strings.Contains(err.Error(), "key_file") {
		t.Fatalf("Reload with a missing key = %v", err)
	}

	writeAtomic(t, f.cert, c2)
	writeAtomic(t, f.key, k2)
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload after fixing the files: %v", err)
	}
	if cn, _, err := get(url, pool(ca), nil); err != nil || cn != "server-2" {
		t.Fatalf("after fixing: served %q, %v", cn, err)
	}
	if !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Errorf("successful reload not logged: %s", logs.String())
	}
}

// TestClientCARotation swaps the client CA bundle: clients of the new CA get
// in, clients of the old one no longer do.
func TestClientCARotation(t *testing.T) {
	serverCA := newCA(t, "server-ca")
	oldCA, newCAs := newCA(t, "old-client-ca"), newCA(t, "new-client-ca")
	c, k := serverCA.issue("server", true)
	f := writeFiles(t, t.TempDir(), c, k, oldCA.pem)
	r, err := New(Options{CertFile: f.cert, KeyFile: f.key, ClientCAFile: f.ca, RequireClientCert: true, Interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	url := serveHTTPS(t, r)
	oldClient, newClient := oldCA.clientCert("old"), newCAs.clientCert("new")
	if _, _, err := get(url, pool(serverCA), &newClient); err == nil {
		t.Fatal("client of the new CA accepted before rotation")
	}
	writeAtomic(t, f.ca, newCAs.pem)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(url, pool(serverCA), &newClient); err != nil {
		t.Fatalf("client of the new CA after rotation: %v", err)
	}
	if _, _, err := get(url, pool(serverCA), &oldClient); err == nil {
		t.Fatal("client of the old CA still accepted after rotation")
	}
}

// TestWithoutClientCerts: the probe-facing config serves the same (rotated)
// certificate without asking for a client certificate, while the mTLS
// config beside it still requires one.
func TestWithoutClientCerts(t *testing.T) {
	serverCA, clientCA := newCA(t, "server-ca"), newCA(t, "client-ca")
	c1, k1 := serverCA.issue("server-1", true)
	f := writeFiles(t, t.TempDir(), c1, k1, clientCA.pem)
	r, err := New(Options{CertFile: f.cert, KeyFile: f.key, ClientCAFile: f.ca, RequireClientCert: true, Interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	mtls, open := serveHTTPS(t, r), serveHTTPSWith(t, r.TLSConfigWithoutClientCerts())
	if _, _, err := get(mtls, pool(serverCA), nil); err == nil {
		t.Fatal("mTLS listener accepted a client without a certificate")
	}
	if cn, _, err := get(open, pool(serverCA), nil); err != nil || cn != "server-1" {
		t.Fatalf("open listener: %q, %v", cn, err)
	}
	c2, k2 := serverCA.issue("server-2", true)
	writeAtomic(t, f.cert, c2)
	writeAtomic(t, f.key, k2)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if cn, _, err := get(open, pool(serverCA), nil); err != nil || cn != "server-2" {
		t.Fatalf("open listener after rotation: %q, %v", cn, err)
	}
}

// TestGRPC serves gRPC with the reloader's config and mTLS required: ALPN
// (h2) and client verification work through GetConfigForClient.
func TestGRPC(t *testing.T) {
	serverCA, clientCA := newCA(t, "server-ca"), newCA(t, "client-ca")
	c, k := serverCA.issue("server", true)
	f := writeFiles(t, t.TempDir(), c, k, clientCA.pem)
	r, err := New(Options{CertFile: f.cert, KeyFile: f.key, ClientCAFile: f.ca, RequireClientCert: true, Interval: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(r.TLSConfig())))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	check := func(client *tls.Certificate) error {
		cfg := &tls.Config{RootCAs: pool(serverCA), MinVersion: tls.VersionTLS12}
		if client != nil {
			cfg.Certificates = []tls.Certificate{*client}
		}
		conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	cert := clientCA.clientCert("agent")
	if err := check(&cert); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	if err := check(nil); err == nil {
		t.Fatal("without a client certificate: call succeeded, want a TLS failure")
	}
}

func TestNewErrors(t *testing.T) {
	ca := newCA(t, "ca")
	c, k := ca.issue("server", true)
	dir := t.TempDir()
	f := writeFiles(t, dir, c, k, []byte("no pem here"))
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no cert", Options{KeyFile: f.key}, "both required"},
		{"no key", Options{CertFile: f.cert}, "both required"},
		{"missing cert file", Options{CertFile: filepath.Join(dir, "nope"), KeyFile: f.key}, "read TLS cert_file"},
		{"require without CA", Options{CertFile: f.cert, KeyFile: f.key, RequireClientCert: true}, "needs client_ca_file"},
		{"CA without PEM", Options{CertFile: f.cert, KeyFile: f.key, ClientCAFile: f.ca}, "no PEM certificates"},
		{"key and cert swapped", Options{CertFile: f.key, KeyFile: f.cert}, "load TLS key pair"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.opts)
			if err == nil {
				r.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestCloseStopsPolling(t *testing.T) {
	ca := newCA(t, "ca")
	c, k := ca.issue("server", true)
	f := writeFiles(t, t.TempDir(), c, k, nil)
	r, err := New(Options{CertFile: f.cert, KeyFile: f.key, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = r.Close(); _ = r.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if r.TLSConfig() == nil || r.Certificate() == nil {
		t.Fatal("config unusable after Close")
	}
}
